// Client side of the verdict channel's Unix socket: one connection that
// carries JSON request lines and binary batches (weir/abi/verdict_wire.h),
// one JSON reply line each. Used by weirctl ("verdict load") and the
// benchmarks; an IDS integration can link it too.
//
// Text verdict files ("weirctl verdict load"): one verdict per line,
//
//   src dst sport dport proto verdict [N] [TTL] [key=value ...]
//
// with proto tcp, udp, icmp, icmpv6, sctp, gre or a number; verdict
// forward, drop, shunt or divert; the first bare number N is shunt's
// "after" or divert's egress index, the second the TTL in seconds; keys
// after=, egress=, ttl= (seconds, fractions allowed), reason= (code
// 1..32767), vlan= and the word tcp_control. Blank lines and lines
// starting with '#' are skipped. For a delete only the first five fields
// are read.
#pragma once

#include <weir/abi/verdict_wire.h>
#include <weir/core/result.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

struct iovec;

namespace weir::dataplane {

class VerdictClient {
public:
    /// Connects to the server's Unix socket; timeout_ms bounds every send
    /// and reply wait afterwards.
    static Result<VerdictClient> connect(const std::string& socket_path, int timeout_ms = 10000);

    VerdictClient(VerdictClient&& o) noexcept;
    VerdictClient& operator=(VerdictClient&& o) noexcept;
    VerdictClient(const VerdictClient&) = delete;
    VerdictClient& operator=(const VerdictClient&) = delete;
    ~VerdictClient();

    /// Sends one JSON request (a newline is added) and returns the reply
    /// line, without its newline.
    Result<std::string> request(std::string_view line);
    /// Sends one binary frame of `records` (1..WEIR_VWIRE_MAX_COUNT) with
    /// the given op and WEIR_VWIRE_F_* flags and returns the JSON reply.
    /// The records are sent from where they are (no copy).
    Result<std::string> send_binary(weir_vwire_op op, std::span<const weir_verdict_req> records, uint32_t flags = 0);

private:
    VerdictClient(int fd, int timeout_ms, std::string path) : fd_(fd), timeout_ms_(timeout_ms), path_(std::move(path)) {}
    Result<void> send_iov(::iovec* iov, int n);
    Result<std::string> read_reply();

    int fd_ = -1;
    int timeout_ms_ = 10000;
    std::string path_;
    std::string rbuf_;  // bytes past the last reply
};

/// One line of a text verdict file (format above) as a wire record, key
/// not canonicalised (the server does it); nullopt for a blank or comment
/// line. del: only the flow's five fields are read. Errors: EINVAL with
/// the reason.
Result<std::optional<weir_verdict_req>> parse_verdict_line(std::string_view line, bool del = false);

} // namespace weir::dataplane
