// Capture file reading: frames handed out per second by open_pcap_file()
// (classic pcap read() into a reused buffer, frames parsed in place) and by
// the merge of two files, for several read-buffer sizes and burst sizes.
// Each iteration opens the file and reads it to the end; every frame's
// EtherType is read, as the decoder would. The file is written once before
// the timed loops (so it is in the page cache): 400,000 frames of 60 to
// 1514 bytes (mean about 790), about 330 MB. WEIR_BENCH_PCAP=path reads that
// file instead (e.g. the 5 M-packet capture of make_bench_capture.py).
#include <weir/dataplane/packet_source.hpp>

#include "pcap_writer.hpp"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

using weir::RawPacket;
using weir::dataplane::PcapReadOptions;

constexpr uint32_t kFrames = 400'000;

// The file the benchmarks read: WEIR_BENCH_PCAP, or one written here once.
const std::string& capture_path()
{
    static std::unique_ptr<weir::test::TempPath> tmp;
    static std::string path;
    if (!path.empty())
        return path;
    if (const char* env = std::getenv("WEIR_BENCH_PCAP"); env && *env) {
        path = env;
        return path;
    }
    tmp = std::make_unique<weir::test::TempPath>();
    std::vector<uint8_t> bytes;
    weir::test::append_pcap_header(bytes);
    weir::test::PcapFrame f;
    for (uint32_t i = 0; i < kFrames; ++i) {
        f.data.assign(60 + (i * 7919u) % 1455u, static_cast<uint8_t>(i));
        f.data[12] = 0x08; // IPv4 EtherType
        f.data[13] = 0x00;
        f.ts_ns = 1'700'000'000'000'000'000ull + uint64_t{i} * 1000;
        weir::test::append_pcap_record(bytes, {}, f);
    }
    weir::test::write_file(tmp->path(), bytes);
    path = tmp->path();
    return path;
}

// Reads the whole source in bursts of `burst`; returns frames, adds bytes.
uint64_t drain(weir::PacketSource& src, uint32_t burst, uint64_t& bytes)
{
    std::vector<RawPacket> pk(burst);
    uint64_t frames = 0;
    unsigned ether = 0;
    for (;;) {
        const uint32_t n = src.rx_burst(pk.data(), burst);
        if (n == 0)
            break;
        for (uint32_t i = 0; i < n; ++i) {
            ether += pk[i].data[12];
            bytes += pk[i].caplen;
        }
        frames += n;
    }
    benchmark::DoNotOptimize(ether);
    return frames;
}

// Args: read-buffer KiB, burst.
void BM_PcapRead(benchmark::State& state)
{
    const std::string& path = capture_path();
    PcapReadOptions o;
    o.buffer_bytes = static_cast<size_t>(state.range(0)) << 10;
    const auto burst = static_cast<uint32_t>(state.range(1));
    uint64_t frames = 0, bytes = 0;
    for (auto _ : state) {
        auto src = weir::dataplane::open_pcap_file(path, o);
        if (!src) {
            state.SkipWithError(src.error().message().c_str());
            return;
        }
        frames += drain(*src.value(), burst, bytes);
    }
    state.SetItemsProcessed(static_cast<int64_t>(frames));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_PcapRead)
    ->ArgNames({"buffer_kib", "burst"})
    ->Args({4096, 32})
    ->Args({4096, 256})
    ->Args({1024, 32})
    ->Args({256, 32})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The two halves of a tap: the same file twice, merged by timestamp.
void BM_PcapReadMerge(benchmark::State& state)
{
    const std::string& path = capture_path();
    uint64_t frames = 0, bytes = 0;
    for (auto _ : state) {
        auto src = weir::dataplane::open_capture_files(path + "," + path);
        if (!src) {
            state.SkipWithError(src.error().message().c_str());
            return;
        }
        frames += drain(*src.value(), 32, bytes);
    }
    state.SetItemsProcessed(static_cast<int64_t>(frames));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_PcapReadMerge)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
