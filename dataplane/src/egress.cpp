// AF_PACKET TX egress port (see egress.hpp for the contract).
#include <weir/dataplane/egress.hpp>

#include <fmt/format.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weir::dataplane {

namespace {

// Single writer: a plain add published with a relaxed store (no locked
// instruction on the fast path).
inline void bump(std::atomic<uint64_t>& c, uint64_t n) noexcept
{
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
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
    auto port = std::unique_ptr<EgressPort>(new EgressPort(ifname, fd, opt));
    if (opt.qdisc_bypass) {
        const int one = 1;
        port->bypass_ = ::setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) == 0;
    }
    if (opt.sndbuf_bytes > 0) {
        // FORCE passes net.core.wmem_max when we have CAP_NET_ADMIN; the
        // plain option is the fallback (capped by the sysctl).
        if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &opt.sndbuf_bytes, sizeof(opt.sndbuf_bytes)) != 0)
            (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt.sndbuf_bytes, sizeof(opt.sndbuf_bytes));
    }
    return port;
}

EgressPort::EgressPort(std::string ifname, int fd, const EgressPortOptions& opt)
    : ifname_(std::move(ifname)), fd_(fd), opt_(opt), iov_(opt.batch), msgs_(opt.batch)
{
    for (uint32_t i = 0; i < opt.batch; ++i) {
        std::memset(&msgs_[i], 0, sizeof(mmsghdr));
        msgs_[i].msg_hdr.msg_iov = &iov_[i];
        msgs_[i].msg_hdr.msg_iovlen = 1;
    }
}

EgressPort::~EgressPort()
{
    // Nothing is sent from here: queued frames point into a source's
    // buffers, which may be gone by now (the owner flushes after each burst).
    if (fd_ >= 0)
        ::close(fd_);
}

void EgressPort::send(const uint8_t* data, uint32_t len) noexcept
{
    if (queued_ == opt_.batch)
        flush();
    iov_[queued_].iov_base = const_cast<uint8_t*>(data);
    iov_[queued_].iov_len = len;
    ++queued_;
}

void EgressPort::flush() noexcept
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
            bump(dropped_, n - done);
            break;
        }
        // sendmmsg() reports an error only for the first frame of the
        // call: that frame is refused, the rest is tried again.
        int expected = 0;
        first_errno_.compare_exchange_strong(expected, e, std::memory_order_relaxed);
        bump(errors_, 1);
        ++done;
    }
    if (sent) {
        bump(packets_, sent);
        bump(bytes_, sent_bytes);
    }
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

std::string EgressPort::describe() const
{
    return fmt::format("{} (AF_PACKET TX{})", ifname_, bypass_ ? ", qdisc bypass" : "");
}

} // namespace weir::dataplane
