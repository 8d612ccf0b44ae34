// PacketMeta: what the decoder extracts from one frame, and all the flow
// engine needs to account it. Produced by weir::engine::Decoder, consumed by
// FlowTable::update. Trivially copyable so it travels through SPSC rings.
#pragma once

#include <weir/core/flow_key.hpp>

#include <array>
#include <cstdint>
#include <type_traits>

namespace weir {

/// Raw frame handed by a capture back-end to the decoder.
struct RawPacket {
    const uint8_t* data = nullptr;
    uint32_t caplen = 0;   ///< bytes present in data
    uint32_t wire_len = 0; ///< original length on the wire
    uint64_t ts_ns = 0;    ///< capture timestamp, ns since the epoch
    uint32_t linktype = 1; ///< pcap LINKTYPE_* of data (1 = Ethernet)
};

struct PacketMeta {
    FlowKey key;            ///< canonical flow key
    uint64_t ts_ns = 0;     ///< capture timestamp, ns since the epoch
    uint32_t hash = 0;      ///< flow_hash(key)
    uint32_t wire_len = 0;  ///< frame length on the wire (pcap len)
    uint32_t ip_len = 0;    ///< outer IP total length (IPv6: payload length + 40)
    uint16_t l4_payload_offset = 0; ///< offset of the L4 payload in the frame (0 = none)
    uint16_t l4_payload_len = 0;    ///< L4 payload bytes present in the capture
    std::array<uint8_t, 6> src_mac{};
    std::array<uint8_t, 6> dst_mac{};
    uint8_t src_is_a = 1;   ///< 1 when the packet's source is key side A
    uint8_t tcp_flags = 0;  ///< TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80)
    uint8_t ttl = 0;        ///< IPv4 TTL / IPv6 hop limit (inner header for tunnels)
    uint8_t tos = 0;        ///< IPv4 ToS / IPv6 traffic class
    uint8_t is_fragment = 0;///< 1 for any IP fragment (first or later)
    uint8_t control = 0;    ///< kCtlPacket, kCtlTick (pipeline-internal, ts_ns only) or kCtlDelta (see make_delta)
    uint8_t dpi_copy = 0;   ///< pipeline-internal: a copy of the payload follows in the worker's DPI ring
    uint8_t pad_[1]{};
    uint16_t l3_offset = 0; ///< offset of the flow's IP header in the frame (inner one for tunnels); nDPI reads from there
};
static_assert(std::is_trivially_copyable_v<PacketMeta>);
static_assert(sizeof(PacketMeta) == 96, "PacketMeta travels through every reader->worker ring");

/// PacketMeta::control values.
inline constexpr uint8_t kCtlPacket = 0; ///< a decoded packet
inline constexpr uint8_t kCtlTick = 1;   ///< a packet-time clock tick
inline constexpr uint8_t kCtlDelta = 2;  ///< packets counted elsewhere (XDP), added in bulk

/// A bulk delta: `packets` packets of `bytes` wire bytes of flow `key`, all
/// in one direction (src_is_a), the last of them at ts_ns (packet time),
/// with the union of their TCP flags (tcp_flags; may come alone, with no
/// packets, when the flags were read after the counts). They were counted
/// outside weir's capture (the XDP program kept them from it), so nothing
/// else is known: no TTL, MACs. The counts ride in the fields a delta has
/// no use for: wire_len holds the bytes, ip_len the packets (32 bits each;
/// split larger deltas). The hash is set by the pipeline from the key.
[[nodiscard]] inline PacketMeta make_delta(const FlowKey& key, bool src_is_a, uint32_t packets, uint32_t bytes,
                                           uint64_t ts_ns, uint8_t tcp_flags = 0) noexcept
{
    PacketMeta m{};
    m.key = key;
    m.ts_ns = ts_ns;
    m.src_is_a = src_is_a ? 1 : 0;
    m.tcp_flags = tcp_flags;
    m.control = kCtlDelta;
    m.wire_len = bytes;
    m.ip_len = packets;
    return m;
}
[[nodiscard]] inline uint32_t delta_packets(const PacketMeta& m) noexcept { return m.ip_len; }
[[nodiscard]] inline uint32_t delta_bytes(const PacketMeta& m) noexcept { return m.wire_len; }

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

} // namespace weir
