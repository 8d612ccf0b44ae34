// FlowRecord: one finished (or timed-out) bidirectional flow, as handed by a
// worker's flow table to the export thread. Direction 0 is client -> server
// (nProbe's IN / IPFIX forward), direction 1 server -> client (OUT / reverse).
#pragma once

#include <weir/core/flow_key.hpp>

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace weir {

/// Why a flow was exported. Values are IPFIX flowEndReason (IE 136, RFC 5102).
enum class EndReason : uint8_t {
    IdleTimeout = 1,
    ActiveTimeout = 2,
    EndOfFlow = 3,        ///< TCP FIN both ways or RST
    ForcedEnd = 4,        ///< end of capture, shutdown
    LackOfResources = 5,  ///< evicted from a full table
};

constexpr std::string_view end_reason_name(EndReason r) noexcept
{
    switch (r) {
    case EndReason::IdleTimeout: return "idle timeout";
    case EndReason::ActiveTimeout: return "active timeout";
    case EndReason::EndOfFlow: return "end of flow";
    case EndReason::ForcedEnd: return "forced end";
    case EndReason::LackOfResources: return "lack of resources";
    }
    return "unknown";
}

/// Counters of one direction of a flow.
struct DirCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t first_ns = 0; ///< 0 when no packet in this direction
    uint64_t last_ns = 0;
    uint8_t tcp_flags = 0; ///< OR of all flags seen
    uint8_t min_ttl = 0;
    uint8_t max_ttl = 0;
    uint8_t tos = 0;       ///< ToS of the first packet
};

/// Application protocol of a flow and what DPI read from it. Fixed-size
/// text (NUL-terminated, cut to fit) so the record stays trivially copyable;
/// the bounds follow nDPI's (80-byte host name) and nProbe's templates.
struct L7Info {
    uint16_t master = 0;      ///< nDPI protocol id of the master protocol (0 = none)
    uint16_t app = 0;         ///< nDPI protocol id of the application (0 = unknown)
    uint8_t guessed = 0;      ///< 1: from the ports only, no payload was read
    uint8_t dns_rcode = 0;
    uint16_t dns_qtype = 0;
    char name[24]{};          ///< nDPI name, "TLS" or "master.app" form ("DNS.Google")
    char server_name[80]{};   ///< TLS SNI, HTTP Host or DNS query, as nDPI stores it
    char url[256]{};          ///< HTTP URL (host + target)
    char user_agent[256]{};
    char ja3c[33]{};
    char ja3s[33]{};
    char ja4[37]{};
    uint8_t confidence = 0;   ///< how the protocol was found: ndpi_confidence_t (weir/core/ndpi_vocab.hpp)
    uint64_t risk = 0;        ///< nDPI flow risk bitmap (ndpi_risk, bit n = risk n); nDPI mode only
    uint16_t category = 0;    ///< nDPI category id (ndpi_protocol_category_t), 0 = unspecified
    uint16_t risk_score = 0;  ///< nDPI's score of `risk` (ndpi_risk2score, client + server); nDPI mode only
    uint16_t http_status = 0; ///< HTTP: status code of the first response (0 = none seen)
    uint8_t http_method = 0;  ///< HTTP: method of the request, ndpi_http_method (0 = unknown; ndpi_vocab.hpp)
    uint8_t pad_[1]{};
    // TCP timing measured by the DPI stage (levels 1 and 2), in microseconds,
    // 0 = not measured (no full three-way handshake seen, or not TCP).
    // The network latencies are nProbe's CLIENT/SERVER_NW_LATENCY: half the
    // round trip between the probe and each end, from the handshake
    // (server: SYN -> SYN/ACK, client: SYN/ACK -> the client's ACK).
    uint32_t client_nw_latency_us = 0;
    uint32_t server_nw_latency_us = 0;
    uint32_t appl_latency_us = 0;  ///< first client payload -> first server payload after it
};
static_assert(std::is_trivially_copyable_v<L7Info>);
static_assert(sizeof(L7Info) == 760, "L7Info grows every flow record and export ring slot");

/// What the flow table knows of a flow: a FlowRecord without its L7 block.
/// Without DPI, the worker -> export thread rings carry only this much (152
/// bytes instead of 912) and the export thread adds a blank L7 block.
struct FlowCore {
    FlowKey key;                 ///< canonical key (A/B sides)
    std::array<DirCounters, 2> dir; ///< [0] client->server, [1] server->client
    std::array<uint8_t, 6> client_mac{}; ///< source MAC of the client's first packet
    std::array<uint8_t, 6> server_mac{}; ///< destination MAC of the client's first packet
    uint32_t fragments = 0;      ///< IP fragments seen, both directions
    uint16_t worker = 0;         ///< worker (core) that owned the flow
    EndReason end_reason = EndReason::IdleTimeout;
    uint8_t client_is_a = 1;     ///< 1 when the client is key side A
    /// Entry number of the flow in the worker's flow table that ended it
    /// (FlowTable::AfterPacket's `flow`), UINT32_MAX for records made
    /// elsewhere: lets the worker's per-flow state beside the table find
    /// the flow without a lookup. Not exported.
    uint32_t table_entry = UINT32_MAX;

    // Client/server views of the canonical key.
    [[nodiscard]] const std::array<uint8_t, 16>& client_addr() const noexcept { return client_is_a ? key.addr_a : key.addr_b; }
    [[nodiscard]] const std::array<uint8_t, 16>& server_addr() const noexcept { return client_is_a ? key.addr_b : key.addr_a; }
    [[nodiscard]] uint16_t client_port() const noexcept { return client_is_a ? key.port_a : key.port_b; }
    [[nodiscard]] uint16_t server_port() const noexcept { return client_is_a ? key.port_b : key.port_a; }
    [[nodiscard]] uint64_t first_ns() const noexcept
    {
        if (dir[1].packets == 0) return dir[0].first_ns;
        if (dir[0].packets == 0) return dir[1].first_ns;
        return dir[0].first_ns < dir[1].first_ns ? dir[0].first_ns : dir[1].first_ns;
    }
    [[nodiscard]] uint64_t last_ns() const noexcept
    {
        return dir[0].last_ns > dir[1].last_ns ? dir[0].last_ns : dir[1].last_ns;
    }
};
static_assert(std::is_trivially_copyable_v<FlowCore>);
static_assert(sizeof(FlowCore) == 152, "FlowCore is what every export ring slot holds without DPI");

struct FlowRecord : FlowCore {
    L7Info l7; ///< application protocol (all zero when not classified)
};
static_assert(std::is_trivially_copyable_v<FlowRecord>);

} // namespace weir
