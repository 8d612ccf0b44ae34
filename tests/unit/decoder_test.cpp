// Decoder unit tests: every link type, L2.5 encapsulation, IP and L4 path,
// fragment handling, tunnel and drop reason, with frames from PacketBuilder.
#include <weir/engine/decoder.hpp>

#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <weir/dataplane/packet_source.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace weir::engine {
namespace {

using test::addr;
using test::Bytes;
using test::mac;
using test::PacketBuilder;
using test::raw;

const test::Mac kSrcMac = mac("02:11:22:33:44:55");
const test::Mac kDstMac = mac("02:66:77:88:99:aa");

uint64_t total_drops(const DecoderStats& s)
{
    uint64_t n = 0;
    for (uint64_t v : s.drops.n)
        n += v;
    return n;
}

// Decodes one frame and returns the single drop reason it was counted under
// (None when decoded). Fails the test if more than one counter moved.
DropReason decode_reason(Decoder& d, const RawPacket& pkt, PacketMeta* out = nullptr)
{
    const DropCounters before = d.stats().drops;
    PacketMeta m;
    const bool ok = d.decode(pkt, m);
    if (out)
        *out = m;
    DropReason got = DropReason::None;
    int moved = 0;
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        const auto r = static_cast<DropReason>(i);
        if (d.stats().drops.get(r) != before.get(r)) {
            ++moved;
            if (!ok || r != DropReason::FragNoFirst)
                got = r;
        }
    }
    EXPECT_LE(moved, 1);
    if (ok) {
        EXPECT_EQ(got, DropReason::None) << "decoded but counted " << drop_reason_name(got);
        return DropReason::None;
    }
    EXPECT_NE(got, DropReason::None) << "dropped without a reason";
    return got;
}

DropReason reason_of(const Bytes& f, uint32_t lt = test::lt::kEthernet, DecoderConfig cfg = {})
{
    Decoder d(cfg);
    return decode_reason(d, raw(f, lt));
}

PacketMeta decode_ok(Decoder& d, const Bytes& f, uint32_t lt = test::lt::kEthernet, uint64_t ts = 0)
{
    PacketMeta m;
    EXPECT_TRUE(d.decode(raw(f, lt, ts), m)) << "linktype " << lt;
    return m;
}

PacketMeta decode_ok(const Bytes& f, uint32_t lt = test::lt::kEthernet, DecoderConfig cfg = {})
{
    Decoder d(cfg);
    return decode_ok(d, f, lt);
}

PacketBuilder eth()
{
    return std::move(PacketBuilder().eth(kSrcMac, kDstMac));
}

// The key the plain 10.0.0.1:1234 -> 10.0.0.2:80 TCP packet must produce.
void expect_tcp_key(const PacketMeta& m)
{
    EXPECT_EQ(m.key.addr_a, addr("10.0.0.1"));
    EXPECT_EQ(m.key.addr_b, addr("10.0.0.2"));
    EXPECT_EQ(m.key.port_a, 1234);
    EXPECT_EQ(m.key.port_b, 80);
    EXPECT_EQ(m.key.proto, 6);
    EXPECT_EQ(m.key.ip_version, 4);
    EXPECT_EQ(m.src_is_a, 1);
}

// ---------------------------------------------------------------- basics ----

TEST(Decoder, EthernetIpv4TcpFillsEveryField)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").ttl(63).tos(0x28).tcp(1234, 80, kTcpSyn | kTcpAck)
                        .payload("hello").build();
    Decoder d;
    const PacketMeta m = decode_ok(d, f, test::lt::kEthernet, 123456789);
    expect_tcp_key(m);
    EXPECT_EQ(m.key.vlan, 0);
    EXPECT_EQ(m.key.tunnel_type, TunnelType::None);
    EXPECT_EQ(m.key.tunnel_id, 0u);
    EXPECT_EQ(m.key.pad_[0] | m.key.pad_[1] | m.key.pad_[2], 0);
    EXPECT_EQ(m.hash, flow_hash(m.key));
    EXPECT_EQ(m.ts_ns, 123456789u);
    EXPECT_EQ(m.wire_len, f.size());
    EXPECT_EQ(m.ip_len, 20u + 20 + 5);
    EXPECT_EQ(m.l4_payload_offset, 14 + 20 + 20);
    EXPECT_EQ(m.l4_payload_len, 5);
    EXPECT_EQ(m.src_mac, kSrcMac);
    EXPECT_EQ(m.dst_mac, kDstMac);
    EXPECT_EQ(m.tcp_flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(m.ttl, 63);
    EXPECT_EQ(m.tos, 0x28);
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(d.stats().packets, 1u);
    EXPECT_EQ(d.stats().decoded, 1u);
    EXPECT_EQ(total_drops(d.stats()), 0u);
}

TEST(Decoder, BothDirectionsGiveTheSameKeyAndHash)
{
    Decoder d;
    const PacketMeta fwd = decode_ok(d, eth().ipv4("10.0.0.9", "10.0.0.2").tcp(40000, 443).build());
    const PacketMeta rev = decode_ok(d, eth().ipv4("10.0.0.2", "10.0.0.9").tcp(443, 40000).build());
    EXPECT_EQ(fwd.key, rev.key);
    EXPECT_EQ(fwd.hash, rev.hash);
    EXPECT_EQ(fwd.src_is_a, 0);  // 10.0.0.9 > 10.0.0.2
    EXPECT_EQ(rev.src_is_a, 1);
    EXPECT_EQ(fwd.key.addr_a, addr("10.0.0.2"));
    EXPECT_EQ(fwd.key.port_a, 443);

    // Same address on both sides: the port decides.
    const PacketMeta lo1 = decode_ok(d, eth().ipv4("127.0.0.1", "127.0.0.1").udp(5000, 53).build());
    const PacketMeta lo2 = decode_ok(d, eth().ipv4("127.0.0.1", "127.0.0.1").udp(53, 5000).build());
    EXPECT_EQ(lo1.key, lo2.key);
    EXPECT_EQ(lo1.key.port_a, 53);
    EXPECT_EQ(lo1.src_is_a, 0);
    EXPECT_EQ(lo2.src_is_a, 1);

    const PacketMeta v6a = decode_ok(d, eth().ipv6("2001:db8::2", "2001:db8::1").udp(1, 2).build());
    const PacketMeta v6b = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").udp(2, 1).build());
    EXPECT_EQ(v6a.key, v6b.key);
    EXPECT_EQ(v6a.key.addr_a, addr("2001:db8::1"));
    EXPECT_NE(v6a.src_is_a, v6b.src_is_a);
}

TEST(Decoder, DifferentFlowsGetDifferentKeys)
{
    Decoder d;
    const PacketMeta a = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    const PacketMeta b = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").udp(1234, 80).build());
    const PacketMeta c = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1235, 80).build());
    EXPECT_FALSE(a.key == b.key);
    EXPECT_FALSE(a.key == c.key);
}

TEST(Decoder, EthernetPaddingIsNotPayload)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).trailer(Bytes(6, 0)).build();
    ASSERT_EQ(f.size(), 60u);
    const PacketMeta m = decode_ok(f);
    EXPECT_EQ(m.ip_len, 40u);
    EXPECT_EQ(m.l4_payload_len, 0);
    EXPECT_EQ(m.wire_len, 60u);
}

TEST(Decoder, SnaplenCutFrameIsDecodedWithThePresentPayload)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).payload(std::string(1000, 'x')).build();
    RawPacket p = raw(f);
    p.caplen = 14 + 20 + 20 + 10;
    Decoder d;
    PacketMeta m;
    ASSERT_TRUE(d.decode(p, m));
    expect_tcp_key(m);
    EXPECT_EQ(m.wire_len, f.size());
    EXPECT_EQ(m.ip_len, 1040u);
    EXPECT_EQ(m.l4_payload_offset, 54);
    EXPECT_EQ(m.l4_payload_len, 10);
}

