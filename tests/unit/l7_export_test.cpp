// The L7 fields of a flow record in the JSON and ZMQ TLV outputs: nProbe's
// names, "master.app" ids, string escaping, and guesses kept apart.
#include <weir/exporters/flow_format.hpp>
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_decoder.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include <tlv_map.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <map>
#include <string>

using namespace weir;
using namespace weir::exporters;

namespace {

template <std::size_t N>
void put(char (&dst)[N], std::string_view s)
{
    ASSERT_LT(s.size(), N);
    std::memcpy(dst, s.data(), s.size());
    dst[s.size()] = '\0';
}

FlowRecord make_flow()
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 6;
    r.key.addr_a = {10, 0, 0, 1};
    r.key.addr_b = {192, 168, 1, 200};
    r.key.port_a = 40000;
    r.key.port_b = 80;
    r.client_is_a = 1;
    r.dir[0] = {5, 700, 1700000000'100000000ULL, 1700000003'900000000ULL, 0x1a, 64, 64, 0};
    r.dir[1] = {4, 5000, 1700000000'200000000ULL, 1700000004'500000000ULL, 0x12, 50, 50, 0};
    return r;
}

FlowRecord http_flow()
{
    FlowRecord r = make_flow();
    r.l7.app = 7;
    put(r.l7.name, "HTTP");
    put(r.l7.server_name, "www.example.org");
    // Quotes, a backslash, a control byte and invalid UTF-8 from the wire.
    put(r.l7.url, "www.example.org/a?q=\"x\\y\"\x01\xff");
    put(r.l7.user_agent, "curl/8.0 \"test\"");
    r.l7.http_method = 2; // GET
    r.l7.http_status = 200;
    return r;
}

using test::MapVisitor;

std::map<std::string, std::string> zmq_record(const FlowRecord& r)
{
    uint8_t buf[ZmqFlowEncoder::kMaxRecord + 2] = {1, 1};
    const std::size_t n = ZmqFlowEncoder::encode_record(r, buf + 2, sizeof(buf) - 2);
    EXPECT_GT(n, 0u);
    MapVisitor v;
    EXPECT_EQ(walk_tlv_records({buf, n + 2}, v).records, 1u);
    return v.records.empty() ? std::map<std::string, std::string>{} : v.records[0];
}

TEST(L7Export, JsonHttpFieldsAreEscaped)
{
    std::string line;
    append_json(http_flow(), line);
    auto j = nlohmann::json::parse(line); // throws, failing the test, on broken escaping
    EXPECT_EQ(j["L7_PROTO"], "7");
    EXPECT_EQ(j["L7_PROTO_NAME"], "HTTP");
    EXPECT_EQ(j["HTTP_HOST"], "www.example.org");
    EXPECT_EQ(j["HTTP_URL"], "www.example.org/a?q=\"x\\y\"\x01\xef\xbf\xbd");
    EXPECT_EQ(j["HTTP_USER_AGENT"], "curl/8.0 \"test\"");
    EXPECT_EQ(j["HTTP_METHOD"], "GET");
    EXPECT_EQ(j["HTTP_RET_CODE"], 200);
    EXPECT_FALSE(j.contains("L7_PROTO_GUESSED"));
    EXPECT_FALSE(j.contains("TLS_SERVER_NAME"));
}

