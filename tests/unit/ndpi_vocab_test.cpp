// weir/core/ndpi_vocab.hpp and micro-DPI's categories against libndpi
// itself: every category, risk and confidence name the exporters write, and
// the category each micro-DPI protocol gets, are what nDPI 4.2 (Debian's
// libndpi) gives. Skipped without libndpi or with another nDPI version (the
// tables are 4.2's).
#include <weir/core/ndpi_vocab.hpp>
#include <weir/engine/dpi/tls.hpp>
#include <weir/engine/dpi/types.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#if WEIR_TEST_HAVE_NDPI
#include <ndpi/ndpi_api.h>
#endif

namespace {

namespace v = weir::ndpi_vocab;

TEST(NdpiVocab, RiskNamesListEveryBitOnce)
{
    // Without libndpi: the table's own shape.
    EXPECT_EQ(v::risk_name(0), "");
    EXPECT_EQ(v::risk_name(5), "Known Protocol on Non Standard Port");
    EXPECT_EQ(v::risk_name(42), "");
    std::string all;
    v::for_each_risk(1ULL << 24 | 1ULL << 5 | 1ULL << 50, [&all](std::string_view n) {
        all += n;
        all += '|';
    });
    EXPECT_EQ(all, "Known Protocol on Non Standard Port|Missing SNI TLS Extension|risk 50|");
    EXPECT_EQ(v::category_name(5), "Web");
    EXPECT_EQ(v::category_id("Web"), 5);
    EXPECT_EQ(v::category_name(100), "Malware");
    EXPECT_EQ(v::category_id("Malware"), 100);
    EXPECT_EQ(v::category_name(50), "");
    EXPECT_EQ(v::category_id("no such category"), 0);
}

#if WEIR_TEST_HAVE_NDPI

struct Module {
    ndpi_detection_module_struct* mod = nullptr;
    Module()
    {
        mod = ndpi_init_detection_module(ndpi_no_prefs);
        if (!mod)
            return;
        NDPI_PROTOCOL_BITMASK all;
        NDPI_BITMASK_SET_ALL(all);
        ndpi_set_protocol_detection_bitmask2(mod, &all);
        ndpi_finalize_initialization(mod);
    }
    ~Module()
    {
        if (mod)
            ndpi_exit_detection_module(mod);
    }
};

bool is_4_2() { return std::string_view(ndpi_revision()).substr(0, 4) == "4.2."; }

TEST(NdpiVocab, NamesAreLibndpis)
{
    if (!is_4_2())
        GTEST_SKIP() << "the tables are nDPI 4.2's; this libndpi is " << ndpi_revision();
    Module m;
    ASSERT_NE(m.mod, nullptr);
    for (int id = 0; id < NDPI_PROTOCOL_NUM_CATEGORIES; ++id) {
        const char* n = ndpi_category_get_name(m.mod, static_cast<ndpi_protocol_category_t>(id));
        EXPECT_EQ(v::category_name(static_cast<uint16_t>(id)), std::string_view(n ? n : "")) << "category " << id;
    }
    for (int bit = 1; bit < NDPI_MAX_RISK; ++bit) {
        const char* n = ndpi_risk2str(static_cast<ndpi_risk_enum>(bit));
        EXPECT_EQ(v::risk_name(static_cast<unsigned>(bit)), std::string_view(n ? n : "")) << "risk " << bit;
    }
    EXPECT_EQ(v::kRiskNames.size(), static_cast<std::size_t>(NDPI_MAX_RISK));
    for (int c = 0; c < NDPI_CONFIDENCE_MAX; ++c)
        EXPECT_EQ(v::confidence_name(static_cast<uint8_t>(c)),
                  std::string_view(ndpi_confidence_get_name(static_cast<ndpi_confidence_t>(c))))
            << "confidence " << c;
    EXPECT_EQ(v::kConfidenceNames.size(), static_cast<std::size_t>(NDPI_CONFIDENCE_MAX));
    for (int m = NDPI_HTTP_METHOD_OPTIONS; m <= NDPI_HTTP_METHOD_CONNECT; ++m) {
        EXPECT_EQ(v::http_method_name(static_cast<uint8_t>(m)),
                  std::string_view(ndpi_http_method2str(static_cast<ndpi_http_method>(m))))
            << "method " << m;
        EXPECT_EQ(v::http_method_id(v::http_method_name(static_cast<uint8_t>(m))), m);
    }
    EXPECT_EQ(v::kHttpMethodNames.size(), static_cast<std::size_t>(NDPI_HTTP_METHOD_CONNECT) + 1);
    EXPECT_EQ(v::http_method_id("PROPFIND"), 0) << "nDPI 4.2 has no WebDAV methods";
}

TEST(NdpiVocab, RiskScoresAndCipherRatingsAreLibndpis)
{
    if (!is_4_2())
        GTEST_SKIP() << "the tables are nDPI 4.2's; this libndpi is " << ndpi_revision();
    uint64_t all = 0;
    for (int bit = 1; bit < NDPI_MAX_RISK; ++bit) {
        u_int16_t c = 0, s = 0;
        const u_int16_t score = ndpi_risk2score(static_cast<ndpi_risk>(1ULL << bit), &c, &s);
        EXPECT_EQ(v::kRiskScores[static_cast<std::size_t>(bit)], score) << "risk " << bit;
        EXPECT_EQ(v::risk_score(1ULL << bit), score) << "risk " << bit;
        all |= 1ULL << bit;
    }
    // Sets of risks: the sum, as libndpi.
    for (uint64_t set : std::initializer_list<uint64_t>{all, (1ULL << 15) | (1ULL << 24), (1ULL << 8) | (1ULL << 15) | (1ULL << 24), 1ULL << 12}) {
        u_int16_t c = 0, s = 0;
        EXPECT_EQ(v::risk_score(set), ndpi_risk2score(static_cast<ndpi_risk>(set), &c, &s)) << std::hex << set;
    }
    for (uint32_t cipher = 0; cipher <= 0xFFFF; ++cipher)
        ASSERT_EQ(weir::engine::dpi::tls_cipher_safety(static_cast<uint16_t>(cipher)),
                  ndpi_is_safe_ssl_cipher(cipher))
            << "cipher 0x" << std::hex << cipher;
}

TEST(NdpiVocab, MicroDpiCategoriesAreLibndpis)
{
    if (!is_4_2())
        GTEST_SKIP() << "the categories are nDPI 4.2's; this libndpi is " << ndpi_revision();
    Module m;
    ASSERT_NE(m.mod, nullptr);
    const auto protos = weir::engine::dpi::app_protocols();
    ASSERT_GE(protos.size(), 10u);
    for (auto p : protos) {
        ndpi_protocol np{};
        np.app_protocol = static_cast<uint16_t>(p);
        EXPECT_EQ(weir::engine::dpi::app_protocol_category(p), ndpi_get_proto_category(m.mod, np))
            << weir::engine::dpi::app_protocol_name(p);
        EXPECT_EQ(weir::engine::dpi::app_protocol_name(p),
                  std::string_view(ndpi_get_proto_name(m.mod, static_cast<uint16_t>(p))));
    }
}

// The port tables behind micro-DPI's "Known Protocol on Non Standard Port":
// every port of each port tree and each protocol's default ports, as libndpi
// has them.
TEST(NdpiVocab, PortTablesAreLibndpis)
{
    if (!is_4_2())
        GTEST_SKIP() << "the port tables are nDPI 4.2's; this libndpi is " << ndpi_revision();
    Module m;
    ASSERT_NE(m.mod, nullptr);
    std::vector<char> flow(ndpi_detection_get_sizeof_ndpi_flow_struct(), 0);
    unsigned listed = 0;
    for (uint8_t l4 : {uint8_t{6}, uint8_t{17}}) {
        for (uint32_t port = 1; port <= 0xFFFF; ++port) {
            u_int8_t user_defined = 0;
            const u_int16_t want = ndpi_guess_protocol_id(m.mod, reinterpret_cast<ndpi_flow_struct*>(flow.data()), l4,
                                                          static_cast<u_int16_t>(port), static_cast<u_int16_t>(port),
                                                          &user_defined);
            ASSERT_EQ(weir::engine::dpi::ndpi_port_protocol(l4, static_cast<uint16_t>(port)), want)
                << (l4 == 6 ? "tcp " : "udp ") << port;
            listed += want != 0;
        }
    }
    EXPECT_GT(listed, 100u);
    const ndpi_proto_defaults_t* defaults = ndpi_get_proto_defaults(m.mod);
    for (auto p : weir::engine::dpi::app_protocols()) {
        const auto& d = defaults[static_cast<uint16_t>(p)];
        for (uint8_t l4 : {uint8_t{6}, uint8_t{17}}) {
            const u_int16_t* want = l4 == 6 ? d.tcp_default_ports : d.udp_default_ports;
            const auto ours = weir::engine::dpi::app_protocol_default_ports(p, l4);
            for (int i = 0; i < MAX_DEFAULT_PORTS; ++i)
                EXPECT_EQ(i < 2 ? ours[static_cast<std::size_t>(i)] : 0, want[i])
                    << weir::engine::dpi::app_protocol_name(p) << (l4 == 6 ? " tcp " : " udp ") << i;
        }
    }
}

#else

TEST(NdpiVocab, NamesAreLibndpis)
{
    GTEST_SKIP() << "this build has no libndpi (install libndpi-dev): names not checked against it";
}

#endif

// micro-DPI's "Known Protocol on Non Standard Port", by nDPI 4.2's rule.
TEST(NdpiVocab, KnownProtocolOnNonStandardPort)
{
    using weir::engine::dpi::known_protocol_on_non_standard_port;
    constexpr uint16_t kHttp = 7, kTls = 91, kQuic = 188, kStun = 78, kWhatsAppCall = 45, kDtls = 30;
    // At home: the protocol's own default port, either side.
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kHttp, 80, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kHttp, 51000, 80));
    EXPECT_FALSE(known_protocol_on_non_standard_port(17, 0, kQuic, 443, 51000));
    // Neither port a default of any protocol, nor the protocol's own.
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kHttp, 1234, 51000));
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kTls, 4433, 51000));
    // A port of another protocol: 8080 is HTTP_Proxy's, 22 SSH's, 443/TCP TLS's.
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kHttp, 8080, 51000));
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kTls, 22, 51000));
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kHttp, 443, 51000));
    // The server's port is looked up first: SSH's 22 on the client side
    // does not count when the server's 443 is TLS's.
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kTls, 443, 22));
    // TLS on the mail ports (IMAPS, POPS, SMTPS): nDPI's exception.
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kTls, 993, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kTls, 995, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kTls, 465, 51000));
    EXPECT_TRUE(known_protocol_on_non_standard_port(6, 0, kHttp, 993, 51000));
    // Master.App: the master's default ports.
    EXPECT_FALSE(known_protocol_on_non_standard_port(17, kStun, kWhatsAppCall, 3478, 51000));
    EXPECT_TRUE(known_protocol_on_non_standard_port(17, kStun, kWhatsAppCall, 3479, 51000));
    // No default ports: at home anywhere; no protocol, no ports, not TCP/UDP: never.
    EXPECT_FALSE(known_protocol_on_non_standard_port(17, 0, kDtls, 4444, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, 0, 1234, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(6, 0, kHttp, 0, 51000));
    EXPECT_FALSE(known_protocol_on_non_standard_port(132, 0, kHttp, 1234, 51000));
}

} // namespace