TEST(Decoder, CaplenGreaterThanWireLenIsDropped)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    RawPacket p = raw(f);
    p.wire_len = p.caplen - 1;
    Decoder d;
    EXPECT_EQ(decode_reason(d, p), DropReason::CaplenGtLen);
}

TEST(Decoder, TcpOptionsMovePayloadOffsetAndCutOptionsLeaveNoPayload)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, kTcpSyn, Bytes(12, 1)).payload("ab").build();
    const PacketMeta m = decode_ok(f);
    EXPECT_EQ(m.l4_payload_offset, 14 + 20 + 32);
    EXPECT_EQ(m.l4_payload_len, 2);

    RawPacket p = raw(f);
    p.caplen = 14 + 20 + 24;  // fixed header present, options cut
    Decoder d;
    PacketMeta cut;
    ASSERT_TRUE(d.decode(p, cut));
    EXPECT_EQ(cut.key, m.key);
    EXPECT_EQ(cut.l4_payload_len, 0);
}

TEST(Decoder, Ipv4OptionsAreSkippedByIhl)
{
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").ipv4_options({0x94, 0x04, 0, 0})  // router alert
                        .udp(1234, 80).payload("xyz").build();
    const PacketMeta m = decode_ok(f);
    EXPECT_EQ(m.key.port_a, 1234);
    EXPECT_EQ(m.key.port_b, 80);
    EXPECT_EQ(m.key.proto, 17);
    EXPECT_EQ(m.l4_payload_offset, 14 + 24 + 8);
    EXPECT_EQ(m.l4_payload_len, 3);
}

TEST(Decoder, SctpPortsAndOtherProtocolsPortless)
{
    const PacketMeta s = decode_ok(eth().ipv4("10.0.0.1", "10.0.0.2").sctp(2905, 2906).build());
    EXPECT_EQ(s.key.proto, 132);
    EXPECT_EQ(s.key.port_a, 2905);
    EXPECT_EQ(s.key.port_b, 2906);
    EXPECT_EQ(s.l4_payload_offset, 14 + 20 + 12);

    const PacketMeta o = decode_ok(eth().ipv4("10.0.0.1", "10.0.0.2").ip_proto(89).payload("ospf").build());
    EXPECT_EQ(o.key.proto, 89);
    EXPECT_EQ(o.key.port_a, 0);
    EXPECT_EQ(o.key.port_b, 0);
    EXPECT_EQ(o.l4_payload_len, 4);
}

// ------------------------------------------------------------------ ICMP ----

TEST(Decoder, IcmpRequestAndReplyAreOneFlow)
{
    struct Pair { uint8_t req, rep; };
    for (Pair pr : {Pair{8, 0}, Pair{13, 14}, Pair{15, 16}, Pair{17, 18}}) {
        Decoder d;
        const PacketMeta q = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").icmp(pr.req, 0, 7, 1).build());
        const PacketMeta r = decode_ok(d, eth().ipv4("10.0.0.2", "10.0.0.1").icmp(pr.rep, 0, 7, 1).build());
        EXPECT_EQ(q.key, r.key) << int(pr.req);
        EXPECT_EQ(q.key.proto, 1);
        // Request: src port 0, dst port type<<8; the reply mirrors it.
        EXPECT_EQ(q.key.port_a, 0);
        EXPECT_EQ(q.key.port_b, pr.req << 8);
        EXPECT_EQ(q.src_is_a, 1);
        EXPECT_EQ(r.src_is_a, 0);
    }
    // Not a request/reply type: dst port = type<<8 | code.
    const PacketMeta u = decode_ok(eth().ipv4("10.0.0.9", "10.0.0.1").icmp(3, 3).payload(Bytes(28, 0)).build());
    EXPECT_EQ(u.key.addr_a, addr("10.0.0.1"));
    EXPECT_EQ(u.key.port_a, (3 << 8) | 3);
    EXPECT_EQ(u.key.port_b, 0);
    EXPECT_EQ(u.src_is_a, 0);
}

TEST(Decoder, Icmpv6EchoRequestAndReplyAreOneFlow)
{
    Decoder d;
    const PacketMeta q = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").icmpv6(128, 0, 1, 1).build());
    const PacketMeta r = decode_ok(d, eth().ipv6("2001:db8::2", "2001:db8::1").icmpv6(129, 0, 1, 1).build());
    EXPECT_EQ(q.key, r.key);
    EXPECT_EQ(q.key.proto, 58);
    EXPECT_EQ(q.key.port_b, 128 << 8);
    // Neighbour solicitation (135) is a one-way type.
    const PacketMeta ns = decode_ok(d, eth().ipv6("fe80::1", "ff02::1:ff00:2").icmpv6(135).build());
    EXPECT_EQ(ns.key.port_a | ns.key.port_b, 135 << 8);
}

// ------------------------------------------------------------- L2 and L2.5 ----

