// weir-collector against bad input: random bytes, wrong framing, wrong header
// lengths and versions, truncated TLV, bad zlib and zlib bombs are counted,
// logged and survived; good messages around them still come out as flows,
// and msg_id gaps are counted per source as ntopng counts them.
#include <weir/exporters/zmq_encoder.hpp>

#include <loopback.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>
#include <zmq.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace weir;
using namespace weir::exporters;

namespace {

const std::string kCollector = std::string(WEIR_BINARY_DIR) + "/tools/weir-collector";

/// weir-collector in a child process, connecting (probe mode) to an XPUB
/// socket of the test's own: the test sends raw frames on `sock` and
/// reads the collector's JSON flows (`out`) and statistics once it exits.
class CollectorRun {
public:
    /// Forks weir-collector writing `name`_flows.json / `name`_stats.json
    /// in the test's temp directory; it stops 1 s after the last message.
    explicit CollectorRun(const std::string& name)
        : out(::testing::TempDir() + "/" + name + "_flows.json"),
          stats(::testing::TempDir() + "/" + name + "_stats.json"),
          ep_("tcp://127.0.0.1:" + std::to_string(weir::test::free_tcp_port()))
    {
        pid_ = fork();
        if (pid_ == 0) {
            const std::string bind = ep_ + "c";
            execl(kCollector.c_str(), "weir-collector", "-i", bind.c_str(), "--json", out.c_str(), "--stats",
                  stats.c_str(), "--idle", "1", "--timeout", "20", "--max-decompressed", "65536",
                  static_cast<char*>(nullptr));
            _exit(127);
        }
    }
    // After a failed assertion: no collector left behind, and no wait for
    // messages it will never read.
    ~CollectorRun()
    {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (sock) {
            const int zero = 0;
            zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
            zmq_close(sock);
        }
        if (ctx_)
            zmq_ctx_term(ctx_);
    }
    CollectorRun(const CollectorRun&) = delete;
    CollectorRun& operator=(const CollectorRun&) = delete;

    /// Connects the XPUB socket and waits for the collector's subscription,
    /// so nothing sent afterwards is lost to a slow join.
    void connect()
    {
        ASSERT_GE(pid_, 0);
        ctx_ = zmq_ctx_new();
        sock = zmq_socket(ctx_, ZMQ_XPUB);
        ASSERT_EQ(zmq_connect(sock, ep_.c_str()), 0);
        const int rcvtimeo = 10000;
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &rcvtimeo, sizeof(rcvtimeo));
        uint8_t sub[64];
        ASSERT_GT(zmq_recv(sock, sub, sizeof(sub), 0), 0) << "collector never subscribed";
    }

    /// Waits for the collector to exit (idle timer) and checks it exited 0;
    /// `js` gets its statistics.
    void finish(nlohmann::json& js)
    {
        int status = 0;
        ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
        pid_ = -1;
        zmq_close(sock);
        sock = nullptr;
        zmq_ctx_term(ctx_);
        ctx_ = nullptr;
        ASSERT_TRUE(WIFEXITED(status)) << "collector died with signal " << WTERMSIG(status);
        ASSERT_EQ(WEXITSTATUS(status), 0);
        std::ifstream sf(stats);
        ASSERT_TRUE(sf.good());
        js = nlohmann::json::parse(sf);
    }

    const std::string out;
    const std::string stats;
    void* sock = nullptr;

private:
    std::string ep_;
    pid_t pid_ = -1;
    void* ctx_ = nullptr;
};

std::vector<uint8_t> header(std::string_view topic, uint8_t version, uint8_t flags, uint32_t size, uint32_t msg_id,
                            uint32_t source_id)
{
    ZmqHeader h;
    std::memcpy(h.topic.data(), topic.data(), topic.size());
    h.version = version;
    h.flags = flags;
    h.uncompressed_size = size;
    h.size_field = size;
    h.msg_id = msg_id;
    h.source_id = source_id;
    std::vector<uint8_t> b(kZmqHeaderSize);
    write_zmq_header(h, std::span<uint8_t, kZmqHeaderSize>(b.data(), kZmqHeaderSize));
    return b;
}

