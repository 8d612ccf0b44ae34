// Packet decoder: link layer -> (VLAN, MPLS, PPPoE) -> IP -> L4, through
// GRE, VXLAN, GTP-U and IP-in-IP tunnels, into a PacketMeta.
//
// The walk is one loop over a small state (Step) so that every layer hands
// the next one an offset and nothing else; every read is preceded by a bounds
// check against the capture length (the invariant off <= cap holds between
// steps). Policies worth knowing:
//  - Later IP fragments whose first fragment was not seen are counted as
//    FragNoFirst but still decoded, with ports 0/0: the bytes are accounted
//    to the port-less flow between the two hosts instead of being lost.
//  - Fragmented IP packets are never decapsulated (their L4 header may be
//    all there is of the tunnel); the outer datagram is the flow, so its
//    later fragments find the same key.
//  - When a tunnel's payload is not IP (VXLAN carrying ARP, GRE carrying an
//    unknown protocol, GTP-U signalling), the packet is accounted to the
//    flow that carried the tunnel rather than dropped.
//  - MACs and the VLAN id come from the outer Ethernet header only.
#include <weir/engine/decoder.hpp>

#include "decode_frag_cache.hpp"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <utility>

namespace weir::engine {
namespace {

constexpr uint32_t kMaxEncaps = 4;      // tunnels and pseudowires
constexpr uint32_t kMaxVlanTags = 8;
constexpr uint32_t kMaxMplsLabels = 16;
constexpr uint32_t kMaxIpv6Ext = 8;
constexpr uint32_t kMaxGtpExt = 8;

constexpr uint32_t kDltRawLinux = 12;   // DLT_RAW as libpcap reports it on most systems
constexpr uint32_t kDltRawOpenBsd = 14; // DLT_RAW on OpenBSD

namespace et {
constexpr uint16_t kIpv4 = 0x0800;
constexpr uint16_t kIpv6 = 0x86dd;
constexpr uint16_t kVlan = 0x8100;
constexpr uint16_t kQinQ = 0x88a8;
constexpr uint16_t kQinQOld = 0x9100;
constexpr uint16_t kMplsUc = 0x8847;
constexpr uint16_t kMplsMc = 0x8848;
constexpr uint16_t kPppoeSession = 0x8864;
constexpr uint16_t kTeb = 0x6558;       // transparent Ethernet bridging (GRE)
constexpr uint16_t kErspan2 = 0x88be;
constexpr uint16_t kErspan3 = 0x22eb;
} // namespace et

namespace ipp {
constexpr uint8_t kHopByHop = 0;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIpip = 4;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIpv6 = 41;
constexpr uint8_t kRouting = 43;
constexpr uint8_t kFragment = 44;
constexpr uint8_t kGre = 47;
constexpr uint8_t kAh = 51;
constexpr uint8_t kIcmpv6 = 58;
constexpr uint8_t kDstOpts = 60;
constexpr uint8_t kSctp = 132;
constexpr uint8_t kMobility = 135;
constexpr uint8_t kUdpLite = 136;
} // namespace ipp

constexpr uint16_t kVxlanPort = 4789;
constexpr uint16_t kGtpuPort = 2152;

inline uint16_t ld16(const uint8_t* p) noexcept
{
    uint16_t v;
    std::memcpy(&v, p, 2);
    return __builtin_bswap16(v);
}
inline uint32_t ld32(const uint8_t* p) noexcept
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
inline uint16_t ld16le(const uint8_t* p) noexcept
{
    return static_cast<uint16_t>(p[0] | p[1] << 8);
}
inline uint32_t ld32le(const uint8_t* p) noexcept
{
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

enum class Step : uint8_t { Ether, EtherType, IpGuess, Ipv4, Ipv6, Done };

// The IP layer that currently stands for the flow (the innermost one decoded).
// No default member initializers: the IP step sets every field before any
// use, and zero-filling it per packet is measurable on the fast path.
// Addresses are kept as two 64-bit words holding the bytes in packet order
// (IPv4: 4 bytes then zeros), written and read whole, so building the key
// never stalls on a wide load of narrow stores.
struct Layer {
    uint64_t src[2];
    uint64_t dst[2];
    uint32_t payload_off;
    uint32_t payload_len;
    uint32_t l3_off;         // offset of this IP header in the frame
    uint16_t sport;
    uint16_t dport;
    uint8_t proto;
    uint8_t version;
    uint8_t ttl;
    uint8_t tos;
    uint8_t tcp_flags;
    uint8_t is_fragment;
    TunnelType tunnel_type;  // outermost tunnel crossed so far
    uint32_t tunnel_id;
};

// Fragment facts of the current IP header.
struct Frag {
    bool fragmented = false;  // first or later fragment
    bool later = false;       // offset > 0: no L4 header
    uint32_t id = 0;
    uint8_t key_proto = 0;
};

struct Walk {
    const uint8_t* p;
    uint32_t cap;
    uint32_t off = 0;
    uint16_t ethertype = 0;
    Step step = Step::Done;
    uint32_t encaps = 0;
    uint32_t vlan_tags = 0;
    uint16_t vlan = 0;
    bool vlan_seen = false;
    bool have_ip = false;
    bool have_outer = false;  // `outer` holds a complete flow to fall back to
    uint32_t ip_len = 0;
    const uint8_t* eth = nullptr;  // outer Ethernet header
    Layer cur;                     // see Layer: set by the IP step
    Layer outer;                   // valid when have_outer

    Walk(const uint8_t* data, uint32_t caplen) noexcept : p(data), cap(caplen)
    {
        cur.tunnel_type = TunnelType::None;
        cur.tunnel_id = 0;
    }
};

// Sets up the walk for a link type at w.off. PPI names an inner DLT, which is
// dispatched once more with allow_ppi = false.
DropReason link_layer(Walk& w, uint32_t lt, bool allow_ppi) noexcept;

DropReason ppp_protocol(Walk& w) noexcept
{
    if (w.cap - w.off < 1)
        return DropReason::TruncatedL2;
    uint16_t proto;
    // Protocol field compression: an odd first byte is a 1-byte protocol.
    if (w.p[w.off] & 1) {
        proto = w.p[w.off];
        w.off += 1;
    } else {
        if (w.cap - w.off < 2)
            return DropReason::TruncatedL2;
        proto = ld16(w.p + w.off);
        w.off += 2;
    }
    switch (proto) {
    case 0x0021: w.step = Step::Ipv4; return DropReason::None;
    case 0x0057: w.step = Step::Ipv6; return DropReason::None;
    case 0x0281:
    case 0x0283:
        w.ethertype = et::kMplsUc;
        w.step = Step::EtherType;
        return DropReason::None;
    default: return DropReason::NonIp;  // LCP, IPCP, CHAP, ...
    }
}

DropReason address_family(Walk& w, uint32_t af) noexcept
{
    switch (af) {
    case 2: w.step = Step::Ipv4; return DropReason::None;
    case 24:
    case 28:
    case 30: w.step = Step::Ipv6; return DropReason::None;
    default: return DropReason::NonIp;
    }
}

DropReason cisco_hdlc(Walk& w) noexcept
{
    if (w.cap - w.off < 4)
        return DropReason::TruncatedL2;
    w.ethertype = ld16(w.p + w.off + 2);
    w.off += 4;
    w.step = Step::EtherType;
    return DropReason::None;
}

DropReason link_layer(Walk& w, uint32_t lt, bool allow_ppi) noexcept
{
    const uint8_t* p = w.p + w.off;
    const uint32_t avail = w.cap - w.off;
    switch (lt) {
    case linktype::kEthernet: w.step = Step::Ether; return DropReason::None;
    case linktype::kRaw:
    case kDltRawLinux:
    case kDltRawOpenBsd: w.step = Step::IpGuess; return DropReason::None;
    case linktype::kIpv4: w.step = Step::Ipv4; return DropReason::None;
    case linktype::kIpv6: w.step = Step::Ipv6; return DropReason::None;
    case linktype::kLinuxSll:
        if (avail < 16)
            return DropReason::TruncatedL2;
        w.ethertype = ld16(p + 14);
        w.off += 16;
        w.step = Step::EtherType;
        return DropReason::None;
    case linktype::kLinuxSll2:
        if (avail < 20)
            return DropReason::TruncatedL2;
        w.ethertype = ld16(p);
        w.off += 20;
        w.step = Step::EtherType;
        return DropReason::None;
    case linktype::kNull: {
        if (avail < 4)
            return DropReason::TruncatedL2;
        // Host order of the capturing machine, which may not be ours: AF
        // values are small, so a large value means the other byte order.
        uint32_t af = ld32le(p);
        if (af > 0xffff)
            af = __builtin_bswap32(af);
        w.off += 4;
        return address_family(w, af);
    }
    case linktype::kLoop:
        if (avail < 4)
            return DropReason::TruncatedL2;
        w.off += 4;
        return address_family(w, ld32(p));
    case linktype::kPpp:
        // Some captures keep the HDLC address/control bytes.
        if (avail >= 1 && p[0] == 0xff) {
            if (avail < 2)
                return DropReason::TruncatedL2;
            if (p[1] == 0x03)
                w.off += 2;
        }
        return ppp_protocol(w);
    case linktype::kPppHdlc:
        if (avail < 2)
            return DropReason::TruncatedL2;
        // DLT_PPP_SERIAL also carries Cisco HDLC framed frames.
        if (p[0] == 0x0f || p[0] == 0x8f)
            return cisco_hdlc(w);
        if (p[0] != 0xff || p[1] != 0x03)
            return DropReason::NonIp;
        w.off += 2;
        return ppp_protocol(w);
    case linktype::kCiscoHdlc: return cisco_hdlc(w);
    case linktype::kPpi: {
        if (!allow_ppi || avail < 8)
            return allow_ppi ? DropReason::TruncatedL2 : DropReason::UnknownLinktype;
        const uint32_t len = ld16le(p + 2);
        if (len < 8 || len > avail)
            return DropReason::TruncatedL2;
        const uint32_t inner = ld32le(p + 4);
        w.off += len;
        return link_layer(w, inner, false);
    }
    default: return DropReason::UnknownLinktype;
    }
}

} // namespace

struct Decoder::Impl {
    explicit Impl(DecoderConfig c) : cfg(c), frags(c.frag_cache_entries) {}

