# AF_XDP capture back-end (xdp:IF[@queues]), AF_XDP transmit (xsk_tx.hpp:
# IDS egress --egress-tx afxdp, weir-gen) and the loader of weir's own XDP
# program (ebpf/src/weir_xdp.bpf.c). Needs the BPF toolchain (WEIR_HAVE_BPF:
# clang, bpftool, libbpf-dev) and libxdp-dev for the xsk socket API; without
# them weir builds without the back-end and xdp: answers ENOTSUP.
set(WEIR_HAVE_AFXDP OFF CACHE INTERNAL "AF_XDP back-end built")
if(WEIR_HAVE_BPF)
  # GLOBAL: weir_dataplane is static, so its consumers link libxdp too.
  pkg_check_modules(LIBXDP IMPORTED_TARGET GLOBAL libxdp)
  if(LIBXDP_FOUND AND TARGET weir::bpf_weir_xdp)
    message(STATUS "weir: libxdp ${LIBXDP_VERSION} found, building the xdp: (AF_XDP) back-end")
    target_sources(weir_dataplane PRIVATE src/afxdp.cpp src/xdp_program.cpp src/xsk_umem.cpp src/xsk_tx.cpp
      src/egress_afxdp.cpp)
    target_link_libraries(weir_dataplane PRIVATE weir::bpf_weir_xdp PkgConfig::LIBXDP)
    # PUBLIC: tools and tests see whether open_afxdp() exists.
    target_compile_definitions(weir_dataplane PUBLIC WEIR_HAVE_AFXDP=1)
    set(WEIR_HAVE_AFXDP ON CACHE INTERNAL "AF_XDP back-end built")
  else()
    message(STATUS "weir: libxdp not found (pkg-config libxdp; Debian: libxdp-dev): building without the xdp: back-end")
  endif()
else()
  message(STATUS "weir: BPF toolchain missing: building without the xdp: (AF_XDP) back-end")
endif()
