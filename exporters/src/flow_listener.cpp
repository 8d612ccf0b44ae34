// FlowListener: UDP and TCP sockets of the NetFlow/IPFIX collector.
//
// Design: one level-triggered epoll set holds every socket; a pointer to
// its Sock is the epoll data. UDP sockets are drained with recvmmsg into
// `batch` preallocated 64 KiB slots, at most kMaxBatchesPerPoll batches a
// poll so one busy socket cannot starve the others (level triggering
// brings it back at once). A TCP connection keeps a byte buffer of at most
// one message (64 KiB) plus one read; messages are cut by their IPFIX
// header's length and handed to the decoder with the connection's session
// id. Receive time is the wall clock, taken once per batch/read.
#include <weir/exporters/flow_listener.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include <fmt/format.h>

namespace weir::exporters {

namespace {

constexpr std::size_t kSlot = 65536;
constexpr int kMaxBatchesPerPoll = 16;
constexpr std::size_t kTcpRead = 65536;
constexpr uint32_t kIpfixHeader = 16;

uint64_t wall_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

ExporterAddress to_exporter(const sockaddr_storage& ss, uint32_t session) noexcept
{
    ExporterAddress a;
    a.session = session;
    if (ss.ss_family == AF_INET) {
        const auto& s4 = reinterpret_cast<const sockaddr_in&>(ss);
        std::memcpy(a.addr.data(), &s4.sin_addr, 4);
        a.family = 4;
        a.port = ntohs(s4.sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto& s6 = reinterpret_cast<const sockaddr_in6&>(ss);
        a.port = ntohs(s6.sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            std::memcpy(a.addr.data(), s6.sin6_addr.s6_addr + 12, 4);
            a.family = 4;
        } else {
            std::memcpy(a.addr.data(), s6.sin6_addr.s6_addr, 16);
            a.family = 6;
        }
    }
    return a;
}

enum class Kind : uint8_t { Udp, TcpListen, TcpConn };

struct Sock {
    int fd = -1;
    Kind kind = Kind::Udp;
    std::string desc;
    uint16_t port = 0;
    // TCP connections:
    ExporterAddress peer;
    std::vector<uint8_t> buf;
    std::size_t used = 0;
};

} // namespace

Result<ListenSpec> parse_listen_spec(std::string_view s)
{
    ListenSpec l;
    l.text = std::string(s);
    if (s.starts_with("udp://")) {
        s.remove_prefix(6);
    } else if (s.starts_with("tcp://")) {
        l.tcp = true;
        s.remove_prefix(6);
    } else {
        return invalid(fmt::format("'{}': expected udp://HOST:PORT or tcp://HOST:PORT", l.text));
    }
    std::string_view host;
    std::string_view port;
    if (s.starts_with("[")) {
        const auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return invalid(fmt::format("'{}': expected [IPv6]:PORT", l.text));
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos)
            return invalid(fmt::format("'{}': no port", l.text));
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return invalid(fmt::format("'{}': put an IPv6 address in brackets", l.text));
    }
    unsigned p = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p > 65535 || port.empty())
        return invalid(fmt::format("'{}': bad port '{}'", l.text, port));
    l.port = static_cast<uint16_t>(p);
    l.host = host == "*" ? "" : std::string(host);
    if (!l.host.empty()) {
        in6_addr a6{};
        in_addr a4{};
        if (inet_pton(AF_INET, l.host.c_str(), &a4) != 1 && inet_pton(AF_INET6, l.host.c_str(), &a6) != 1)
            return invalid(fmt::format("'{}': '{}' is not a numeric IPv4 or IPv6 address", l.text, l.host));
    }
    return l;
}

struct FlowListener::Impl {
    ListenerOptions opts;
    std::unique_ptr<FlowDecoder> dec;
    ListenerStats st;
    int ep = -1;
    std::vector<std::unique_ptr<Sock>> listeners;
    std::unordered_map<int, std::unique_ptr<Sock>> conns;
    uint32_t next_session = 1;
    // recvmmsg slots
    std::vector<uint8_t> bufs;
    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;
    std::vector<sockaddr_storage> names;

    ~Impl()
    {
        for (auto& s : listeners)
            if (s->fd >= 0) ::close(s->fd);
        for (auto& [fd, s] : conns)
            ::close(fd);
        if (ep >= 0)
            ::close(ep);
    }

