// Binary verdict batches (weir/abi/verdict_wire.h): the layout, header and
// record validation, canonical keys (the same as the JSON path's), and the
// text verdict file reader of weirctl "verdict load". Pure functions: no
// root, no kernel map.
#include <weir/dataplane/verdict_client.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace weir::dataplane;
using weir::FlowKey;

// The record layout is ABI: naturally aligned, no holes, no packing.
static_assert(sizeof(weir_vwire_hdr) == 16);
static_assert(offsetof(weir_vwire_hdr, count) == 4 && offsetof(weir_vwire_hdr, flags) == 8 &&
              offsetof(weir_vwire_hdr, rec_size) == 12);
static_assert(sizeof(weir_verdict_req) == 72);
static_assert(offsetof(weir_verdict_req, action) == 48 && offsetof(weir_verdict_req, flags) == 50 &&
              offsetof(weir_verdict_req, reason) == 52 && offsetof(weir_verdict_req, egress) == 56 &&
              offsetof(weir_verdict_req, shunt_after) == 60 && offsetof(weir_verdict_req, ttl_ms) == 64);
static_assert(alignof(weir_verdict_req) == 8);

namespace {

weir_vwire_hdr header(uint8_t op, uint32_t count, uint32_t flags = 0)
{
    weir_vwire_hdr h{};
    h.magic[0] = WEIR_VWIRE_MAGIC0;
    h.magic[1] = WEIR_VWIRE_MAGIC1;
    h.version = WEIR_VWIRE_VERSION;
    h.op = op;
    h.count = count;
    h.flags = flags;
    h.rec_size = sizeof(weir_verdict_req);
    return h;
}

std::string frame(const weir_vwire_hdr& h, const std::vector<weir_verdict_req>& recs)
{
    std::string f(reinterpret_cast<const char*>(&h), sizeof(h));
    f.append(reinterpret_cast<const char*>(recs.data()), recs.size() * sizeof(weir_verdict_req));
    return f;
}

std::string frame(uint8_t op, const std::vector<weir_verdict_req>& recs, uint32_t flags = 0)
{
    return frame(header(op, static_cast<uint32_t>(recs.size()), flags), recs);
}

weir_verdict_req rec4(const char* src, const char* dst, uint16_t sport, uint16_t dport, uint8_t action)
{
    weir_verdict_req r{};
    EXPECT_EQ(inet_pton(AF_INET, src, r.key.addr_a), 1);
    EXPECT_EQ(inet_pton(AF_INET, dst, r.key.addr_b), 1);
    r.key.port_a = sport;
    r.key.port_b = dport;
    r.key.proto = 6;
    r.key.ip_version = 4;
    r.action = action;
    return r;
}

std::string frame_error(const std::string& f)
{
    VerdictBatch b;
    auto r = parse_verdict_frame(f, b);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.error().context;
}

std::string size_error(const std::string& f, size_t max_items = WEIR_VWIRE_MAX_COUNT, size_t max_bytes = 1u << 28)
{
    auto r = verdict_frame_size(f, max_items, max_bytes);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.error().context;
}

bool key_eq(const FlowKey& a, const FlowKey& b)
{
    return a == b;
}

} // namespace

TEST(VerdictWire, FrameSizeFromHeader)
{
    const std::string f = frame(WEIR_VWIRE_OP_ADD, {rec4("10.0.0.1", "10.0.0.2", 1, 2, WEIR_VERDICT_DROP)});
    auto n = verdict_frame_size(f);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 16u + 72u);
    // Fewer bytes than the header: wait for more (0), not an error.
    for (size_t len = 0; len < 16; ++len) {
        auto s = verdict_frame_size(std::string_view(f).substr(0, len));
        ASSERT_TRUE(s.ok());
        EXPECT_EQ(*s, 0u);
    }
    // The header alone is enough to know the size.
    auto h = verdict_frame_size(std::string_view(f).substr(0, 16));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(*h, 88u);
}

TEST(VerdictWire, BadHeaders)
{
    auto with = [](auto change) {
        weir_vwire_hdr h = header(WEIR_VWIRE_OP_ADD, 1);
        change(h);
        return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
    };
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.magic[1] = 'X'; })).find("magic"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.version = 2; })).find("version 2"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.op = 0; })).find("op 0"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.op = 3; })).find("op 3"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.flags = 0x80; })).find("flags 0x80"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.rec_size = 64; })).find("record size 64"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.count = 0; })).find("0 records"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.count = WEIR_VWIRE_MAX_COUNT + 1; }), WEIR_VWIRE_MAX_COUNT,
                         SIZE_MAX)
                  .find("at most 4194304"),
              std::string::npos);
    // The default 256 MiB request limit holds fewer records than that.
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.count = WEIR_VWIRE_MAX_COUNT; })).find("at most 3728270"),
              std::string::npos);
    // Limits of the server: items and bytes.
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.count = 1001; }), 1000).find("at most 1000"), std::string::npos);
    EXPECT_NE(size_error(with([](weir_vwire_hdr& h) { h.count = 100; }), WEIR_VWIRE_MAX_COUNT, 16 + 72 * 99)
                  .find("at most 99"),
              std::string::npos);
    auto ok = verdict_frame_size(with([](weir_vwire_hdr& h) { h.count = 99; }), WEIR_VWIRE_MAX_COUNT, 16 + 72 * 99);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(*ok, size_t{16 + 72 * 99});
}

