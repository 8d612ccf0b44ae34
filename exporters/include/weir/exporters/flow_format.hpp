// Flow records as text: JSON lines with nProbe/IPFIX field names, and a
// readable one-line-per-flow form. Pure formatting, no I/O.
//
// JSON fields (client = initiator, IN = client->server, OUT = server->client):
//   IPV4_SRC_ADDR/IPV4_DST_ADDR or IPV6_SRC_ADDR/IPV6_DST_ADDR, L4_SRC_PORT,
//   L4_DST_PORT, PROTOCOL, IP_PROTOCOL_VERSION, IN_PKTS, IN_BYTES, OUT_PKTS,
//   OUT_BYTES, FIRST_SWITCHED, LAST_SWITCHED (epoch ms), FLOW_START_NANOSECONDS,
//   FLOW_END_NANOSECONDS (epoch ns), TCP_FLAGS, CLIENT_TCP_FLAGS,
//   SERVER_TCP_FLAGS, SRC_TOS, DST_TOS, MIN_TTL, MAX_TTL (client->server),
//   SERVER_MIN_TTL, SERVER_MAX_TTL, IN_SRC_MAC, OUT_DST_MAC, SRC_VLAN,
//   FRAGMENTS, FLOW_END_REASON (IPFIX code) and FLOW_END_REASON_NAME,
//   ICMP_TYPE (type*256+code, ICMP flows), UPSTREAM_TUNNEL_ID and
//   TUNNEL_TYPE (tunneled flows), WORKER.
#pragma once

#include <weir/core/flow_record.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace weir::exporters {

/// "192.0.2.1" or "2001:db8::1" (RFC 5952 form).
std::string format_ip(const std::array<uint8_t, 16>& addr, uint8_t ip_version);

/// "aa:bb:cc:dd:ee:ff".
std::string format_mac(const std::array<uint8_t, 6>& mac);

/// "SA.F" style: one letter per flag set, in the order CEUAPRSF.
std::string format_tcp_flags(uint8_t flags);

/// Appends one JSON object, without a trailing newline.
void append_json(const FlowRecord& r, std::string& out);

/// Appends one readable line, without a trailing newline: time, protocol,
/// client and server, counters, TCP flags, end reason, then what DPI found
/// ("[TLS.Google/Web] www.google.com", "[HTTP/Web, by port]" for a port
/// guess) and nDPI's risks ("risk 60: name, name").
void append_text(const FlowRecord& r, std::string& out);

} // namespace weir::exporters
