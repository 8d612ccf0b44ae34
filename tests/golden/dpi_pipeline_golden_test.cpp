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
