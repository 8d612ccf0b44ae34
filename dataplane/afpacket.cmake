# AF_PACKET (TPACKET_V3, fanout) and libpcap live capture, and the shared
# tcpdump-expression filter compiler. Linux only; libpcap is already a
# dependency of weir_dataplane (capture files).
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  include(CheckIncludeFile)
  check_include_file(linux/if_packet.h WEIR_HAVE_LINUX_IF_PACKET_H)
  target_sources(weir_dataplane PRIVATE src/bpf_filter.cpp src/pcap_live.cpp)
  target_compile_definitions(weir_dataplane PRIVATE WEIR_HAVE_PCAP_LIVE=1)
  if(WEIR_HAVE_LINUX_IF_PACKET_H)
    target_sources(weir_dataplane PRIVATE src/afpacket.cpp)
    target_compile_definitions(weir_dataplane PRIVATE WEIR_HAVE_AFPACKET=1)
  else()
    message(STATUS "weir: linux/if_packet.h not found, AF_PACKET capture disabled")
  endif()
endif()
