// DPDK capture back-end: one ethdev port, polled on one or more RX queues
// from the calling thread.
//
// devargs is what follows "dpdk:" in -i: a virtual device string
// ("net_af_xdp0,iface=eth1,start_queue=0,queue_count=1",
// "net_pcap0,rx_pcap=/tmp/x.pcap"), a PCI address ("0000:01:00.0"), or the
// name of a port that is already probed (by --vdev / -a in the EAL
// arguments). Devices that are not probed yet are hot-plugged and removed
// again when the source is destroyed.
//
// The EAL is initialised once per process, by the first source (or
// dpdk_init()); later sources reuse it and ignore their eal_args.
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::dataplane {

/// Initialises the EAL if nothing has yet in this process: opt.eal_args
/// verbatim when given, otherwise "-l <current cpu> --file-prefix weir-<pid>
/// --log-level=*:warning" plus "--no-huge -m 512" when no hugepage is free.
/// Errors: EINVAL (bad EAL arguments, with the arguments and DPDK's reason;
/// "-h"/"--help" are refused because DPDK exits the process on them), or
/// what rte_eal_init reported (rte_errno). A failed initialisation is
/// reported again by later calls without retrying when DPDK cannot retry.
Result<void> dpdk_init(const LiveOptions& opt);

/// Opens one DPDK port for capture. queues: the RX queues to poll, which
/// must be 0..N-1 (DPDK configures the port for exactly N queues and RSS
/// spreads the traffic over them); empty: opt.dpdk_rx_queues queues.
/// Errors: EINVAL (bad queue, too many queues, bad device arguments),
/// ENODEV (the device does not exist or no driver took it), EBUSY (port
/// already in use by another source), ENOMEM, and EAL errors.
Result<std::unique_ptr<PacketSource>> open_dpdk(const std::string& devargs, const std::vector<uint32_t>& queues,
                                                const LiveOptions& opt);

/// The same port split by RX queue (--per-queue): one source per queue,
/// each to be read by one thread; the port stays open until the last is
/// destroyed. Errors: as open_dpdk().
Result<std::vector<std::unique_ptr<PacketSource>>> open_dpdk_queues(const std::string& devargs,
                                                                    const std::vector<uint32_t>& queues,
                                                                    const LiveOptions& opt);

/// Names of the ethdev ports that exist now (empty before the EAL is up).
std::vector<std::string> dpdk_port_names();

} // namespace weir::dataplane
