// Verdict channel client (Unix socket) and the text verdict file reader.
#include <weir/dataplane/verdict_client.hpp>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

namespace weir::dataplane {

Result<VerdictClient> VerdictClient::connect(const std::string& socket_path, int timeout_ms)
{
    sockaddr_un sa{};
    if (socket_path.size() >= sizeof(sa.sun_path))
        return invalid("socket path too long: " + socket_path);
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, socket_path.data(), socket_path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return from_errno(errno, "socket(AF_UNIX)");
    // A larger send buffer lets a multi-megabyte frame go out in fewer
    // wake-ups of the server (best effort: capped by net.core.wmem_max).
    const int sndbuf = 4 << 20;
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        const int e = errno;
        ::close(fd);
        return from_errno(e, "connect " + socket_path);
    }
    return VerdictClient(fd, timeout_ms, socket_path);
}

VerdictClient::VerdictClient(VerdictClient&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), timeout_ms_(o.timeout_ms_), path_(std::move(o.path_)), rbuf_(std::move(o.rbuf_))
{
}

VerdictClient& VerdictClient::operator=(VerdictClient&& o) noexcept
{
    if (this != &o) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        timeout_ms_ = o.timeout_ms_;
        path_ = std::move(o.path_);
        rbuf_ = std::move(o.rbuf_);
    }
    return *this;
}

VerdictClient::~VerdictClient()
{
    if (fd_ >= 0)
        ::close(fd_);
}

Result<void> VerdictClient::send_iov(::iovec* iov, int n)
{
    while (n > 0) {
        pollfd p{fd_, POLLOUT | POLLIN, 0};
        if (::poll(&p, 1, timeout_ms_) <= 0)
            return from_errno(ETIMEDOUT, "sending to " + path_);
        // The server answered before taking everything (a refused header,
        // unauthorised): stop and read the reply.
        if (!(p.revents & POLLOUT))
            return {};
        msghdr m{};
        m.msg_iov = iov;
        m.msg_iovlen = static_cast<size_t>(n);
        ssize_t w = ::sendmsg(fd_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            if (errno == EPIPE || errno == ECONNRESET)
                return {};  // the reply (if any) is waiting
            return from_errno(errno, "send to " + path_);
        }
        auto done = static_cast<size_t>(w);
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            ++iov;
            --n;
        }
        if (n > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + done;
            iov->iov_len -= done;
        }
    }
    return {};
}

Result<std::string> VerdictClient::read_reply()
{
    char buf[65536];
    for (;;) {
        if (auto nl = rbuf_.find('\n'); nl != std::string::npos) {
            std::string reply = rbuf_.substr(0, nl);
            rbuf_.erase(0, nl + 1);
            return reply;
        }
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms_) <= 0)
            return from_errno(ETIMEDOUT, "waiting for the reply from " + path_);
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return from_errno(errno, "recv from " + path_);
        }
        if (n == 0)
            return from_errno(ECONNRESET, "connection closed by " + path_ + " without a reply");
        rbuf_.append(buf, static_cast<size_t>(n));
    }
}

Result<std::string> VerdictClient::request(std::string_view line)
{
    if (fd_ < 0)
        return from_errno(ENOTCONN, "verdict client");
    char nl = '\n';
    ::iovec iov[2] = {{const_cast<char*>(line.data()), line.size()}, {&nl, 1}};
    if (auto r = send_iov(iov, 2); !r)
        return r.error();
    return read_reply();
}

Result<std::string> VerdictClient::send_binary(weir_vwire_op op, std::span<const weir_verdict_req> records,
                                               uint32_t flags)
{
    if (fd_ < 0)
        return from_errno(ENOTCONN, "verdict client");
    if (records.empty() || records.size() > WEIR_VWIRE_MAX_COUNT)
        return invalid("a binary batch holds 1.." + std::to_string(WEIR_VWIRE_MAX_COUNT) + " records");
    weir_vwire_hdr h{};
    h.magic[0] = WEIR_VWIRE_MAGIC0;
    h.magic[1] = WEIR_VWIRE_MAGIC1;
    h.version = WEIR_VWIRE_VERSION;
    h.op = static_cast<uint8_t>(op);
    h.count = static_cast<uint32_t>(records.size());
    h.flags = flags;
    h.rec_size = sizeof(weir_verdict_req);
    ::iovec iov[2] = {{&h, sizeof(h)}, {const_cast<weir_verdict_req*>(records.data()), records.size_bytes()}};
    if (auto r = send_iov(iov, 2); !r)
        return r.error();
    return read_reply();
}

// ---------------------------------------------------------------------------

namespace {

struct ProtoName {
    const char* name;
    uint8_t num;
};
constexpr ProtoName kProtos[] = {{"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"gre", 47},
                                 {"icmpv6", 58}, {"ipv6-icmp", 58}, {"sctp", 132}};

template <typename T>
bool to_uint(std::string_view s, T max, T* out)
{
    uint64_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > max)
        return false;
    *out = static_cast<T>(v);
    return true;
}

bool parse_addr(std::string_view text, uint8_t* out, int* version)
{
    if (text.size() > 64)
        return false;
    const std::string t(text);
    if (inet_pton(AF_INET, t.c_str(), out) == 1) {
        *version = 4;
        return true;
    }
    if (inet_pton(AF_INET6, t.c_str(), out) == 1) {
        *version = 6;
        return true;
    }
    return false;
}

} // namespace

