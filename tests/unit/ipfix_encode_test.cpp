// IPFIX encoder against hand-built byte vectors: message header, template
// set with RFC 5103 reverse elements (enterprise bit, PEN 29305), data set,
// sequence numbers counting data records only, template refresh, exact set
// lengths, mixed IPv4/IPv6 sets, the MTU, and the three biflow modes.
#include <weir/exporters/exporter.hpp>
#include <weir/exporters/ipfix.hpp>

#include <datagram_bytes.hpp>
#include <sample_flows.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

using namespace weir::test;

constexpr uint64_t kSec = 1000000000ULL;
constexpr uint64_t kMs = 1000000ULL;
constexpr uint64_t kT0 = 1700000000ULL * kSec;
const ExportClock kClock{kT0 + 10005 * kMs, kT0};

FlowRecord tcp4()
{
    return test::tcp4_flow(kT0);
}

FlowRecord icmp6()
{
    FlowRecord r{};
    r.key.ip_version = 6;
    r.key.proto = 58;
    r.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    r.key.addr_b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    r.key.port_b = 128 << 8; // echo request sent by A
    r.client_is_a = 1;
    r.dir[0] = {1, 104, kT0 + 3000 * kMs, kT0 + 3000 * kMs, 0, 64, 64, 0};
    r.end_reason = EndReason::IdleTimeout;
    return r;
}

std::unique_ptr<Encoder> make(EncoderOptions o = {})
{
    auto e = make_ipfix_encoder(o);
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message());
    return std::move(e.value());
}

Be common_fields(bool v6)
{
    Be e;
    e.ie(1, 8).ie(2, 8).ie(4, 1).ie(5, 1).ie(6, 2).ie(7, 2).ie(11, 2);
    if (v6) e.ie(27, 16).ie(28, 16); else e.ie(8, 4).ie(12, 4);
    e.ie(10, 4).ie(14, 4).ie(58, 2).ie(56, 6).ie(80, 6).ie(152, 8).ie(153, 8).ie(136, 1).ie(239, 1)
        .ie(52, 1).ie(53, 1).ie(v6 ? 139 : 32, 2);
    return e;
}

Be biflow_template(uint16_t id, bool v6)
{
    Be e;
    e.u16(id).u16(29).add(common_fields(v6));
    e.rev(1, 8).rev(2, 8).rev(5, 1).rev(6, 2).rev(152, 8).rev(153, 8).rev(52, 1).rev(53, 1);
    return e;
}

TEST(Ipfix, HeaderTemplateSetAndBiflowDataSet)
{
    EncoderOptions o;
    o.domain_id = 42;
    auto enc = make(o);
    Collect out;
    enc->add(tcp4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);

    const Be t4 = biflow_template(256, false), t6 = biflow_template(257, true);
    ASSERT_EQ(t4.b.size(), 152u);
    Be data;
    data.u64(1000).u64(10).u8(6).u8(0).u16(0x1b).u16(40000).u16(443)
        .raw({192, 0, 2, 1}).raw({198, 51, 100, 2}).u32(0).u32(0).u16(7)
        .raw({2, 0, 0, 0, 0, 1}).raw({2, 0, 0, 0, 0, 2})
        .u64(1700000001000ULL).u64(1700000002500ULL) // whole biflow, epoch ms
        .u8(3).u8(1).u8(60).u8(64).u16(0)
        .u64(6000).u64(8).u8(0x20).u16(0x1a)        // reverse counters, ToS, flags
        .u64(1700000001100ULL).u64(1700000002500ULL).u8(50).u8(52);
    ASSERT_EQ(data.b.size(), 113u);
    const uint16_t len = uint16_t(16 + 4 + 152 + t6.b.size() + 4 + 113);
    Be e;
    e.u16(10).u16(len).u32(1700000010).u32(0).u32(42);
    e.u16(2).u16(uint16_t(4 + t4.b.size() + t6.b.size())).add(t4).add(t6);
    e.u16(256).u16(4 + 113).add(data); // no padding in IPFIX sets
    EXPECT_EQ(out.d[0], e.b);
}