TEST(VerdictWire, AddDecodesAndCanonicalises)
{
    std::vector<weir_verdict_req> recs;
    // Given destination first: the server swaps it as make_flow_key does.
    weir_verdict_req a = rec4("10.0.0.9", "10.0.0.2", 443, 5555, WEIR_VERDICT_SHUNT);
    a.shunt_after = 10;
    a.ttl_ms = 1500;
    a.reason = 7;
    a.flags = WEIR_VERDICT_F_TCP_CONTROL;
    recs.push_back(a);
    weir_verdict_req d = rec4("10.0.0.1", "10.0.0.2", 1000, 80, WEIR_VERDICT_DIVERT);
    d.egress = 0;  // egress index 0 is a valid divert target
    recs.push_back(d);
    weir_verdict_req v6{};
    inet_pton(AF_INET6, "2001:db8::2", v6.key.addr_a);
    inet_pton(AF_INET6, "2001:db8::1", v6.key.addr_b);
    v6.key.port_a = 53;
    v6.key.port_b = 40000;
    v6.key.proto = 17;
    v6.key.ip_version = 6;
    v6.key.vlan = 100;
    v6.action = WEIR_VERDICT_DROP;
    recs.push_back(v6);

    VerdictBatch b;
    auto r = parse_verdict_frame(frame(WEIR_VWIRE_OP_ADD, recs), b);
    ASSERT_TRUE(r.ok()) << r.error().context;
    EXPECT_EQ(b.op, VerdictOp::Add);
    ASSERT_EQ(b.keys.size(), 3u);
    ASSERT_EQ(b.verdicts.size(), 3u);
    auto k0 = make_flow_key("10.0.0.9", "10.0.0.2", 443, 5555, 6);
    auto k1 = make_flow_key("10.0.0.1", "10.0.0.2", 1000, 80, 6);
    auto k2 = make_flow_key("2001:db8::2", "2001:db8::1", 53, 40000, 17, 100);
    ASSERT_TRUE(k0.ok() && k1.ok() && k2.ok());
    EXPECT_TRUE(key_eq(b.keys[0], *k0));
    EXPECT_TRUE(key_eq(b.keys[1], *k1));
    EXPECT_TRUE(key_eq(b.keys[2], *k2));
    EXPECT_EQ(b.keys[0].port_a, 5555);  // 10.0.0.2:5555 is side A
    EXPECT_EQ(b.verdicts[0].action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ(b.verdicts[0].shunt_after, 10u);
    EXPECT_EQ(b.verdicts[0].reason, 7);
    EXPECT_EQ(b.verdicts[0].flags, WEIR_VERDICT_F_TCP_CONTROL);
    EXPECT_EQ(b.verdicts[0].source, WEIR_VERDICT_SRC_API);
    EXPECT_EQ(b.ttl_ns[0], 1500000000u);
    EXPECT_EQ(b.verdicts[1].action, WEIR_VERDICT_DIVERT);
    EXPECT_EQ(b.ttl_ns[1], 0u);
    EXPECT_EQ(b.verdicts[2].action, WEIR_VERDICT_DROP);
}

TEST(VerdictWire, CanonicalKeyMatchesJsonPathForRandomKeys)
{
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
        weir_verdict_req r{};
        r.key.ip_version = (i & 1) ? 6 : 4;
        const int n = r.key.ip_version == 4 ? 4 : 16;
        for (int k = 0; k < n; ++k) {
            // Few distinct values so that equal addresses (port tie-break) occur.
            r.key.addr_a[k] = static_cast<uint8_t>(rng() % 3);
            r.key.addr_b[k] = static_cast<uint8_t>(rng() % 3);
        }
        r.key.port_a = static_cast<uint16_t>(rng() % 4);
        r.key.port_b = static_cast<uint16_t>(rng() % 4);
        r.key.proto = 17;
        r.action = WEIR_VERDICT_DROP;
        char s[64], d[64];
        inet_ntop(n == 4 ? AF_INET : AF_INET6, r.key.addr_a, s, sizeof(s));
        inet_ntop(n == 4 ? AF_INET : AF_INET6, r.key.addr_b, d, sizeof(d));
        auto want = make_flow_key(s, d, r.key.port_a, r.key.port_b, 17);
        ASSERT_TRUE(want.ok());
        VerdictBatch b;
        ASSERT_TRUE(parse_verdict_frame(frame(WEIR_VWIRE_OP_ADD, {r}), b).ok());
        ASSERT_TRUE(key_eq(b.keys[0], *want)) << s << " " << d;
    }
}