    Result<void> open(const ListenSpec& l)
    {
        sockaddr_storage ss{};
        socklen_t sl = 0;
        int family = AF_INET6;
        in_addr a4{};
        if (!l.host.empty() && inet_pton(AF_INET, l.host.c_str(), &a4) == 1) {
            auto& s4 = reinterpret_cast<sockaddr_in&>(ss);
            s4.sin_family = AF_INET;
            s4.sin_port = htons(l.port);
            s4.sin_addr = a4;
            family = AF_INET;
            sl = sizeof(sockaddr_in);
        } else {
            auto& s6 = reinterpret_cast<sockaddr_in6&>(ss);
            s6.sin6_family = AF_INET6;
            s6.sin6_port = htons(l.port);
            if (!l.host.empty())
                inet_pton(AF_INET6, l.host.c_str(), &s6.sin6_addr);
            else
                s6.sin6_addr = in6addr_any;
            sl = sizeof(sockaddr_in6);
        }
        const int fd = ::socket(family, (l.tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return from_errno(errno, fmt::format("{}: socket", l.text));
        auto s = std::make_unique<Sock>();
        s->fd = fd;
        s->kind = l.tcp ? Kind::TcpListen : Kind::Udp;
        const int one = 1;
        const int zero = 0;
        if (family == AF_INET6 && l.host.empty())
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); // "*": IPv4 too
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int got = 0;
        if (!l.tcp) {
            // Root may pass net.core.rmem_max; otherwise the kernel caps it.
            if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &opts.rcvbuf, sizeof(opts.rcvbuf)) != 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts.rcvbuf, sizeof(opts.rcvbuf));
            socklen_t gl = sizeof(got);
            getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
            const int e = errno;
            ::close(fd);
            return from_errno(e, fmt::format("{}: bind", l.text));
        }
        if (l.tcp && ::listen(fd, 64) != 0) {
            const int e = errno;
            ::close(fd);
            return from_errno(e, fmt::format("{}: listen", l.text));
        }
        sockaddr_storage bound{};
        socklen_t bl = sizeof(bound);
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bl);
        const ExporterAddress b = to_exporter(bound, 0);
        s->port = b.port;
        s->desc = fmt::format("{} {}", l.tcp ? "tcp" : "udp", format_exporter(b));
        if (l.host.empty())
            s->desc = fmt::format("{} *:{}", l.tcp ? "tcp" : "udp", b.port);
        if (!l.tcp)
            s->desc += fmt::format(" (rcvbuf {})", got);
        if (Result<void> r = watch(s.get()); !r) {
            ::close(fd);
            return r;
        }
        listeners.push_back(std::move(s));
        return {};
    }

    Result<void> watch(Sock* s)
    {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = s;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
            return from_errno(errno, "epoll_ctl");
        return {};
    }

    void close_conn(Sock* s)
    {
        dec->end_session(s->peer);
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, nullptr);
        ::close(s->fd);
        conns.erase(s->fd); // frees s
    }

    void hand(const ExporterAddress& from, std::span<const uint8_t> m, uint64_t now, FlowRecordSink& sink)
    {
        const DecodeStatus r = dec->decode(from, m, now, sink);
        if (r != DecodeStatus::Ok && r != DecodeStatus::Malformed)
            ++st.decode_refused;
    }

    void udp(Sock* s, FlowRecordSink& sink)
    {
        const auto n = static_cast<unsigned>(msgs.size());
        for (int round = 0; round < kMaxBatchesPerPoll; ++round) {
            for (unsigned i = 0; i < n; ++i) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
                msgs[i].msg_hdr.msg_iov = &iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = nullptr;
                msgs[i].msg_hdr.msg_controllen = 0;
                msgs[i].msg_hdr.msg_flags = 0;
            }
            const int got = recvmmsg(s->fd, msgs.data(), n, MSG_DONTWAIT, nullptr);
            if (got < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    ++st.recv_errors;
                return;
            }
            const uint64_t now = wall_ns();
            for (int i = 0; i < got; ++i) {
                ++st.datagrams;
                st.datagram_bytes += msgs[i].msg_len;
                if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                    ++st.truncated;
                    continue;
                }
                const ExporterAddress from = to_exporter(names[i], 0);
                hand(from, {static_cast<const uint8_t*>(iovs[i].iov_base), msgs[i].msg_len}, now, sink);
            }
            if (static_cast<unsigned>(got) < n)
                return;
        }
    }

    void accept_conn(Sock* l)
    {
        for (;;) {
            sockaddr_storage ss{};
            socklen_t sl = sizeof(ss);
            const int fd = accept4(l->fd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                return;
            if (conns.size() >= opts.max_connections) {
                ++st.tcp_refused;
                ::close(fd);
                continue;
            }
            auto c = std::make_unique<Sock>();
            c->fd = fd;
            c->kind = Kind::TcpConn;
            c->peer = to_exporter(ss, next_session++);
            if (next_session == 0)
                next_session = 1;
            c->buf.resize(kSlot + kTcpRead);
            if (!watch(c.get())) {
                ::close(fd);
                continue;
            }
            ++st.tcp_accepted;
            conns.emplace(fd, std::move(c));
        }
    }

    void tcp(Sock* c, FlowRecordSink& sink)
    {
        const ssize_t n = ::recv(c->fd, c->buf.data() + c->used, c->buf.size() - c->used, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (n < 0)
                ++st.recv_errors;
            ++st.tcp_closed;
            close_conn(c);
            return;
        }
        if (n < 0)
            return;
        c->used += static_cast<std::size_t>(n);
        st.tcp_bytes += static_cast<uint64_t>(n);
        const uint64_t now = wall_ns();
        std::size_t off = 0;
        while (c->used - off >= kIpfixHeader) {
            const uint8_t* p = c->buf.data() + off;
            const uint16_t version = static_cast<uint16_t>(p[0] << 8 | p[1]);
            const uint16_t len = static_cast<uint16_t>(p[2] << 8 | p[3]);
            if (version != 10 || len < kIpfixHeader) {
                // The stream has lost its framing: nothing after this can be trusted.
                ++st.tcp_bad_length;
                close_conn(c);
                return;
            }
            if (c->used - off < len)
                break;
            ++st.tcp_messages;
            hand(c->peer, {p, len}, now, sink);
            off += len;
        }
        if (off != 0) {
            std::memmove(c->buf.data(), c->buf.data() + off, c->used - off);
            c->used -= off;
        }
    }
};

