// NetFlow v5 and v9 encoders against hand-built byte vectors: header
// fields, record layout, the 30-record and MTU limits, the 2^32 counter
// split, v9 templates, flowset padding, header count and sequence numbers.
#include <weir/exporters/exporter.hpp>
#include <weir/exporters/netflow.hpp>

#include <datagram_bytes.hpp>
#include <sample_flows.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

using namespace weir::test;

constexpr uint64_t kSec = 1000000000ULL;
constexpr uint64_t kMs = 1000000ULL;
constexpr uint64_t kBoot = 1700000000ULL * kSec; // 0x6553F100 s

// 192.0.2.1:40000 (client) <-> 198.51.100.2:443, client is key side B.
FlowRecord tcp4()
{
    return test::tcp4_flow(kBoot);
}

const ExportClock kClock{kBoot + 10005 * kMs, kBoot};

std::unique_ptr<Encoder> make(ExportFormat f, EncoderOptions o = {})
{
    auto e = make_encoder(f, o);
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message());
    return std::move(e.value());
}

TEST(NetflowV5, HeaderAndOneRecordPerDirection)
{
    EncoderOptions o;
    o.engine_type = 1;
    o.engine_id = 2;
    auto enc = make(ExportFormat::NetflowV5, o);
    Collect out;
    enc->add(tcp4(), kClock, out);
    EXPECT_TRUE(out.d.empty());
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);

    Be e;
    e.u16(5).u16(2).u32(10005).u32(0x6553F10A).u32(5000000).u32(0).u8(1).u8(2).u16(0);
    // client -> server
    e.raw({192, 0, 2, 1}).raw({198, 51, 100, 2}).u32(0).u16(0).u16(0).u32(10).u32(1000)
        .u32(1000).u32(2000).u16(40000).u16(443).u8(0).u8(0x1b).u8(6).u8(0).u16(0).u16(0).u8(0).u8(0).u16(0);
    // server -> client
    e.raw({198, 51, 100, 2}).raw({192, 0, 2, 1}).u32(0).u16(0).u16(0).u32(8).u32(6000)
        .u32(1100).u32(2500).u16(443).u16(40000).u8(0).u8(0x1a).u8(6).u8(0x20).u16(0).u16(0).u8(0).u8(0).u16(0);
    EXPECT_EQ(out.d[0], e.b);
    EXPECT_EQ(enc->stats().records, 2u);
    EXPECT_EQ(enc->stats().datagrams, 1u);
}

TEST(NetflowV5, ThirtyRecordsPerDatagramAndFlowSequence)
{
    EncoderOptions o;
    o.mtu = 1500;
    auto enc = make(ExportFormat::NetflowV5, o);
    Collect out;
    FlowRecord r = tcp4();
    r.dir[1] = {};
    for (int i = 0; i < 61; ++i) {
        r.key.port_b = uint16_t(1000 + i);
        enc->add(r, kClock, out);
    }
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 3u);
    EXPECT_EQ(out.d[0].size(), 24u + 30 * 48);
    EXPECT_EQ(out.d[1].size(), 24u + 30 * 48);
    EXPECT_EQ(out.d[2].size(), 24u + 48);
    EXPECT_EQ(rd16(out.d[0], 2), 30);
    EXPECT_EQ(rd16(out.d[2], 2), 1);
    // flow_sequence = flows (records) sent before this datagram.
    EXPECT_EQ(rd32(out.d[0], 16), 0u);
    EXPECT_EQ(rd32(out.d[1], 16), 30u);
    EXPECT_EQ(rd32(out.d[2], 16), 60u);
    // Records keep their order across the split: the 31st is port 1030.
    EXPECT_EQ(rd16(out.d[1], 24 + 32), 1030);
}

TEST(NetflowV5, MtuCapsRecordsPerDatagram)
{
    auto enc = make(ExportFormat::NetflowV5); // default MTU 1400: (1400-24)/48 = 28
    Collect out;
    FlowRecord r = tcp4();
    r.dir[1] = {};
    for (int i = 0; i < 29; ++i)
        enc->add(r, kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 2u);
    EXPECT_EQ(rd16(out.d[0], 2), 28);
    EXPECT_LE(out.d[0].size(), 1400u);
    EXPECT_EQ(rd16(out.d[1], 2), 1);
    EXPECT_FALSE(make_encoder(ExportFormat::NetflowV5, EncoderOptions{.mtu = 71}).ok());
}