TEST(VerdictWire, BadRecordsRefuseTheWholeFrame)
{
    const weir_verdict_req good = rec4("10.0.0.1", "10.0.0.2", 1, 2, WEIR_VERDICT_DROP);
    auto bad_at_2 = [&](auto change) {
        std::vector<weir_verdict_req> recs(4, good);
        change(recs[2]);
        return frame_error(frame(WEIR_VWIRE_OP_ADD, recs));
    };
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.action = WEIR_VERDICT__MAX; }).rfind("record 2: unknown action", 0), 0u);
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.ip_version = 5; }), "record 2: ip_version must be 4 or 6");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.ip_version = 0; }), "record 2: ip_version must be 4 or 6");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.addr_b[9] = 1; }),
              "record 2: IPv4 address with bytes set past the first 4");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.vlan = 4096; }), "record 2: vlan over 4095");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.tunnel_type = 200; }), "record 2: unknown tunnel type");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.key.pad[1] = 1; }), "record 2: key padding not zero");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.pad1 = 1; }), "record 2: padding not zero");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.flags = 0x8; }), "record 2: unknown verdict flags");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.reason = 0x8000; }), "record 2: reason code over 32767");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.shunt_after = 3; }), "record 2: shunt_after applies to shunt only");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.egress = 3; }), "record 2: egress applies to divert only");
    EXPECT_EQ(bad_at_2([](weir_verdict_req& r) { r.ttl_ms = uint64_t{11} * 365 * 86400 * 1000; }),
              "record 2: ttl_ms over ten years");
}

TEST(VerdictWire, DelReadsOnlyTheKey)
{
    weir_verdict_req r = rec4("10.0.0.2", "10.0.0.1", 80, 1000, 0xff);  // action ignored
    r.egress = 9;
    VerdictBatch b;
    auto ok = parse_verdict_frame(frame(WEIR_VWIRE_OP_DEL, {r}, WEIR_VWIRE_F_NO_ENTRIES), b);
    ASSERT_TRUE(ok.ok()) << ok.error().context;
    EXPECT_EQ(b.op, VerdictOp::Del);
    EXPECT_EQ(b.flags, WEIR_VWIRE_F_NO_ENTRIES);
    ASSERT_EQ(b.keys.size(), 1u);
    EXPECT_TRUE(b.verdicts.empty());
    EXPECT_TRUE(key_eq(b.keys[0], make_flow_key("10.0.0.1", "10.0.0.2", 1000, 80, 6).value()));
    // The key is still checked.
    r.key.ip_version = 7;
    EXPECT_EQ(frame_error(frame(WEIR_VWIRE_OP_DEL, {r})), "record 0: ip_version must be 4 or 6");
}

TEST(VerdictWire, TruncatedAndOversizedFrames)
{
    const std::vector<weir_verdict_req> recs(3, rec4("10.0.0.1", "10.0.0.2", 1, 2, WEIR_VERDICT_DROP));
    const std::string f = frame(WEIR_VWIRE_OP_ADD, recs);
    for (size_t len : {size_t{0}, size_t{5}, size_t{16}, size_t{16 + 72}, f.size() - 1})
        EXPECT_EQ(frame_error(f.substr(0, len)).rfind("truncated binary frame", 0), 0u) << len;
    EXPECT_EQ(frame_error(f + "x"), "truncated binary frame: " + std::to_string(f.size() + 1) + " bytes of " +
                                        std::to_string(f.size()));
    // A header announcing more records than the server takes.
    VerdictBatch b;
    auto r = parse_verdict_frame(f, b, 2);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().context.find("at most 2"), std::string::npos);
}

TEST(VerdictWire, RandomBytesNeverCrash)
{
    std::mt19937 rng(11);
    const std::string good = frame(WEIR_VWIRE_OP_ADD, {rec4("10.0.0.1", "10.0.0.2", 1, 2, WEIR_VERDICT_DROP),
                                                       rec4("10.0.0.3", "10.0.0.4", 1, 2, WEIR_VERDICT_SHUNT)});
    int accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string f = good;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k)
            f[rng() % f.size()] = static_cast<char>(rng());
        if (rng() % 8 == 0)
            f.resize(rng() % f.size());
        VerdictBatch b;
        auto r = parse_verdict_frame(f, b);
        if (r.ok()) {
            ++accepted;
            ASSERT_EQ(b.keys.size(), 2u);
            for (const Verdict& v : b.verdicts)
                ASSERT_LT(v.action, WEIR_VERDICT__MAX);
        }
        (void)verdict_frame_size(f);
    }
    EXPECT_GT(accepted, 0);  // flips of the addresses are valid frames
}

