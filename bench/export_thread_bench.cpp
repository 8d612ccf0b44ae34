// The export thread's share of a CPU at 1 M flows ending per second.
//
// A synthetic source sends one 64-byte UDP packet per new flow, one packet
// per microsecond, paced on the wall clock (1 M new flows per second, and
// packet time equal to the pacing), through the whole Pipeline (reader ->
// 1 worker -> export thread) with a 1 s idle timeout, so after the first
// second 1 M flows per second expire and reach the export thread. The
// export thread's CPU time (CLOCK_THREAD_CPUTIME_ID, read inside the sink)
// and the wall time are sampled at the 200,000th and the 1,800,000th
// exported flow (both expired by timeout, before the final flush):
//     share_at_1M = CPU time / wall time between the two samples
// is the fraction of one core the export thread used at that rate: popping
// the worker's ring, waiting while it is empty (spin, yield, then sleep),
// encoding, and the sendto() of each datagram.
//
// Sinks: Null (ring + call only), IPFIX RFC 5103 biflows, NetFlow v9 in/out
// and NetFlow v5, each over UDP to a socket on 127.0.0.1 that nobody reads
// (the kernel drops what does not fit; sendto() costs the same).
//
// Items: flows exported; the counters share_at_1M (fraction of a core) and
// export_ns_per_flow are what docs/performance.md reports.
#include <weir/engine/pipeline.hpp>
#include <weir/exporters/exporter.hpp>

#include "packet_builder.hpp"

#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

using namespace weir;
using namespace weir::engine;

namespace {

constexpr uint32_t kFlows = 3u << 20;          // packets = flows sent per run
constexpr uint64_t kT0 = 1700000000ULL * 1000000000ULL;
constexpr uint64_t kStepNs = 1000;             // 1 M new flows per second of packet time

uint64_t thread_cpu_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

// One new flow per packet: 10.a.b.c:port -> 192.0.2.1:53, built in place.
class NewFlowSource final : public PacketSource {
public:
    explicit NewFlowSource(uint32_t count) : count_(count)
    {
        proto_ = test::PacketBuilder().eth().ipv4("10.0.0.1", "192.0.2.1").udp(1024, 53).payload(std::string_view("weir-export-bench!")).build();
        buf_.resize(std::size_t{kBurst} * 64);
    }
    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        const auto now = std::chrono::steady_clock::now();
        if (sent_ == 0)
            start_ = now;
        const uint64_t due = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_).count()) / kStepNs + 1;
        n = std::min<uint64_t>({uint64_t(n), uint64_t(kBurst), uint64_t(count_ - sent_), due - std::min<uint64_t>(due, sent_)});
        for (uint32_t j = 0; j < n; ++j, ++sent_) {
            uint8_t* p = buf_.data() + std::size_t{j} * 64;
            std::memcpy(p, proto_.data(), proto_.size());
            const uint32_t i = sent_;
            p[27] = uint8_t(i >> 16); // source 10.x.y.z, z varies fastest
            p[28] = uint8_t(i >> 8);
            p[29] = uint8_t(i);
            out[j] = RawPacket{p, uint32_t(proto_.size()), uint32_t(proto_.size()), kT0 + uint64_t(i) * kStepNs, 1};
        }
        return n;
    }
    bool finished() const noexcept override { return sent_ >= count_; }
    std::optional<Error> error() const override { return std::nullopt; }
    SourceStats stats() const noexcept override { return {}; }
    std::vector<uint32_t> linktypes() const override { return {1}; }
    std::string describe() const override { return "new-flow generator"; }

private:
    static constexpr uint32_t kBurst = 32;
    uint32_t count_;
    uint32_t sent_ = 0;
    std::chrono::steady_clock::time_point start_;
    std::vector<uint8_t> proto_;
    std::vector<uint8_t> buf_;
};