TEST(Ipfix, SequenceCountsDataRecordsNotTemplates)
{
    auto enc = make(EncoderOptions{.template_refresh_packets = 1});
    Collect out;
    for (int n : {3, 1, 2}) {
        for (int i = 0; i < n; ++i)
            enc->add(tcp4(), kClock, out);
        enc->flush(kClock, out);
    }
    ASSERT_EQ(out.d.size(), 3u);
    EXPECT_EQ(rd32(out.d[0], 8), 0u);
    EXPECT_EQ(rd32(out.d[1], 8), 3u);
    EXPECT_EQ(rd32(out.d[2], 8), 4u);
    for (const Bytes& d : out.d)
        EXPECT_EQ(rd16(d, 16), 2) << "template set in every message with refresh 1";
}

TEST(Ipfix, MixedFamiliesMakeExactSetsAndRespectMtu)
{
    auto enc = make(EncoderOptions{.mtu = 1000, .template_refresh_packets = 4, .template_refresh_s = 0});
    Collect out;
    for (int i = 0; i < 200; ++i)
        enc->add(i % 5 == 0 ? icmp6() : tcp4(), kClock, out);
    enc->flush(kClock, out);
    uint32_t v4 = 0, v6 = 0;
    uint32_t expect_seq = 0;
    for (std::size_t m = 0; m < out.d.size(); ++m) {
        const Bytes& d = out.d[m];
        ASSERT_LE(d.size(), 1000u);
        ASSERT_EQ(rd16(d, 2), d.size()) << "message length";
        EXPECT_EQ(rd32(d, 8), expect_seq);
        EXPECT_EQ(rd16(d, 16) == 2, m % 4 == 0) << "message " << m;
        std::size_t at = 16;
        uint32_t records = 0;
        while (at < d.size()) {
            const uint16_t id = rd16(d, at), len = rd16(d, at + 2);
            ASSERT_GE(len, 4);
            if (id == 256) { ASSERT_EQ((len - 4) % 113, 0); v4 += (len - 4) / 113; records += (len - 4) / 113; }
            if (id == 257) { ASSERT_EQ((len - 4) % 137, 0); v6 += (len - 4) / 137; records += (len - 4) / 137; }
            at += len;
        }
        ASSERT_EQ(at, d.size()) << "set lengths add up to the message";
        expect_seq += records;
    }
    EXPECT_EQ(v4, 160u);
    EXPECT_EQ(v6, 40u);
    EXPECT_EQ(enc->stats().records, 200u);
}