TEST(L7Export, JsonTlsDnsGuessAndMasterApp)
{
    FlowRecord t = make_flow();
    t.l7.app = 91;
    put(t.l7.name, "TLS");
    put(t.l7.server_name, "sni.example.com");
    put(t.l7.ja3c, "2a26b1a62e40d25d4de3babc9d532f30");
    put(t.l7.ja3s, "ae53107a2e47ea20c72ac44821a728bf");
    put(t.l7.ja4, "t12d6707ht_2955a3196ffa_c83f907a73d3");
    std::string line;
    append_json(t, line);
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["TLS_SERVER_NAME"], "sni.example.com");
    EXPECT_EQ(j["JA3C_HASH"], "2a26b1a62e40d25d4de3babc9d532f30");
    EXPECT_EQ(j["JA3S_HASH"], "ae53107a2e47ea20c72ac44821a728bf");
    EXPECT_EQ(j["JA4C_HASH"], "t12d6707ht_2955a3196ffa_c83f907a73d3");

    FlowRecord d = make_flow();
    d.key.proto = 17;
    d.l7.master = 5;
    d.l7.app = 126;
    put(d.l7.name, "DNS.Google");
    d.l7.dns_qtype = 28;
    d.l7.dns_rcode = 3;
    put(d.l7.server_name, "www.google.com");
    line.clear();
    append_json(d, line);
    j = nlohmann::json::parse(line);
    EXPECT_EQ(j["L7_PROTO"], "5.126");
    EXPECT_EQ(j["L7_PROTO_NAME"], "DNS.Google");
    EXPECT_EQ(j["DNS_QUERY"], "www.google.com");
    EXPECT_EQ(j["DNS_QUERY_TYPE"], 28);
    EXPECT_EQ(j["DNS_RET_CODE"], 3);

    FlowRecord g = make_flow();
    g.l7.app = 7;
    g.l7.guessed = 1;
    put(g.l7.name, "HTTP");
    line.clear();
    append_json(g, line);
    j = nlohmann::json::parse(line);
    EXPECT_EQ(j["L7_PROTO"], "7");
    EXPECT_EQ(j["L7_PROTO_GUESSED"], true);

    line.clear();
    append_json(make_flow(), line);
    EXPECT_FALSE(nlohmann::json::parse(line).contains("L7_PROTO"));
}

TEST(L7Export, JsonCategoryConfidenceAndRisks)
{
    FlowRecord t = make_flow();
    t.l7.app = 91;
    put(t.l7.name, "TLS");
    t.l7.category = 5;
    t.l7.confidence = 4;
    t.l7.risk = 1ULL << 5 | 1ULL << 24;
    t.l7.risk_score = 100;
    std::string line;
    append_json(t, line);
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["L7_PROTO_CATEGORY"], "Web");
    EXPECT_EQ(j["L7_CONFIDENCE"], 4);
    EXPECT_EQ(j["L7_PROTO_RISK"], (1ULL << 5 | 1ULL << 24));
    EXPECT_EQ(j["L7_PROTO_RISK_NAME"], "Known Protocol on Non Standard Port,Missing SNI TLS Extension");
    EXPECT_EQ(j["L7_RISK_SCORE"], 100);

    // nDPI may flag a flow it could not name: the risks still go out.
    FlowRecord u = make_flow();
    u.l7.risk = 1ULL << 17;
    u.l7.risk_score = 10;
    line.clear();
    append_json(u, line);
    j = nlohmann::json::parse(line);
    EXPECT_FALSE(j.contains("L7_PROTO"));
    EXPECT_FALSE(j.contains("L7_CONFIDENCE"));
    EXPECT_EQ(j["L7_PROTO_RISK_NAME"], "Malformed Packet");

    // A port guess says so (nDPI's "Match by port"); no risks, no key.
    FlowRecord g = make_flow();
    g.l7.app = 7;
    g.l7.guessed = 1;
    g.l7.category = 5;
    g.l7.confidence = 1;
    put(g.l7.name, "HTTP");
    line.clear();
    append_json(g, line);
    j = nlohmann::json::parse(line);
    EXPECT_EQ(j["L7_CONFIDENCE"], 1);
    EXPECT_FALSE(j.contains("L7_PROTO_RISK"));
}

TEST(L7Export, TextLineShowsTheApplication)
{
    std::string line;
    append_text(make_flow(), line);
    EXPECT_EQ(line.find('['), std::string::npos) << "no L7 data, no brackets: " << line;

    FlowRecord t = make_flow();
    t.l7.master = 91;
    t.l7.app = 126;
    put(t.l7.name, "TLS.Google");
    t.l7.category = 5;
    put(t.l7.server_name, "www.goo\ngle.com"); // a control byte from the wire
    t.l7.risk = 1ULL << 5 | 1ULL << 24;
    t.l7.risk_score = 100;
    line.clear();
    append_text(t, line);
    EXPECT_NE(line.find(" end idle timeout [TLS.Google/Web] www.goo.gle.com risk 100: Known Protocol on Non "
                        "Standard Port, Missing SNI TLS Extension"),
              std::string::npos)
        << line;
    EXPECT_EQ(line.find('\n'), std::string::npos);

    FlowRecord g = make_flow();
    g.l7.app = 7;
    g.l7.guessed = 1;
    g.l7.category = 5;
    put(g.l7.name, "HTTP");
    line.clear();
    append_text(g, line);
    EXPECT_NE(line.find(" [HTTP/Web, by port]"), std::string::npos) << line;
}