TEST(Decoder, VlanTagsKeepTheOuterId)
{
    const PacketMeta one = decode_ok(eth().vlan(10).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    expect_tcp_key(one);
    EXPECT_EQ(one.key.vlan, 10);
    EXPECT_EQ(one.l4_payload_offset, 14 + 4 + 20 + 20);

    for (uint16_t tpid : {0x88a8, 0x9100, 0x8100}) {
        const PacketMeta qinq = decode_ok(
            eth().vlan(100, tpid, 5).vlan(200).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
        expect_tcp_key(qinq);
        EXPECT_EQ(qinq.key.vlan, 100) << std::hex << tpid;
    }
    // PCP and DEI bits are not part of the id.
    const PacketMeta pcp = decode_ok(eth().vlan(0xfff, 0x8100, 7).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build());
    EXPECT_EQ(pcp.key.vlan, 0xfff);

    // Different VLANs are different flows.
    const PacketMeta other = decode_ok(eth().vlan(11).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    EXPECT_FALSE(other.key == one.key);
}

TEST(Decoder, VlanNestingIsBounded)
{
    PacketBuilder ok = eth();
    PacketBuilder deep = eth();
    for (int i = 0; i < 8; ++i) {
        ok.vlan(static_cast<uint16_t>(i + 1));
        deep.vlan(static_cast<uint16_t>(i + 1));
    }
    deep.vlan(9);
    EXPECT_EQ(decode_ok(ok.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()).key.vlan, 1);
    EXPECT_EQ(reason_of(deep.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()), DropReason::TooManyEncaps);
}

TEST(Decoder, MplsLabelsArePoppedAndPayloadGuessed)
{
    expect_tcp_key(decode_ok(eth().mpls({100}).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()));
    expect_tcp_key(decode_ok(eth().vlan(3).mpls({100, 200, 300}).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()));
    const PacketMeta v6 = decode_ok(eth().mpls({16, 17}).ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build());
    EXPECT_EQ(v6.key.ip_version, 6);
    // Multicast MPLS ethertype.
    expect_tcp_key(decode_ok(eth().mpls({5}).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()));
    Bytes mc = eth().mpls({5}).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    mc[13] = 0x48;
    expect_tcp_key(decode_ok(mc));
}

TEST(Decoder, EthernetOverMplsWithControlWordKeepsOuterMacs)
{
    const Bytes f = eth().mpls({1000}).mpls_pw_control_word().eth(test::kMacA, test::kMacB)
                        .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    const PacketMeta m = decode_ok(f);
    expect_tcp_key(m);
    EXPECT_EQ(m.src_mac, kSrcMac);
    EXPECT_EQ(m.key.tunnel_type, TunnelType::None);
}

TEST(Decoder, MplsErrors)
{
    // 17 labels: longer than any sane stack.
    EXPECT_EQ(reason_of(eth().mpls({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
                            .ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build()),
              DropReason::BadMpls);
    // Stack without bottom of stack until the frame ends.
    Bytes f = eth().mpls({1, 2}).build();
    f[14 + 4 + 2] &= 0xfe;
    EXPECT_EQ(reason_of(f), DropReason::TruncatedL2);
    // Payload that is neither IP nor a control word.
    EXPECT_EQ(reason_of(eth().mpls({1}).payload(Bytes(40, 0x55)).build()), DropReason::NonIp);
}

TEST(Decoder, PppoeSession)
{
    expect_tcp_key(decode_ok(eth().pppoe(7).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()));
    const PacketMeta v6 = decode_ok(eth().vlan(20).pppoe(7).ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2).build());
    EXPECT_EQ(v6.key.ip_version, 6);
    EXPECT_EQ(v6.key.vlan, 20);
    // LCP inside a session is not IP.
    EXPECT_EQ(reason_of(eth().pppoe(7, 0xc021).payload(Bytes(10, 1)).build()), DropReason::NonIp);
    // Wrong version/type or a discovery code in a session frame.
    Bytes bad = eth().pppoe(7).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    bad[14] = 0x21;
    EXPECT_EQ(reason_of(bad), DropReason::BadPppoe);
    bad[14] = 0x11;
    bad[15] = 0x09;
    EXPECT_EQ(reason_of(bad), DropReason::BadPppoe);
}

TEST(Decoder, NonIpFramesAreCountedAsNonIp)
{
    for (uint16_t type : {0x0806, 0x88cc, 0x8863, 0x88f7}) {
        EXPECT_EQ(reason_of(PacketBuilder().eth(kSrcMac, kDstMac, type).payload(Bytes(46, 0)).build()),
                  DropReason::NonIp) << std::hex << type;
    }
    // 802.3 length field + LLC (STP).
    EXPECT_EQ(reason_of(PacketBuilder().eth(kSrcMac, kDstMac, 38).payload(Bytes(46, 0x42)).build()),
              DropReason::NonIp);
}

// ------------------------------------------------------------------- IPv4 ----

TEST(Decoder, BadIpv4Headers)
{
    const Bytes good = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    Bytes f = good;
    f[14] = 0x55;  // version 5
    EXPECT_EQ(reason_of(f), DropReason::BadIpHeader);
    f = good;
    f[14] = 0x44;  // IHL 4
    EXPECT_EQ(reason_of(f), DropReason::BadIpHeader);
    EXPECT_EQ(reason_of(eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(19).tcp(1, 2).build()),
              DropReason::BadIpHeader);
    // IHL 15 (60 bytes of header) in a frame cut after 50.
    f = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).payload(Bytes(100, 0)).build();
    f[14] = 0x4f;
    {
        Decoder d;
        RawPacket p = raw(f);
        p.caplen = 14 + 50;
        EXPECT_EQ(decode_reason(d, p), DropReason::TruncatedIp);
    }
    // Total length leaves no room for the TCP header.
    EXPECT_EQ(reason_of(eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(30).tcp(1, 2).build()),
              DropReason::TruncatedL4);
    // Raw IP with a version that is neither 4 nor 6.
    f = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    f[0] = 0x75;
    EXPECT_EQ(reason_of(f, test::lt::kRaw), DropReason::BadIpHeader);
    // LINKTYPE_IPV4 holding IPv6.
    EXPECT_EQ(reason_of(PacketBuilder().ipv6("::1", "::2").udp(1, 2).build(), test::lt::kIpv4),
              DropReason::BadIpHeader);
}

TEST(Decoder, Ipv4FragmentsShareTheFirstFragmentsPorts)
{
    Decoder d;
    const PacketMeta first = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(777).frag(0, true)
                                              .udp(5353, 53).payload(Bytes(1472, 1)).build());
    const PacketMeta mid = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(777).frag(1480, true)
                                            .ip_proto(17).payload(Bytes(1480, 2)).build());
    const PacketMeta last = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(777).frag(2960, false)
                                             .ip_proto(17).payload(Bytes(100, 3)).build());
    EXPECT_EQ(first.key.port_a, 5353);
    EXPECT_EQ(first.key.port_b, 53);
    EXPECT_EQ(mid.key, first.key);
    EXPECT_EQ(last.key, first.key);
    EXPECT_EQ(last.hash, first.hash);
    EXPECT_EQ(last.src_is_a, first.src_is_a);
    EXPECT_EQ(first.is_fragment, 1);
    EXPECT_EQ(mid.is_fragment, 1);
    EXPECT_EQ(last.is_fragment, 1);
    EXPECT_EQ(last.l4_payload_offset, 14 + 20);
    EXPECT_EQ(last.l4_payload_len, 100);
    EXPECT_EQ(d.stats().fragments, 3u);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 0u);

    // A not fragmented packet of the same flow.
    const PacketMeta whole = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").udp(5353, 53).build());
    EXPECT_EQ(whole.key, first.key);
    EXPECT_EQ(whole.is_fragment, 0);
}

TEST(Decoder, LaterFragmentWithoutFirstIsPortlessButNotLost)
{
    Decoder d;
    decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(1).frag(0, true).udp(5353, 53).payload(Bytes(64, 0)).build());
    PacketMeta m;
    // Same hosts, another datagram id.
    const Bytes f = eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(2).frag(1480, false).ip_proto(17).payload(Bytes(64, 0)).build();
    ASSERT_TRUE(d.decode(raw(f), m));
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 1u);
    EXPECT_EQ(d.stats().decoded, 2u);
    EXPECT_EQ(m.key.port_a, 0);
    EXPECT_EQ(m.key.port_b, 0);
    EXPECT_EQ(m.key.proto, 17);
    EXPECT_EQ(m.is_fragment, 1);
    // Another VLAN is another datagram even with the same id.
    const Bytes v = eth().vlan(5).ipv4("10.0.0.1", "10.0.0.2").ip_id(1).frag(8, false).ip_proto(17).payload("x").build();
    ASSERT_TRUE(d.decode(raw(v), m));
    EXPECT_EQ(m.key.port_a | m.key.port_b, 0);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 2u);
}

TEST(Decoder, FragmentCacheSlotsAreReusedWithoutWrongPorts)
{
    // One slot: the second datagram evicts the first.
    Decoder d(DecoderConfig{.decap_tunnels = true, .frag_cache_entries = 1});
    decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(1).frag(0, true).tcp(1, 2).build());
    decode_ok(d, eth().ipv4("10.0.0.3", "10.0.0.4").ip_id(1).frag(0, true).tcp(3, 4).build());
    const PacketMeta late1 = decode_ok(d, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(1).frag(64, false).ip_proto(6).build());
    const PacketMeta late2 = decode_ok(d, eth().ipv4("10.0.0.3", "10.0.0.4").ip_id(1).frag(64, false).ip_proto(6).build());
    EXPECT_EQ(late1.key.port_a | late1.key.port_b, 0);
    EXPECT_EQ(late2.key.port_a, 3);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 1u);

    // A size that is not a power of two is rounded up and works.
    Decoder odd(DecoderConfig{.decap_tunnels = true, .frag_cache_entries = 3});
    decode_ok(odd, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(9).frag(0, true).tcp(1, 2).build());
    EXPECT_EQ(decode_ok(odd, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(9).frag(64, false).ip_proto(6).build()).key.port_a, 1);
}

// ------------------------------------------------------------------- IPv6 ----

TEST(Decoder, Ipv6HeaderFields)
{
    const Bytes f = eth().ipv6("2001:db8::1", "2001:db8::2").traffic_class(0xb8).hop_limit(17)
                        .tcp(1234, 80).payload("abc").build();
    const PacketMeta m = decode_ok(f);
    EXPECT_EQ(m.key.ip_version, 6);
    EXPECT_EQ(m.key.addr_a, addr("2001:db8::1"));
    EXPECT_EQ(m.key.port_a, 1234);
    EXPECT_EQ(m.ttl, 17);
    EXPECT_EQ(m.tos, 0xb8);
    EXPECT_EQ(m.ip_len, 40u + 20 + 3);
    EXPECT_EQ(m.l4_payload_offset, 14 + 40 + 20);
    EXPECT_EQ(m.l4_payload_len, 3);
}