TEST(Ipfix, Icmpv6TypeCodeAndEmptyReverse)
{
    auto enc = make();
    Collect out;
    enc->add(icmp6(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    const Bytes& d = out.d[0];
    const std::size_t tset = rd16(d, 18);
    const std::size_t rec = 16 + tset + 4;
    ASSERT_EQ(rd16(d, 16 + tset), 257);
    EXPECT_EQ(rd16(d, rec + 20), 0);  // sourceTransportPort: ICMP has none
    EXPECT_EQ(rd16(d, rec + 22), 0);
    EXPECT_EQ(rd64(d, rec + 0), 104u);
    EXPECT_EQ(rd16(d, rec + 98), 128 << 8);     // icmpTypeCodeIPv6
    EXPECT_EQ(rd64(d, rec + 100), 0u);          // reverseOctetDeltaCount
    // No reverse packets: the reverse times repeat the flow's own (a 0 there
    // makes nfdump date the flow to 1970).
    EXPECT_NE(rd64(d, rec + 78), 0u);
    EXPECT_EQ(rd64(d, rec + 119), rd64(d, rec + 78)) << "reverse start = flowStartMilliseconds";
    EXPECT_EQ(rd64(d, rec + 127), rd64(d, rec + 86)) << "reverse end = flowEndMilliseconds";
}

TEST(Ipfix, InOutAndOneWayModes)
{
    {
        auto enc = make(EncoderOptions{.biflow = BiflowMode::InOut});
        Collect out;
        enc->add(tcp4(), kClock, out);
        enc->flush(kClock, out);
        const Bytes& d = out.d[0];
        const std::size_t tset = rd16(d, 18);
        // template 258: 21 common fields + 23/24.
        EXPECT_EQ(rd16(d, 20), 258);
        EXPECT_EQ(rd16(d, 22), 23);
        const std::size_t rec = 16 + tset + 4;
        EXPECT_EQ(rd16(d, 16 + tset + 2), 4 + 76 + 16);
        EXPECT_EQ(rd64(d, rec + 76), 6000u);
        EXPECT_EQ(rd64(d, rec + 84), 8u);
        EXPECT_EQ(rd16(d, rec + 18), 0x1b) << "IN/OUT: flags of both directions";
    }
    {
        auto enc = make(EncoderOptions{.biflow = BiflowMode::OneWay});
        Collect out;
        enc->add(tcp4(), kClock, out);
        enc->flush(kClock, out);
        const Bytes& d = out.d[0];
        const std::size_t tset = rd16(d, 18);
        EXPECT_EQ(rd16(d, 20), 260);
        EXPECT_EQ(rd16(d, 16 + tset + 2), 4 + 2 * 76);
        const std::size_t r0 = 16 + tset + 4, r1 = r0 + 76;
        EXPECT_EQ(rd64(d, r0), 1000u);
        EXPECT_EQ(rd64(d, r1), 6000u);
        EXPECT_EQ(rd16(d, r1 + 20), 443);            // server's source port
        EXPECT_EQ(rd64(d, r1 + 54), 1700000001100ULL); // its own start time
        EXPECT_EQ(d[r0 + 71], 1);                    // biflowDirection initiator
        EXPECT_EQ(d[r1 + 71], 2);                    // reverse initiator
        EXPECT_EQ(rd32(d, 8), 0u);
    }
}

TEST(Ipfix, TooSmallMtuIsRejected)
{
    auto e = make_ipfix_encoder(EncoderOptions{.mtu = 400});
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message().find("MTU 400"), std::string::npos);
}

TEST(Ipfix, OverTcpMessagesArriveWholeAndInOrder)
{
    const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(lfd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::listen(lfd, 1), 0);
    ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const std::string ep = "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    auto ex = Exporter::create(ExportFormat::Ipfix, ep, ExporterOptions{});
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    const int cfd = ::accept(lfd, nullptr, nullptr);
    ASSERT_GE(cfd, 0);
    for (int i = 0; i < 100; ++i) {
        FlowRecord r = tcp4();
        r.key.port_b = uint16_t(30000 + i);
        ex.value()->export_flow(r);
    }
    ex.value()->flush();
    const ExporterStats st = ex.value()->stats();
    EXPECT_EQ(st.send_errors, 0u);
    Bytes stream;
    pollfd p{cfd, POLLIN, 0};
    while (stream.size() < st.bytes && ::poll(&p, 1, 1000) > 0) {
        uint8_t buf[65536];
        const ssize_t n = ::recv(cfd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        stream.insert(stream.end(), buf, buf + n);
    }
    ::close(cfd);
    ::close(lfd);
    ASSERT_EQ(stream.size(), st.bytes);
    // Walk the stream message by message: version, length and sequence.
    uint32_t msgs = 0, seq = 0;
    std::size_t at = 0;
    while (at < stream.size()) {
        ASSERT_EQ(rd16(stream, at), 10);
        const uint16_t mlen = rd16(stream, at + 2);
        EXPECT_EQ(rd32(stream, at + 8), seq);
        for (std::size_t s = at + 16; s < at + mlen; s += rd16(stream, s + 2))
            if (rd16(stream, s) == 256) seq += (rd16(stream, s + 2) - 4) / 113;
        at += mlen;
        ++msgs;
    }
    EXPECT_EQ(at, stream.size());
    EXPECT_EQ(msgs, st.datagrams);
    EXPECT_EQ(seq, 100u);
    EXPECT_NE(ex.value()->describe().find("tcp://127.0.0.1:"), std::string::npos);
}

TEST(Ipfix, TcpCollectorNotListeningIsAnError)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    ::close(fd); // bound, never listened: connect is refused
    auto ex = Exporter::create(ExportFormat::Ipfix, "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port)),
                               ExporterOptions{});
    ASSERT_FALSE(ex.ok());
    EXPECT_NE(ex.error().message().find("connect tcp://127.0.0.1:"), std::string::npos) << ex.error().message();
}

} // namespace