TEST(L7Export, ZmqCarriesDetectedProtocolsOnly)
{
    auto rec = zmq_record(http_flow());
    EXPECT_EQ(rec["L7_PROTO"], "7");
    EXPECT_EQ(rec["L7_PROTO_NAME"], "HTTP");
    EXPECT_EQ(rec["HTTP_SITE"], "www.example.org");
    EXPECT_EQ(rec["HTTP_URL"], "www.example.org/a?q=\"x\\y\"\x01\xff"); // TLV strings are length-prefixed bytes
    EXPECT_EQ(rec["HTTP_USER_AGENT"], "curl/8.0 \"test\"");
    EXPECT_EQ(rec["HTTP_METHOD"], "GET");
    EXPECT_EQ(rec["HTTP_RET_CODE"], "200");

    FlowRecord t = make_flow();
    t.l7.master = 91;
    t.l7.app = 126;
    put(t.l7.name, "TLS");
    put(t.l7.server_name, "sni.example.com");
    put(t.l7.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    rec = zmq_record(t);
    EXPECT_EQ(rec["L7_PROTO"], "91.126");
    EXPECT_EQ(rec["TLS_SERVER_NAME"], "sni.example.com");
    EXPECT_EQ(rec["JA4C_HASH"], "t13d1516h2_8daaf6152771_e5627efa2ab1");
    EXPECT_EQ(rec.count("L7_PROTO_CATEGORY"), 0u) << "no category, no key";
    EXPECT_EQ(rec.count("L7_PROTO_RISK"), 0u);

    t.l7.category = 5;
    t.l7.confidence = 4;
    t.l7.risk = 1ULL << 24;
    t.l7.risk_score = 50;
    rec = zmq_record(t);
    EXPECT_EQ(rec["L7_PROTO_CATEGORY"], "Web");
    EXPECT_EQ(rec["L7_CONFIDENCE"], "4");
    EXPECT_EQ(rec["L7_PROTO_RISK"], std::to_string(1ULL << 24));
    EXPECT_EQ(rec.count("L7_PROTO_RISK_NAME"), 0u) << "ntopng names the risks from the bitmap";
    EXPECT_EQ(rec["L7_RISK_SCORE"], "50");

    // A port guess is left to ntopng, which guesses by port itself.
    FlowRecord g = make_flow();
    g.l7.app = 7;
    g.l7.guessed = 1;
    put(g.l7.name, "HTTP");
    EXPECT_EQ(zmq_record(g).count("L7_PROTO"), 0u);

    // The longest L7 text still fits one record.
    FlowRecord big = http_flow();
    std::memset(big.l7.url, 'u', sizeof(big.l7.url) - 1);
    std::memset(big.l7.user_agent, 'a', sizeof(big.l7.user_agent) - 1);
    std::memset(big.l7.server_name, 's', sizeof(big.l7.server_name) - 1);
    std::memset(big.l7.name, 'n', sizeof(big.l7.name) - 1);
    big.key.ip_version = 6;
    big.key.vlan = 4000;
    big.client_mac = {1, 2, 3, 4, 5, 6};
    big.l7.risk = ~1ULL; // every risk nDPI 4.2 has and 22 newer bits
    big.l7.risk_score = 65535;
    big.l7.category = 20;
    big.l7.confidence = 4;
    rec = zmq_record(big);
    EXPECT_EQ(rec["HTTP_URL"].size(), sizeof(big.l7.url) - 1);
    EXPECT_EQ(rec["L7_PROTO_RISK"], std::to_string(~1ULL));
    EXPECT_EQ(rec["L7_RISK_SCORE"], "65535");
    EXPECT_EQ(rec["L7_PROTO_CATEGORY"], "User custom category 1");
}

} // namespace