TEST(Decoder, Ipv6ExtensionHeadersAreWalked)
{
    const Bytes f = eth().ipv6("2001:db8::1", "2001:db8::2")
                        .ipv6_ext(0).ipv6_ext(60, Bytes(10, 0)).ipv6_ext(43, {0, 0}).ipv6_ext(51, Bytes(12, 7))
                        .ipv6_ext(135)
                        .udp(1000, 2000).payload("p").build();
    const PacketMeta m = decode_ok(f);
    EXPECT_EQ(m.key.proto, 17);
    EXPECT_EQ(m.key.port_a, 1000);
    EXPECT_EQ(m.key.port_b, 2000);
    // 8 + 16 + 8 + 24 (AH with a 12-byte ICV) + 8 bytes of extension headers.
    EXPECT_EQ(m.l4_payload_offset, 14 + 40 + 64 + 8);
    EXPECT_EQ(m.l4_payload_len, 1);

    // ESP ends the walk: its payload is encrypted.
    const PacketMeta esp = decode_ok(eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_ext(0).ip_proto(50).payload(Bytes(32, 1)).build());
    EXPECT_EQ(esp.key.proto, 50);
    EXPECT_EQ(esp.key.port_a | esp.key.port_b, 0);
}

TEST(Decoder, Ipv6ExtensionChainErrors)
{
    PacketBuilder ok = eth();
    ok.ipv6("2001:db8::1", "2001:db8::2");
    PacketBuilder deep = eth();
    deep.ipv6("2001:db8::1", "2001:db8::2");
    for (int i = 0; i < 8; ++i) {
        ok.ipv6_ext(60);
        deep.ipv6_ext(60);
    }
    deep.ipv6_ext(60);
    EXPECT_EQ(reason_of(ok.udp(1, 2).build()), DropReason::None);
    EXPECT_EQ(reason_of(deep.udp(1, 2).build()), DropReason::BadIpv6Ext);

    // An extension header longer than the payload length says.
    Bytes f = eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_ext(60).udp(1, 2).build();
    f[14 + 40 + 1] = 10;
    EXPECT_EQ(reason_of(f), DropReason::BadIpv6Ext);
    // Cut by the snap length inside the chain: the IP header is truncated.
    f = eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_ext(60, Bytes(30, 0)).udp(1, 2).build();
    Decoder d;
    RawPacket p = raw(f);
    p.caplen = 14 + 40 + 16;
    EXPECT_EQ(decode_reason(d, p), DropReason::TruncatedIp);
    // Version field wrong.
    f = eth().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build();
    f[14] = 0x45;
    EXPECT_EQ(reason_of(f), DropReason::BadIpHeader);
}

TEST(Decoder, Ipv6FragmentsShareTheFirstFragmentsPorts)
{
    Decoder d;
    // First fragment: fragment header, then destination options, then UDP.
    const PacketMeta first = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_frag(0, true, 0xdeadbeef)
                                              .ipv6_ext(60).udp(4000, 4001).payload(Bytes(200, 1)).build());
    // Later fragment: its next header names the destination options header.
    const PacketMeta later = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_frag(216, false, 0xdeadbeef)
                                              .ip_proto(60).payload(Bytes(50, 2)).build());
    EXPECT_EQ(first.key.proto, 17);
    EXPECT_EQ(first.key.port_a, 4000);
    EXPECT_EQ(later.key, first.key);
    EXPECT_EQ(first.is_fragment, 1);
    EXPECT_EQ(later.is_fragment, 1);
    EXPECT_EQ(later.l4_payload_offset, 14 + 40 + 8);
    EXPECT_EQ(later.l4_payload_len, 50);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 0u);

    // The id is 32 bits: only the low 16 matching is a miss.
    const PacketMeta miss = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_frag(216, false, 0x0000beef)
                                             .ip_proto(60).payload(Bytes(50, 2)).build());
    EXPECT_EQ(miss.key.port_a | miss.key.port_b, 0);
    EXPECT_EQ(miss.key.proto, 60);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 1u);

    // Atomic fragment (offset 0, M=0) is a whole datagram.
    const PacketMeta atomic = decode_ok(d, eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_frag(0, false, 5).udp(4000, 4001).build());
    EXPECT_EQ(atomic.is_fragment, 0);
    EXPECT_EQ(atomic.key, first.key);
}

// ---------------------------------------------------------------- tunnels ----

void expect_inner(const PacketMeta& m, TunnelType type, uint32_t id)
{
    expect_tcp_key(m);
    EXPECT_EQ(m.key.tunnel_type, type);
    EXPECT_EQ(m.key.tunnel_id, id);
}

TEST(Decoder, GreCarriesTheInnerFlowAndTheKey)
{
    const Bytes f = eth().vlan(42).ipv4("192.168.0.1", "192.168.0.2").ttl(200).tos(4).gre(77)
                        .ipv4("10.0.0.1", "10.0.0.2").ttl(9).tos(8).tcp(1234, 80).payload("data").build();
    Decoder d;
    const PacketMeta m = decode_ok(d, f);
    expect_inner(m, TunnelType::Gre, 77);
    EXPECT_EQ(m.ttl, 9);
    EXPECT_EQ(m.tos, 8);
    EXPECT_EQ(m.ip_len, 20u + 8 + 20 + 20 + 4);
    EXPECT_EQ(m.key.vlan, 42);
    EXPECT_EQ(m.src_mac, kSrcMac);
    EXPECT_EQ(m.l4_payload_offset, 18 + 20 + 8 + 20 + 20);
    EXPECT_EQ(m.l4_payload_len, 4);
    EXPECT_EQ(d.stats().tunneled, 1u);

    expect_inner(decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::Gre, 0);
    expect_inner(decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre(5, 0, true, 99)
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::Gre, 5);
    expect_inner(decode_ok(eth().ipv6("2001:db8::1", "2001:db8::2").gre(6).eth()
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::Gre, 6);
    const PacketMeta v6 = decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre(1)
                                        .ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build());
    EXPECT_EQ(v6.key.ip_version, 6);
    EXPECT_EQ(v6.key.tunnel_type, TunnelType::Gre);
    // MPLS over GRE.
    expect_inner(decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre(3).mpls({20})
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::Gre, 3);
}

TEST(Decoder, GreEdgeCases)
{
    // Unknown payload protocol: the GRE flow itself.
    const PacketMeta unk = decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre(1, 0x1234).payload(Bytes(20, 0)).build());
    EXPECT_EQ(unk.key.proto, 47);
    EXPECT_EQ(unk.key.tunnel_type, TunnelType::None);
    EXPECT_EQ(unk.key.addr_a, addr("192.168.0.1"));
    // PPTP's enhanced GRE (version 1) is not decapsulated.
    Bytes pptp = eth().ipv4("192.168.0.1", "192.168.0.2").gre(1, 0x880b).payload(Bytes(20, 0)).build();
    pptp[14 + 20 + 1] |= 1;
    EXPECT_EQ(decode_ok(pptp).key.proto, 47);
    // Version 2 and RFC 1701 routing are invalid.
    Bytes bad = eth().ipv4("192.168.0.1", "192.168.0.2").gre(1).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    bad[14 + 20 + 1] |= 2;
    EXPECT_EQ(reason_of(bad), DropReason::BadTunnel);
    bad[14 + 20 + 1] &= 0xf8;
    bad[14 + 20] |= 0x40;
    EXPECT_EQ(reason_of(bad), DropReason::BadTunnel);
    // GRE header longer than the datagram.
    EXPECT_EQ(reason_of(eth().ipv4("192.168.0.1", "192.168.0.2").ip_total_length(26).gre(1, 0x0800).build()),
              DropReason::BadTunnel);
    // Decapsulation off: the outer packet is the flow.
    const Bytes f = eth().ipv4("192.168.0.1", "192.168.0.2").gre(77).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    const PacketMeta off = decode_ok(f, test::lt::kEthernet, DecoderConfig{.decap_tunnels = false});
    EXPECT_EQ(off.key.proto, 47);
    EXPECT_EQ(off.key.tunnel_type, TunnelType::None);
    EXPECT_EQ(off.key.addr_a, addr("192.168.0.1"));
}