// A bound UDP socket on 127.0.0.1 that is never read; returns its port.
struct Blackhole {
    int fd = -1;
    uint16_t port = 0;
    Blackhole()
    {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        socklen_t len = sizeof(a);
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~Blackhole() { close(fd); }
};

enum class Sink { Null, Ipfix, V9, V5 };

void run(benchmark::State& state, Sink kind)
{
    Blackhole hole;
    std::unique_ptr<exporters::Exporter> exp;
    if (kind != Sink::Null) {
        exporters::ExporterOptions eo;
        eo.encoder.biflow = kind == Sink::Ipfix ? exporters::BiflowMode::Rfc5103
                            : kind == Sink::V9  ? exporters::BiflowMode::InOut
                                                : exporters::BiflowMode::OneWay;
        const auto fmt = kind == Sink::Ipfix ? exporters::ExportFormat::Ipfix
                         : kind == Sink::V9  ? exporters::ExportFormat::NetflowV9
                                             : exporters::ExportFormat::NetflowV5;
        auto e = exporters::Exporter::create(fmt, "127.0.0.1:" + std::to_string(hole.port), eo);
        if (!e) {
            state.SkipWithError(e.error().message().c_str());
            return;
        }
        exp = std::move(e.value());
    }
    constexpr uint64_t kFrom = 200000, kTo = 1800000;
    double share_sum = 0, ns_sum = 0;
    uint64_t exported_total = 0;
    for (auto _ : state) {
        PipelineConfig cfg;
        cfg.workers = 1;
        cfg.table.capacity = 2u << 20;
        cfg.table.idle_timeout_ns = 1000000000ULL;
        cfg.tick_ns = 10000000ULL; // expire every 10 ms of packet time
        uint64_t flows = 0, cpu0 = 0, cpu1 = 0;
        std::chrono::steady_clock::time_point t0, t1;
        auto p = Pipeline::create(cfg, [&](const FlowRecord& r) {
            if (exp)
                exp->export_flow(r);
            else
                benchmark::DoNotOptimize(r.key.port_a);
            ++flows;
            if (flows == kFrom) {
                cpu0 = thread_cpu_ns();
                t0 = std::chrono::steady_clock::now();
            } else if (flows == kTo) {
                cpu1 = thread_cpu_ns();
                t1 = std::chrono::steady_clock::now();
            }
        });
        if (!p) {
            state.SkipWithError(p.error().message().c_str());
            return;
        }
        NewFlowSource src(kFlows);
        const PipelineStats st = p.value()->run(src);
        if (st.flows_exported != kFlows || st.exported_by_reason[uint32_t(EndReason::IdleTimeout)] < kTo) {
            state.SkipWithError("flows were lost, or too few expired before the end of the input");
            return;
        }
        const double wall_ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        share_sum += double(cpu1 - cpu0) / wall_ns;
        ns_sum += double(cpu1 - cpu0) / double(kTo - kFrom);
        exported_total += kTo - kFrom;
        state.SetIterationTime(wall_ns / 1e9);
    }
    if (exp) {
        exp->flush();
        const auto es = exp->stats();
        state.counters["flows_per_datagram"] = double(es.flows) / double(std::max<uint64_t>(1, es.datagrams));
    }
    state.SetItemsProcessed(int64_t(exported_total));
    state.counters["export_ns_per_flow"] = ns_sum / double(state.iterations());
    state.counters["share_at_1M"] = share_sum / double(state.iterations());
}

void BM_ExportThread_Null(benchmark::State& s) { run(s, Sink::Null); }
void BM_ExportThread_Ipfix(benchmark::State& s) { run(s, Sink::Ipfix); }
void BM_ExportThread_V9(benchmark::State& s) { run(s, Sink::V9); }
void BM_ExportThread_V5(benchmark::State& s) { run(s, Sink::V5); }

BENCHMARK(BM_ExportThread_Null)->Iterations(1)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_ExportThread_Ipfix)->Iterations(1)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_ExportThread_V9)->Iterations(1)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_ExportThread_V5)->Iterations(1)->Unit(benchmark::kMillisecond)->UseManualTime();

} // namespace

BENCHMARK_MAIN();
