// Egress ports (see egress.hpp for the contract): the shared counters, the
// choice of path, and AF_PACKET TX. AF_XDP TX is egress_afxdp.cpp.
#include <weir/dataplane/egress.hpp>

#ifdef WEIR_HAVE_AFXDP
#include "egress_afxdp.hpp"
#endif

#include <fmt/format.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace weir::dataplane {

namespace {

inline void bump(std::atomic<uint64_t>& c, uint64_t n) noexcept
{
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

class AfPacketEgressPort final : public EgressPort {
public:
    AfPacketEgressPort(std::string ifname, int fd, const EgressPortOptions& opt)
        : EgressPort(std::move(ifname), opt), fd_(fd), iov_(opt.batch), msgs_(opt.batch)
    {
        for (uint32_t i = 0; i < opt.batch; ++i) {
            std::memset(&msgs_[i], 0, sizeof(mmsghdr));
            msgs_[i].msg_hdr.msg_iov = &iov_[i];
            msgs_[i].msg_hdr.msg_iovlen = 1;
        }
    }

    ~AfPacketEgressPort() override
    {
        // Nothing is sent from here: queued frames point into a source's
        // buffers, which may be gone by now (the owner flushes after each burst).
        if (fd_ >= 0)
            ::close(fd_);
    }

    void set_bypass(bool on) noexcept { bypass_ = on; }

    void send(const uint8_t* data, uint32_t len) noexcept override
    {
        if (queued_ == opt_.batch)
            flush();
        iov_[queued_].iov_base = const_cast<uint8_t*>(data);
        iov_[queued_].iov_len = len;
        ++queued_;
    }

    void flush() noexcept override
    {
        const uint32_t n = queued_;
        queued_ = 0;
        uint32_t done = 0;
        uint32_t waited_ms = 0;
        uint64_t sent_bytes = 0, sent = 0;
        while (done < n) {
            const int r = ::sendmmsg(fd_, &msgs_[done], n - done, MSG_DONTWAIT);
            if (r > 0) {
                for (int i = 0; i < r; ++i)
                    sent_bytes += iov_[done + static_cast<uint32_t>(i)].iov_len;
                sent += static_cast<uint64_t>(r);
                done += static_cast<uint32_t>(r);
                continue;
            }
            const int e = r < 0 ? errno : EAGAIN;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == ENOBUFS) {
                if (opt_.lossless && waited_ms < opt_.max_wait_ms) {
                    pollfd p{fd_, POLLOUT, 0};
                    (void)::poll(&p, 1, 10);
                    waited_ms += 10;
                    continue;
                }
                count_dropped(n - done);
                break;
            }
            // sendmmsg() reports an error only for the first frame of the
            // call: that frame is refused, the rest is tried again.
            count_errors(e, 1);
            ++done;
        }
        if (sent)
            count_sent(sent, sent_bytes);
    }

    [[nodiscard]] const char* tx_path() const noexcept override { return "afpacket"; }

    [[nodiscard]] std::string describe() const override
    {
        return fmt::format("{} (AF_PACKET TX{})", ifname_, bypass_ ? ", qdisc bypass" : "");
    }

private:
    int fd_ = -1;
    bool bypass_ = false;
    std::vector<iovec> iov_;
    std::vector<mmsghdr> msgs_;
    uint32_t queued_ = 0;
};

Result<std::unique_ptr<EgressPort>> open_afpacket_egress(const std::string& ifname, unsigned ifindex,
                                                         const EgressPortOptions& opt)
{
    // Protocol 0: this socket only sends; it never queues received frames.
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return from_errno(errno, "egress " + ifname + ": AF_PACKET socket");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = 0;
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
        const int e = errno;
        ::close(fd);
        return from_errno(e, "egress " + ifname + ": bind");
    }
    auto port = std::make_unique<AfPacketEgressPort>(ifname, fd, opt);
    if (opt.qdisc_bypass) {
        const int one = 1;
        port->set_bypass(::setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) == 0);
    }
    if (opt.sndbuf_bytes > 0) {
        // FORCE passes net.core.wmem_max when we have CAP_NET_ADMIN; the
        // plain option is the fallback (capped by the sysctl).
        if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &opt.sndbuf_bytes, sizeof(opt.sndbuf_bytes)) != 0)
            (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt.sndbuf_bytes, sizeof(opt.sndbuf_bytes));
    }
    return std::unique_ptr<EgressPort>(std::move(port));
}

} // namespace

Result<std::unique_ptr<EgressPort>> EgressPort::open(const std::string& ifname, const EgressPortOptions& opt)
{
    if (opt.batch == 0 || opt.batch > 1024)
        return invalid("egress batch must be 1..1024");
    if (ifname.empty() || ifname.size() >= IFNAMSIZ)
        return invalid("egress interface name '" + ifname + "' is not a valid interface name");
    const unsigned ifindex = if_nametoindex(ifname.c_str());
    if (ifindex == 0)
        return from_errno(ENODEV, "egress interface '" + ifname + "'");
    if (opt.tx == EgressTx::AfPacket)
        return open_afpacket_egress(ifname, ifindex, opt);
#ifdef WEIR_HAVE_AFXDP
    auto x = detail::open_afxdp_egress(ifname, opt);
    if (x)
        return x;
    if (opt.tx == EgressTx::AfXdp)
        return Error{x.error().code, "egress: " + x.error().context};
    const std::string why = x.error().message();
#else
    if (opt.tx == EgressTx::AfXdp)
        return Error{std::make_error_code(std::errc::not_supported),
                     "egress " + ifname + ": AF_XDP TX: weir was built without AF_XDP (libxdp)"};
    const std::string why = "weir was built without AF_XDP (libxdp)";
#endif
    std::fprintf(stderr, "weir: egress %s: AF_XDP TX unavailable (%s), using AF_PACKET TX\n", ifname.c_str(),
                 why.c_str());
    return open_afpacket_egress(ifname, ifindex, opt);
}

EgressCounters EgressPort::counters() const noexcept
{
    EgressCounters c;
    c.packets = packets_.load(std::memory_order_relaxed);
    c.bytes = bytes_.load(std::memory_order_relaxed);
    c.dropped = dropped_.load(std::memory_order_relaxed);
    c.errors = errors_.load(std::memory_order_relaxed);
    return c;
}

void EgressPort::drain(uint32_t) noexcept
{
    flush();
}

void EgressPort::count_sent(uint64_t packets, uint64_t bytes) noexcept
{
    bump(packets_, packets);
    bump(bytes_, bytes);
}

void EgressPort::count_dropped(uint64_t n) noexcept
{
    bump(dropped_, n);
}

void EgressPort::count_errors(int err, uint64_t n) noexcept
{
    int expected = 0;
    first_errno_.compare_exchange_strong(expected, err, std::memory_order_relaxed);
    bump(errors_, n);
}

} // namespace weir::dataplane