// ERSPAN type II header (version 1, VLAN 1, session 5) and the mirrored frame.
Bytes erspan2_payload()
{
    Bytes b{0x10, 0x01, 0x00, 0x05, 0, 0, 0, 0};
    const Bytes inner = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    b.insert(b.end(), inner.begin(), inner.end());
    return b;
}

TEST(Decoder, ErspanTypeIIMirrorsAnEthernetFrame)
{
    const Bytes f = eth().ipv4("192.168.0.1", "192.168.0.2").gre(std::nullopt, 0x88be, false, 1)
                        .payload(erspan2_payload()).build();
    const PacketMeta m = decode_ok(f);
    expect_inner(m, TunnelType::Gre, 0);
    EXPECT_EQ(m.src_mac, kSrcMac);
}

TEST(Decoder, VxlanCarriesTheInnerFlowAndTheVni)
{
    const Bytes f = eth().ipv4("192.168.0.1", "192.168.0.2").udp(50000, 4789).vxlan(0xabcdef)
                        .eth(test::kMacA, test::kMacB).vlan(77).ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    const PacketMeta m = decode_ok(f);
    expect_inner(m, TunnelType::Vxlan, 0xabcdef);
    EXPECT_EQ(m.src_mac, kSrcMac);  // outer
    EXPECT_EQ(m.key.vlan, 0);       // the inner frame's tag is not the outer VLAN
    EXPECT_EQ(m.ip_len, 20u + 8 + 8 + 18 + 40);

    // I flag missing.
    Bytes bad = f;
    bad[14 + 20 + 8] = 0;
    EXPECT_EQ(reason_of(bad), DropReason::BadTunnel);
    // Inner ARP: the VTEP-to-VTEP UDP flow.
    const PacketMeta arp = decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").udp(50000, 4789).vxlan(5)
                                         .eth(test::kMacA, test::kMacB, 0x0806).payload(Bytes(28, 0)).build());
    EXPECT_EQ(arp.key.proto, 17);
    EXPECT_EQ(arp.key.port_a, 50000);
    EXPECT_EQ(arp.key.port_b, 4789);
    EXPECT_EQ(arp.key.tunnel_type, TunnelType::None);
    // Cut inside the inner IP header.
    RawPacket p = raw(f);
    p.caplen = 14 + 20 + 8 + 8 + 18 + 10;
    Decoder d;
    EXPECT_EQ(decode_reason(d, p), DropReason::TruncatedIp);
}

