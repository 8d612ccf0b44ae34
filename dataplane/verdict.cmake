# IDS verdicts: the per-flow / per-subnet verdict maps (libbpf) and the
# control channel that fills them (Unix socket, optional ZMQ REP).
# Address parsing and the request protocol build everywhere; the maps need
# libbpf (WEIR_HAVE_VERDICTS), ZMQ needs libzmq (WEIR_HAVE_VERDICT_ZMQ).
target_sources(weir_dataplane PRIVATE src/verdict_map.cpp src/verdict_server.cpp src/verdict_client.cpp)
target_link_libraries(weir_dataplane PRIVATE nlohmann_json::nlohmann_json Threads::Threads)
if(WEIR_HAVE_BPF)
  pkg_check_modules(WEIR_VERDICT_BPF IMPORTED_TARGET libbpf)
endif()
if(WEIR_HAVE_BPF AND WEIR_VERDICT_BPF_FOUND)
  target_link_libraries(weir_dataplane PRIVATE PkgConfig::WEIR_VERDICT_BPF)
  target_compile_definitions(weir_dataplane PRIVATE WEIR_HAVE_VERDICTS=1)
endif()
pkg_check_modules(WEIR_VERDICT_ZMQ IMPORTED_TARGET libzmq)
if(WEIR_VERDICT_ZMQ_FOUND)
  target_link_libraries(weir_dataplane PRIVATE PkgConfig::WEIR_VERDICT_ZMQ)
  target_compile_definitions(weir_dataplane PRIVATE WEIR_HAVE_VERDICT_ZMQ=1)
endif()
