// Verdict installation rate: directly with VerdictMap::install_batch()
// (bpf_map_update_batch into the LRU hash), one by one with install(), and
// through the verdict server's Unix socket with batched JSON requests
// (parse + canonicalise + install + reply), with one verdict per request,
// and with binary batches (weir/abi/verdict_wire.h, 65536 records a frame).
// Needs root (CAP_BPF); reports verdicts/s as items_per_second.
#include <weir/dataplane/verdict_client.hpp>
#include <weir/dataplane/verdict_map.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <benchmark/benchmark.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

using namespace weir::dataplane;

namespace {

constexpr uint32_t kBatch = 65536;

weir::FlowKey nth_key(uint32_t i)
{
    weir::FlowKey k;
    k.addr_a = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    k.addr_b = {172, 16, static_cast<uint8_t>(i >> 24), 1};
    k.port_a = static_cast<uint16_t>(1024 + i % 60000);
    k.port_b = 443;
    k.proto = 6;
    k.ip_version = 4;
    return k;
}

std::optional<VerdictMap> make_map(benchmark::State& state, uint32_t max_flows)
{
    if (!verdicts_supported()) {
        state.SkipWithError("built without libbpf");
        return std::nullopt;
    }
    VerdictMapOptions o;
    o.max_flows = max_flows;
    auto m = VerdictMap::create(o);
    if (!m.ok()) {
        state.SkipWithError(("VerdictMap: " + m.error().message() + " (needs root)").c_str());
        return std::nullopt;
    }
    return std::move(*m);
}

void BM_InstallBatchDirect(benchmark::State& state)
{
    const uint32_t max = 1u << 20;
    auto m = make_map(state, max);
    if (!m)
        return;
    std::vector<weir::FlowKey> keys(kBatch);
    std::vector<Verdict> vals(kBatch);
    uint32_t next = 0;
    for (auto _ : state) {
        state.PauseTiming();
        if (next + kBatch > max) {
            m.reset();
            m = make_map(state, max);
            if (!m)
                return;
            next = 0;
        }
        for (uint32_t i = 0; i < kBatch; ++i) {
            keys[i] = nth_key(next + i);
            vals[i] = Verdict{};
            vals[i].action = WEIR_VERDICT_SHUNT;
            vals[i].shunt_after = 10;
        }
        next += kBatch;
        state.ResumeTiming();
        auto n = m->install_batch(keys, vals);
        if (!n.ok() || *n != kBatch) {
            state.SkipWithError("install_batch failed");
            return;
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}
BENCHMARK(BM_InstallBatchDirect)->Iterations(32)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_InstallOneByOne(benchmark::State& state)
{
    auto m = make_map(state, 1u << 20);
    if (!m)
        return;
    uint32_t next = 0;
    Verdict v{};
    v.action = WEIR_VERDICT_DROP;
    for (auto _ : state) {
        if (!m->install(nth_key(next++), v).ok()) {
            state.SkipWithError("install failed");
            return;
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_InstallOneByOne)->Iterations(200000)->UseRealTime();

// One connection to the server; one request line per iteration.
class Client {
public:
    explicit Client(const std::string& path)
    {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~Client()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }

    // Sends the line (newline included) and returns the reply line.
    std::string ask(const std::string& line)
    {
        size_t off = 0;
        while (off < line.size()) {
            ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
            if (n <= 0)
                return {};
            off += static_cast<size_t>(n);
        }
        std::string reply;
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n <= 0)
                return {};
            reply.append(buf, static_cast<size_t>(n));
            if (reply.back() == '\n')
                return reply;
        }
    }

private:
    int fd_ = -1;
};

/// A VerdictServer (no sweeper) on v.sock in a new directory under /tmp;
/// stopped and the directory removed at scope exit. When it cannot start,
/// the benchmark is skipped with the reason and ok() is false.
class BenchServer {
public:
    BenchServer(benchmark::State& state, VerdictMap& m)
    {
        if (!mkdtemp(dir_)) {
            dir_[0] = '\0';
            state.SkipWithError("mkdtemp");
            return;
        }
        VerdictServerOptions o;
        o.unix_path = std::string(dir_) + "/v.sock";
        o.sweep_interval_ms = 0;
        path_ = o.unix_path;
        auto srv = VerdictServer::start(m, o);
        if (!srv.ok()) {
            state.SkipWithError(srv.error().message().c_str());
            return;
        }
        srv_ = std::move(srv.value());
    }
    ~BenchServer()
    {
        if (srv_)
            srv_->stop();
        if (dir_[0])
            rmdir(dir_);
    }
    BenchServer(const BenchServer&) = delete;
    BenchServer& operator=(const BenchServer&) = delete;

    bool ok() const { return srv_ != nullptr; }
    const std::string& path() const { return path_; }

private:
    char dir_[21] = "/tmp/wv-bench-XXXXXX";
    std::string path_;
    std::unique_ptr<VerdictServer> srv_;
};

std::string item_json(uint32_t i)
{
    const weir::FlowKey k = nth_key(i);
    return "{\"flow\":{\"src\":\"10." + std::to_string(k.addr_a[1]) + "." + std::to_string(k.addr_a[2]) + "." +
           std::to_string(k.addr_a[3]) + "\",\"dst\":\"172.16." + std::to_string(k.addr_b[2]) +
           ".1\",\"sport\":" + std::to_string(k.port_a) +
           ",\"dport\":443,\"proto\":\"tcp\"},\"verdict\":\"shunt\",\"after\":10,\"ttl\":600}";
}

void socket_bench(benchmark::State& state, uint32_t per_request)
{
    const uint32_t max = 1u << 21;
    auto m = make_map(state, max);
    if (!m)
        return;
    BenchServer srv(state, *m);
    if (!srv.ok())
        return;
    {
        Client c(srv.path());
        if (!c.ok()) {
            state.SkipWithError("connect");
        } else {
            uint32_t next = 0;
            std::string line;
            // Keys are printed in order: {"installed":N,"ok":true}.
            const std::string want = "{\"installed\":" + std::to_string(per_request) + ",\"ok\":true}\n";
            for (auto _ : state) {
                state.PauseTiming();
                if (next + per_request > max) {
                    state.SkipWithError("more iterations than the map holds");
                    break;
                }
                line = per_request == 1 ? "{\"op\":\"add\"," : "{\"op\":\"add\",\"items\":[";
                for (uint32_t i = 0; i < per_request; ++i) {
                    std::string it = item_json(next + i);
                    if (per_request == 1) {
                        line.append(it, 1, it.size() - 2);  // the item's fields at top level
                    } else {
                        if (i)
                            line += ',';
                        line += it;
                    }
                }
                line += per_request == 1 ? "}\n" : "]}\n";
                next += per_request;
                state.ResumeTiming();
                const std::string reply = c.ask(line);
                if (reply != want) {
                    state.SkipWithError(("unexpected reply: " + reply.substr(0, 200)).c_str());
                    break;
                }
            }
            state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * per_request);
            state.counters["request_bytes"] = static_cast<double>(line.size());
        }
    }
}

void BM_InstallViaSocketBatched(benchmark::State& state)
{
    socket_bench(state, static_cast<uint32_t>(state.range(0)));
}
BENCHMARK(BM_InstallViaSocketBatched)->Arg(10000)->Iterations(100)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_InstallViaSocketBatched)->Arg(100000)->Iterations(10)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_InstallViaSocketSingle(benchmark::State& state)
{
    socket_bench(state, 1);
}
BENCHMARK(BM_InstallViaSocketSingle)->Iterations(20000)->UseRealTime();

// Binary frames of kBatch records through the Unix socket: decode,
// validate, canonicalise (half the keys are given destination first),
// install_batch, JSON reply.
void BM_InstallViaSocketBinary(benchmark::State& state)
{
    const uint32_t max = 1u << 20;  // as BM_InstallBatchDirect: the LRU map's size matters
    auto m = make_map(state, max);
    if (!m)
        return;
    BenchServer srv(state, *m);
    if (!srv.ok())
        return;
    {
        auto c = VerdictClient::connect(srv.path());
        if (!c.ok()) {
            state.SkipWithError(("connect: " + c.error().message()).c_str());
        } else {
            std::vector<weir_verdict_req> recs(kBatch);
            uint32_t next = 0;
            const std::string want = "{\"installed\":" + std::to_string(kBatch) + ",\"ok\":true}";
            for (auto _ : state) {
                state.PauseTiming();
                if (next + kBatch > max) {
                    state.SkipWithError("more iterations than the map holds");
                    break;
                }
                for (uint32_t i = 0; i < kBatch; ++i) {
                    const weir::FlowKey k = nth_key(next + i);
                    weir_verdict_req& r = recs[i];
                    r = weir_verdict_req{};
                    std::memcpy(&r.key, &k, sizeof(r.key));
                    if (i & 1) {  // destination first: the server swaps it back
                        std::memcpy(r.key.addr_a, k.addr_b.data(), 16);
                        std::memcpy(r.key.addr_b, k.addr_a.data(), 16);
                        r.key.port_a = k.port_b;
                        r.key.port_b = k.port_a;
                    }
                    r.action = WEIR_VERDICT_SHUNT;
                    r.shunt_after = 10;
                    r.ttl_ms = 600000;
                }
                next += kBatch;
                state.ResumeTiming();
                auto reply = c->send_binary(WEIR_VWIRE_OP_ADD, recs);
                if (!reply.ok() || *reply != want) {
                    state.SkipWithError(("unexpected reply: " + (reply.ok() ? reply->substr(0, 200) : reply.error().message())).c_str());
                    break;
                }
            }
            state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
            state.counters["request_bytes"] = static_cast<double>(sizeof(weir_vwire_hdr) + kBatch * sizeof(weir_verdict_req));
        }
    }
}
BENCHMARK(BM_InstallViaSocketBinary)->Iterations(15)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