TEST(Decoder, GtpuCarriesTheUserFlowBothWays)
{
    // The TEID is per direction: it stays out of the key (id 0) so uplink
    // and downlink of one bearer are one flow.
    expect_inner(decode_ok(eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(0x01020304)
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::GtpU, 0);
    const PacketMeta up = decode_ok(eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(0x01020304)
                                        .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    const PacketMeta down = decode_ok(eth().ipv4("172.16.0.2", "172.16.0.1").udp(2152, 2152).gtpu(0x0a0b0c0d)
                                          .ipv4("10.0.0.2", "10.0.0.1").tcp(80, 1234).build());
    EXPECT_EQ(up.key, down.key);
    EXPECT_EQ(up.hash, down.hash);
    EXPECT_NE(up.src_is_a, down.src_is_a);
    // Sequence number and extension headers (PDU session container).
    expect_inner(decode_ok(eth().ipv6("2001:db8::a", "2001:db8::b").udp(2152, 2152).gtpu(9, 0xff, 1)
                               .gtpu_ext(0x85, {0x00, 0x01}).gtpu_ext(0x40, Bytes(5, 0))
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::GtpU, 0);
    // Echo request: the GTP-U path's own UDP flow.
    const PacketMeta echo = decode_ok(eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(0, 1, 0).build());
    EXPECT_EQ(echo.key.proto, 17);
    EXPECT_EQ(echo.key.tunnel_type, TunnelType::None);
    // Version 2 (GTP-C v2 on the user-plane port) and GTP' are invalid here.
    Bytes bad = eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(1).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    bad[14 + 20 + 8] = 0x48;
    EXPECT_EQ(reason_of(bad), DropReason::BadTunnel);
    bad[14 + 20 + 8] = 0x20;
    EXPECT_EQ(reason_of(bad), DropReason::BadTunnel);
    // A zero-length extension header.
    Bytes ext = eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(1).gtpu_ext(0x85, {0, 1})
                    .ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    ext[14 + 20 + 8 + 12] = 0;
    EXPECT_EQ(reason_of(ext), DropReason::BadTunnel);
    // A G-PDU whose payload is not IP: the outer flow.
    const PacketMeta nonip = decode_ok(eth().ipv4("172.16.0.1", "172.16.0.2").udp(2152, 2152).gtpu(3).payload(Bytes(20, 0x11)).build());
    EXPECT_EQ(nonip.key.tunnel_type, TunnelType::None);
    EXPECT_EQ(nonip.key.port_a, 2152);
}

TEST(Decoder, IpInIpAllCombinations)
{
    expect_inner(decode_ok(eth().ipv4("1.1.1.1", "2.2.2.2").ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::IpInIp, 0);
    expect_inner(decode_ok(eth().ipv6("2001:db8::1", "2001:db8::2").ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build()),
                 TunnelType::IpInIp, 0);
    const PacketMeta six4 = decode_ok(eth().ipv4("1.1.1.1", "2.2.2.2").ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build());
    EXPECT_EQ(six4.key.tunnel_type, TunnelType::IpInIp);
    EXPECT_EQ(six4.key.ip_version, 6);
    EXPECT_EQ(six4.ip_len, 20u + 40 + 8);
    const PacketMeta six6 = decode_ok(eth().ipv6("2001:db8::a", "2001:db8::b").ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build());
    EXPECT_EQ(six6.key.addr_a, addr("2001:db8::1"));
    EXPECT_EQ(six6.ip_len, 40u + 40 + 8);
}

TEST(Decoder, NestedTunnelsKeepTheOutermostTunnel)
{
    const PacketMeta m = decode_ok(eth().ipv4("192.168.0.1", "192.168.0.2").gre(11).ipv4("172.16.0.1", "172.16.0.2")
                                       .udp(1, 4789).vxlan(22).eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    expect_inner(m, TunnelType::Gre, 11);

    // Four encapsulations are fine, five are not.
    auto nest = [](int n) {
        PacketBuilder b = eth();
        for (int i = 0; i < n; ++i)
            b.ipv4("1.1.1.1", "2.2.2.2");
        return b.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    };
    expect_inner(decode_ok(nest(4)), TunnelType::IpInIp, 0);
    EXPECT_EQ(reason_of(nest(5)), DropReason::TooManyEncaps);
}

TEST(Decoder, FragmentedTunnelPacketsAreTheOuterFlow)
{
    Decoder d;
    const PacketMeta first = decode_ok(d, eth().ipv4("192.168.0.1", "192.168.0.2").ip_id(5).frag(0, true).gre(1)
                                              .ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build());
    const PacketMeta later = decode_ok(d, eth().ipv4("192.168.0.1", "192.168.0.2").ip_id(5).frag(48, false)
                                              .ip_proto(47).payload(Bytes(100, 0)).build());
    EXPECT_EQ(first.key.proto, 47);
    EXPECT_EQ(first.key.tunnel_type, TunnelType::None);
    EXPECT_EQ(later.key, first.key);
    EXPECT_EQ(d.stats().drops.get(DropReason::FragNoFirst), 0u);
}

// ------------------------------------------------------------- link types ----

TEST(Decoder, EveryLinkTypeReachesTheSameFlow)
{
    struct Case {
        const char* name;
        PacketBuilder b;
        uint32_t lt;
    };
    auto tail = [](PacketBuilder b) { return std::move(b.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).payload("z")); };
    auto tail6 = [](PacketBuilder b) { return std::move(b.ipv6("2001:db8::1", "2001:db8::2").tcp(1234, 80).payload("z")); };
    std::vector<Case> cases;
    cases.push_back({"ethernet", tail(PacketBuilder().eth()), test::lt::kEthernet});
    cases.push_back({"raw", tail(PacketBuilder()), test::lt::kRaw});
    cases.push_back({"dlt_raw_12", tail(PacketBuilder()), 12});
    cases.push_back({"dlt_raw_14", tail(PacketBuilder()), 14});
    cases.push_back({"ipv4", tail(PacketBuilder()), test::lt::kIpv4});
    cases.push_back({"ipv6", tail6(PacketBuilder()), test::lt::kIpv6});
    cases.push_back({"raw6", tail6(PacketBuilder()), test::lt::kRaw});
    cases.push_back({"sll", tail(PacketBuilder().sll()), test::lt::kLinuxSll});
    cases.push_back({"sll6", tail6(PacketBuilder().sll(4)), test::lt::kLinuxSll});
    cases.push_back({"sll_vlan", tail(PacketBuilder().sll().vlan(3)), test::lt::kLinuxSll});
    cases.push_back({"sll2", tail(PacketBuilder().sll2()), test::lt::kLinuxSll2});
    cases.push_back({"null_le", tail(PacketBuilder().null()), test::lt::kNull});
    cases.push_back({"null_be", tail(PacketBuilder().null(0, true)), test::lt::kNull});
    cases.push_back({"null_v6_24", tail6(PacketBuilder().null(24)), test::lt::kNull});
    cases.push_back({"null_v6_28", tail6(PacketBuilder().null(28, true)), test::lt::kNull});
    cases.push_back({"null_v6_30", tail6(PacketBuilder().null(30)), test::lt::kNull});
    cases.push_back({"loop", tail(PacketBuilder().loop()), test::lt::kLoop});
    cases.push_back({"loop6", tail6(PacketBuilder().loop()), test::lt::kLoop});
    cases.push_back({"ppp", tail(PacketBuilder().ppp()), test::lt::kPpp});
    cases.push_back({"ppp_ff03", tail(PacketBuilder().ppp(true)), test::lt::kPpp});
    cases.push_back({"ppp6", tail6(PacketBuilder().ppp()), test::lt::kPpp});
    cases.push_back({"ppp_mpls", tail(PacketBuilder().ppp().mpls({7})), test::lt::kPpp});
    cases.push_back({"ppp_hdlc", tail(PacketBuilder().ppp_hdlc()), test::lt::kPppHdlc});
    cases.push_back({"ppp_serial_chdlc", tail(PacketBuilder().cisco_hdlc()), test::lt::kPppHdlc});
    cases.push_back({"ppi", tail(PacketBuilder().ppi().eth()), test::lt::kPpi});
    cases.push_back({"ppi_raw", tail(PacketBuilder().ppi(test::lt::kRaw)), test::lt::kPpi});
    cases.push_back({"chdlc", tail(PacketBuilder().cisco_hdlc()), test::lt::kCiscoHdlc});
    cases.push_back({"chdlc_bcast6", tail6(PacketBuilder().cisco_hdlc(0x8f)), test::lt::kCiscoHdlc});

    for (Case& c : cases) {
        SCOPED_TRACE(c.name);
        ASSERT_TRUE(Decoder::linktype_supported(c.lt));
        const uint32_t implied = c.b.linktype();
        if (c.lt != 12 && c.lt != 14 && c.lt != test::lt::kIpv4 && c.lt != test::lt::kIpv6 &&
            std::string(c.name) != "ppp_serial_chdlc") {
            EXPECT_EQ(implied, c.lt);
        }
        const Bytes f = c.b.build();
        const PacketMeta m = decode_ok(f, c.lt);
        EXPECT_EQ(m.key.port_a, 1234);
        EXPECT_EQ(m.key.port_b, 80);
        EXPECT_EQ(m.key.proto, 6);
        EXPECT_EQ(m.l4_payload_len, 1);
        EXPECT_EQ(m.l4_payload_offset + 1u, f.size());
        EXPECT_EQ(m.key.addr_a, addr(m.key.ip_version == 4 ? "10.0.0.1" : "2001:db8::1"));
        const bool ethernet = c.lt == test::lt::kEthernet || (c.lt == test::lt::kPpi && f[4] == 1);
        EXPECT_EQ(m.src_mac != test::Mac{}, ethernet);
    }
}

TEST(Decoder, LinkLayerErrors)
{
    EXPECT_FALSE(Decoder::linktype_supported(105));  // 802.11
    EXPECT_FALSE(Decoder::linktype_supported(127));  // radiotap
    const Bytes ip = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    EXPECT_EQ(reason_of(ip, 105), DropReason::UnknownLinktype);
    // PPI naming an unsupported DLT, or naming PPI again.
    EXPECT_EQ(reason_of(PacketBuilder().ppi(105).payload(Bytes(40, 0)).build(), test::lt::kPpi), DropReason::UnknownLinktype);
    EXPECT_EQ(reason_of(PacketBuilder().ppi(test::lt::kPpi).ppi().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
                        test::lt::kPpi),
              DropReason::UnknownLinktype);
    // PPI length field beyond the frame or below its own header.
    Bytes ppi = PacketBuilder().ppi().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    ppi[2] = 0xff;
    EXPECT_EQ(reason_of(ppi, test::lt::kPpi), DropReason::TruncatedL2);
    ppi[2] = 4;
    EXPECT_EQ(reason_of(ppi, test::lt::kPpi), DropReason::TruncatedL2);
    // Unknown address families and PPP protocols are not IP.
    EXPECT_EQ(reason_of(PacketBuilder().null(7).payload(Bytes(40, 0)).build(), test::lt::kNull), DropReason::NonIp);
    EXPECT_EQ(reason_of(PacketBuilder().loop(2).payload(Bytes(40, 0)).build(), test::lt::kLoop), DropReason::BadIpHeader);
    EXPECT_EQ(reason_of(PacketBuilder().ppp(false, 0xc021).payload(Bytes(10, 0)).build(), test::lt::kPpp), DropReason::NonIp);
    EXPECT_EQ(reason_of(PacketBuilder().cisco_hdlc(0x8f, 0x8035).payload(Bytes(20, 0)).build(), test::lt::kCiscoHdlc),
              DropReason::NonIp);
    // Too short for the link header.
    for (uint32_t lt : {test::lt::kEthernet, test::lt::kLinuxSll, test::lt::kLinuxSll2, test::lt::kNull,
                        test::lt::kLoop, test::lt::kPpp, test::lt::kPppHdlc, test::lt::kCiscoHdlc, test::lt::kPpi}) {
        const Bytes tiny(1, 0xff);
        EXPECT_EQ(reason_of(tiny, lt), DropReason::TruncatedL2) << lt;
        EXPECT_EQ(reason_of(Bytes{}, lt), DropReason::TruncatedL2) << lt;
    }
}

// --------------------------------------------------------- drop reasons ----

// One frame per drop reason the decoder can count; the list must cover every
// reason except those owned by later stages.
TEST(Decoder, EveryDecoderDropReasonIsReachable)
{
    const Bytes tcp = eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).build();
    std::set<DropReason> seen;
    auto check = [&](DropReason want, const RawPacket& p) {
        Decoder d;
        PacketMeta m;
        const bool ok = d.decode(p, m);
        EXPECT_EQ(d.stats().drops.get(want), 1u) << drop_reason_name(want);
        EXPECT_EQ(ok, want == DropReason::FragNoFirst) << drop_reason_name(want);
        seen.insert(want);
    };
    RawPacket p = raw(tcp);
    p.caplen = 10;
    check(DropReason::TruncatedL2, p);
    p = raw(tcp);
    p.wire_len = 10;
    check(DropReason::CaplenGtLen, p);
    check(DropReason::UnknownLinktype, raw(tcp, 147));
    const Bytes arp = PacketBuilder().eth(kSrcMac, kDstMac, 0x0806).payload(Bytes(28, 0)).build();
    check(DropReason::NonIp, raw(arp));
    p = raw(tcp);
    p.caplen = 14 + 19;
    check(DropReason::TruncatedIp, p);
    Bytes bad = tcp;
    bad[14] = 0x65;
    check(DropReason::BadIpHeader, raw(bad));
    p = raw(tcp);
    p.caplen = 14 + 20 + 19;
    check(DropReason::TruncatedL4, p);
    PacketBuilder deep = eth();
    deep.ipv6("::1", "::2");
    for (int i = 0; i < 9; ++i)
        deep.ipv6_ext(0);
    const Bytes v6 = deep.udp(1, 2).build();
    check(DropReason::BadIpv6Ext, raw(v6));
    PacketBuilder many = eth();
    for (int i = 0; i < 9; ++i)
        many.vlan(1);
    const Bytes vl = many.ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    check(DropReason::TooManyEncaps, raw(vl));
    Bytes vx = eth().ipv4("10.0.0.1", "10.0.0.2").udp(1, 4789).vxlan(1).eth().ipv4("10.0.0.3", "10.0.0.4").tcp(1, 2).build();
    vx[14 + 28] = 0;
    check(DropReason::BadTunnel, raw(vx));
    const Bytes mp = eth().mpls({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    check(DropReason::BadMpls, raw(mp));
    Bytes pp = eth().pppoe().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
    pp[15] = 0x07;  // PADI code in a session frame
    check(DropReason::BadPppoe, raw(pp));
    const Bytes fr = eth().ipv4("10.0.0.1", "10.0.0.2").frag(8, false).ip_proto(6).payload("x").build();
    check(DropReason::FragNoFirst, raw(fr));

    for (size_t i = 1; i < kDropReasonCount; ++i) {
        const auto r = static_cast<DropReason>(i);
        if (r == DropReason::TableFull || r == DropReason::RingFull || r == DropReason::ExportRingFull)
            continue;  // counted by the flow table and the pipeline
        EXPECT_TRUE(seen.count(r)) << "no test reaches " << drop_reason_name(r);
    }
}

// Every prefix of every frame kind: no read past caplen (run under ASan in the
// sanitizer build, and the heap copy is exactly caplen long), and each frame
// is either decoded or counted under exactly one reason.
TEST(Decoder, EveryTruncationIsDecodedOrCounted)
{
    std::vector<std::pair<Bytes, uint32_t>> frames;
    auto add = [&](PacketBuilder b) { const uint32_t lt = b.linktype(); frames.emplace_back(b.build(), lt); };
    add(eth().vlan(1).vlan(2, 0x88a8).ipv4("10.0.0.1", "10.0.0.2").ipv4_options({1, 1, 1, 1}).tcp(1, 2, kTcpSyn, {2, 4, 5, 0xb4}).payload("abc"));
    add(eth().mpls({1, 2}).ipv6("::1", "::2").ipv6_ext(0).ipv6_ext(51, Bytes(4, 0)).ipv6_frag(0, true, 3).udp(1, 2).payload("x"));
    add(eth().ipv6("::1", "::2").ipv6_frag(64, false, 3).ip_proto(17).payload("xyz"));
    add(eth().pppoe().ipv4("10.0.0.1", "10.0.0.2").icmp(8, 0, 1, 1).payload("ping"));
    add(eth().mpls({9}).mpls_pw_control_word().eth().ipv4("10.0.0.1", "10.0.0.2").sctp(1, 2));
    add(eth().ipv4("1.1.1.1", "2.2.2.2").gre(1, 0, true, 2).eth().vlan(4).ipv6("::1", "::2").icmpv6(128));
    add(eth().ipv4("1.1.1.1", "2.2.2.2").udp(1, 4789).vxlan(7).eth().ipv4("10.0.0.1", "10.0.0.2").udp(3, 4).payload("v"));
    add(eth().ipv6("::a", "::b").udp(1, 2152).gtpu(5, 0xff, 1).gtpu_ext(0x85, {1, 2}).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2));
    add(eth().ipv4("1.1.1.1", "2.2.2.2").ipv6("::1", "::2").ipv4("10.0.0.1", "10.0.0.2").udp(1, 2));
    add(PacketBuilder().sll().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2));
    add(PacketBuilder().sll2().ipv6("::1", "::2").tcp(1, 2));
    add(PacketBuilder().null().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2));
    add(PacketBuilder().loop().ipv6("::1", "::2").udp(1, 2));
    add(PacketBuilder().ppp(true).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2));
    add(PacketBuilder().ppp_hdlc().ipv6("::1", "::2").udp(1, 2));
    add(PacketBuilder().ppi().eth().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2));
    add(PacketBuilder().cisco_hdlc().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2));
    add(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").gre(std::nullopt, 0x88be, false, 1)
            .payload(erspan2_payload()));

    Decoder d;
    uint64_t packets = 0;
    for (const auto& [full, lt] : frames) {
        for (size_t n = 0; n <= full.size(); ++n) {
            const auto buf = std::make_unique<uint8_t[]>(n ? n : 1);
            std::memcpy(buf.get(), full.data(), n);
            RawPacket p;
            p.data = buf.get();
            p.caplen = static_cast<uint32_t>(n);
            p.wire_len = static_cast<uint32_t>(full.size());
            p.linktype = lt;
            const DropReason r = decode_reason(d, p);
            ++packets;
            if (n == full.size()) {
                EXPECT_EQ(r, DropReason::None) << "full frame, linktype " << lt;
            }
        }
    }
    const DecoderStats& s = d.stats();
    EXPECT_EQ(s.packets, packets);
    EXPECT_EQ(s.decoded + total_drops(s) - s.drops.get(DropReason::FragNoFirst), packets);
    EXPECT_GT(s.drops.get(DropReason::TruncatedL2), 0u);
    EXPECT_GT(s.drops.get(DropReason::TruncatedIp), 0u);
    EXPECT_GT(s.drops.get(DropReason::TruncatedL4), 0u);
}