FlowListener::FlowListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FlowListener::~FlowListener() = default;

Result<std::unique_ptr<FlowListener>> FlowListener::create(const ListenerOptions& opts)
{
    if (opts.listen.empty())
        return invalid("flow listener: no address to listen on");
    if (opts.batch == 0 || opts.batch > 1024)
        return invalid("flow listener: batch must be in 1..1024");
    auto impl = std::make_unique<Impl>();
    impl->opts = opts;
    auto dec = FlowDecoder::create(opts.decoder);
    if (!dec)
        return dec.error();
    impl->dec = std::move(dec.value());
    impl->ep = epoll_create1(EPOLL_CLOEXEC);
    if (impl->ep < 0)
        return from_errno(errno, "flow listener: epoll_create1");
    const uint32_t b = opts.batch;
    impl->bufs.resize(std::size_t{b} * kSlot);
    impl->msgs.resize(b);
    impl->iovs.resize(b);
    impl->names.resize(b);
    for (uint32_t i = 0; i < b; ++i)
        impl->iovs[i] = {impl->bufs.data() + std::size_t{i} * kSlot, kSlot};
    for (const ListenSpec& l : opts.listen)
        if (Result<void> r = impl->open(l); !r)
            return r.error();
    return std::unique_ptr<FlowListener>(new FlowListener(std::move(impl)));
}

int FlowListener::fd() const noexcept { return impl_->ep; }

uint64_t FlowListener::poll(int timeout_ms, FlowRecordSink& sink) noexcept
{
    Impl& d = *impl_;
    const uint64_t before = d.dec->totals().flows;
    epoll_event evs[32];
    const int n = epoll_wait(d.ep, evs, 32, timeout_ms);
    try {
        for (int i = 0; i < n; ++i) {
            auto* s = static_cast<Sock*>(evs[i].data.ptr);
            // A connection closed earlier in this loop is gone from conns.
            if (s->kind == Kind::TcpConn) {
                bool live = false;
                for (const auto& [fd, c] : d.conns)
                    if (c.get() == s) { live = true; break; }
                if (!live)
                    continue;
                d.tcp(s, sink);
            } else if (s->kind == Kind::TcpListen) {
                d.accept_conn(s);
            } else {
                d.udp(s, sink);
            }
        }
    } catch (const std::bad_alloc&) {
        ++d.st.recv_errors;
    }
    return d.dec->totals().flows - before;
}

uint64_t FlowListener::close_tcp(int wait_ms, FlowRecordSink& sink) noexcept
{
    Impl& d = *impl_;
    for (auto& s : d.listeners) {
        if (s->kind != Kind::TcpListen || s->fd < 0)
            continue;
        epoll_ctl(d.ep, EPOLL_CTL_DEL, s->fd, nullptr);
        ::close(s->fd);
        s->fd = -1;
    }
    for (auto& [fd, c] : d.conns)
        ::shutdown(fd, SHUT_WR);
    uint64_t flows = 0;
    using clock = std::chrono::steady_clock;
    const auto until = clock::now() + std::chrono::milliseconds(wait_ms);
    while (!d.conns.empty()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
        if (left <= 0)
            break;
        flows += poll(static_cast<int>(std::min<long long>(left, 50)), sink);
    }
    // Read what the last ready sockets still hold before closing the rest.
    for (int i = 0; i < 16; ++i) {
        const uint64_t got = poll(0, sink);
        flows += got;
        if (got == 0)
            break;
    }
    while (!d.conns.empty()) {
        ++d.st.tcp_abandoned;
        d.close_conn(d.conns.begin()->second.get());
    }
    return flows;
}

std::size_t FlowListener::tcp_connections() const noexcept { return impl_->conns.size(); }

FlowDecoder& FlowListener::decoder() noexcept { return *impl_->dec; }
const ListenerStats& FlowListener::stats() const noexcept { return impl_->st; }

std::vector<std::string> FlowListener::describe() const
{
    std::vector<std::string> v;
    for (const auto& s : impl_->listeners)
        v.push_back(s->desc);
    return v;
}

std::vector<uint16_t> FlowListener::ports() const
{
    std::vector<uint16_t> v;
    for (const auto& s : impl_->listeners)
        v.push_back(s->port);
    return v;
}

} // namespace weir::exporters
