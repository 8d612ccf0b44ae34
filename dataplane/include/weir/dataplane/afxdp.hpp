// AF_XDP capture (xdp:IF[@queues]): one AF_XDP socket per RX queue (or
// several, fanned out by flow hash), fed by weir's own XDP program
// (xdp_program.hpp). Frames are handed out as pointers into the UMEM, no
// copy; they stay valid until the next rx_burst().
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::dataplane {

/// Opens AF_XDP sockets on `queues` of `ifname` (empty: every RX queue),
/// attaches weir's XDP program and returns the live source; destroying the
/// source detaches the program and closes the sockets.
/// Uses from opt: poll_timeout_ms, snaplen, xdp_frame_size (2048 or 4096),
/// xdp_ring_size, xdp_umem_frames (per queue), xdp_zero_copy, xdp_mode,
/// xdp_busy_poll, xdp_spin_us, xdp_sockets_per_queue, verdict_map_fd,
/// subnet_verdict_map_fd, egress_ifaces (per-flow IDS verdicts in the XDP
/// program, see xdp_program.hpp).
/// Errors: ENODEV (no such interface), EINVAL (queue out of range, naming the
/// interface's queue count; bad sizes), EBUSY (another XDP program attached:
/// left alone), EOPNOTSUPP (zero-copy or native mode demanded and not
/// available), EPERM, ENOMEM; every one names the interface.
Result<std::unique_ptr<PacketSource>> open_afxdp(const std::string& ifname, const std::vector<uint32_t>& queues,
                                                 const LiveOptions& opt);

/// The same capture split by RX queue (--per-queue): one source per queue
/// of `queues` (empty: every RX queue), each owning its queue's sockets and
/// UMEM, all sharing one XDP program that is attached once every socket is
/// in place. Each source may be read on its own thread. Errors: as open_afxdp().
Result<std::vector<std::unique_ptr<PacketSource>>> open_afxdp_queues(const std::string& ifname,
                                                                     const std::vector<uint32_t>& queues,
                                                                     const LiveOptions& opt);

/// RX queues of an interface as the kernel exposes them
/// (/sys/class/net/IF/queues/rx-*). Errors: ENODEV.
Result<uint32_t> rx_queue_count(const std::string& ifname);

} // namespace weir::dataplane
