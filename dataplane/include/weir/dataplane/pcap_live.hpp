// libpcap live capture: the portable fallback (and a reference for the
// faster back-ends). Frames are copied out of libpcap into a per-source
// arena a burst at a time.
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <memory>
#include <string>

namespace weir::dataplane {

/// Opens `ifname` with libpcap: opt.snaplen, opt.promisc,
/// opt.pcap_buffer_bytes, immediate mode, nanosecond stamps where the
/// platform has them, opt.bpf_filter installed with pcap_setfilter.
/// Errors: ENODEV (no such interface), EPERM (permission), ENETDOWN
/// (interface not up), EINVAL (bad filter with libpcap's message), EIO
/// (anything else libpcap reports), with the interface in the context.
Result<std::unique_ptr<PacketSource>> open_pcap_live(const std::string& ifname, const LiveOptions& opt);

} // namespace weir::dataplane
