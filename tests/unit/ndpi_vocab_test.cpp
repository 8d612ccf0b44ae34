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

#else

TEST(NdpiVocab, NamesAreLibndpis)
{
    GTEST_SKIP() << "this build has no libndpi (install libndpi-dev): names not checked against it";
}

#endif

} // namespace
