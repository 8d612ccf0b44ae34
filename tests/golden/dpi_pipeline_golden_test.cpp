// Golden test of weir's DPI as the product runs it: each nDPI regression
// capture goes through the Pipeline in-process (one worker thread, so the
// reader's payload copies and the worker's DpiStage are both exercised,
// DPI level 1), and the L7 fields of the exported FlowRecords are compared
// with what nDPI 4.11-dev's ndpiReader printed for each flow
// (../shared/pcaps/ndpi/result), with the rules of dpi_golden_test.cpp:
// same fields, same flows in scope, >= 99 % agreement per field, and every
// difference listed in dpi_pipeline_known_differences.txt (a listed one that
// no longer occurs fails too). A 5-tuple exported as several records (idle
// or active timeout, TCP restart) takes each field from its earliest record
// that has it.
#include "dpi_golden_check.hpp"
#include "ndpi_result.hpp"

#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>
#include <weir/engine/dpi/ssh.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace weir::test::dpi_golden;
namespace dpi = weir::engine::dpi;

// ---------------------------------------------------------------- pipeline run

struct FlowDpi {
    uint64_t first_ns = 0;
    std::string name;                                ///< protocol name of the earliest detected record
    uint64_t name_ns = UINT64_MAX;
    std::map<std::string, std::string> fields;       ///< ndpiReader label -> value
    std::map<std::string, uint64_t> field_ns;        ///< first_ns of the record that gave the field
};

struct CaptureRun {
    std::map<MatchKey, FlowDpi> flows;
    std::string error;
    weir::engine::DpiStats dpi;
};

void take(FlowDpi& f, const std::string& label, const char* value, uint64_t first_ns)
{
    if (!value[0])
        return;
    auto it = f.field_ns.find(label);
    if (it != f.field_ns.end() && it->second <= first_ns)
        return;
    f.fields[label] = value;
    f.field_ns[label] = first_ns;
}

CaptureRun run_capture(const std::string& path)
{
    CaptureRun run;
    auto src = weir::dataplane::open_pcap_file(path);
    if (!src) {
        run.error = src.error().message();
        return run;
    }
    weir::engine::PipelineConfig cfg;
    cfg.workers = 1;
    cfg.table.capacity = 1u << 16;
    cfg.decoder.decap_tunnels = true;
    cfg.dpi.level = 1;
    cfg.dpi.packets_per_direction = kInspectPackets;
    cfg.ring_size = 1024;
    cfg.export_ring_size = 1024;
    // The sink runs on the export thread; run() returns after its last call.
    auto pipe = weir::engine::Pipeline::create(cfg, [&run](const weir::FlowRecord& r) {
        const auto& k = r.key;
        if (k.proto != 6 && k.proto != 17)
            return;
        auto& f = run.flows[make_key(k.proto, k.vlan, k.addr_a, k.port_a, k.addr_b, k.port_b)];
        const uint64_t t = r.first_ns();
        if (r.l7.guessed)
            return;
        if (r.l7.name[0] && t < f.name_ns) {
            f.name = r.l7.name;
            f.name_ns = t;
        }
        take(f, "Hostname/SNI", r.l7.server_name, t);
        take(f, "JA3C", r.l7.ja3c, t);
        take(f, "JA4", r.l7.ja4, t);
        take(f, "JA3S", r.l7.ja3s, t);
        take(f, "URL", r.l7.url, t);
        take(f, "User-Agent", r.l7.user_agent, t);
    });
    if (!pipe) {
        run.error = pipe.error().message();
        return run;
    }
    auto st = (*pipe)->run(**src);
    run.dpi = st.dpi;
    if (st.dpi_copies_dropped)
        run.error = std::to_string(st.dpi_copies_dropped) + " payload copies dropped in lossless mode";
    return run;
}

} // namespace

TEST(DpiPipelineGolden, ExportedFieldsMatchNdpiReader)
{
    check_against_ndpi(run_capture, {"dpi_pipeline_known_differences.txt", "WEIR_DPI_PIPELINE_GOLDEN_FIXTURE", "DPI pipeline golden", " (no record)"});
}

