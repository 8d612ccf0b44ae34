// UDP and TCP transports for export datagrams, and collector list parsing.
#include <weir/exporters/transport.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace weir::exporters {

std::string Endpoint::to_string() const
{
    std::string s = tcp ? "tcp://" : "udp://";
    if (host.find(':') != std::string::npos)
        s += "[" + host + "]";
    else
        s += host;
    return s + ":" + std::to_string(port);
}

namespace {

Result<Endpoint> parse_one(std::string_view entry, bool allow_tcp)
{
    Endpoint ep;
    const std::string whole(entry);
    if (entry.starts_with("tcp://")) {
        if (!allow_tcp)
            return invalid("collector '" + whole + "': tcp:// is only supported for IPFIX");
        ep.tcp = true;
        entry.remove_prefix(6);
    } else if (entry.starts_with("udp://")) {
        entry.remove_prefix(6);
    }
    std::string_view host;
    std::string_view port;
    if (entry.starts_with("[")) {
        const auto close = entry.find(']');
        if (close == std::string_view::npos)
            return invalid("collector '" + whole + "': missing ']' after the IPv6 address");
        host = entry.substr(1, close - 1);
        if (close + 1 >= entry.size() || entry[close + 1] != ':')
            return invalid("collector '" + whole + "': missing ':port' (expected [addr]:port)");
        port = entry.substr(close + 2);
    } else {
        const auto colon = entry.rfind(':');
        if (colon == std::string_view::npos)
            return invalid("collector '" + whole + "': missing ':port' (expected host:port)");
        host = entry.substr(0, colon);
        if (host.find(':') != std::string_view::npos)
            return invalid("collector '" + whole + "': write IPv6 addresses in brackets, as [::1]:4739");
        port = entry.substr(colon + 1);
    }
    if (host.empty())
        return invalid("collector '" + whole + "': empty host");
    unsigned long p = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc{} || ptr != port.data() + port.size() || p == 0 || p > 65535)
        return invalid("collector '" + whole + "': bad port '" + std::string(port) + "' (expected 1..65535)");
    ep.host = std::string(host);
    ep.port = static_cast<uint16_t>(p);

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = ep.tcp ? SOCK_STREAM : SOCK_DGRAM;
    addrinfo* res = nullptr;
    const int rc = getaddrinfo(ep.host.c_str(), std::string(port).c_str(), &hints, &res);
    if (rc != 0 || res == nullptr)
        return Error{std::make_error_code(std::errc::host_unreachable),
                     "collector '" + whole + "': cannot resolve '" + ep.host + "': " + gai_strerror(rc)};
    std::memcpy(&ep.addr, res->ai_addr, res->ai_addrlen);
    ep.addr_len = static_cast<socklen_t>(res->ai_addrlen);
    freeaddrinfo(res);
    return ep;
}

class UdpTransport final : public Transport {
public:
    UdpTransport(int fd, Endpoint ep) : fd_(fd), ep_(std::move(ep)) {}
    ~UdpTransport() override { ::close(fd_); }

    void send(std::span<const uint8_t> d) noexcept override
    {
        const ssize_t n = ::send(fd_, d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(d.size())) {
            ++stats_.datagrams;
            stats_.bytes += d.size();
        } else {
            ++stats_.send_errors;
            stats_.last_errno = n < 0 ? errno : EMSGSIZE;
        }
    }
    [[nodiscard]] const Endpoint& endpoint() const noexcept override { return ep_; }

private:
    int fd_;
    Endpoint ep_;
};

Result<void> connect_with_timeout(int fd, const Endpoint& ep, int timeout_ms)
{
    const int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len);
    if (rc < 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, timeout_ms);
        if (rc == 0)
            return from_errno(ETIMEDOUT, "connect " + ep.to_string());
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
            return from_errno(err, "connect " + ep.to_string());
        rc = 0;
    }
    if (rc < 0)
        return from_errno(errno, "connect " + ep.to_string());
    fcntl(fd, F_SETFL, flags);
    return {};
}

uint64_t mono_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

