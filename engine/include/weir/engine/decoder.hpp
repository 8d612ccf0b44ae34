// Packet decoder: link layer to L4, through VLAN/QinQ, MPLS, PPPoE and
// tunnels (GRE, VXLAN, GTP-U, IP-in-IP), into a PacketMeta with a canonical
// flow key. Fast path: noexcept, no allocation; a frame that cannot be
// decoded is counted under its DropReason and skipped.
//
// One Decoder per thread: it keeps a small cache of first IP fragments so
// later fragments of the same datagram get the ports of the first one.
#pragma once

#include <weir/core/drop_reason.hpp>
#include <weir/core/packet.hpp>

#include <cstdint>
#include <memory>

namespace weir::engine {

/// pcap LINKTYPE_* values the decoder understands.
namespace linktype {
inline constexpr uint32_t kNull = 0;        ///< BSD loopback, host-order AF
inline constexpr uint32_t kEthernet = 1;
inline constexpr uint32_t kPpp = 9;
inline constexpr uint32_t kRaw = 101;       ///< raw IPv4/IPv6 (also DLT 12 and 14)
inline constexpr uint32_t kCiscoHdlc = 104;
inline constexpr uint32_t kLoop = 108;      ///< OpenBSD loopback, network-order AF
inline constexpr uint32_t kLinuxSll = 113;
inline constexpr uint32_t kPpi = 192;
inline constexpr uint32_t kIpv4 = 228;
inline constexpr uint32_t kIpv6 = 229;
inline constexpr uint32_t kLinuxSll2 = 276;
inline constexpr uint32_t kPppHdlc = 50;
} // namespace linktype

struct DecoderConfig {
    /// Decapsulate GRE, VXLAN (UDP 4789), GTP-U (UDP 2152) and IP-in-IP, so the
    /// inner 5-tuple is the flow key and the tunnel id is kept in it.
    bool decap_tunnels = true;
    /// First-fragment cache entries (power of two).
    uint32_t frag_cache_entries = 4096;
    /// Decode common frames (Ethernet, at most one 802.1Q tag, IPv4 without
    /// options or fragments or IPv6 without extension headers, TCP or UDP
    /// off the tunnel ports) on a straight-line path; results are identical
    /// either way. False forces the general walk (tests compare the two).
    bool fast_path = true;
};

struct DecoderStats {
    uint64_t packets = 0;    ///< frames seen
    uint64_t decoded = 0;    ///< frames turned into a PacketMeta
    uint64_t fragments = 0;  ///< IP fragments among the decoded
    uint64_t tunneled = 0;   ///< decoded through at least one tunnel
    DropCounters drops;      ///< frames skipped, by reason
};

class Decoder {
public:
    explicit Decoder(DecoderConfig cfg = {});
    ~Decoder();
    Decoder(Decoder&&) noexcept;
    Decoder& operator=(Decoder&&) noexcept;

    /// True when the decoder handles this pcap link type.
    static bool linktype_supported(uint32_t linktype) noexcept;

    /// Decodes one frame (link type in pkt.linktype). Returns true and fills
    /// `out` when the frame belongs to a flow; returns false and counts the
    /// reason in stats().drops otherwise. Never reads past pkt.caplen.
    bool decode(const RawPacket& pkt, PacketMeta& out) noexcept;

    [[nodiscard]] const DecoderStats& stats() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::engine