TEST(VerdictFile, Lines)
{
    auto r = parse_verdict_line("10.0.0.2 10.0.0.1 443 5555 tcp shunt 10 60");
    ASSERT_TRUE(r.ok()) << r.error().context;
    ASSERT_TRUE(r->has_value());
    const weir_verdict_req& v = **r;
    EXPECT_EQ(v.key.ip_version, 4);
    EXPECT_EQ(v.key.addr_a[3], 2);  // as given: the server canonicalises
    EXPECT_EQ(v.key.port_a, 443);
    EXPECT_EQ(v.key.port_b, 5555);
    EXPECT_EQ(v.key.proto, 6);
    EXPECT_EQ(v.action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ(v.shunt_after, 10u);
    EXPECT_EQ(v.ttl_ms, 60000u);

    r = parse_verdict_line("2001:db8::1\t2001:db8::2 53 40000 udp divert 3 ttl=0.5 reason=9 vlan=7 tcp_control");
    ASSERT_TRUE(r.ok()) << r.error().context;
    EXPECT_EQ((*r)->key.ip_version, 6);
    EXPECT_EQ((*r)->key.proto, 17);
    EXPECT_EQ((*r)->action, WEIR_VERDICT_DIVERT);
    EXPECT_EQ((*r)->egress, 3u);
    EXPECT_EQ((*r)->ttl_ms, 500u);
    EXPECT_EQ((*r)->reason, 9);
    EXPECT_EQ((*r)->key.vlan, 7);
    EXPECT_EQ((*r)->flags, WEIR_VERDICT_F_TCP_CONTROL);

    r = parse_verdict_line("10.0.0.1 10.0.0.2 0 0 47 drop 30");  // a bare number on drop is the TTL
    ASSERT_TRUE(r.ok()) << r.error().context;
    EXPECT_EQ((*r)->key.proto, 47);
    EXPECT_EQ((*r)->ttl_ms, 30000u);

    for (const char* skip : {"", "   ", "# a comment", "  # indented comment"}) {
        auto s = parse_verdict_line(skip);
        ASSERT_TRUE(s.ok());
        EXPECT_FALSE(s->has_value()) << skip;
    }
    // Delete: only the five fields are read.
    r = parse_verdict_line("10.0.0.1 10.0.0.2 1 2 tcp", true);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->has_value());
    r = parse_verdict_line("10.0.0.1 10.0.0.2 1 2 tcp whatever else", true);
    ASSERT_TRUE(r.ok());
}

TEST(VerdictFile, BadLines)
{
    for (const char* line : {
             "10.0.0.1 10.0.0.2 1 2 tcp",            // no verdict
             "10.0.0.1 10.0.0.2 1 2 tcp block",      // unknown verdict
             "10.0.0.1 ::1 1 2 tcp drop",            // mixed versions
             "10.0.0.300 10.0.0.2 1 2 tcp drop",     // bad address
             "10.0.0.1 10.0.0.2 65536 2 tcp drop",   // port
             "10.0.0.1 10.0.0.2 1 2 xtp drop",       // proto
             "10.0.0.1 10.0.0.2 1 2 256 drop",       // proto number
             "10.0.0.1 10.0.0.2 1 2 tcp divert",     // divert without egress
             "10.0.0.1 10.0.0.2 1 2 tcp drop after=3",   // after on drop
             "10.0.0.1 10.0.0.2 1 2 tcp drop egress=3",  // egress on drop
             "10.0.0.1 10.0.0.2 1 2 tcp drop ttl=-1",
             "10.0.0.1 10.0.0.2 1 2 tcp drop ttl=1e12",
             "10.0.0.1 10.0.0.2 1 2 tcp drop reason=40000",
             "10.0.0.1 10.0.0.2 1 2 tcp drop vlan=5000",
             "10.0.0.1 10.0.0.2 1 2 tcp drop colour=red",
             "10.0.0.1 10.0.0.2 1 2 tcp shunt 10 60 70",  // a third bare number
             "10.0.0.1 10.0.0.2 1 2",                 // short, also for a delete
         }) {
        auto r = parse_verdict_line(line);
        EXPECT_FALSE(r.ok()) << line;
    }
    EXPECT_FALSE(parse_verdict_line("10.0.0.1 10.0.0.2 1 2", true).ok());
}