/// Opens and connects a TCP socket with the send timeout set.
Result<int> tcp_connect(const Endpoint& ep, const TransportOptions& o)
{
    const int fd = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return from_errno(errno, "socket for " + ep.to_string());
    auto c = connect_with_timeout(fd, ep, static_cast<int>(o.connect_timeout_ms));
    if (!c) {
        ::close(fd);
        return c.error();
    }
    timeval tv{static_cast<time_t>(o.send_timeout_ms / 1000), static_cast<suseconds_t>(o.send_timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

class TcpTransport final : public Transport {
public:
    TcpTransport(int fd, Endpoint ep, const TransportOptions& o) : fd_(fd), ep_(std::move(ep)), opts_(o) {}
    ~TcpTransport() override
    {
        if (fd_ >= 0)
            ::close(fd_);
    }

    void send(std::span<const uint8_t> d) noexcept override
    {
        if (fd_ >= 0 && peer_closed())
            broken(EPIPE);
        if (fd_ < 0) {
            // The templates and sequence numbers of the old session are
            // gone with it: this message is not sent; the encoder starts a
            // new session with the next one.
            if (reconnect())
                new_session_ = true;
            ++stats_.send_errors;
            return;
        }
        std::size_t off = 0;
        while (off < d.size()) {
            const ssize_t n = ::send(fd_, d.data() + off, d.size() - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                ++stats_.send_errors;
                broken(n < 0 ? errno : EPIPE);
                return;
            }
            off += static_cast<std::size_t>(n);
        }
        ++stats_.datagrams;
        stats_.bytes += d.size();
    }
    [[nodiscard]] const Endpoint& endpoint() const noexcept override { return ep_; }
    [[nodiscard]] bool take_new_session() noexcept override
    {
        const bool r = new_session_;
        new_session_ = false;
        return r;
    }

private:
    /// A collector that exited sent FIN (or RST): see it before writing
    /// into a dead stream, whose first send would still succeed.
    [[nodiscard]] bool peer_closed() const noexcept
    {
        pollfd p{fd_, POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }

    void broken(int err) noexcept
    {
        stats_.last_errno = err;
        ::close(fd_);
        fd_ = -1;
        ++stats_.disconnects;
        backoff_ms_ = opts_.backoff_min_ms;
        next_try_ns_ = mono_ns() + uint64_t{backoff_ms_} * 1000000ULL;
    }

    bool reconnect() noexcept
    {
        const uint64_t now = mono_ns();
        if (now < next_try_ns_)
            return false;
        auto fd = tcp_connect(ep_, opts_);
        if (!fd) {
            ++stats_.connect_failures;
            stats_.last_errno = fd.error().code.value();
            backoff_ms_ = std::min(backoff_ms_ * 2, opts_.backoff_max_ms);
            next_try_ns_ = mono_ns() + uint64_t{backoff_ms_} * 1000000ULL;
            return false;
        }
        fd_ = fd.value();
        ++stats_.reconnects;
        return true;
    }

    int fd_;
    Endpoint ep_;
    TransportOptions opts_;
    uint32_t backoff_ms_ = 0;
    uint64_t next_try_ns_ = 0;
    bool new_session_ = false;
};

} // namespace

Result<std::vector<Endpoint>> parse_collectors(std::string_view list, bool allow_tcp)
{
    std::vector<Endpoint> out;
    if (list.empty())
        return invalid("empty collector list (expected host:port[,host:port])");
    while (true) {
        const auto comma = list.find(',');
        const std::string_view entry = list.substr(0, comma);
        if (entry.empty())
            return invalid("empty entry in collector list (expected host:port[,host:port])");
        auto ep = parse_one(entry, allow_tcp);
        if (!ep)
            return ep.error();
        out.push_back(std::move(ep.value()));
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return out;
}

Result<std::unique_ptr<Transport>> open_transport(const Endpoint& ep, const TransportOptions& opts)
{
    if (ep.tcp) {
        auto fd = tcp_connect(ep, opts);
        if (!fd)
            return fd.error();
        return std::unique_ptr<Transport>(new TcpTransport(fd.value(), ep, opts));
    }
    const int fd = ::socket(ep.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return from_errno(errno, "socket for " + ep.to_string());
    const int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len) < 0) {
        const int err = errno;
        ::close(fd);
        return from_errno(err, "connect " + ep.to_string());
    }
    return std::unique_ptr<Transport>(new UdpTransport(fd, ep));
}

} // namespace weir::exporters
