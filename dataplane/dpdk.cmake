# DPDK capture back-end (dpdk:ARGS): any port DPDK can drive, from a PCI
# address or a virtual device string (net_af_xdp, net_pcap, net_af_packet...).
# Needs libdpdk-dev (pkg-config libdpdk); without it weir builds without
# the back-end and dpdk: answers ENOTSUP.
option(WEIR_WITH_DPDK "Build the DPDK capture back-end when libdpdk is found" ON)
if(WEIR_WITH_DPDK)
  # GLOBAL: weir_dataplane is static, so its consumers link DPDK too.
  pkg_check_modules(DPDK IMPORTED_TARGET GLOBAL libdpdk)
  if(DPDK_FOUND)
    message(STATUS "weir: DPDK ${DPDK_VERSION} found, building the dpdk: back-end")
    # dpdk_source.cpp is built on its own so DPDK's compile flags
    # (-include rte_config.h, its include directories) reach no other file;
    # its objects and DPDK's libraries go into weir_dataplane. The imported
    # target's include directories are SYSTEM, so DPDK's headers do not trip
    # -Werror; nothing else is relaxed.
    # libdpdk.pc also carries -march=corei7; the project's -march baseline
    # (x86-64-v2, the same SSE4.2 level) stays the only one.
    get_target_property(weir_dpdk_copts PkgConfig::DPDK INTERFACE_COMPILE_OPTIONS)
    if(weir_dpdk_copts)
      list(FILTER weir_dpdk_copts EXCLUDE REGEX "^-march=")
      set_target_properties(PkgConfig::DPDK PROPERTIES INTERFACE_COMPILE_OPTIONS "${weir_dpdk_copts}")
    endif()
    add_library(weir_dataplane_dpdk OBJECT src/dpdk_source.cpp)
    target_include_directories(weir_dataplane_dpdk PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(weir_dataplane_dpdk PRIVATE weir::core fmt::fmt PkgConfig::DPDK)
    target_link_libraries(weir_dataplane PRIVATE weir_dataplane_dpdk)
    # PUBLIC: tools and tests see whether open_dpdk() exists.
    target_compile_definitions(weir_dataplane PUBLIC WEIR_HAVE_DPDK=1)
  else()
    message(STATUS "weir: libdpdk not found (pkg-config libdpdk; Debian: libdpdk-dev): building without the dpdk: back-end")
  endif()
else()
  message(STATUS "weir: DPDK back-end disabled (WEIR_WITH_DPDK=OFF)")
endif()
