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
};

class Transport {
public:
    virtual ~Transport() = default;
    /// Sends one datagram (TCP: one message). Counts failures, never throws.
    virtual void send(std::span<const uint8_t> datagram) noexcept = 0;
    [[nodiscard]] virtual const Endpoint& endpoint() const noexcept = 0;
    [[nodiscard]] const TransportStats& stats() const noexcept { return stats_; }

protected:
    TransportStats stats_;
};

/// Opens a socket to `ep`. UDP: connected, non-blocking sends, 4 MiB send
/// buffer. TCP: blocking connect (5 s timeout) and blocking sends.
/// Errors: whatever socket()/connect() return, with the endpoint.
Result<std::unique_ptr<Transport>> open_transport(const Endpoint& ep);

} // namespace weir::exporters