// ------------------------------------------------------ fast vs general ----

DecoderConfig general_only(DecoderConfig cfg = {})
{
    cfg.fast_path = false;
    return cfg;
}

std::string meta_text(const PacketMeta& m)
{
    std::string s;
    const auto* b = reinterpret_cast<const uint8_t*>(&m);
    for (size_t i = 0; i < sizeof(m); ++i) {
        char hex[4];
        std::snprintf(hex, sizeof(hex), "%02x", b[i]);
        s += hex;
    }
    return s;
}

// Decodes `p` with a fast-path decoder and a general-only one fed the same
// frames: both must agree on the verdict and on every byte of the result.
void expect_same_decode(Decoder& fast, Decoder& general, const RawPacket& p, const std::string& what)
{
    PacketMeta a;
    PacketMeta b;
    std::memset(static_cast<void*>(&a), 0, sizeof(a));
    std::memset(static_cast<void*>(&b), 0, sizeof(b));
    const bool ra = fast.decode(p, a);
    const bool rb = general.decode(p, b);
    ASSERT_EQ(ra, rb) << what;
    if (ra) {
        ASSERT_EQ(std::memcmp(&a, &b, sizeof(a)), 0) << what << "\n fast    " << meta_text(a)
                                                     << "\n general " << meta_text(b);
    }
}

