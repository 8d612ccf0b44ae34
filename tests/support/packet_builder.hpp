// PacketBuilder: a fluent builder of test frames, outermost layer first.
//
//   using namespace weir::test;
//   Bytes f = PacketBuilder()
//                 .eth(mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"))
//                 .vlan(10)
//                 .ipv4("10.0.0.1", "10.0.0.2").ttl(64)
//                 .tcp(1234, 80, kTcpSyn)
//                 .payload("hello")
//                 .build();
//   RawPacket pkt = raw(f);                 // Ethernet, ts 0
//
// Every layer's "next protocol" field (ethertype, IP protocol, PPP protocol,
// address family, GRE protocol) is filled from the layer that follows it, and
// lengths are computed at build(): IPv4 total length and header checksum,
// IPv6 payload length, UDP length, PPPoE length, GTP-U length, and the
// TCP/UDP/ICMP/ICMPv6/GRE checksums (not for fragments, whose L4 checksum
// covers bytes the fragment does not hold; SCTP's CRC32c is left 0).
//
// Modifiers (ttl, tos, ip_id, frag, ipv4_options, ipv6_ext, ipv6_frag,
// ip_proto, ip_total_length) apply to the most recent IP layer, so nested
// tunnels read naturally:
//   .ipv4(outer...).gre(42).ipv6(inner...).hop_limit(9).udp(1, 2)
//
// The first layer decides the pcap link type (linktype()): eth -> Ethernet,
// sll/sll2/null/loop/ppp/ppp_hdlc/ppi/cisco_hdlc -> theirs, an IP layer first
// -> raw IP (101). Misuse (a modifier with no IP layer, a bad address
// string) throws std::invalid_argument: it is a bug in the test.
#pragma once

#include <weir/core/packet.hpp>

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Addr = std::array<uint8_t, 16>;

/// pcap LINKTYPE_* values the builder can produce.
namespace lt {
inline constexpr uint32_t kNull = 0;
inline constexpr uint32_t kEthernet = 1;
inline constexpr uint32_t kPpp = 9;
inline constexpr uint32_t kPppHdlc = 50;
inline constexpr uint32_t kRaw = 101;
inline constexpr uint32_t kCiscoHdlc = 104;
inline constexpr uint32_t kLoop = 108;
inline constexpr uint32_t kLinuxSll = 113;
inline constexpr uint32_t kPpi = 192;
inline constexpr uint32_t kIpv4 = 228;
inline constexpr uint32_t kIpv6 = 229;
inline constexpr uint32_t kLinuxSll2 = 276;
} // namespace lt