void send_frames(void* s, const std::vector<std::vector<uint8_t>>& frames)
{
    for (std::size_t i = 0; i < frames.size(); ++i)
        ASSERT_GE(zmq_send(s, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0), 0);
}

struct Sink final : ZmqMessageSink {
    void* sock;
    explicit Sink(void* s) : sock(s) {}
    void on_message(std::span<const uint8_t> h, std::span<const uint8_t> p, uint32_t) noexcept override
    {
        zmq_send(sock, h.data(), h.size(), ZMQ_SNDMORE);
        zmq_send(sock, p.data(), p.size(), 0);
    }
};

FlowRecord flow(uint8_t n)
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 17;
    r.key.addr_a = {10, 1, 1, n};
    r.key.addr_b = {10, 2, 2, 2};
    r.key.port_a = 5000;
    r.key.port_b = 53;
    r.dir[0] = {1, 80, 1700000000000000000ULL, 1700000000000000000ULL, 0, 0, 0, 0};
    r.dir[1] = {1, 120, 1700000000100000000ULL, 1700000000100000000ULL, 0, 0, 0, 0};
    return r;
}

} // namespace

TEST(ZmqCollector, SurvivesAndCountsBadInput)
{
    if (access(kCollector.c_str(), X_OK) != 0)
        GTEST_SKIP() << kCollector << " not built";
    CollectorRun run("zmq_collector");
    ASSERT_NO_FATAL_FAILURE(run.connect());
    void* s = run.sock;

    const uint32_t src = 77;
    uint32_t id = 1;
    // 1. One frame of random bytes, then three frames: framing errors.
    send_frames(s, {{0x66, 0x6c, 0x6f, 0x77, 1, 2, 3}});
    send_frames(s, {header("flow", 4, kZmqFlagTlv, 0, id++, src), {1, 1, 1}, {1}});
    // 2. A 30-byte header, then a version-5 header.
    std::vector<uint8_t> h30(30, 0);
    std::memcpy(h30.data(), "flow", 4);
    send_frames(s, {h30, {1, 1, 1}});
    send_frames(s, {header("flow", 5, kZmqFlagTlv, 3, id++, src), {1, 1, 1}});
    // 3. TLV cut inside an address string; then a payload with a bad preamble.
    send_frames(s, {header("flow", 4, kZmqFlagTlv, 8, id++, src), {1, 1, 0x2b, 8, 0, 12, '1', '9'}});
    send_frames(s, {header("flow", 4, kZmqFlagTlv, 4, id++, src), {9, 9, 9, 9}});
    // 4. A zlib bomb (1 MiB of zeros, above --max-decompressed) and junk flagged as zlib.
    std::vector<uint8_t> zeros(1 << 20, 0);
    uLongf zl = compressBound(zeros.size());
    std::vector<uint8_t> bomb(zl);
    ASSERT_EQ(compress(bomb.data(), &zl, zeros.data(), zeros.size()), Z_OK);
    bomb.resize(zl);
    send_frames(s, {header("flow", 4, kZmqFlagTlv | kZmqFlagCompressed, 1 << 20, id++, src), bomb});
    send_frames(s, {header("flow", 4, kZmqFlagTlv | kZmqFlagCompressed, 1000, id++, src),
                    std::vector<uint8_t>(500, 0x5a)});
    // 5. Random two-frame messages, some with a plausible header. Each
    //    starts with a topic: SUB sockets filter on the first frame's prefix.
    std::mt19937 rng(12345);
    for (int k = 0; k < 300; ++k) {
        std::vector<uint8_t> h(k % 3 == 0 ? kZmqHeaderSize : 4 + rng() % 60);
        for (auto& b : h)
            b = static_cast<uint8_t>(rng());
        std::memcpy(h.data(), "flow", 4);
        if (k % 3 == 0)
            h = header("flow", 4, static_cast<uint8_t>(rng() & 6), rng() % 70000, 0, 1000 + k);
        std::vector<uint8_t> p(rng() % 2048);
        for (auto& b : p)
            b = static_cast<uint8_t>(rng());
        if (p.size() > 2 && k % 2 == 0)
            p[0] = 1, p[1] = 1;
        send_frames(s, {h, p});
    }
    // 6. Good messages from the encoder (source 99: msg_id 1, 2), then one
    //    with msg_id 5 from the same source: a gap of 2.
    ZmqEncoderOptions eo;
    eo.source_id = 99;
    eo.compress = true;
    auto enc = ZmqFlowEncoder::create(eo);
    ASSERT_TRUE(enc);
    Sink sink(s);
    enc.value()->add(flow(1), sink);
    enc.value()->flush(sink);
    enc.value()->add(flow(2), sink);
    enc.value()->flush(sink);
    send_frames(s, {header("event", 4, 0, 2, 5, 99), {'{', '}'}});

    nlohmann::json js;
    ASSERT_NO_FATAL_FAILURE(run.finish(js));
    const auto& e = js["errors"];
    EXPECT_EQ(e["framing"].get<int>(), 2);
    EXPECT_GE(e["bad header length"].get<int>(), 1);
    EXPECT_GE(e["unsupported header version"].get<int>(), 1);
    EXPECT_GE(e["bad TLV"].get<int>(), 2);
    EXPECT_GE(e["decompressed payload above the limit"].get<int>(), 1);
    EXPECT_GE(e["bad zlib stream"].get<int>(), 1);
    EXPECT_EQ(js["messages"].get<int>(), 8 + 300 + 3);
    bool found = false;
    for (const auto& srcs : js["sources"]) {
        if (srcs["source_id"].get<int>() != 99)
            continue;
        found = true;
        EXPECT_EQ(srcs["flows"].get<int>(), 2);
        EXPECT_EQ(srcs["msg_id_gaps"].get<int>(), 2);
        EXPECT_EQ(srcs["event_messages"].get<int>(), 1);
    }
    EXPECT_TRUE(found);
    // The good flows are in the output, whatever the random messages did.
    std::ifstream of(run.out);
    std::string line;
    int good = 0;
    while (std::getline(of, line)) {
        const auto f = nlohmann::json::parse(line); // every line is valid JSON
        if (f.value("ZMQ_SOURCE_ID", 0) == 99) {
            EXPECT_EQ(f["IPV4_DST_ADDR"], "10.2.2.2");
            EXPECT_EQ(f["IN_BYTES"], 80);
            EXPECT_EQ(f["OUT_PKTS"], 1);
            ++good;
        }
    }
    EXPECT_EQ(good, 2);
}

