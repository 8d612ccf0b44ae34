# Checks and DEVMAP set-up shared by the verdict-applying XDP loaders
# (src/xdp_program.cpp, src/bridge.cpp): built with either of them. This
# file is included after afxdp.cmake and bridge.cmake (alphabetical order).
if(WEIR_HAVE_AFXDP OR WEIR_HAVE_BRIDGE)
  target_sources(weir_dataplane PRIVATE src/xdp_loader.cpp)
endif()