TEST(NetflowV5, CountersAbove32BitsSplitIntoRecordsThatAddUp)
{
    auto enc = make(ExportFormat::NetflowV5, EncoderOptions{.mtu = 1500});
    Collect out;
    FlowRecord r = tcp4();
    r.dir[0].packets = 5000000000ULL;           // needs 2 records
    r.dir[0].bytes = (1ULL << 33) + 5;          // needs 3 records
    r.dir[1] = {};
    enc->add(r, kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    ASSERT_EQ(rd16(out.d[0], 2), 3);
    uint64_t p = 0, b = 0;
    for (int i = 0; i < 3; ++i) {
        const std::size_t at = 24 + i * 48;
        p += rd32(out.d[0], at + 16);
        b += rd32(out.d[0], at + 20);
        EXPECT_EQ(rd32(out.d[0], at + 24), 1000u) << "same First in every part";
    }
    EXPECT_EQ(p, 5000000000ULL);
    EXPECT_EQ(b, (1ULL << 33) + 5);
    EXPECT_EQ(enc->stats().split_records, 2u);
}

TEST(NetflowV5, Ipv6AndEmptyFlowsAreSkippedAndCounted)
{
    auto enc = make(ExportFormat::NetflowV5);
    Collect out;
    FlowRecord r = tcp4();
    r.key.ip_version = 6;
    enc->add(r, kClock, out);
    FlowRecord empty = tcp4();
    empty.dir = {};
    enc->add(empty, kClock, out);
    enc->flush(kClock, out);
    EXPECT_TRUE(out.d.empty());
    EXPECT_EQ(enc->stats().skipped_ipv6, 1u);
    EXPECT_EQ(enc->stats().skipped_empty, 1u);
}

TEST(NetflowV5, IcmpTypeCodeInDestinationPortAndTimesBeforeBootClamped)
{
    auto enc = make(ExportFormat::NetflowV5);
    Collect out;
    FlowRecord r = tcp4();
    r.key.proto = 1;
    r.key.port_a = 0x0800; // echo request, on the side that did not send it
    r.key.port_b = 0;
    r.dir[0].first_ns = kBoot - kSec;
    enc->add(r, kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    EXPECT_EQ(rd16(out.d[0], 24 + 32), 0);       // srcport
    EXPECT_EQ(rd16(out.d[0], 24 + 34), 0x0800);  // echo request
    EXPECT_EQ(rd16(out.d[0], 72 + 34), 0);       // echo reply
    EXPECT_EQ(rd32(out.d[0], 24 + 24), 0u);
    EXPECT_EQ(enc->stats().clamped_times, 1u);
}

// v9, InOut mode (the default: RFC 5103 needs enterprise numbers v9 lacks).
// IPv4 record: 83 bytes, so a one-record flowset needs one byte of padding.
Be v9_template(uint16_t id, bool v6)
{
    Be e;
    e.u16(id).u16(23);
    e.u16(1).u16(8).u16(2).u16(8).u16(4).u16(1).u16(5).u16(1).u16(6).u16(1).u16(7).u16(2).u16(11).u16(2);
    if (v6) e.u16(27).u16(16).u16(28).u16(16); else e.u16(8).u16(4).u16(12).u16(4);
    e.u16(10).u16(4).u16(14).u16(4).u16(58).u16(2).u16(56).u16(6).u16(80).u16(6).u16(22).u16(4).u16(21).u16(4)
        .u16(136).u16(1).u16(239).u16(1).u16(52).u16(1).u16(53).u16(1).u16(32).u16(2)
        .u16(23).u16(8).u16(24).u16(8);
    return e;
}

TEST(NetflowV9, TemplatesThenPaddedDataFlowSet)
{
    EncoderOptions o;
    o.domain_id = 0x01020304;
    auto enc = make(ExportFormat::NetflowV9, o);
    Collect out;
    enc->add(tcp4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);

    const Be t4 = v9_template(258, false), t6 = v9_template(259, true);
    Be e;
    // count = 2 template records + 1 data record; sequence 0 = first packet.
    e.u16(9).u16(3).u32(10005).u32(0x6553F10A).u32(0).u32(0x01020304);
    e.u16(0).u16(uint16_t(4 + t4.b.size() + t6.b.size()));
    e.b.insert(e.b.end(), t4.b.begin(), t4.b.end());
    e.b.insert(e.b.end(), t6.b.begin(), t6.b.end());
    e.u16(258).u16(88);
    e.u64(1000).u64(10).u8(6).u8(0).u8(0x1b | 0x1a).u16(40000).u16(443)
        .raw({192, 0, 2, 1}).raw({198, 51, 100, 2}).u32(0).u32(0).u16(7)
        .raw({2, 0, 0, 0, 0, 1}).raw({2, 0, 0, 0, 0, 2})
        .u32(1000).u32(2500)              // FIRST/LAST_SWITCHED of the whole flow
        .u8(3).u8(1).u8(60).u8(64).u16(0) // end reason, initiator, TTLs, ICMP
        .u64(6000).u64(8)                 // OUT_BYTES, OUT_PKTS
        .u8(0);                           // padding to 4 bytes
    EXPECT_EQ(out.d[0], e.b);
}

TEST(NetflowV9, SequenceCountsPacketsAndTemplatesRefreshEveryNPackets)
{
    EncoderOptions o;
    o.template_refresh_packets = 3;
    o.template_refresh_s = 0;
    o.biflow = BiflowMode::OneWay;
    auto enc = make(ExportFormat::NetflowV9, o);
    Collect out;
    for (int i = 0; i < 7; ++i) {
        enc->add(tcp4(), kClock, out); // two one-way records
        enc->flush(kClock, out);
    }
    ASSERT_EQ(out.d.size(), 7u);
    for (uint32_t i = 0; i < 7; ++i) {
        const Bytes& d = out.d[i];
        EXPECT_EQ(rd32(d, 12), i) << "v9 sequence counts export packets";
        const bool templ = i % 3 == 0;
        EXPECT_EQ(rd16(d, 20), templ ? 0 : 260) << "datagram " << i;
        EXPECT_EQ(rd16(d, 2), templ ? 4 : 2) << "count = template + data records";
        // Every flowset is 4-byte aligned and the lengths add up exactly.
        std::size_t at = 20;
        while (at < d.size()) {
            const uint16_t len = rd16(d, at + 2);
            ASSERT_EQ(len % 4, 0);
            ASSERT_GE(len, 4);
            at += len;
        }
        EXPECT_EQ(at, d.size());
    }
}

TEST(NetflowV9, TemplatesRefreshAfterTSeconds)
{
    EncoderOptions o;
    o.template_refresh_packets = 0;
    o.template_refresh_s = 30;
    auto enc = make(ExportFormat::NetflowV9, o);
    Collect out;
    for (uint64_t s : {10, 20, 39, 40, 41, 71}) {
        const ExportClock c{kBoot + s * kSec, kBoot};
        enc->add(tcp4(), c, out);
        enc->flush(c, out);
    }
    std::vector<bool> templ;
    for (const Bytes& d : out.d)
        templ.push_back(rd16(d, 20) == 0);
    EXPECT_EQ(templ, (std::vector<bool>{true, false, false, true, false, true}));
}

TEST(NetflowV9, DatagramsNeverExceedMtu)
{
    EncoderOptions o;
    o.mtu = 512;
    auto enc = make(ExportFormat::NetflowV9, o);
    Collect out;
    FlowRecord r6 = tcp4();
    r6.key.ip_version = 6;
    r6.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    r6.key.addr_b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint32_t data_records = 0;
    for (int i = 0; i < 100; ++i)
        enc->add(i % 3 ? tcp4() : r6, kClock, out);
    enc->flush(kClock, out);
    for (const Bytes& d : out.d) {
        EXPECT_LE(d.size(), 512u);
        data_records += rd16(d, 2) - (rd16(d, 20) == 0 ? 2 : 0);
    }
    EXPECT_EQ(data_records, 100u);
    EXPECT_FALSE(make_encoder(ExportFormat::NetflowV9, EncoderOptions{.mtu = 200}).ok());
}

// ---- Collector lists, transports and the Exporter, over real loopback sockets.

/// A UDP socket bound to a free loopback port, standing in for a collector.
class UdpCollector {
public:
    explicit UdpCollector(bool v6 = false)
    {
        fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
        int rcv = 8 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_loopback;
            len = sizeof(*a);
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof(*a);
        }
        ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0
            && getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
        port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    ~UdpCollector() { close(); }
    void close()
    {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] uint16_t port() const { return port_; }
    /// Every datagram that arrives within 200 ms of the previous one.
    std::vector<Bytes> drain()
    {
        std::vector<Bytes> out;
        pollfd p{fd_, POLLIN, 0};
        while (::poll(&p, 1, 200) > 0) {
            Bytes b(65536);
            const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
            if (n <= 0) break;
            b.resize(std::size_t(n));
            out.push_back(std::move(b));
        }
        return out;
    }

private:
    int fd_ = -1;
    bool ok_ = false;
    uint16_t port_ = 0;
};

/// Data records in IPFIX messages (template ids 256..261).
uint32_t ipfix_records(const std::vector<Bytes>& ds, uint32_t rec_len)
{
    uint32_t n = 0;
    for (const Bytes& d : ds) {
        for (std::size_t at = 16; at + 4 <= d.size(); at += rd16(d, at + 2)) {
            if (rd16(d, at) >= 256) n += (rd16(d, at + 2) - 4) / rec_len;
            if (rd16(d, at + 2) < 4) break;
        }
    }
    return n;
}

TEST(CollectorList, ParsesIpv4Ipv6AndNames)
{
    auto r = parse_collectors("127.0.0.1:2055,[::1]:4739,udp://localhost:9995", false);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ((*r)[0].port, 2055);
    EXPECT_EQ((*r)[0].addr.ss_family, AF_INET);
    EXPECT_EQ((*r)[1].addr.ss_family, AF_INET6);
    EXPECT_EQ((*r)[1].to_string(), "udp://[::1]:4739");
    EXPECT_EQ((*r)[2].port, 9995);
    auto t = parse_collectors("tcp://127.0.0.1:4739", true);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE((*t)[0].tcp);
}

TEST(CollectorList, ClearErrors)
{
    const struct { const char* in; const char* says; } bad[] = {
        {"", "empty collector list"},
        {"127.0.0.1", "missing ':port'"},
        {"127.0.0.1:0", "bad port '0'"},
        {"127.0.0.1:70000", "bad port '70000'"},
        {"127.0.0.1:20x", "bad port '20x'"},
        {"127.0.0.1:2055,", "empty entry"},
        {"::1:2055", "brackets"},
        {"[::1:2055", "missing ']'"},
        {":2055", "empty host"},
        {"tcp://127.0.0.1:4739", "only supported for IPFIX"},
        {"no-such-host.invalid:2055", "cannot resolve 'no-such-host.invalid'"},
    };
    for (const auto& b : bad) {
        auto r = parse_collectors(b.in, false);
        ASSERT_FALSE(r.ok()) << b.in;
        EXPECT_NE(r.error().message().find(b.says), std::string::npos) << b.in << " -> " << r.error().message();
    }
    EXPECT_FALSE(parse_biflow_mode("both").ok());
}

std::vector<FlowRecord> many_flows(int n)
{
    std::vector<FlowRecord> v;
    for (int i = 0; i < n; ++i) {
        FlowRecord r = tcp4();
        r.key.port_b = uint16_t(20000 + i);
        v.push_back(r);
    }
    return v;
}

TEST(Exporter, BalancesByFlowHashOrSendsToAll)
{
    UdpCollector a, b;
    ASSERT_TRUE(a.ok() && b.ok());
    const std::string list = "127.0.0.1:" + std::to_string(a.port()) + ",127.0.0.1:" + std::to_string(b.port());
    const auto flows = many_flows(200);
    uint32_t to_a = 0;
    for (const FlowRecord& r : flows)
        to_a += flow_hash(r.key) % 2 == 0;
    for (bool all : {false, true}) {
        ExporterOptions o;
        o.send_to_all = all;
        auto ex = Exporter::create(ExportFormat::Ipfix, list, o);
        ASSERT_TRUE(ex.ok()) << ex.error().message();
        for (const FlowRecord& r : flows)
            ex.value()->export_flow(r);
        ex.value()->flush();
        const uint32_t ra = ipfix_records(a.drain(), 113), rb = ipfix_records(b.drain(), 113);
        const ExporterStats st = ex.value()->stats();
        EXPECT_EQ(st.send_errors, 0u);
        EXPECT_EQ(st.flows, 200u);
        if (all) {
            EXPECT_EQ(ra, 200u);
            EXPECT_EQ(rb, 200u);
            EXPECT_EQ(st.records, 400u);
        } else {
            EXPECT_EQ(ra, to_a);
            EXPECT_EQ(rb, 200u - to_a);
            EXPECT_GT(to_a, 50u);
            EXPECT_EQ(st.records, 200u);
        }
        EXPECT_NE(ex.value()->describe().find(all ? "(to all)" : "(by flow hash)"), std::string::npos);
    }
}

TEST(Exporter, Ipv6CollectorAndMaxDelayFlush)
{
    UdpCollector c(true);
    if (!c.ok())
        GTEST_SKIP() << "no IPv6 loopback";
    ExporterOptions o;
    o.max_delay_ns = 1 * kSec;
    auto ex = Exporter::create(ExportFormat::NetflowV9, "[::1]:" + std::to_string(c.port()), o);
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    ex.value()->set_boot_ns(kBoot);
    FlowRecord r = tcp4();
    ex.value()->export_flow(r);
    EXPECT_TRUE(c.drain().empty()) << "one record waits for more";
    r.dir[0].last_ns += 2 * kSec; // packet time moves on: the waiting datagram leaves
    ex.value()->export_flow(r);
    const auto got = c.drain();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(rd16(got[0], 0), 9);
    EXPECT_EQ(rd32(got[0], 4), 4000u) << "sysUptime: from set_boot_ns to the newest flow end";
    ex.value()->flush();
    const auto last = c.drain();
    ASSERT_EQ(last.size(), 1u);
    EXPECT_EQ(rd32(last[0], 12), 1u) << "second export packet";
}

TEST(Exporter, SendErrorsAreCountedNotThrown)
{
    uint16_t port;
    {
        UdpCollector gone;
        ASSERT_TRUE(gone.ok());
        port = gone.port();
    } // closed: nothing listens there any more
    auto ex = Exporter::create(ExportFormat::NetflowV5, "127.0.0.1:" + std::to_string(port), ExporterOptions{});
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    for (int i = 0; i < 5; ++i) {
        ex.value()->export_flow(tcp4());
        ex.value()->flush();
    }
    const ExporterStats st = ex.value()->stats();
    // Loopback answers the first datagram with port unreachable; the
    // connected socket reports it on the following sends.
    EXPECT_GE(st.send_errors, 1u);
    EXPECT_EQ(st.datagrams + st.send_errors, 5u);
}

TEST(Exporter, MakeExportersFromCliOptions)
{
    UdpCollector c;
    ASSERT_TRUE(c.ok());
    ExportCliOptions o;
    o.v5 = "127.0.0.1:" + std::to_string(c.port());
    o.ipfix = o.v5;
    auto ex = make_exporters(o);
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    ASSERT_EQ(ex->size(), 2u);
    EXPECT_EQ((*ex)[0]->format(), ExportFormat::NetflowV5);
    EXPECT_EQ((*ex)[1]->format(), ExportFormat::Ipfix);
    o.v9 = "127.0.0.1:99999";
    auto bad = make_exporters(o);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message().rfind("--v9: ", 0), 0u) << bad.error().message();
    o.v9.clear();
    o.biflow = "sideways";
    EXPECT_FALSE(make_exporters(o).ok());
    o.biflow = "oneway";
    o.mtu = 100;
    auto small = make_exporters(o);
    ASSERT_FALSE(small.ok());
    EXPECT_NE(small.error().message().find("MTU 100"), std::string::npos) << small.error().message();
}

} // namespace