// JSON flow payloads (nProbe's form, as weir --zmq-format json sends them):
// numeric keys, labels and zlib are decoded into the same JSON lines as TLV;
// bad JSON, nested values and a JSON zlib bomb are counted and survived; the
// statistics say which format each flow message had.
TEST(ZmqCollector, JsonFlowsDecodedAndBadJsonCounted)
{
    if (access(kCollector.c_str(), X_OK) != 0)
        GTEST_SKIP() << kCollector << " not built";
    CollectorRun run("zmq_collector_json");
    ASSERT_NO_FATAL_FAILURE(run.connect());
    void* s = run.sock;

    Sink sink(s);
    // Source 11: numeric keys, plain; source 12: labels, zlib; 2 + 2 flows.
    for (const auto& [src, fmt, z] : {std::tuple{11u, ZmqPayloadFormat::Json, false},
                                      std::tuple{12u, ZmqPayloadFormat::JsonLabels, true}}) {
        ZmqEncoderOptions eo;
        eo.source_id = src;
        eo.format = fmt;
        eo.compress = z;
        auto enc = ZmqFlowEncoder::create(eo);
        ASSERT_TRUE(enc);
        enc.value()->add(flow(1), sink);
        enc.value()->add(flow(2), sink);
        enc.value()->flush(sink);
    }
    // Bad JSON (source 13): garbage, a nested value after one good object,
    // an unterminated array, a JSON zlib bomb, and 100 random byte strings.
    const uint32_t bad_src = 13;
    uint32_t id = 1;
    auto text = [](std::string_view t) { return std::vector<uint8_t>(t.begin(), t.end()); };
    send_frames(s, {header("flow", 4, 0, 5, id++, bad_src), text("hello")});
    send_frames(s, {header("flow", 4, 0, 40, id++, bad_src),
                    text(R"([{"8":"10.9.9.9","2":1},{"8":{"x":1}}])")});
    send_frames(s, {header("flow", 4, 0, 10, id++, bad_src), text(R"([{"8":"1")")});
    std::string spaces = "[";
    spaces.append(1 << 20, ' ');
    spaces += "]";
    uLongf zl = compressBound(spaces.size());
    std::vector<uint8_t> bomb(zl);
    ASSERT_EQ(compress(bomb.data(), &zl, reinterpret_cast<const Bytef*>(spaces.data()), spaces.size()), Z_OK);
    bomb.resize(zl);
    send_frames(s, {header("flow", 4, kZmqFlagCompressed, 1 << 20, id++, bad_src), bomb});
    std::mt19937 rng(777);
    for (int k = 0; k < 100; ++k) {
        std::vector<uint8_t> p(1 + rng() % 512);
        for (auto& b : p)
            b = static_cast<uint8_t>("[]{}\",:0123456789.-eE \\u\"truefalsenull"[rng() % 38]);
        send_frames(s, {header("flow", 4, 0, static_cast<uint32_t>(p.size()), id++, bad_src), p});
    }

    nlohmann::json js;
    ASSERT_NO_FATAL_FAILURE(run.finish(js));
    EXPECT_EQ(js["messages"].get<int>(), 2 + 4 + 100);
    EXPECT_EQ(js["flow_formats"]["json"].get<int>(), 2 + 3 + 100); // the bomb never got decompressed
    EXPECT_EQ(js["flow_formats"]["tlv"].get<int>(), 0);
    EXPECT_GE(js["errors"]["bad JSON"].get<int>(), 3);
    EXPECT_EQ(js["errors"]["decompressed payload above the limit"].get<int>(), 1);
    EXPECT_EQ(js["errors"]["json_flows"].get<int>(), 0);
    for (const auto& src : js["sources"]) {
        const int sid = src["source_id"].get<int>();
        if (sid == 11 || sid == 12) {
            EXPECT_EQ(src["flows"].get<int>(), 2) << sid;
            EXPECT_EQ(src["json_flow_messages"].get<int>(), 1) << sid;
        }
    }
    std::ifstream of(run.out);
    std::string line;
    int good = 0;
    while (std::getline(of, line)) {
        const auto f = nlohmann::json::parse(line); // every line is valid JSON
        const int sid = f.value("ZMQ_SOURCE_ID", 0);
        if (sid == 11 || sid == 12) {
            // The same names and units as for TLV, whichever keys were sent.
            EXPECT_EQ(f["IPV4_DST_ADDR"], "10.2.2.2");
            EXPECT_EQ(f["IN_BYTES"], 80);
            EXPECT_EQ(f["OUT_PKTS"], 1);
            EXPECT_EQ(f["FIRST_SWITCHED"], 1700000000000ULL);
            ++good;
        }
        if (sid == 13 && f.contains("IPV4_SRC_ADDR") && f["IPV4_SRC_ADDR"] == "10.9.9.9")
            ++good; // the object before the nested value
    }
    EXPECT_EQ(good, 5);
}