/// "02:00:00:00:00:01" -> bytes.
inline Mac mac(std::string_view s)
{
    Mac m{};
    unsigned v[6];
    const std::string str(s);
    if (std::sscanf(str.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        throw std::invalid_argument("bad MAC: " + str);
    for (int i = 0; i < 6; ++i)
        m[i] = static_cast<uint8_t>(v[i]);
    return m;
}

/// An address in FlowKey form: IPv4 in the first 4 bytes (rest zero), IPv6 in all 16.
inline Addr addr(std::string_view s)
{
    Addr a{};
    const std::string str(s);
    const bool v6 = str.find(':') != std::string::npos;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, str.c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IP address: " + str);
    return a;
}

inline constexpr Mac kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
inline constexpr Mac kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};

/// RawPacket viewing `frame` (which must outlive it); caplen = wire_len = size.
inline RawPacket raw(const Bytes& frame, uint32_t linktype = lt::kEthernet, uint64_t ts_ns = 0)
{
    RawPacket p;
    p.data = frame.data();
    p.caplen = static_cast<uint32_t>(frame.size());
    p.wire_len = p.caplen;
    p.ts_ns = ts_ns;
    p.linktype = linktype;
    return p;
}

class PacketBuilder {
public:
    // ---- link layers ---------------------------------------------------------

    /// Ethernet II. ethertype 0 = from the next layer (IP, VLAN, MPLS, PPPoE;
    /// 0x88b5 "local experimental" when only a payload follows).
    PacketBuilder& eth(Mac src = kMacA, Mac dst = kMacB, uint16_t ethertype = 0)
    {
        Layer& l = push(Kind::Eth);
        l.mac_src = src;
        l.mac_dst = dst;
        l.u16 = ethertype;
        return *this;
    }
    /// Linux cooked capture v1 (16 bytes). protocol 0 = from the next layer.
    PacketBuilder& sll(uint16_t pkttype = 0, Mac addr = kMacA, uint16_t protocol = 0)
    {
        Layer& l = push(Kind::Sll);
        l.u32 = pkttype;
        l.mac_src = addr;
        l.u16 = protocol;
        return *this;
    }
    /// Linux cooked capture v2 (20 bytes). protocol 0 = from the next layer.
    PacketBuilder& sll2(uint32_t ifindex = 1, uint16_t protocol = 0)
    {
        Layer& l = push(Kind::Sll2);
        l.u32 = ifindex;
        l.u16 = protocol;
        return *this;
    }
    /// BSD loopback: 4-byte address family in the capturing host's order.
    /// af 0 = 2 for IPv4, 30 (Darwin AF_INET6) for IPv6.
    PacketBuilder& null(uint32_t af = 0, bool big_endian_host = false)
    {
        Layer& l = push(Kind::Null);
        l.u32 = af;
        l.flag = big_endian_host;
        return *this;
    }
    /// OpenBSD loopback: address family in network order. af 0 = 2 / 24.
    PacketBuilder& loop(uint32_t af = 0)
    {
        push(Kind::Loop).u32 = af;
        return *this;
    }
    /// PPP (LINKTYPE_PPP); with_address_control adds the 0xff 0x03 prefix.
    PacketBuilder& ppp(bool with_address_control = false, uint16_t protocol = 0)
    {
        Layer& l = push(Kind::Ppp);
        l.flag = with_address_control;
        l.u16 = protocol;
        return *this;
    }
    /// PPP in HDLC-like framing (LINKTYPE_PPP_HDLC): 0xff 0x03 + protocol.
    PacketBuilder& ppp_hdlc(uint16_t protocol = 0)
    {
        push(Kind::PppHdlc).u16 = protocol;
        return *this;
    }
    /// PPI header (8 bytes, no fields) naming the DLT of what follows.
    PacketBuilder& ppi(uint32_t dlt = lt::kEthernet)
    {
        push(Kind::Ppi).u32 = dlt;
        return *this;
    }
    /// Cisco HDLC: address (0x0f unicast, 0x8f broadcast), control 0, ethertype.
    PacketBuilder& cisco_hdlc(uint8_t address = 0x0f, uint16_t ethertype = 0)
    {
        Layer& l = push(Kind::CiscoHdlc);
        l.u32 = address;
        l.u16 = ethertype;
        return *this;
    }

    // ---- between link and IP -------------------------------------------------

    /// One VLAN tag (12-bit id); tpid 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0x9100.
    PacketBuilder& vlan(uint16_t id, uint16_t tpid = 0x8100, uint8_t pcp = 0)
    {
        Layer& l = push(Kind::Vlan);
        l.u16 = id;
        l.u32 = tpid;
        l.u8 = pcp;
        return *this;
    }
    /// An MPLS label stack (bottom-of-stack set on the last label).
    PacketBuilder& mpls(std::initializer_list<uint32_t> labels, uint8_t ttl = 64)
    {
        Layer& l = push(Kind::Mpls);
        l.labels.assign(labels.begin(), labels.end());
        l.u8 = ttl;
        return *this;
    }
    /// The 4-byte pseudowire control word before an Ethernet-over-MPLS frame.
    PacketBuilder& mpls_pw_control_word()
    {
        push(Kind::PwControlWord);
        return *this;
    }
    /// PPPoE session header plus the PPP protocol (0 = from the next layer).
    PacketBuilder& pppoe(uint16_t session = 1, uint16_t ppp_protocol = 0)
    {
        Layer& l = push(Kind::Pppoe);
        l.u32 = session;
        l.u16 = ppp_protocol;
        return *this;
    }

    // ---- IP --------------------------------------------------------------------

    /// IPv4 header (ttl 64, id 1, DF clear); modifiers below change it.
    PacketBuilder& ipv4(std::string_view src, std::string_view dst)
    {
        Layer& l = push(Kind::Ipv4);
        l.src = addr(src);
        l.dst = addr(dst);
        l.u8 = 64;
        l.u32 = 1;
        return *this;
    }
    /// IPv6 header (hop limit 64); extension headers via ipv6_ext/ipv6_frag.
    PacketBuilder& ipv6(std::string_view src, std::string_view dst)
    {
        Layer& l = push(Kind::Ipv6);
        l.src = addr(src);
        l.dst = addr(dst);
        l.u8 = 64;
        return *this;
    }
    PacketBuilder& ttl(uint8_t v) { last_ip().u8 = v; return *this; }
    PacketBuilder& hop_limit(uint8_t v) { return ttl(v); }
    PacketBuilder& tos(uint8_t v) { last_ip().tos = v; return *this; }
    PacketBuilder& traffic_class(uint8_t v) { return tos(v); }
    /// IPv4 identification (16 bits used).
    PacketBuilder& ip_id(uint16_t id) { last_ip(Kind::Ipv4).u32 = id; return *this; }
    /// IPv4 fragment: offset in bytes (multiple of 8) and the MF flag.
    PacketBuilder& frag(uint32_t offset_bytes, bool more_fragments)
    {
        Layer& l = last_ip(Kind::Ipv4);
        l.frag_off = offset_bytes;
        l.more = more_fragments;
        return *this;
    }
    PacketBuilder& dont_fragment() { last_ip(Kind::Ipv4).flag = true; return *this; }
    /// IPv4 options, zero-padded (EOL) to a multiple of 4 bytes.
    PacketBuilder& ipv4_options(Bytes opts) { last_ip(Kind::Ipv4).opts = std::move(opts); return *this; }
    /// Overrides the IP protocol / last next-header value (default: from the next layer;
    /// 253 for IPv4 and 59 "no next header" for IPv6 when nothing follows).
    PacketBuilder& ip_proto(uint8_t p) { last_ip().proto = p; return *this; }
    /// Overrides IPv4 total length / IPv6 payload length (malformed-packet tests).
    PacketBuilder& ip_total_length(uint16_t len) { last_ip().len_override = len; return *this; }
    /// An IPv6 extension header. Hop-by-hop (0), routing (43), destination
    /// options (60), mobility (135): body = bytes after next-header/length,
    /// zero-padded to 8n+6. AH (51): body = ICV, SPI and sequence are 0.
    PacketBuilder& ipv6_ext(uint8_t type, Bytes body = {})
    {
        last_ip(Kind::Ipv6).exts.push_back(Ext{type, std::move(body), 0, false, 0});
        return *this;
    }
    /// An IPv6 fragment header: offset in bytes (multiple of 8), M flag, identification.
    PacketBuilder& ipv6_frag(uint32_t offset_bytes, bool more_fragments, uint32_t id)
    {
        last_ip(Kind::Ipv6).exts.push_back(Ext{44, {}, offset_bytes, more_fragments, id});
        return *this;
    }

    // ---- L4 ------------------------------------------------------------------

    PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags = kTcpAck, Bytes options = {},
                       uint32_t seq = 1, uint32_t ack = 0)
    {
        Layer& l = push(Kind::Tcp);
        l.sport = sport;
        l.dport = dport;
        l.u8 = flags;
        l.opts = std::move(options);
        l.u32 = seq;
        l.ack = ack;
        return *this;
    }
    PacketBuilder& udp(uint16_t sport, uint16_t dport)
    {
        Layer& l = push(Kind::Udp);
        l.sport = sport;
        l.dport = dport;
        return *this;
    }
    PacketBuilder& sctp(uint16_t sport, uint16_t dport, uint32_t vtag = 1)
    {
        Layer& l = push(Kind::Sctp);
        l.sport = sport;
        l.dport = dport;
        l.u32 = vtag;
        return *this;
    }
    /// ICMP header (8 bytes: type, code, checksum, id, sequence).
    PacketBuilder& icmp(uint8_t type, uint8_t code = 0, uint16_t id = 0, uint16_t seq = 0)
    {
        Layer& l = push(Kind::Icmp);
        l.u8 = type;
        l.tos = code;
        l.sport = id;
        l.dport = seq;
        return *this;
    }
    /// ICMPv6 header (8 bytes as for echo: type, code, checksum, id, sequence).
    PacketBuilder& icmpv6(uint8_t type, uint8_t code = 0, uint16_t id = 0, uint16_t seq = 0)
    {
        icmp(type, code, id, seq);
        layers_.back().kind = Kind::Icmpv6;
        return *this;
    }

    // ---- tunnels -------------------------------------------------------------

    /// GRE (version 0). key -> K flag; protocol 0 = from the next layer
    /// (0x0800, 0x86dd, 0x6558 for Ethernet, 0x8847 for MPLS).
    PacketBuilder& gre(std::optional<uint32_t> key = std::nullopt, uint16_t protocol = 0,
                       bool checksum = false, std::optional<uint32_t> seq = std::nullopt)
    {
        Layer& l = push(Kind::Gre);
        l.key = key;
        l.u16 = protocol;
        l.flag = checksum;
        l.seq = seq;
        return *this;
    }
    /// VXLAN header (I flag, 24-bit VNI); put it after .udp(x, 4789) and before .eth().
    PacketBuilder& vxlan(uint32_t vni)
    {
        push(Kind::Vxlan).u32 = vni;
        return *this;
    }
    /// GTP-U v1 header after .udp(x, 2152); msg_type 0xff (G-PDU) carries an IP packet.
    PacketBuilder& gtpu(uint32_t teid, uint8_t msg_type = 0xff, std::optional<uint16_t> seq = std::nullopt)
    {
        Layer& l = push(Kind::Gtpu);
        l.u32 = teid;
        l.u8 = msg_type;
        l.seq = seq;
        return *this;
    }
    /// A GTP-U extension header on the last gtpu(): content zero-padded to 4n-2 bytes.
    PacketBuilder& gtpu_ext(uint8_t type, Bytes content = {})
    {
        for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
            if (it->kind == Kind::Gtpu) {
                it->exts.push_back(Ext{type, std::move(content), 0, false, 0});
                return *this;
            }
        }
        throw std::invalid_argument("gtpu_ext without gtpu");
    }

    // ---- bytes ---------------------------------------------------------------

    PacketBuilder& payload(std::string_view s)
    {
        push(Kind::Payload).opts.assign(s.begin(), s.end());
        return *this;
    }
    PacketBuilder& payload(Bytes b)
    {
        push(Kind::Payload).opts = std::move(b);
        return *this;
    }
    /// Bytes after the whole frame that no length field counts (Ethernet padding, FCS).
    PacketBuilder& trailer(Bytes b)
    {
        trailer_ = std::move(b);
        return *this;
    }

    // ---- results -------------------------------------------------------------

    /// The pcap link type implied by the first layer.
    [[nodiscard]] uint32_t linktype() const
    {
        if (layers_.empty())
            return lt::kEthernet;
        switch (layers_.front().kind) {
        case Kind::Sll: return lt::kLinuxSll;
        case Kind::Sll2: return lt::kLinuxSll2;
        case Kind::Null: return lt::kNull;
        case Kind::Loop: return lt::kLoop;
        case Kind::Ppp: return lt::kPpp;
        case Kind::PppHdlc: return lt::kPppHdlc;
        case Kind::Ppi: return lt::kPpi;
        case Kind::CiscoHdlc: return lt::kCiscoHdlc;
        case Kind::Ipv4:
        case Kind::Ipv6: return lt::kRaw;
        default: return lt::kEthernet;
        }
    }

    /// The frame bytes.
    [[nodiscard]] Bytes build() const
    {
        Bytes inner;
        for (size_t i = layers_.size(); i-- > 0;) {
            const Layer* next = i + 1 < layers_.size() ? &layers_[i + 1] : nullptr;
            Bytes hdr = serialize(layers_[i], next, inner);
            hdr.insert(hdr.end(), inner.begin(), inner.end());
            inner = std::move(hdr);
        }
        inner.insert(inner.end(), trailer_.begin(), trailer_.end());
        return inner;
    }