// STUN by protocol name: every flow ndpiReader names STUN (78/STUN,
// 78.x/STUN.Sub) in the captures that have one must be STUN in weir's
// export (micro-DPI's name "STUN" or "STUN.Sub"), unless listed in
// dpi_stun_known_differences.txt with its reason; a listed flow that now
// agrees fails too. Sub-protocols are compared through nDPI 4.2's names
// (a later nDPI renamed some) and reported, not required: nDPI also
// sub-classifies by address and by a cache shared between flows.
TEST(DpiPipelineGolden, StunFlowsMatchNdpiReader)
{
    const fs::path base = fs::path(WEIR_SHARED_DIR) / "pcaps" / "ndpi";
    if (!fs::is_directory(base / "pcap") || !fs::is_directory(base / "result"))
        GTEST_SKIP() << "nDPI captures not found under " << base;
    // nDPI 4.11's sub-protocol names -> micro-DPI's (nDPI 4.2's).
    const std::map<std::string, std::string> k42 = {
        {"Skype_TeamsCall", "SkypeCall"}, {"GoogleCall", "GoogleHangoutDuo"}, {"WhatsAppCall", "WhatsAppCall"},
        {"Zoom", "Zoom"}, {"FacebookVoip", "FacebookVoip"}, {"SignalVoip", "SignalVoip"}};
    std::vector<fs::path> captures;
    for (const auto& e : fs::directory_iterator(base / "pcap"))
        if (e.is_regular_file())
            captures.push_back(e.path());
    std::sort(captures.begin(), captures.end());
    std::vector<std::string> fixture_errors;
    auto known = read_known(fs::path(WEIR_SOURCE_DIR) / "tests/golden/dpi_stun_known_differences.txt", fixture_errors);
    for (const auto& e : fixture_errors)
        ADD_FAILURE() << "dpi_stun_known_differences.txt " << e;
    std::set<std::pair<std::string, std::string>> listed, seen;
    for (const auto& k : known)
        listed.insert({k.capture, k.flow});
    std::size_t stun = 0, named_stun = 0, with_sub = 0, sub_same = 0, files = 0;
    for (const auto& cap : captures) {
        const std::string name = cap.filename().string();
        auto res = weir::test::read_ndpi_result((base / "result" / (name + ".out")).string());
        ASSERT_TRUE(res) << name;
        bool any = false;
        for (const auto& f : res->flows)
            any = any || proto_names(f.proto).first == "STUN";
        if (!any)
            continue;
        ++files;
        const auto run = run_capture(cap.string());
        EXPECT_TRUE(run.error.empty()) << name << ": " << run.error;
        for (const auto& f : res->flows) {
            auto [master, app] = proto_names(f.proto);
            if (master != "STUN" || !f.src.ip_version || !f.dst.ip_version)
                continue;
            ++stun;
            std::string mine;
            auto it = run.flows.find(make_key(f.ip_proto, f.vlan, f.src.addr, f.src.port, f.dst.addr, f.dst.port));
            if (it != run.flows.end())
                mine = it->second.name;
            const bool ok = mine == "STUN" || mine.starts_with("STUN.");
            if (ok)
                ++named_stun;
            if (!app.empty() && k42.contains(app)) {
                ++with_sub;
                if (mine == "STUN." + k42.at(app))
                    ++sub_same;
            }
            const std::pair<std::string, std::string> id{name, flow_id(f)};
            if (ok)
                continue;
            seen.insert(id);
            if (!listed.contains(id)) {
                ADD_FAILURE() << "unlisted: " << name << " | " << id.second << ": nDPI '" << f.proto << "', weir '"
                              << mine << "'";
                if (std::getenv("WEIR_DPI_STUN_FIXTURE"))
                    std::printf("FIXTURE %s | %s | protocol | ? | nDPI '%s', micro-DPI '%s'\n", name.c_str(),
                                id.second.c_str(), f.proto.c_str(), mine.c_str());
            }
        }
    }
    for (const auto& k : known)
        if (!seen.contains({k.capture, k.flow}))
            ADD_FAILURE() << "dpi_stun_known_differences.txt line " << k.line << " is stale: " << k.capture << " | "
                          << k.flow;
    std::printf("STUN golden: %zu captures, %zu nDPI STUN flows, %zu named STUN by weir; sub-protocol %zu of %zu "
                "with a rule micro-DPI has\n",
                files, stun, named_stun, sub_same, with_sub);
    EXPECT_GT(stun, 0u);
}
