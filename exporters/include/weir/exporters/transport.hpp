// Transports for export datagrams: UDP to a collector (IPv4 or IPv6), and
// TCP for IPFIX (`tcp://host:port`). Opening is control plane (Result);
// send() is on the export thread: it never throws or blocks on UDP, and
// counts what failed instead.
#pragma once

#include <weir/core/result.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weir::exporters {

struct Endpoint {
    std::string host;          ///< as written (brackets removed for IPv6)
    uint16_t port = 0;
    bool tcp = false;          ///< "tcp://" prefix
    sockaddr_storage addr{};   ///< resolved address
    socklen_t addr_len = 0;

    /// "udp://192.0.2.1:2055" or "tcp://[2001:db8::1]:4739".
    [[nodiscard]] std::string to_string() const;
};

/// Parses "host:port[,host:port...]". host is a name, an IPv4 address or a
/// bracketed IPv6 address ("[::1]:4739"); "udp://" or "tcp://" may prefix
/// each entry. Names are resolved now (first address returned).
/// Errors: EINVAL for an empty list or entry, a missing or bad port (not
/// 1..65535), "tcp://" when !allow_tcp, an unclosed bracket; EHOSTUNREACH
/// with getaddrinfo's message for a host that does not resolve.
Result<std::vector<Endpoint>> parse_collectors(std::string_view list, bool allow_tcp);

struct TransportStats {
    uint64_t datagrams = 0;    ///< sent in full
    uint64_t bytes = 0;
    uint64_t send_errors = 0;  ///< datagrams not (fully) sent
    int last_errno = 0;
    uint64_t disconnects = 0;  ///< TCP: streams found broken
    uint64_t reconnects = 0;   ///< TCP: new connections after a break
    uint64_t connect_failures = 0; ///< TCP: reconnect attempts that failed
};

class Transport {
public:
    virtual ~Transport() = default;
    /// Sends one datagram (TCP: one message). Counts failures, never throws.
    virtual void send(std::span<const uint8_t> datagram) noexcept = 0;
    [[nodiscard]] virtual const Endpoint& endpoint() const noexcept = 0;
    [[nodiscard]] const TransportStats& stats() const noexcept { return stats_; }
    /// True once after a TCP reconnect: the stream's encoder must start a new
    /// session (templates first, IPFIX sequence 0). The message whose send
    /// found the new connection was not sent (it belongs to the old session).
    [[nodiscard]] virtual bool take_new_session() noexcept { return false; }

protected:
    TransportStats stats_;
};

struct TransportOptions {
    uint32_t connect_timeout_ms = 5000;  ///< TCP connect (first and reconnects)
    uint32_t send_timeout_ms = 5000;     ///< TCP: a collector that stops reading breaks the stream
    uint32_t backoff_min_ms = 100;       ///< TCP reconnect: first wait after a break ...
    uint32_t backoff_max_ms = 5000;      ///< ... doubling up to this
};

/// Opens a socket to `ep`. UDP: connected, non-blocking sends, 4 MiB send
/// buffer. TCP: blocking connect and blocking sends (with a timeout); a
/// broken stream (peer closed, reset, send timeout) is reopened on a later
/// send, at most once per backoff interval (doubling from backoff_min_ms
/// to backoff_max_ms), and messages meanwhile count as send errors.
/// Errors: whatever socket()/connect() return, with the endpoint.
Result<std::unique_ptr<Transport>> open_transport(const Endpoint& ep, const TransportOptions& opts = {});

} // namespace weir::exporters