void expect_same_stats(const DecoderStats& a, const DecoderStats& b)
{
    EXPECT_EQ(a.packets, b.packets);
    EXPECT_EQ(a.decoded, b.decoded);
    EXPECT_EQ(a.fragments, b.fragments);
    EXPECT_EQ(a.tunneled, b.tunneled);
    for (size_t i = 0; i < kDropReasonCount; ++i)
        EXPECT_EQ(a.drops.n[i], b.drops.n[i]) << drop_reason_name(static_cast<DropReason>(i));
}

TEST(Decoder, FastPathMatchesGeneralWalkOnEdgeFrames)
{
    const Bytes big(1500, 0x5a);
    std::vector<Bytes> frames = {
        eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, kTcpSyn).build(),
        eth().ipv4("10.0.0.2", "10.0.0.1").tcp(80, 1234, kTcpSyn | kTcpAck).payload("hello").build(),
        eth().ipv4("10.0.0.1", "10.0.0.1").tcp(80, 80).build(),
        eth().ipv4("10.0.0.1", "10.0.0.1").tcp(81, 80).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ttl(3).tos(0xb8).tcp(1, 2, kTcpAck, Bytes(20, 1)).payload(big).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).trailer(Bytes(12, 0)).build(),
        eth().ipv4("192.168.1.1", "8.8.8.8").udp(5353, 53).payload("q").build(),
        eth().ipv4("192.168.1.1", "8.8.8.8").udp(4789, 4789).payload(Bytes(8, 0)).build(),
        eth().ipv4("192.168.1.1", "8.8.8.8").udp(1, 4789).vxlan(7).eth().ipv4("1.1.1.1", "2.2.2.2").udp(3, 4).build(),
        eth().ipv4("192.168.1.1", "8.8.8.8").udp(1, 2152).gtpu(9).ipv4("1.1.1.1", "2.2.2.2").tcp(3, 4).build(),
        eth().ipv4("192.168.1.1", "8.8.8.8").udp(4789, 1).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ipv4_options(Bytes{1, 1, 1, 1}).tcp(1, 2).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(5).frag(0, true).tcp(1, 2).payload(Bytes(16, 0)).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(5).frag(24, false).ip_proto(6).payload(Bytes(8, 0)).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").dont_fragment().tcp(1, 2).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(0).tcp(1, 2).payload("x").build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(19).tcp(1, 2).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(30).tcp(1, 2).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(28).udp(1, 2).payload(Bytes(30, 0)).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").sctp(1, 2).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").icmp(8, 0, 1, 1).payload(Bytes(40, 0)).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").ip_proto(136).payload(Bytes(40, 0)).build(),
        eth().vlan(42).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
        eth().vlan(4095, 0x8100, 7).ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build(),
        eth().vlan(1).vlan(2).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
        eth().vlan(3, 0x88a8).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
        eth().vlan(3).mpls({16}).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
        eth().ipv6("2001:db8::2", "2001:db8::1").hop_limit(7).traffic_class(0x2e).tcp(443, 5000).payload(big).build(),
        eth().ipv6("2001:db8::1", "2001:db8::1").tcp(5, 4).build(),
        eth().ipv6("2001:db8::1", "2001:db8:0:0:1::1").udp(5, 4).build(),
        eth().ipv6("::1", "::").udp(5, 2152).payload(Bytes(4, 0)).build(),
        eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_ext(0).tcp(1, 2).build(),
        eth().ipv6("2001:db8::1", "2001:db8::2").ipv6_frag(0, true, 9).udp(1, 2).payload(Bytes(16, 0)).build(),
        eth().ipv6("2001:db8::1", "2001:db8::2").ip_total_length(0).udp(1, 2).build(),
        eth().ipv6("2001:db8::1", "2001:db8::2").ip_total_length(4).tcp(1, 2).build(),
        eth().ipv6("2001:db8::1", "2001:db8::2").icmpv6(128).build(),
        eth().ipv4("10.0.0.1", "10.0.0.2").gre(5).ipv4("1.1.1.1", "2.2.2.2").tcp(3, 4).build(),
        PacketBuilder().sll().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build(),
    };
    const size_t sll = frames.size() - 1;
    // Headers whose first byte lies: IPv4 with IHL 6 or version 6, IPv6
    // with version 4.
    const Bytes v4 = frames[0];
    const Bytes v6 = eth().ipv6("2001:db8::2", "2001:db8::1").tcp(443, 5000).build();
    for (auto [f, b] : {std::pair{v4, 0x46}, {v4, 0x65}, {v6, 0x45}}) {
        frames.push_back(f);
        frames.back()[14] = static_cast<uint8_t>(b);
    }

    for (const DecoderConfig& cfg : {DecoderConfig{}, DecoderConfig{.decap_tunnels = false}}) {
        Decoder fast(cfg);
        Decoder general(general_only(cfg));
        uint64_t ts = 1;
        for (size_t i = 0; i < frames.size(); ++i) {
            const Bytes& f = frames[i];
            const uint32_t lt = i == sll ? test::lt::kLinuxSll : test::lt::kEthernet;
            // Every snap length, and wire lengths shorter than, equal to and
            // longer than the capture.
            for (uint32_t cut = 0; cut <= f.size(); ++cut) {
                RawPacket p = raw(f, lt, ++ts);
                p.caplen = cut;
                for (uint32_t wire : {cut, cut + 1, static_cast<uint32_t>(f.size()), cut > 0 ? cut - 1 : 0}) {
                    p.wire_len = wire;
                    expect_same_decode(fast, general, p,
                                       "frame " + std::to_string(i) + " caplen " + std::to_string(cut) +
                                           " wire " + std::to_string(wire));
                    if (HasFatalFailure())
                        return;
                }
            }
        }
        expect_same_stats(fast.stats(), general.stats());
        EXPECT_GT(fast.stats().decoded, 0u);
    }
}

TEST(Decoder, FastPathMatchesGeneralWalkOnEveryCapture)
{
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(WEIR_SHARED_DIR) / "pcaps";
    if (!fs::exists(dir))
        GTEST_SKIP() << "no captures in " << dir;
    uint64_t files = 0;
    uint64_t frames = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        const std::string ext = e.path().extension().string();
        if (!e.is_regular_file() || (ext != ".pcap" && ext != ".pcapng" && ext != ".cap"))
            continue;
        auto src = dataplane::open_pcap_file(e.path().string());
        if (!src)
            continue;  // not a capture libpcap reads; decoder_captures_test covers those
        ++files;
        Decoder fast;
        Decoder general(general_only());
        RawPacket r[64];
        uint32_t n;
        uint64_t i = 0;
        while ((n = src.value()->rx_burst(r, 64)) != 0) {
            for (uint32_t k = 0; k < n; ++k, ++i) {
                expect_same_decode(fast, general, r[k], e.path().filename().string() + " frame " + std::to_string(i));
                if (HasFatalFailure())
                    return;
            }
        }
        frames += i;
        expect_same_stats(fast.stats(), general.stats());
    }
    EXPECT_GT(files, 400u);
    EXPECT_GT(frames, 50000u);
}

// ------------------------------------------------------------------- misc ----

TEST(Decoder, IsMovableAndKeepsItsState)
{
    Decoder a;
    decode_ok(a, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(3).frag(0, true).tcp(1, 2).build());
    Decoder b(std::move(a));
    EXPECT_EQ(b.stats().packets, 1u);
    const PacketMeta later = decode_ok(b, eth().ipv4("10.0.0.1", "10.0.0.2").ip_id(3).frag(64, false).ip_proto(6).build());
    EXPECT_EQ(later.key.port_a, 1);
    Decoder c;
    c = std::move(b);
    EXPECT_EQ(c.stats().packets, 2u);
}

} // namespace
} // namespace weir::engine
