// EgressPort: AF_PACKET transmit of whole frames on one interface, the
// back-end of weir's IDS mode (--egress IF,...).
//
// One SOCK_RAW packet socket per port, bound to the interface with
// protocol 0 (it receives nothing) and PACKET_QDISC_BYPASS (frames go
// straight to the driver, as a capture-replay tool wants: no qdisc queueing
// or reordering). Frames are queued by pointer (no copy: they stay valid
// until the end of the reader's burst) and sent with one sendmmsg() per
// flush, non-blocking.
//
// A full TX path (EAGAIN/ENOBUFS) is a counted drop in live mode: the
// reader never waits for an egress. With `lossless` (capture files) the port
// waits for room with poll(), at most `max_wait_ms` per flush, then drops and
// counts. A frame the kernel refuses (EMSGSIZE over the MTU, ENETDOWN,
// ENXIO) is counted in errors and skipped; the first errno is kept for the
// summary. AF_XDP TX is not built (see docs/ids.md).
#pragma once

#include <weir/core/egress.hpp>
#include <weir/core/result.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::dataplane {

struct EgressPortOptions {
    uint32_t batch = 256;             ///< frames per sendmmsg() (1..1024)
    bool lossless = false;            ///< wait (bounded) for TX room instead of dropping
    uint32_t max_wait_ms = 1000;      ///< lossless: longest wait per flush
    bool qdisc_bypass = true;         ///< PACKET_QDISC_BYPASS
    int sndbuf_bytes = 4 << 20;       ///< SO_SNDBUF (SO_SNDBUFFORCE when root)
};

class EgressPort final : public EgressOutput {
public:
    /// Errors: ENODEV (no such interface), EPERM (no CAP_NET_RAW), EINVAL (batch).
    static Result<std::unique_ptr<EgressPort>> open(const std::string& ifname, const EgressPortOptions& opt = {});
    ~EgressPort() override;
    EgressPort(const EgressPort&) = delete;
    EgressPort& operator=(const EgressPort&) = delete;

    void send(const uint8_t* data, uint32_t len) noexcept override;
    void flush() noexcept override;
    [[nodiscard]] EgressCounters counters() const noexcept override;
    [[nodiscard]] std::string describe() const override;

    [[nodiscard]] const std::string& ifname() const noexcept { return ifname_; }
    /// The first errno a refused frame got (0 = none).
    [[nodiscard]] int first_error() const noexcept { return first_errno_.load(std::memory_order_relaxed); }

private:
    EgressPort(std::string ifname, int fd, const EgressPortOptions& opt);

    std::string ifname_;
    int fd_ = -1;
    EgressPortOptions opt_;
    bool bypass_ = false;
    std::vector<iovec> iov_;
    std::vector<mmsghdr> msgs_;
    uint32_t queued_ = 0;
    // Written by the sending thread only, read by any.
    std::atomic<uint64_t> packets_{0}, bytes_{0}, dropped_{0}, errors_{0};
    std::atomic<int> first_errno_{0};
};

} // namespace weir::dataplane