Result<std::optional<weir_verdict_req>> parse_verdict_line(std::string_view line, bool del)
{
    std::vector<std::string_view> tok;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            ++i;
        if (i >= line.size())
            break;
        const size_t b = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            ++i;
        tok.push_back(line.substr(b, i - b));
    }
    if (tok.empty() || tok[0].front() == '#')
        return std::optional<weir_verdict_req>{};
    const size_t need = del ? 5 : 6;
    if (tok.size() < need)
        return invalid(del ? "expected: src dst sport dport proto"
                           : "expected: src dst sport dport proto verdict [N] [TTL] [key=value ...]");
    weir_verdict_req r{};
    int vs = 0, vd = 0;
    if (!parse_addr(tok[0], r.key.addr_a, &vs))
        return invalid("bad source address '" + std::string(tok[0].substr(0, 64)) + "'");
    if (!parse_addr(tok[1], r.key.addr_b, &vd))
        return invalid("bad destination address '" + std::string(tok[1].substr(0, 64)) + "'");
    if (vs != vd)
        return invalid("source and destination are of different IP versions");
    r.key.ip_version = static_cast<uint8_t>(vs);
    if (!to_uint<uint16_t>(tok[2], 65535, &r.key.port_a) || !to_uint<uint16_t>(tok[3], 65535, &r.key.port_b))
        return invalid("ports must be 0..65535");
    {
        std::string p(tok[4].substr(0, 16));
        std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return std::tolower(c); });
        bool found = false;
        for (const ProtoName& n : kProtos)
            if (p == n.name) {
                r.key.proto = n.num;
                found = true;
            }
        if (!found && !to_uint<uint8_t>(tok[4], 255, &r.key.proto))
            return invalid("proto must be tcp, udp, icmp, icmpv6, sctp, gre or a number 0..255");
    }
    if (del)
        return std::optional<weir_verdict_req>{r};
    const std::string_view v = tok[5];
    if (v == "forward")
        r.action = WEIR_VERDICT_FORWARD;
    else if (v == "drop" || v == "discard")
        r.action = WEIR_VERDICT_DROP;
    else if (v == "shunt")
        r.action = WEIR_VERDICT_SHUNT;
    else if (v == "divert")
        r.action = WEIR_VERDICT_DIVERT;
    else
        return invalid("unknown verdict '" + std::string(v.substr(0, 32)) + "' (forward, drop, shunt, divert)");
    std::optional<uint32_t> after, egress;
    std::optional<double> ttl;
    int bare = 0;
    auto seconds = [](std::string_view s, double* out) {
        double d = 0;
        auto res = std::from_chars(s.data(), s.data() + s.size(), d);
        if (res.ec != std::errc() || res.ptr != s.data() + s.size() || !std::isfinite(d) || d < 0 ||
            d > 10.0 * 365 * 86400)
            return false;
        *out = d;
        return true;
    };
    for (size_t k = 6; k < tok.size(); ++k) {
        const std::string_view t = tok[k];
        if (t == "tcp_control") {
            r.flags |= WEIR_VERDICT_F_TCP_CONTROL;
            continue;
        }
        const size_t eq = t.find('=');
        const std::string_view key = eq == std::string_view::npos ? std::string_view{} : t.substr(0, eq);
        const std::string_view val = eq == std::string_view::npos ? t : t.substr(eq + 1);
        uint32_t u = 0;
        double d = 0;
        if (key.empty() && eq == std::string_view::npos) {
            // Bare numbers: shunt's "after" or divert's egress, then the TTL.
            if (bare == 0 && (r.action == WEIR_VERDICT_SHUNT || r.action == WEIR_VERDICT_DIVERT)) {
                if (!to_uint<uint32_t>(val, UINT32_MAX, &u))
                    return invalid("'" + std::string(val.substr(0, 32)) + "': expected a count or an egress index");
                (r.action == WEIR_VERDICT_SHUNT ? after : egress) = u;
                ++bare;
                continue;
            }
            if (ttl || !seconds(val, &d))
                return invalid("'" + std::string(val.substr(0, 32)) + "': expected the TTL in seconds");
            ttl = d;
            bare = 2;
            continue;
        }
        if (key == "after" && to_uint<uint32_t>(val, UINT32_MAX, &u))
            after = u;
        else if (key == "egress" && to_uint<uint32_t>(val, UINT32_MAX, &u))
            egress = u;
        else if (key == "ttl" && seconds(val, &d))
            ttl = d;
        else if (key == "reason" && to_uint<uint32_t>(val, 32767, &u) && u > 0)
            r.reason = static_cast<uint16_t>(u);
        else if (key == "vlan" && to_uint<uint32_t>(val, 4095, &u))
            r.key.vlan = static_cast<uint16_t>(u);
        else
            return invalid("bad field '" + std::string(t.substr(0, 32)) +
                           "' (after=, egress=, ttl=, reason= 1..32767, vlan= 0..4095, tcp_control)");
    }
    if (after && *after && r.action != WEIR_VERDICT_SHUNT)
        return invalid("after applies to shunt only");
    if (egress && r.action != WEIR_VERDICT_DIVERT)
        return invalid("egress applies to divert only");
    if (r.action == WEIR_VERDICT_DIVERT && !egress)
        return invalid("divert needs an egress index");
    r.shunt_after = after.value_or(0);
    r.egress = egress.value_or(0);
    r.ttl_ms = ttl ? static_cast<uint64_t>(std::llround(*ttl * 1000)) : 0;
    return std::optional<weir_verdict_req>{r};
}

} // namespace weir::dataplane