    DecoderConfig cfg;
    DecoderStats stats;
    detail::FragCache frags;

    // The common path (Ethernet, IPv4, TCP/UDP) is inlined into one
    // function; IPv6 extension walking, tunnels and fragments are out of line.
    DropReason walk(Walk& w, uint32_t linktype) noexcept;
    [[gnu::always_inline]] DropReason ethertype(Walk& w) noexcept;
    [[gnu::always_inline]] DropReason ipv4(Walk& w) noexcept;
    DropReason ipv6(Walk& w) noexcept;
    [[gnu::always_inline]] DropReason transport(Walk& w, uint32_t l4, uint32_t end, uint32_t full_end,
                                                const Frag& fr) noexcept;
    [[gnu::noinline]] DropReason tunnel(Walk& w, uint32_t l4, uint32_t end, uint32_t full_end) noexcept;
    [[gnu::noinline]] void later_fragment(Walk& w, const Frag& fr, uint32_t l4, uint32_t end) noexcept;
    [[gnu::noinline]] void first_fragment(const Walk& w, const Frag& fr) noexcept;
    [[gnu::always_inline]] void finish(const Walk& w, const RawPacket& pkt, PacketMeta& out) noexcept;
    [[gnu::always_inline]] bool fast(const RawPacket& pkt, PacketMeta& out) noexcept;
    // Out of line, so that the fast path's registers and stack frame stay
    // those of a small function.
    [[gnu::noinline]] bool decode_general(const RawPacket& pkt, PacketMeta& out) noexcept;
};

namespace {

// Starts a decapsulation: the current flow becomes the fallback, and the first
// tunnel crossed names the flow's tunnel.
DropReason begin_decap(Walk& w, TunnelType type, uint32_t id) noexcept
{
    if (++w.encaps > kMaxEncaps)
        return DropReason::TooManyEncaps;
    w.outer = w.cur;
    w.have_outer = true;
    if (w.cur.tunnel_type == TunnelType::None) {
        w.cur.tunnel_type = type;
        w.cur.tunnel_id = id;
    }
    return DropReason::None;
}

// A tunnel header of n bytes at off: cut by the capture, or longer than the
// datagram that carries it.
inline DropReason tunnel_short(uint32_t off, uint32_t n, uint32_t full_end) noexcept
{
    return off + n > full_end ? DropReason::BadTunnel : DropReason::TruncatedL4;
}

} // namespace

inline DropReason Decoder::Impl::ethertype(Walk& w) noexcept
{
    const uint8_t* p = w.p;
    switch (w.ethertype) {
    case et::kIpv4: w.step = Step::Ipv4; return DropReason::None;
    case et::kIpv6: w.step = Step::Ipv6; return DropReason::None;
    case et::kVlan:
    case et::kQinQ:
    case et::kQinQOld:
        if (++w.vlan_tags > kMaxVlanTags)
            return DropReason::TooManyEncaps;
        if (w.cap - w.off < 4)
            return DropReason::TruncatedL2;
        if (!w.vlan_seen && w.encaps == 0) {
            w.vlan = ld16(p + w.off) & 0x0fff;
            w.vlan_seen = true;
        }
        w.ethertype = ld16(p + w.off + 2);
        w.off += 4;
        return DropReason::None;  // stays in Step::EtherType
    case et::kMplsUc:
    case et::kMplsMc: {
        for (uint32_t n = 0;; ++n) {
            if (n == kMaxMplsLabels)
                return DropReason::BadMpls;
            if (w.cap - w.off < 4)
                return DropReason::TruncatedL2;
            const bool bottom = p[w.off + 2] & 1;
            w.off += 4;
            if (bottom)
                break;
        }
        if (w.cap - w.off < 1)
            return DropReason::TruncatedIp;
        // No protocol field after the stack: guess from the first nibble.
        switch (p[w.off] >> 4) {
        case 4: w.step = Step::Ipv4; return DropReason::None;
        case 6: w.step = Step::Ipv6; return DropReason::None;
        case 0:
            // Ethernet pseudowire with its control word (RFC 4448).
            if (++w.encaps > kMaxEncaps)
                return DropReason::TooManyEncaps;
            if (w.cap - w.off < 4)
                return DropReason::TruncatedL2;
            w.off += 4;
            w.step = Step::Ether;
            return DropReason::None;
        default: return DropReason::NonIp;
        }
    }
    case et::kPppoeSession: {
        if (w.cap - w.off < 8)
            return DropReason::TruncatedL2;
        const uint8_t* h = p + w.off;
        if (h[0] != 0x11 || h[1] != 0x00)  // version 1, type 1, code "session data"
            return DropReason::BadPppoe;
        w.off += 6;
        return ppp_protocol(w);
    }
    case et::kTeb: w.step = Step::Ether; return DropReason::None;
    default: return DropReason::NonIp;
    }
}

inline DropReason Decoder::Impl::ipv4(Walk& w) noexcept
{
    if (w.cap - w.off < 20)
        return DropReason::TruncatedIp;
    const uint8_t* h = w.p + w.off;
    const uint32_t hl = (h[0] & 0x0fu) * 4;
    if ((h[0] >> 4) != 4 || hl < 20)
        return DropReason::BadIpHeader;
    // Total length 0 is what segmentation offload leaves in captured
    // super-frames (as for IPv6 below): the frame is the only bound.
    const uint32_t total = ld16(h + 2) ? ld16(h + 2) : w.cap - w.off;
    if (total < hl)
        return DropReason::BadIpHeader;
    if (w.cap - w.off < hl)
        return DropReason::TruncatedIp;
    if (!w.have_ip) {
        w.have_ip = true;
        w.ip_len = total;
    }

    Layer& c = w.cur;
    c.l3_off = w.off;
    uint32_t a;
    std::memcpy(&a, h + 12, 4);
    c.src[0] = a;
    c.src[1] = 0;
    std::memcpy(&a, h + 16, 4);
    c.dst[0] = a;
    c.dst[1] = 0;
    c.payload_off = c.payload_len = 0;
    c.proto = h[9];
    c.version = 4;
    c.ttl = h[8];
    c.tos = h[1];
    c.sport = c.dport = 0;
    c.tcp_flags = 0;

    const uint16_t fo = ld16(h + 6);
    Frag fr;
    if (fo & 0x3fff) {
        fr.fragmented = true;
        fr.later = (fo & 0x1fff) != 0;
        fr.id = ld16(h + 4);
        fr.key_proto = c.proto;
    }
    c.is_fragment = fr.fragmented;

    // Trust the header's total length over the frame (Ethernet padding), and
    // accept frames cut short by the snap length.
    const uint32_t full_end = w.off + total;
    const uint32_t end = std::min(full_end, w.cap);
    return transport(w, w.off + hl, end, full_end, fr);
}

DropReason Decoder::Impl::ipv6(Walk& w) noexcept
{
    if (w.cap - w.off < 40)
        return DropReason::TruncatedIp;
    const uint8_t* h = w.p + w.off;
    if ((h[0] >> 4) != 6)
        return DropReason::BadIpHeader;
    const uint32_t plen = ld16(h + 4);
    if (!w.have_ip) {
        w.have_ip = true;
        w.ip_len = plen + 40;
    }
    // Payload length 0 means a jumbogram or a segmentation-offloaded capture:
    // the frame is the only bound.
    const uint32_t full_end = plen ? w.off + 40 + plen : w.cap;
    const uint32_t end = std::min(full_end, w.cap);

    Layer& c = w.cur;
    c.l3_off = w.off;
    std::memcpy(c.src, h + 8, 16);
    std::memcpy(c.dst, h + 24, 16);
    c.version = 6;
    c.payload_off = c.payload_len = 0;
    c.ttl = h[7];
    c.tos = static_cast<uint8_t>(ld16(h) >> 4);
    c.sport = c.dport = 0;
    c.tcp_flags = 0;

    uint8_t nh = h[6];
    uint32_t x = w.off + 40;
    Frag fr;
    for (uint32_t n = 0;; ++n) {
        uint32_t len;
        switch (nh) {
        case ipp::kHopByHop:
        case ipp::kRouting:
        case ipp::kDstOpts:
        case ipp::kMobility:
        case ipp::kFragment:
        case ipp::kAh:
            break;
        default:
            goto chain_done;
        }
        if (n == kMaxIpv6Ext || x + 2 > full_end)
            return DropReason::BadIpv6Ext;
        if (x + 2 > end)
            return DropReason::TruncatedIp;
        if (nh == ipp::kFragment)
            len = 8;
        else if (nh == ipp::kAh)
            len = (w.p[x + 1] + 2u) * 4;
        else
            len = (w.p[x + 1] + 1u) * 8;
        if (x + len > full_end)
            return DropReason::BadIpv6Ext;
        if (x + len > end)
            return DropReason::TruncatedIp;
        const uint8_t next = w.p[x];
        if (nh == ipp::kFragment) {
            const uint16_t fo = ld16(w.p + x + 2);
            // An atomic fragment (offset 0, M=0) is a whole datagram (RFC 6946).
            if (fo & 0xfff9) {
                fr.fragmented = true;
                fr.later = (fo & 0xfff8) != 0;
                fr.id = ld32(w.p + x + 4);
                fr.key_proto = next;
            }
            if (fr.later) {
                // Everything after this header is fragment data.
                nh = next;
                x += len;
                break;
            }
        }
        nh = next;
        x += len;
    }
chain_done:
    c.proto = nh;
    c.is_fragment = fr.fragmented;
    return transport(w, x, end, full_end, fr);
}

inline DropReason Decoder::Impl::transport(Walk& w, uint32_t l4, uint32_t end, uint32_t full_end,
                                    const Frag& fr) noexcept
{
    Layer& c = w.cur;
    w.step = Step::Done;
    const uint8_t* t = w.p + l4;
    const uint32_t avail = end - l4;  // l4 <= end: headers were checked against end
    uint32_t pay = l4;

    if (fr.later) [[unlikely]] {
        later_fragment(w, fr, l4, end);
        return DropReason::None;
    }

    switch (c.proto) {
    case ipp::kTcp:
        if (avail < 20)
            return DropReason::TruncatedL4;
        c.sport = ld16(t);
        c.dport = ld16(t + 2);
        c.tcp_flags = t[13];
        pay = l4 + std::max(20u, (t[12] >> 4) * 4u);
        break;
    case ipp::kUdp:
    case ipp::kUdpLite:
        if (avail < 8)
            return DropReason::TruncatedL4;
        c.sport = ld16(t);
        c.dport = ld16(t + 2);
        pay = l4 + 8;
        break;
    case ipp::kSctp:
        if (avail < 12)
            return DropReason::TruncatedL4;
        c.sport = ld16(t);
        c.dport = ld16(t + 2);
        pay = l4 + 12;
        break;
    case ipp::kIcmp:
    case ipp::kIcmpv6: {
        if (avail < 4)
            return DropReason::TruncatedL4;
        // A reply carries its request's type as source "port" so that a
        // request and its reply make one bidirectional flow.
        const uint8_t type = t[0];
        const uint8_t code = t[1];
        int request = -1;
        if (c.proto == ipp::kIcmp) {
            switch (type) {
            case 0: request = 8; break;
            case 14: request = 13; break;
            case 16: request = 15; break;
            case 18: request = 17; break;
            default: break;
            }
        } else if (type == 129) {
            request = 128;
        }
        if (request >= 0) {
            c.sport = static_cast<uint16_t>(request << 8 | code);
            c.dport = 0;
        } else {
            c.sport = 0;
            c.dport = static_cast<uint16_t>(type << 8 | code);
        }
        pay = l4 + 8;
        break;
    }
    default: break;
    }

    if (pay <= end) {
        c.payload_off = pay;
        c.payload_len = end - pay;
    } else {
        c.payload_off = 0;  // header options cut by the snap length
        c.payload_len = 0;
    }

    if (fr.fragmented) [[unlikely]] {
        first_fragment(w, fr);
        return DropReason::None;
    }
    if (!cfg.decap_tunnels)
        return DropReason::None;
    switch (c.proto) {
    case ipp::kUdp:
        if (c.dport != kVxlanPort && c.dport != kGtpuPort)
            return DropReason::None;
        [[fallthrough]];
    case ipp::kIpip:
    case ipp::kIpv6:
    case ipp::kGre: return tunnel(w, l4, end, full_end);
    default: return DropReason::None;
    }
}

namespace {

detail::FragTag frag_tag(const Walk& w, const Frag& fr) noexcept
{
    detail::FragTag tag;
    std::memcpy(tag.src.data(), w.cur.src, 16);
    std::memcpy(tag.dst.data(), w.cur.dst, 16);
    tag.id = fr.id;
    tag.tunnel_id = w.cur.tunnel_id;
    tag.vlan = w.vlan;
    tag.key_proto = fr.key_proto;
    tag.version = w.cur.version;
    return tag;
}

} // namespace

void Decoder::Impl::first_fragment(const Walk& w, const Frag& fr) noexcept
{
    frags.insert(frag_tag(w, fr), detail::FragPorts{w.cur.sport, w.cur.dport, w.cur.proto});
}

// A fragment without an L4 header: the ports of its first fragment, or none
// (counted, but the packet is still accounted, to the port-less flow).
void Decoder::Impl::later_fragment(Walk& w, const Frag& fr, uint32_t l4, uint32_t end) noexcept
{
    Layer& c = w.cur;
    if (const detail::FragPorts* fp = frags.find(frag_tag(w, fr))) {
        c.sport = fp->sport;
        c.dport = fp->dport;
        c.proto = fp->l4_proto;
    } else {
        stats.drops.inc(DropReason::FragNoFirst);
    }
    c.payload_off = l4;
    c.payload_len = end - l4;
}

DropReason Decoder::Impl::tunnel(Walk& w, uint32_t l4, uint32_t end, uint32_t full_end) noexcept
{
    Layer& c = w.cur;
    const uint8_t* p = w.p;
    switch (c.proto) {
    case ipp::kIpip:
    case ipp::kIpv6: {
        const uint8_t inner = c.proto;
        if (DropReason r = begin_decap(w, TunnelType::IpInIp, 0); r != DropReason::None)
            return r;
        w.off = l4;
        w.cap = end;  // the inner datagram ends where the outer one does
        w.step = inner == ipp::kIpip ? Step::Ipv4 : Step::Ipv6;
        return DropReason::None;
    }
    case ipp::kGre: {
        if (l4 + 4 > end)
            return tunnel_short(l4, 4, full_end);
        const uint16_t flags = ld16(p + l4);
        const uint16_t version = flags & 7;
        if (version == 1)
            return DropReason::None;  // PPTP's enhanced GRE: the GRE flow itself
        // Version 0 with routing, strict source route or recursion bits is
        // the obsolete RFC 1701 form, not decoded.
        if (version != 0 || (flags & 0x4ff8))
            return DropReason::BadTunnel;
        const bool has_csum = flags & 0x8000;
        const bool has_key = flags & 0x2000;
        const bool has_seq = flags & 0x1000;
        const uint32_t hl = 4 + (has_csum ? 4 : 0) + (has_key ? 4 : 0) + (has_seq ? 4 : 0);
        if (l4 + hl > end)
            return tunnel_short(l4, hl, full_end);
        const uint32_t key = has_key ? ld32(p + l4 + 4 + (has_csum ? 4 : 0)) : 0;
        const uint16_t proto = ld16(p + l4 + 2);
        if (DropReason r = begin_decap(w, TunnelType::Gre, key); r != DropReason::None)
            return r;
        uint32_t off = l4 + hl;
        w.cap = end;
        if (proto == et::kErspan2) {
            // Type II has an 8-byte header and always the sequence number;
            // type I has neither.
            if (has_seq) {
                if (off + 8 > end)
                    return tunnel_short(off, 8, full_end);
                if ((p[off] >> 4) != 1)
                    return DropReason::BadTunnel;
                off += 8;
            }
            w.off = off;
            w.step = Step::Ether;
            return DropReason::None;
        }
        if (proto == et::kErspan3) {
            if (off + 12 > end)
                return tunnel_short(off, 12, full_end);
            if ((p[off] >> 4) != 2)
                return DropReason::BadTunnel;
            const uint32_t w2 = ld32(p + off + 8);
            const uint32_t frame_type = (w2 >> 10) & 0x1f;
            off += 12 + ((w2 & 1) ? 8 : 0);  // O bit: platform-specific subheader
            if (off > end)
                return tunnel_short(off - 8, 8, full_end);
            if (frame_type != 0)
                return DropReason::NonIp;  // not Ethernet: keep the GRE flow
            w.off = off;
            w.step = Step::Ether;
            return DropReason::None;
        }
        w.off = off;
        w.ethertype = proto;
        w.step = Step::EtherType;
        return DropReason::None;
    }
    case ipp::kUdp: {
        if (c.dport == kVxlanPort) {
            const uint32_t v = l4 + 8;
            if (v + 8 > end)
                return tunnel_short(v, 8, full_end);
            if (!(p[v] & 0x08))  // I flag: VNI valid
                return DropReason::BadTunnel;
            if (DropReason r = begin_decap(w, TunnelType::Vxlan, ld32(p + v + 4) >> 8); r != DropReason::None)
                return r;
            w.off = v + 8;
            w.cap = end;
            w.step = Step::Ether;
            return DropReason::None;
        }
        if (c.dport == kGtpuPort) {
            const uint32_t g = l4 + 8;
            if (g + 8 > end)
                return tunnel_short(g, 8, full_end);
            const uint8_t flags = p[g];
            if ((flags >> 5) != 1 || !(flags & 0x10))  // version 1, PT=1 (not GTP')
                return DropReason::BadTunnel;
            const uint8_t msg = p[g + 1];
            uint32_t hl = 8;
            if (flags & 0x07) {  // E, S or PN: sequence, N-PDU and next-extension fields
                if (g + 12 > end)
                    return tunnel_short(g, 12, full_end);
                hl = 12;
                uint8_t next = p[g + 11];
                if (flags & 0x04) {
                    for (uint32_t n = 0; next != 0; ++n) {
                        if (n == kMaxGtpExt)
                            return DropReason::BadTunnel;
                        if (g + hl + 1 > end)
                            return tunnel_short(g + hl, 1, full_end);
                        const uint32_t len = p[g + hl] * 4u;
                        if (len == 0)
                            return DropReason::BadTunnel;
                        if (g + hl + len > end)
                            return tunnel_short(g + hl, len, full_end);
                        next = p[g + hl + len - 1];
                        hl += len;
                    }
                }
            }
            if (msg != 0xff)
                return DropReason::None;  // signalling (echo, error, end marker): the UDP flow
            // Each direction of a GTP-U bearer has its own TEID, so the TEID
            // cannot be part of a bidirectional key: the key keeps the tunnel
            // type only, and both directions meet in one flow.
            if (DropReason r = begin_decap(w, TunnelType::GtpU, 0); r != DropReason::None)
                return r;
            w.off = g + hl;
            w.cap = end;
            w.step = Step::IpGuess;
            return DropReason::None;
        }
        return DropReason::None;
    }
    default: return DropReason::None;
    }
}

DropReason Decoder::Impl::walk(Walk& w, uint32_t lt) noexcept
{
    if (lt == linktype::kEthernet) {
        w.step = Step::Ether;  // the common case, without the call
    } else if (DropReason r = link_layer(w, lt, true); r != DropReason::None) {
        return r;
    }
    for (;;) {
        switch (w.step) {
        case Step::Ether: {
            if (w.cap - w.off < 14)
                return DropReason::TruncatedL2;
            if (!w.eth && w.encaps == 0)
                w.eth = w.p + w.off;
            w.ethertype = ld16(w.p + w.off + 12);
            w.off += 14;
            w.step = Step::EtherType;
            break;
        }
        case Step::EtherType:
            if (DropReason r = ethertype(w); r != DropReason::None)
                return r;
            break;
        case Step::IpGuess:
            if (w.cap - w.off < 1)
                return DropReason::TruncatedIp;
            switch (w.p[w.off] >> 4) {
            case 4: w.step = Step::Ipv4; break;
            case 6: w.step = Step::Ipv6; break;
            // Inside a tunnel (GTP-U) a non-IP PDU is not an error.
            default: return w.have_outer ? DropReason::NonIp : DropReason::BadIpHeader;
            }
            break;
        case Step::Ipv4:
            if (DropReason r = ipv4(w); r != DropReason::None)
                return r;
            break;
        case Step::Ipv6:
            if (DropReason r = ipv6(w); r != DropReason::None)
                return r;
            break;
        case Step::Done: return DropReason::None;
        }
    }
}

namespace {

// write_key() writes FlowKey as words in this layout.
static_assert(std::endian::native == std::endian::little);
static_assert(offsetof(FlowKey, addr_b) == 16 && offsetof(FlowKey, port_a) == 32 &&
              offsetof(FlowKey, port_b) == 34 && offsetof(FlowKey, tunnel_id) == 36 &&
              offsetof(FlowKey, vlan) == 40 && offsetof(FlowKey, proto) == 42 &&
              offsetof(FlowKey, ip_version) == 43 && offsetof(FlowKey, tunnel_type) == 44 &&
              offsetof(FlowKey, pad_) == 45 && sizeof(FlowKey) == 48);

// Key word 5: VLAN, protocol, IP version and tunnel type (pad_ bytes zero).
inline uint64_t key_word5(uint16_t vlan, uint8_t proto, uint8_t version, TunnelType tt) noexcept
{
    return uint64_t{vlan} | uint64_t{proto} << 16 | uint64_t{version} << 24 |
           uint64_t{static_cast<uint8_t>(tt)} << 32;
}

// Writes the canonical key, src_is_a and the hash. Addresses are two words
// each holding the bytes in packet order; the source is side A when its
// (address, port) is the lower endpoint, addresses compared as big-endian
// byte strings. The key is assembled as the six 64-bit words flow_hash reads
// and stored whole: narrow field stores followed by the hash's wide loads
// would stall store forwarding.
[[gnu::always_inline]] inline void write_key(PacketMeta& out, uint64_t s0, uint64_t s1, uint64_t d0, uint64_t d1,
                                             uint16_t sport, uint16_t dport, uint32_t tunnel_id,
                                             uint64_t w5) noexcept
{
    bool src_is_a;
    if (s0 != d0)
        src_is_a = __builtin_bswap64(s0) < __builtin_bswap64(d0);
    else if (s1 != d1)
        src_is_a = __builtin_bswap64(s1) < __builtin_bswap64(d1);
    else
        src_is_a = sport <= dport;
    uint64_t kw[6];
    kw[0] = src_is_a ? s0 : d0;
    kw[1] = src_is_a ? s1 : d1;
    kw[2] = src_is_a ? d0 : s0;
    kw[3] = src_is_a ? d1 : s1;
    const uint64_t port_a = src_is_a ? sport : dport;
    const uint64_t port_b = src_is_a ? dport : sport;
    kw[4] = port_a | port_b << 16 | uint64_t{tunnel_id} << 32;
    kw[5] = w5;
    FlowKey k;
    std::memcpy(&k, kw, sizeof(kw));
    out.key = k;
    out.src_is_a = src_is_a;
    out.hash = flow_hash(k);
}

} // namespace

inline void Decoder::Impl::finish(const Walk& w, const RawPacket& pkt, PacketMeta& out) noexcept
{
    const Layer& c = w.cur;
    // Every field of `out` is written below, with no zero-fill first.
    write_key(out, c.src[0], c.src[1], c.dst[0], c.dst[1], c.sport, c.dport, c.tunnel_id,
              key_word5(w.vlan, c.proto, c.version, c.tunnel_type));
    out.ts_ns = pkt.ts_ns;
    out.wire_len = pkt.wire_len;
    out.ip_len = w.ip_len;
    if (c.payload_off <= 0xffff) {
        out.l4_payload_offset = static_cast<uint16_t>(c.payload_off);
        out.l4_payload_len = static_cast<uint16_t>(std::min<uint32_t>(c.payload_len, 0xffff));
    } else {
        out.l4_payload_offset = 0;
        out.l4_payload_len = 0;
    }
    if (w.eth) {
        std::memcpy(out.dst_mac.data(), w.eth, 6);
        std::memcpy(out.src_mac.data(), w.eth + 6, 6);
    } else {
        out.dst_mac = {};
        out.src_mac = {};
    }
    out.tcp_flags = c.tcp_flags;
    out.ttl = c.ttl;
    out.tos = c.tos;
    out.is_fragment = c.is_fragment;
    out.control = 0;
    out.dpi_copy = 0;
    out.pad_[0] = 0;
    out.l3_offset = static_cast<uint16_t>(std::min<uint32_t>(c.l3_off, 0xffff));

    ++stats.decoded;
    stats.fragments += c.is_fragment;
    stats.tunneled += c.tunnel_type != TunnelType::None;
}

namespace {

// What the fast path knows once the IP header is read.
struct FastIp {
    uint64_t s0, s1, d0, d1;  // addresses as in Layer
    uint32_t ip_len;
    uint32_t l4;
    uint32_t full_end;
    uint16_t vlan;
    uint8_t proto, ttl, tos, version;
};

// L4 and the PacketMeta of a fast-path frame; false when the frame needs the
// general walk. Inlined once per IP version so each copy is straight-line
// code with that version's constants.
[[gnu::always_inline]] inline bool fast_l4(const RawPacket& pkt, PacketMeta& out, const FastIp& ip) noexcept
{
    const uint8_t* p = pkt.data;
    // end >= l4: the IP header lies within both the capture and the datagram.
    const uint32_t end = std::min(ip.full_end, pkt.caplen);
    const uint8_t* t = p + ip.l4;
    uint32_t pay;
    uint8_t flags = 0;
    if (ip.proto == ipp::kTcp) {
        if (end - ip.l4 < 20)
            return false;
        flags = t[13];
        pay = ip.l4 + std::max(20u, (t[12] >> 4) * 4u);
    } else if (ip.proto == ipp::kUdp) {
        if (end - ip.l4 < 8 || ld16(t + 2) == kVxlanPort || ld16(t + 2) == kGtpuPort)
            return false;
        pay = ip.l4 + 8;
    } else {
        return false;
    }
    write_key(out, ip.s0, ip.s1, ip.d0, ip.d1, ld16(t), ld16(t + 2), 0,
              key_word5(ip.vlan, ip.proto, ip.version, TunnelType::None));
    out.ts_ns = pkt.ts_ns;
    out.wire_len = pkt.wire_len;
    out.ip_len = ip.ip_len;
    if (pay <= end && pay <= 0xffff) {
        out.l4_payload_offset = static_cast<uint16_t>(pay);
        out.l4_payload_len = static_cast<uint16_t>(std::min<uint32_t>(end - pay, 0xffff));
    } else {
        out.l4_payload_offset = 0;  // header options cut by the snap length
        out.l4_payload_len = 0;
    }
    std::memcpy(out.dst_mac.data(), p, 6);
    std::memcpy(out.src_mac.data(), p + 6, 6);
    out.tcp_flags = flags;
    out.ttl = ip.ttl;
    out.tos = ip.tos;
    out.is_fragment = 0;
    out.control = 0;
    out.dpi_copy = 0;
    out.pad_[0] = 0;
    out.l3_offset = static_cast<uint16_t>(ip.l4 - (ip.version == 4 ? 20 : 40));
    return true;
}

} // namespace

// The common frame on one straight line: Ethernet, at most one 802.1Q tag,
// IPv4 with a 20-byte header and no fragmentation or IPv6 with TCP or UDP
// right after its fixed header, and TCP or UDP off the tunnel ports, all of
// it within the capture. It makes exactly what walk() and finish() make of
// such a frame (tests compare both on every frame of the shared captures);
// anything else returns false before touching the statistics, and the
// general walk decodes the frame from the start.
inline bool Decoder::Impl::fast(const RawPacket& pkt, PacketMeta& out) noexcept
{
    const uint8_t* p = pkt.data;
    const uint32_t cap = pkt.caplen;
    // 54 bytes: the smallest frame that can hold Ethernet, IPv4 and TCP; an
    // IPv4/UDP frame always fills the minimum Ethernet frame anyway.
    if (pkt.linktype != linktype::kEthernet || cap < 54 || cap > pkt.wire_len || p == nullptr || !cfg.fast_path)
        return false;
    FastIp ip;
    uint32_t off = 14;
    uint16_t type = ld16(p + 12);
    ip.vlan = 0;
    if (type == et::kVlan) {
        ip.vlan = ld16(p + 14) & 0x0fff;
        type = ld16(p + 16);
        off = 18;
    }
    const uint8_t* h = p + off;
    bool ok;
    if (type == et::kIpv4) {
        // cap >= off + 20 holds: off <= 18 and cap >= 54.
        const uint32_t total = ld16(h + 2);
        if (h[0] != 0x45 || total < 20 || (ld16(h + 6) & 0x3fff))
            return false;
        uint32_t a;
        std::memcpy(&a, h + 12, 4);
        ip.s0 = a;
        std::memcpy(&a, h + 16, 4);
        ip.d0 = a;
        ip.s1 = ip.d1 = 0;
        ip.proto = h[9];
        ip.ttl = h[8];
        ip.tos = h[1];
        ip.version = 4;
        ip.ip_len = total;
        ip.l4 = off + 20;
        ip.full_end = off + total;
        ok = fast_l4(pkt, out, ip);
    } else if (type == et::kIpv6) {
        if (cap < off + 40)
            return false;
        const uint32_t plen = ld16(h + 4);
        if ((h[0] >> 4) != 6 || plen == 0)
            return false;
        std::memcpy(&ip.s0, h + 8, 8);
        std::memcpy(&ip.s1, h + 16, 8);
        std::memcpy(&ip.d0, h + 24, 8);
        std::memcpy(&ip.d1, h + 32, 8);
        ip.proto = h[6];
        ip.ttl = h[7];
        ip.tos = static_cast<uint8_t>(ld16(h) >> 4);
        ip.version = 6;
        ip.ip_len = plen + 40;
        ip.l4 = off + 40;
        ip.full_end = ip.l4 + plen;
        ok = fast_l4(pkt, out, ip);
    } else {
        return false;
    }
    if (!ok)
        return false;
    ++stats.packets;
    ++stats.decoded;
    return true;
}

Decoder::Decoder(DecoderConfig cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

bool Decoder::linktype_supported(uint32_t lt) noexcept
{
    switch (lt) {
    case linktype::kNull:
    case linktype::kEthernet:
    case linktype::kPpp:
    case kDltRawLinux:
    case kDltRawOpenBsd:
    case linktype::kPppHdlc:
    case linktype::kRaw:
    case linktype::kCiscoHdlc:
    case linktype::kLoop:
    case linktype::kLinuxSll:
    case linktype::kPpi:
    case linktype::kIpv4:
    case linktype::kIpv6:
    case linktype::kLinuxSll2: return true;
    default: return false;
    }
}

bool Decoder::Impl::decode_general(const RawPacket& pkt, PacketMeta& out) noexcept
{
    ++stats.packets;
    if (pkt.caplen > pkt.wire_len) {
        stats.drops.inc(DropReason::CaplenGtLen);
        return false;
    }
    Walk w(pkt.data, pkt.data ? pkt.caplen : 0);
    DropReason r = walk(w, pkt.linktype);
    if (r != DropReason::None) {
        // A tunnel whose payload is not IP: account the packet to the flow
        // that carried the tunnel.
        if (r != DropReason::NonIp || !w.have_outer) {
            stats.drops.inc(r);
            return false;
        }
        w.cur = w.outer;
    }
    finish(w, pkt, out);
    return true;
}

bool Decoder::decode(const RawPacket& pkt, PacketMeta& out) noexcept
{
    Impl& d = *impl_;
    if (d.fast(pkt, out))
        return true;
    return d.decode_general(pkt, out);
}

const DecoderStats& Decoder::stats() const noexcept
{
    return impl_->stats;
}

} // namespace weir::engine
