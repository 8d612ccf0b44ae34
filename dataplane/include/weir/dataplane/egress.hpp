// EgressPort: transmit of whole frames on one interface, the back-end of
// weir's IDS mode (--egress IF,...), by one of two paths (--egress-tx):
//
// AF_PACKET TX: one SOCK_RAW packet socket per port, bound to the
// interface with protocol 0 (it receives nothing) and PACKET_QDISC_BYPASS
// (frames go straight to the driver, as a capture-replay tool wants: no
// qdisc queueing or reordering). Frames are queued by pointer (no copy:
// they stay valid until the end of the reader's burst) and sent with one
// sendmmsg() per flush, non-blocking.
//
// AF_XDP TX: one AF_XDP socket per port on one TX queue (xsk_tx.hpp), with
// a UMEM of its own; zero-copy where the driver has it, copy mode otherwise
// (veth), said once on stderr. Each frame is copied into a UMEM frame when
// it is queued; a flush publishes the burst's descriptors and wakes the
// kernel (sendto() while the kernel has frames to take, which in copy mode
// is the transmit itself), and completed frames are taken back at each
// flush and whenever no frame is free.
//
// A full TX path (AF_PACKET: EAGAIN/ENOBUFS; AF_XDP: no free UMEM frame or
// TX descriptor, or a frame the device refused while its link is up) is a
// counted drop in live mode: the reader never waits for an egress. With
// `lossless` (capture files) the port waits for room, at most
// `max_wait_ms` per flush, then drops and counts. A frame the kernel
// refuses or that cannot be sent (over the MTU or the UMEM frame: EMSGSIZE;
// link down: ENETDOWN; ENXIO) is counted in errors and skipped; the first
// errno is kept for the summary.
#pragma once

#include <weir/core/egress.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/xsk_tx.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace weir::dataplane {

enum class EgressTx : uint8_t {
    Auto,      ///< AF_XDP where its socket can be made, else AF_PACKET (one line on stderr says why)
    AfXdp,     ///< AF_XDP or an error
    AfPacket,  ///< AF_PACKET
};

struct EgressPortOptions {
    uint32_t batch = 256;             ///< frames per flush at most (1..1024)
    bool lossless = false;            ///< wait (bounded) for TX room instead of dropping
    uint32_t max_wait_ms = 1000;      ///< lossless: longest wait per flush
    EgressTx tx = EgressTx::AfPacket; ///< transmit path
    // AF_PACKET
    bool qdisc_bypass = true;         ///< PACKET_QDISC_BYPASS
    int sndbuf_bytes = 4 << 20;       ///< SO_SNDBUF (SO_SNDBUFFORCE when root)
    // AF_XDP
    uint32_t xdp_queue = 0;           ///< TX queue of the socket
    uint32_t xdp_frames = 2048;       ///< UMEM frames (frames sent and not yet completed at most)
    uint32_t xdp_ring_size = 1024;    ///< TX ring entries (a power of two, 64..xdp_frames)
    XskZeroCopy xdp_zero_copy = XskZeroCopy::Auto;
};

class EgressPort : public EgressOutput {
public:
    /// Opens the port on the path opt.tx asks for.
    /// Errors: ENODEV (no such interface), EPERM (no CAP_NET_RAW /
    /// CAP_NET_ADMIN), EINVAL (batch; AF_XDP: queue out of range, ring
    /// sizes), ENOTSUP (AF_XDP asked and weir built without it), and the
    /// AF_XDP socket's own (xsk_tx.hpp) with --egress-tx afxdp; each names
    /// the interface.
    static Result<std::unique_ptr<EgressPort>> open(const std::string& ifname, const EgressPortOptions& opt = {});
    ~EgressPort() override = default;
    EgressPort(const EgressPort&) = delete;
    EgressPort& operator=(const EgressPort&) = delete;

    [[nodiscard]] EgressCounters counters() const noexcept final;

    [[nodiscard]] const std::string& ifname() const noexcept { return ifname_; }
    /// The first errno a refused frame got (0 = none).
    [[nodiscard]] int first_error() const noexcept { return first_errno_.load(std::memory_order_relaxed); }
    /// The path frames take: "afpacket", "afxdp-copy" or "afxdp-zerocopy".
    [[nodiscard]] virtual const char* tx_path() const noexcept = 0;
    /// Flushes, then waits at most `max_ms` for the frames handed over to
    /// be taken by the kernel (AF_XDP; AF_PACKET's sendmmsg() has taken them
    /// already). For the end of a run, before the counters are read.
    virtual void drain(uint32_t max_ms) noexcept;

protected:
    EgressPort(std::string ifname, const EgressPortOptions& opt) : ifname_(std::move(ifname)), opt_(opt) {}

    // Single writer (the sending thread): plain adds published with relaxed
    // stores, no locked instruction on the fast path.
    void count_sent(uint64_t packets, uint64_t bytes) noexcept;
    void count_dropped(uint64_t n) noexcept;
    void count_errors(int err, uint64_t n) noexcept;

    std::string ifname_;
    EgressPortOptions opt_;

private:
    std::atomic<uint64_t> packets_{0}, bytes_{0}, dropped_{0}, errors_{0};
    std::atomic<int> first_errno_{0};
};

} // namespace weir::dataplane
