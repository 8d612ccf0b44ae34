// AF_XDP TX egress port (see egress.hpp for the contract, xsk_tx.hpp for
// the socket).
//
// Each queued frame is copied into a UMEM frame at once (the reader has
// just touched its bytes) and its TX descriptor claimed; its length is kept
// in a ring of its own, in descriptor order, so that what the kernel took
// off the TX ring can be counted in packets and bytes. A flush publishes
// the descriptors and kicks the kernel while it takes frames (copy mode
// sends at most 32 per sendto(), EAGAIN meaning more are waiting).
//
// Counting: sent = descriptors the kernel took off the TX ring, except a
// frame whose sendto() returned EBUSY (copy mode: the device refused it,
// e.g. a veth peer's full backlog, or a link that is down): that one is
// dropped, or an error (ENETDOWN) when the link turns out to be down.
// No free UMEM frame or TX descriptor after a reap and a flush: dropped in
// live mode, waited for (bounded) with `lossless`. A frame longer than the
// MTU (+ 4 bytes for a VLAN tag, as AF_PACKET allows) or the UMEM frame:
// EMSGSIZE, counted in errors, never put on the ring (the kernel would
// skip an invalid descriptor without completing its frame).
#include "egress_afxdp.hpp"

#include <fmt/format.h>

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace weir::dataplane::detail {

namespace {

constexpr uint32_t kEthHeader = 14;
constexpr uint32_t kVlanTag = 4;
constexpr long kWaitStepNs = 50'000;

uint64_t mono_ms() noexcept
{
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

class AfXdpEgressPort final : public EgressPort {
public:
    AfXdpEgressPort(std::string ifname, const EgressPortOptions& opt, std::unique_ptr<XskTxSocket> sock,
                    uint32_t mtu, int ctl_fd)
        : EgressPort(std::move(ifname), opt), sock_(std::move(sock)), mtu_len_(mtu + kEthHeader), ctl_fd_(ctl_fd),
          lens_(2 * sock_->ring_size()), mask_(2 * sock_->ring_size() - 1)
    {
    }

    ~AfXdpEgressPort() override
    {
        // Frames still on the TX ring are the kernel's until the socket is
        // closed (the socket's destructor, before the UMEM's).
        if (ctl_fd_ >= 0)
            ::close(ctl_fd_);
    }

    void send(const uint8_t* data, uint32_t len) noexcept override
    {
        const bool vlan = len >= kEthHeader && ((data[12] == 0x81 && data[13] == 0x00) || (data[12] == 0x88 && data[13] == 0xa8));
        if (len < kEthHeader) {
            count_errors(EINVAL, 1);
            return;
        }
        if (len > mtu_len_ + (vlan ? kVlanTag : 0) || len > sock_->frame_size()) {
            count_errors(EMSGSIZE, 1);
            return;
        }
        if (queued_ == opt_.batch)
            flush();
        uint8_t* f = sock_->claim(len);
        if (!f)
            f = room(len);
        if (!f) {
            if (hard_errno_)
                count_errors(hard_errno_, 1);
            else
                count_dropped(1);
            return;
        }
        std::memcpy(f, data, len);
        lens_[claimed_++ & mask_] = len;
        ++queued_;
    }

    void flush() noexcept override
    {
        if (claimed_ != accounted_)
            push();
        else if (sock_->free_frames() != sock_->frame_count())
            sock_->reap();
        stalled_ = false;
    }

    void drain(uint32_t max_ms) noexcept override
    {
        flush();
        const uint64_t until = mono_ms() + max_ms;
        while (claimed_ != accounted_ || sock_->free_frames() != sock_->frame_count()) {
            if (mono_ms() >= until || hard_errno_)
                break;
            const timespec ts{0, kWaitStepNs};
            nanosleep(&ts, nullptr);
            push();
        }
    }

    [[nodiscard]] const char* tx_path() const noexcept override
    {
        return sock_->zero_copy() ? "afxdp-zerocopy" : "afxdp-copy";
    }

    [[nodiscard]] std::string describe() const override
    {
        return fmt::format("{} (AF_XDP TX {} mode, queue {})", ifname_, sock_->zero_copy() ? "zero-copy" : "copy",
                           opt_.xdp_queue);
    }

private:
    // No frame or descriptor free: take completions back, then push what is
    // queued; with `lossless`, wait for room at most max_wait_ms per flush.
    uint8_t* room(uint32_t len) noexcept
    {
        sock_->reap();
        if (uint8_t* f = sock_->claim(len))
            return f;
        push();
        if (uint8_t* f = sock_->claim(len))
            return f;
        if (!opt_.lossless || stalled_ || hard_errno_)
            return nullptr;
        const uint64_t until = mono_ms() + opt_.max_wait_ms;
        while (mono_ms() < until) {
            const timespec ts{0, kWaitStepNs};
            nanosleep(&ts, nullptr);
            push();
            if (uint8_t* f = sock_->claim(len))
                return f;
            if (hard_errno_)
                return nullptr;
        }
        stalled_ = true;  // the rest of this flush drops without waiting again
        return nullptr;
    }

    // Publishes the claimed descriptors and kicks the kernel while it takes
    // frames; counts what it took, then takes completed frames back.
    void push() noexcept
    {
        sock_->submit();
        submitted_ = claimed_;
        queued_ = 0;
        uint64_t sent = 0, sent_bytes = 0;
        uint32_t refused = 0;
        while (sock_->tx_pending() != 0) {
            const int e = sock_->kick();
            uint32_t n = 0, last = 0;
            uint64_t bytes = 0;
            take(n, bytes, last);
            const uint32_t took = n;
            if (e == EBUSY && n > 0) {
                ++refused;
                --n;
                bytes -= last;
            }
            sent += n;
            sent_bytes += bytes;
            if (e == 0) {
                hard_errno_ = 0;
                if (took == 0)
                    break;  // zero-copy: the driver sends on its own
                continue;
            }
            if (e == EINTR)
                continue;
            if (e == EBUSY || e == EAGAIN || e == ENOBUFS) {
                if (took)
                    continue;
                break;  // left on the ring for the next flush
            }
            // ENETDOWN, ENXIO...: what is on the ring is counted as refused
            // now (not counted again if the kernel takes it later).
            if (!hard_errno_) {
                const uint32_t stuck = submitted_ - accounted_ - written_off_;
                if (stuck)
                    count_errors(e, stuck);
                written_off_ += stuck;
            }
            hard_errno_ = e;
            break;
        }
        {
            // Frames taken between the last kick and now (zero-copy).
            uint32_t n = 0, last = 0;
            uint64_t bytes = 0;
            take(n, bytes, last);
            sent += n;
            sent_bytes += bytes;
        }
        if (sent)
            count_sent(sent, sent_bytes);
        if (refused) {
            if (link_up())
                count_dropped(refused);
            else
                count_errors(ENETDOWN, refused);
        }
        sock_->reap();
    }

    // Descriptors the kernel took off the TX ring since the last call: how
    // many, their bytes, and the length of the last one.
    void take(uint32_t& n, uint64_t& bytes, uint32_t& last) noexcept
    {
        const uint32_t taken = submitted_ - sock_->tx_pending();
        n = taken - accounted_;
        const uint32_t skip = std::min(n, written_off_);  // counted as errors already
        written_off_ -= skip;
        accounted_ += skip;
        n -= skip;
        bytes = 0;
        for (uint32_t i = 0; i < n; ++i)
            bytes += lens_[(accounted_ + i) & mask_];
        last = n ? lens_[(accounted_ + n - 1) & mask_] : 0;
        accounted_ = taken;
    }

    bool link_up() noexcept
    {
        ifreq ifr{};
        std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname_.c_str());
        if (ctl_fd_ < 0 || ::ioctl(ctl_fd_, SIOCGIFFLAGS, &ifr) != 0)
            return true;
        return (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
    }

    std::unique_ptr<XskTxSocket> sock_;
    uint32_t mtu_len_;
    int ctl_fd_;
    // Frame lengths by descriptor, in ring order. Twice the ring: the
    // descriptors claimed since the kernel's last take are at most a ring,
    // and those it took but not yet counted (zero-copy takes them at any
    // time; they are counted at every push) at most another.
    std::vector<uint32_t> lens_;
    uint32_t mask_;
    uint32_t claimed_ = 0;    // descriptors claimed (a wrapping count)
    uint32_t submitted_ = 0;  // of which published to the kernel
    uint32_t accounted_ = 0;  // of which the kernel took and we counted
    uint32_t queued_ = 0;     // frames since the last flush
    uint32_t written_off_ = 0; // submitted, untaken, counted as errors at a hard error
    int hard_errno_ = 0;      // the last kick's error other than "try again"
    bool stalled_ = false;    // lossless: this flush has waited its max_wait_ms already
};

} // namespace

Result<std::unique_ptr<EgressPort>> open_afxdp_egress(const std::string& ifname, const EgressPortOptions& opt)
{
    const int ctl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname.c_str());
    if (ctl < 0 || ::ioctl(ctl, SIOCGIFMTU, &ifr) != 0) {
        const int e = errno;
        if (ctl >= 0)
            ::close(ctl);
        return from_errno(e, fmt::format("AF_XDP TX on {}: MTU", ifname));
    }
    const auto mtu = static_cast<uint32_t>(ifr.ifr_mtu);
    XskTxConfig c;
    c.queue = opt.xdp_queue;
    c.frames = opt.xdp_frames;
    c.ring_size = opt.xdp_ring_size;
    c.zero_copy = opt.xdp_zero_copy;
    // The whole frame in one UMEM frame: 2048 bytes up to a 2030-byte MTU
    // (with a VLAN tag), else 4096; longer frames are counted errors.
    c.frame_size = mtu + kEthHeader + kVlanTag <= 2048 ? 2048 : 4096;
    auto s = XskTxSocket::open(ifname, c);
    if (!s) {
        ::close(ctl);
        return s.error();
    }
    if (!s.value()->copy_reason().empty())
        std::fprintf(stderr, "weir: egress %s: zero-copy unavailable (%s), AF_XDP TX in copy mode\n", ifname.c_str(),
                     s.value()->copy_reason().c_str());
    return std::unique_ptr<EgressPort>(std::make_unique<AfXdpEgressPort>(ifname, opt, std::move(s.value()), mtu, ctl));
}

} // namespace weir::dataplane::detail
