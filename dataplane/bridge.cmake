# Inline bridge (weir --bridge ifA:ifB): the loader of the XDP program
# ebpf/src/weir_bridge.bpf.c. Needs the BPF toolchain (WEIR_HAVE_BPF);
# without it weir builds without --bridge (WEIR_HAVE_BRIDGE undefined).
set(WEIR_HAVE_BRIDGE OFF CACHE INTERNAL "inline bridge built")
if(WEIR_HAVE_BPF AND TARGET weir::bpf_weir_bridge)
  target_sources(weir_dataplane PRIVATE src/bridge.cpp)
  target_link_libraries(weir_dataplane PRIVATE weir::bpf_weir_bridge)
  # PUBLIC: weir, weirctl and the tests see whether the bridge exists.
  target_compile_definitions(weir_dataplane PUBLIC WEIR_HAVE_BRIDGE=1)
  set(WEIR_HAVE_BRIDGE ON CACHE INTERNAL "inline bridge built")
endif()