private:
    enum class Kind : uint8_t {
        Eth, Sll, Sll2, Null, Loop, Ppp, PppHdlc, Ppi, CiscoHdlc,
        Vlan, Mpls, PwControlWord, Pppoe,
        Ipv4, Ipv6,
        Tcp, Udp, Sctp, Icmp, Icmpv6,
        Gre, Vxlan, Gtpu,
        Payload,
    };
    struct Ext {
        uint8_t type;
        Bytes body;
        uint32_t frag_off;
        bool more;
        uint32_t id;
    };
    // One generic record per layer; each kind documents which fields it uses above.
    struct Layer {
        Kind kind;
        Mac mac_src{};
        Mac mac_dst{};
        Addr src{};
        Addr dst{};
        uint32_t u32 = 0;
        uint16_t u16 = 0;
        uint8_t u8 = 0;
        uint8_t tos = 0;
        bool flag = false;
        uint16_t sport = 0;
        uint16_t dport = 0;
        uint32_t ack = 0;
        uint32_t frag_off = 0;
        bool more = false;
        std::optional<int> proto;
        std::optional<uint16_t> len_override;
        std::optional<uint32_t> key;
        std::optional<uint32_t> seq;
        Bytes opts;
        std::vector<uint32_t> labels;
        std::vector<Ext> exts;
    };

    Layer& push(Kind k)
    {
        layers_.push_back(Layer{k});
        return layers_.back();
    }
    Layer& last_ip(std::optional<Kind> want = std::nullopt)
    {
        for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
            if (it->kind == Kind::Ipv4 || it->kind == Kind::Ipv6) {
                if (want && it->kind != *want)
                    throw std::invalid_argument("IP modifier applied to the wrong IP version");
                return *it;
            }
        }
        throw std::invalid_argument("IP modifier without an IP layer");
    }

    static void put16(Bytes& b, uint32_t v)
    {
        b.push_back(static_cast<uint8_t>(v >> 8));
        b.push_back(static_cast<uint8_t>(v));
    }
    static void put32(Bytes& b, uint32_t v)
    {
        put16(b, v >> 16);
        put16(b, v & 0xffff);
    }
    static void set16(Bytes& b, size_t at, uint32_t v)
    {
        b[at] = static_cast<uint8_t>(v >> 8);
        b[at + 1] = static_cast<uint8_t>(v);
    }
    static uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0)
    {
        for (size_t i = 0; i + 1 < n; i += 2)
            acc += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
        if (n & 1)
            acc += static_cast<uint32_t>(p[n - 1] << 8);
        return acc;
    }
    static uint16_t fold(uint32_t acc)
    {
        while (acc >> 16)
            acc = (acc & 0xffff) + (acc >> 16);
        return static_cast<uint16_t>(~acc);
    }

    static uint16_t ethertype_of(const Layer* next, uint16_t dflt = 0x88b5)
    {
        if (!next)
            return dflt;
        switch (next->kind) {
        case Kind::Vlan: return static_cast<uint16_t>(next->u32);
        case Kind::Mpls: return 0x8847;
        case Kind::Pppoe: return 0x8864;
        case Kind::Ipv4: return 0x0800;
        case Kind::Ipv6: return 0x86dd;
        case Kind::Eth: return 0x6558;
        default: return dflt;
        }
    }
    static uint16_t ppp_proto_of(const Layer* next)
    {
        if (next && next->kind == Kind::Ipv4)
            return 0x0021;
        if (next && next->kind == Kind::Ipv6)
            return 0x0057;
        if (next && next->kind == Kind::Mpls)
            return 0x0281;
        return 0xc021;  // LCP: anything else is not IP
    }
    static uint8_t ip_proto_of(const Layer& ip, const Layer* next)
    {
        if (ip.proto)
            return static_cast<uint8_t>(*ip.proto);
        if (!next)
            return ip.kind == Kind::Ipv4 ? 253 : 59;
        switch (next->kind) {
        case Kind::Tcp: return 6;
        case Kind::Udp: return 17;
        case Kind::Sctp: return 132;
        case Kind::Icmp: return 1;
        case Kind::Icmpv6: return 58;
        case Kind::Gre: return 47;
        case Kind::Ipv4: return 4;
        case Kind::Ipv6: return 41;
        default: return ip.kind == Kind::Ipv4 ? 253 : 59;
        }
    }
    static uint32_t af_of(const Layer* next, uint32_t v6)
    {
        return next && next->kind == Kind::Ipv6 ? v6 : 2;
    }

    // Header bytes of layer l, given the already-built bytes that follow it
    // (inner may be patched with an L4 checksum).
    static Bytes serialize(const Layer& l, const Layer* next, Bytes& inner)
    {
        Bytes h;
        switch (l.kind) {
        case Kind::Eth:
            h.insert(h.end(), l.mac_dst.begin(), l.mac_dst.end());
            h.insert(h.end(), l.mac_src.begin(), l.mac_src.end());
            put16(h, l.u16 ? l.u16 : ethertype_of(next));
            break;
        case Kind::Sll:
            put16(h, l.u32);  // packet type
            put16(h, 1);      // ARPHRD_ETHER
            put16(h, 6);
            h.insert(h.end(), l.mac_src.begin(), l.mac_src.end());
            put16(h, 0);
            put16(h, l.u16 ? l.u16 : ethertype_of(next));
            break;
        case Kind::Sll2:
            put16(h, l.u16 ? l.u16 : ethertype_of(next));
            put16(h, 0);
            put32(h, l.u32);
            put16(h, 1);
            h.push_back(0);
            h.push_back(6);
            h.insert(h.end(), kMacA.begin(), kMacA.end());
            put16(h, 0);
            break;
        case Kind::Null: {
            const uint32_t af = l.u32 ? l.u32 : af_of(next, 30);
            if (l.flag) {
                put32(h, af);
            } else {
                for (int i = 0; i < 4; ++i)
                    h.push_back(static_cast<uint8_t>(af >> (8 * i)));
            }
            break;
        }
        case Kind::Loop: put32(h, l.u32 ? l.u32 : af_of(next, 24)); break;
        case Kind::Ppp:
            if (l.flag) {
                h.push_back(0xff);
                h.push_back(0x03);
            }
            put16(h, l.u16 ? l.u16 : ppp_proto_of(next));
            break;
        case Kind::PppHdlc:
            h.push_back(0xff);
            h.push_back(0x03);
            put16(h, l.u16 ? l.u16 : ppp_proto_of(next));
            break;
        case Kind::Ppi:
            h = {0, 0, 8, 0,
                 static_cast<uint8_t>(l.u32), static_cast<uint8_t>(l.u32 >> 8),
                 static_cast<uint8_t>(l.u32 >> 16), static_cast<uint8_t>(l.u32 >> 24)};
            break;
        case Kind::CiscoHdlc:
            h.push_back(static_cast<uint8_t>(l.u32));
            h.push_back(0);
            put16(h, l.u16 ? l.u16 : ethertype_of(next));
            break;
        case Kind::Vlan:
            put16(h, static_cast<uint32_t>(l.u8) << 13 | (l.u16 & 0x0fff));
            put16(h, ethertype_of(next));
            break;
        case Kind::Mpls:
            for (size_t i = 0; i < l.labels.size(); ++i) {
                const bool bos = i + 1 == l.labels.size();
                put32(h, (l.labels[i] & 0xfffff) << 12 | (bos ? 0x100u : 0u) | l.u8);
            }
            break;
        case Kind::PwControlWord: put32(h, 0); break;
        case Kind::Pppoe:
            h.push_back(0x11);
            h.push_back(0x00);
            put16(h, l.u32);
            put16(h, static_cast<uint32_t>(inner.size() + 2));
            put16(h, l.u16 ? l.u16 : ppp_proto_of(next));
            break;
        case Kind::Ipv4: {
            Bytes opts = l.opts;
            while (opts.size() % 4)
                opts.push_back(0);
            const uint32_t hl = 20 + static_cast<uint32_t>(opts.size());
            const uint8_t proto = ip_proto_of(l, next);
            const bool fragmented = l.more || l.frag_off;
            h.push_back(static_cast<uint8_t>(0x40 | hl / 4));
            h.push_back(l.tos);
            put16(h, l.len_override ? *l.len_override : hl + inner.size());
            put16(h, l.u32);
            put16(h, (l.flag ? 0x4000u : 0u) | (l.more ? 0x2000u : 0u) | (l.frag_off / 8 & 0x1fff));
            h.push_back(l.u8);
            h.push_back(proto);
            put16(h, 0);
            h.insert(h.end(), l.src.begin(), l.src.begin() + 4);
            h.insert(h.end(), l.dst.begin(), l.dst.begin() + 4);
            h.insert(h.end(), opts.begin(), opts.end());
            set16(h, 10, fold(sum16(h.data(), h.size())));
            if (!fragmented) {
                uint32_t ph = sum16(l.src.data(), 4) + sum16(l.dst.data(), 4) + proto +
                              static_cast<uint32_t>(inner.size());
                l4_checksum(proto, inner, ph);
            }
            break;
        }
        case Kind::Ipv6: {
            const uint8_t last = ip_proto_of(l, next);
            Bytes ext;
            bool fragmented = false;
            for (size_t i = 0; i < l.exts.size(); ++i) {
                const Ext& e = l.exts[i];
                const uint8_t nh = i + 1 < l.exts.size() ? l.exts[i + 1].type : last;
                if (e.type == 44) {
                    fragmented = fragmented || e.more || e.frag_off;
                    ext.push_back(nh);
                    ext.push_back(0);
                    put16(ext, (e.frag_off / 8) << 3 | (e.more ? 1u : 0u));
                    put32(ext, e.id);
                } else if (e.type == 51) {
                    Bytes icv = e.body;
                    while ((12 + icv.size()) % 8)
                        icv.push_back(0);
                    ext.push_back(nh);
                    ext.push_back(static_cast<uint8_t>((12 + icv.size()) / 4 - 2));
                    put16(ext, 0);
                    put32(ext, 0);  // SPI
                    put32(ext, 0);  // sequence
                    ext.insert(ext.end(), icv.begin(), icv.end());
                } else {
                    Bytes body = e.body;
                    while ((body.size() + 2) % 8)
                        body.push_back(0);  // Pad1 options
                    ext.push_back(nh);
                    ext.push_back(static_cast<uint8_t>((body.size() + 2) / 8 - 1));
                    ext.insert(ext.end(), body.begin(), body.end());
                }
            }
            const uint8_t first = l.exts.empty() ? last : l.exts.front().type;
            const uint32_t vtf = 6u << 28 | static_cast<uint32_t>(l.tos) << 20;
            put32(h, vtf);
            put16(h, l.len_override ? *l.len_override : ext.size() + inner.size());
            h.push_back(first);
            h.push_back(l.u8);
            h.insert(h.end(), l.src.begin(), l.src.end());
            h.insert(h.end(), l.dst.begin(), l.dst.end());
            h.insert(h.end(), ext.begin(), ext.end());
            if (!fragmented) {
                uint32_t ph = sum16(l.src.data(), 16) + sum16(l.dst.data(), 16) + last +
                              static_cast<uint32_t>(inner.size());
                l4_checksum(last, inner, ph);
            }
            break;
        }
        case Kind::Tcp: {
            Bytes opts = l.opts;
            while (opts.size() % 4)
                opts.push_back(1);  // NOP
            put16(h, l.sport);
            put16(h, l.dport);
            put32(h, l.u32);
            put32(h, l.ack);
            h.push_back(static_cast<uint8_t>((20 + opts.size()) / 4 << 4));
            h.push_back(l.u8);
            put16(h, 65535);
            put16(h, 0);
            put16(h, 0);
            h.insert(h.end(), opts.begin(), opts.end());
            break;
        }
        case Kind::Udp:
            put16(h, l.sport);
            put16(h, l.dport);
            put16(h, 8 + inner.size());
            put16(h, 0);
            break;
        case Kind::Sctp:
            put16(h, l.sport);
            put16(h, l.dport);
            put32(h, l.u32);
            put32(h, 0);
            break;
        case Kind::Icmp:
        case Kind::Icmpv6:
            h.push_back(l.u8);
            h.push_back(l.tos);
            put16(h, 0);
            put16(h, l.sport);
            put16(h, l.dport);
            if (l.kind == Kind::Icmp)
                set16(h, 2, fold(sum16(inner.data(), inner.size(), sum16(h.data(), h.size()))));
            break;
        case Kind::Gre: {
            const uint16_t proto = l.u16 ? l.u16 : ethertype_of(next);
            put16(h, (l.flag ? 0x8000u : 0u) | (l.key ? 0x2000u : 0u) | (l.seq ? 0x1000u : 0u));
            put16(h, proto);
            if (l.flag)
                put32(h, 0);
            if (l.key)
                put32(h, *l.key);
            if (l.seq)
                put32(h, *l.seq);
            if (l.flag)
                set16(h, 4, fold(sum16(inner.data(), inner.size(), sum16(h.data(), h.size()))));
            break;
        }
        case Kind::Vxlan:
            put32(h, 0x08000000);
            put32(h, (l.u32 & 0xffffff) << 8);
            break;
        case Kind::Gtpu: {
            Bytes opt;
            const bool has_opt = l.seq || !l.exts.empty();
            if (has_opt) {
                put16(opt, l.seq.value_or(0));
                opt.push_back(0);  // N-PDU number
                opt.push_back(l.exts.empty() ? 0 : l.exts.front().type);
                for (size_t i = 0; i < l.exts.size(); ++i) {
                    Bytes c = l.exts[i].body;
                    while ((c.size() + 2) % 4)
                        c.push_back(0);
                    opt.push_back(static_cast<uint8_t>((c.size() + 2) / 4));
                    opt.insert(opt.end(), c.begin(), c.end());
                    opt.push_back(i + 1 < l.exts.size() ? l.exts[i + 1].type : 0);
                }
            }
            h.push_back(static_cast<uint8_t>(0x30 | (l.exts.empty() ? 0 : 0x04) | (l.seq ? 0x02 : 0)));
            h.push_back(l.u8);
            put16(h, opt.size() + inner.size());
            put32(h, l.u32);
            h.insert(h.end(), opt.begin(), opt.end());
            break;
        }
        case Kind::Payload: h = l.opts; break;
        }
        return h;
    }

    // Fills the TCP/UDP/ICMPv6 checksum at the start of inner (pseudo-header sum in ph).
    static void l4_checksum(uint8_t proto, Bytes& inner, uint32_t ph)
    {
        size_t at;
        if (proto == 6 && inner.size() >= 20)
            at = 16;
        else if (proto == 17 && inner.size() >= 8)
            at = 6;
        else if (proto == 58 && inner.size() >= 4)
            at = 2;
        else
            return;
        set16(inner, at, 0);
        uint16_t c = fold(sum16(inner.data(), inner.size(), ph));
        if (proto == 17 && c == 0)
            c = 0xffff;
        set16(inner, at, c);
    }

    std::vector<Layer> layers_;
    Bytes trailer_;
};

} // namespace weir::test
