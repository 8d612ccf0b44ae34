// weir-gen end to end on veth pairs: the generator runs in the pair's
// namespace on the inner end, the counting XDP sink (weir-gen --sink) on the
// outer end, and every frame the generator reports sent must be counted by
// the sink: same packets, same bytes, the expected number of distinct flows
// with the expected packets each. The sink's sampled frames are decoded by
// tshark with checksum validation on. Needs root; skips without it or when
// weir-gen was not built (no clang/bpftool/libbpf/libxdp).
#include "netns.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using weir::test::sh;
using weir::test::VethPair;

const std::string kGen = WEIR_BINARY_DIR "/tools/weir-gen/weir-gen";

std::string tmp_path(const std::string& name)
{
    return "/tmp/weir_gen_test_" + std::to_string(getpid()) + "_" + name;
}

std::string slurp(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool exists(const std::string& path)
{
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

/// weir-gen --sink on `iface`, in the background, until stop().
class Sink {
public:
    Sink(const std::string& iface, const std::string& tag, std::vector<std::string> extra = {}) :
        out_(tmp_path(tag + "_sink.json")), err_(tmp_path(tag + "_sink.err")),
        ready_(tmp_path(tag + "_sink.ready")), pcap_(tmp_path(tag + "_sink.pcap"))
    {
        ::unlink(ready_.c_str());
        ::unlink(pcap_.c_str());
        pid_ = fork();
        if (pid_ == 0) {
            const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (o < 0 || e < 0)
                _exit(126);
            dup2(o, 1);
            dup2(e, 2);
            // Bounded even if the test dies before stop().
            std::vector<std::string> args{kGen,    "--sink",        "-i",  iface,          "--duration",
                                          "60",    "--json",        "--count-flows", "--sample-pcap", pcap_,
                                          "--ready-file", ready_};
            args.insert(args.end(), extra.begin(), extra.end());
            std::vector<char*> argv;
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(kGen.c_str(), argv.data());
            _exit(127);
        }
    }

    ~Sink()
    {
        if (pid_ > 0) {
            kill(pid_, SIGINT);
            waitpid(pid_, nullptr, 0);
        }
        ::unlink(out_.c_str());
        ::unlink(err_.c_str());
        ::unlink(ready_.c_str());
        ::unlink(pcap_.c_str());
    }

    /// Waits (at most 15 s) until the program is attached.
    bool wait_ready()
    {
        for (int i = 0; i < 300; ++i) {
            if (exists(ready_))
                return true;
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    /// Stops the sink and returns its JSON report (empty object on failure).
    nlohmann::json stop()
    {
        if (pid_ > 0) {
            kill(pid_, SIGINT);
            int st = 0;
            waitpid(pid_, &st, 0);
            pid_ = -1;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return nlohmann::json::object();
        }
        return nlohmann::json::parse(slurp(out_), nullptr, false);
    }

    std::string errors() const { return slurp(err_); }
    const std::string& pcap() const { return pcap_; }

private:
    std::string out_, err_, ready_, pcap_;
    pid_t pid_ = -1;
};

struct GenRun {
    int rc = -1;
    nlohmann::json report;
    std::string err;
};

GenRun run_gen(const VethPair& v, const std::string& args)
{
    const std::string out = tmp_path(v.ns + "_gen.json");
    const std::string err = tmp_path(v.ns + "_gen.err");
    GenRun r;
    r.rc = v.in_ns(kGen + " -i " + v.inner + " --json " + args + " >" + out + " 2>" + err);
    r.report = nlohmann::json::parse(slurp(out), nullptr, false);
    r.err = slurp(err);
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    return r;
}

/// The kernel refused BPF_PROG_RUN live frames (EPERM): some kernels and
/// sandboxes do not allow them to root either, and live mode cannot run.
bool live_frames_refused(const GenRun& g)
{
    return g.rc != 0 && g.err.find("BPF_PROG_RUN live frames") != std::string::npos &&
           g.err.find("Operation not permitted") != std::string::npos;
}
#define SKIP_IF_LIVE_FRAMES_REFUSED(g)                                                                    \
    if (live_frames_refused(g))                                                                          \
    GTEST_SKIP() << "this kernel refuses BPF_PROG_RUN live frames (EPERM), live mode cannot run: " << (g).err

/// Decodes `pcap` with tshark, checksum validation on, one vector of
/// fields per frame.
std::vector<std::vector<std::string>> tshark_fields(const std::string& pcap, const std::string& fields)
{
    const std::string txt = pcap + ".txt";
    // TCP analysis would flag the repeated sequence numbers of a synthetic
    // stream; only the dissection and the checksums are checked here.
    const int rc = sh("tshark -r " + pcap +
                      " -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -o tcp.check_checksum:TRUE"
                      " -o tcp.analyze_sequence_numbers:FALSE -T fields -E separator=, " +
                      fields + " > " + txt + " 2>/dev/null");
    std::vector<std::vector<std::string>> rows;
    std::istringstream lines(slurp(txt));
    ::unlink(txt.c_str());
    if (rc != 0)
        return rows;
    std::string line;
    while (std::getline(lines, line)) {
        std::vector<std::string> f;
        std::stringstream ls(line);
        std::string field;
        while (std::getline(ls, field, ','))
            f.push_back(field);
        while (f.size() < 32)
            f.emplace_back();
        rows.push_back(std::move(f));
    }
    return rows;
}

class WeirGen : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!exists(kGen))
            GTEST_SKIP() << "weir-gen not built (needs clang, bpftool, libbpf and libxdp)";
        if (geteuid() != 0)
            GTEST_SKIP() << "needs root for network namespaces and XDP";
        if (!exists("/sys/fs/bpf/.") || sh("mountpoint -q /sys/fs/bpf") != 0)
            sh("mount -t bpf bpf /sys/fs/bpf >/dev/null 2>&1");
    }

    std::unique_ptr<VethPair> pair(const std::string& tag, unsigned queues)
    {
        std::string why;
        auto v = VethPair::create(tag, queues, &why);
        if (!v)
            ADD_FAILURE() << why;
        return v;
    }

    /// 100000 frames of 64 bytes over 1000 flows: the sink counts exactly
    /// what the generator reports, 100 packets per flow.
    void exact_count(const std::string& tag, unsigned queues, const std::string& mode_args)
    {
        auto v = pair(tag, queues);
        ASSERT_TRUE(v);
        Sink sink(v->outer, tag);
        ASSERT_TRUE(sink.wait_ready()) << sink.errors();
        const GenRun g = run_gen(*v, "--count 100000 --size 64 --flows 1000 " + mode_args);
        const nlohmann::json s = sink.stop();
        SKIP_IF_LIVE_FRAMES_REFUSED(g);
        ASSERT_EQ(g.rc, 0) << g.err;
        ASSERT_TRUE(g.report.is_object()) << g.err;
        ASSERT_TRUE(s.is_object() && s.contains("packets")) << sink.errors();
        EXPECT_EQ(g.report["sent"], 100000u);
        EXPECT_EQ(g.report["failed"], 0u);
        EXPECT_EQ(s["packets"], g.report["sent"]);
        EXPECT_EQ(s["bytes"], 100000u * 64);
        EXPECT_EQ(s["flows"], 1000u);
        EXPECT_EQ(s["flow_min_packets"], 100u);
        EXPECT_EQ(s["flow_max_packets"], 100u);
        EXPECT_EQ(s["unparsed"], 0u);
        std::printf("  %s, %u queue(s): sent %s, sink %s\n", mode_args.c_str(), queues, g.report.dump().c_str(),
                    s.dump().c_str());
    }
};

TEST_F(WeirGen, LiveModeExactCountOneQueue) { exact_count("wgl1", 1, "--mode live"); }

TEST_F(WeirGen, LiveModeExactCountTwoQueuesTwoThreads) { exact_count("wgl2", 2, "--mode live --threads 2"); }

TEST_F(WeirGen, AfXdpModeExactCountOneQueue) { exact_count("wga1", 1, "--mode afxdp"); }

TEST_F(WeirGen, AfXdpModeExactCountTwoQueues) { exact_count("wga2", 2, "--mode afxdp --queue 1"); }

// Past 60000 flows the source address's low byte takes over from the port.
TEST_F(WeirGen, ManyFlowsUseTheSourceAddress)
{
    auto v = pair("wgm", 1);
    ASSERT_TRUE(v);
    Sink sink(v->outer, "wgm", {"--sample-every", "5000"});
    ASSERT_TRUE(sink.wait_ready()) << sink.errors();
    const GenRun g = run_gen(*v, "--count 130000 --flows 65000 --proto tcp");
    const nlohmann::json s = sink.stop();
    SKIP_IF_LIVE_FRAMES_REFUSED(g);
    ASSERT_EQ(g.rc, 0) << g.err;
    ASSERT_TRUE(s.is_object() && s.contains("flows")) << sink.errors();
    EXPECT_EQ(g.report["sent"], 130000u);
    EXPECT_EQ(s["packets"], 130000u);
    EXPECT_EQ(s["flows"], 65000u);
    EXPECT_EQ(s["flow_min_packets"], 2u);
    EXPECT_EQ(s["flow_max_packets"], 2u);
    if (!weir::test::have_tool("tshark"))
        return;
    // Frames 0, 5000, ... 75000: frame 60000 is flow 60000, the first one
    // on source address 10.0.0.2; every checksum still good.
    const auto rows = tshark_fields(sink.pcap(), "-e ip.src -e tcp.srcport -e ip.checksum.status -e tcp.checksum.status");
    ASSERT_EQ(rows.size(), 16u);
    int spilled = 0;
    for (const auto& f : rows) {
        EXPECT_EQ(f[2], "1") << "IPv4 checksum: " << f[0] << " " << f[1];
        EXPECT_EQ(f[3], "1") << "TCP checksum: " << f[0] << " " << f[1];
        if (f[0] == "10.0.0.2") {
            ++spilled;
            EXPECT_EQ(f[1], "1024");
        } else {
            EXPECT_EQ(f[0], "10.0.0.1");
        }
    }
    EXPECT_EQ(spilled, 1);
}

TEST_F(WeirGen, RateIsHonoured)
{
    auto v = pair("wgr", 1);
    ASSERT_TRUE(v);
    Sink sink(v->outer, "wgr");
    ASSERT_TRUE(sink.wait_ready()) << sink.errors();
    const GenRun g = run_gen(*v, "--rate 50000 --duration 1");
    const nlohmann::json s = sink.stop();
    SKIP_IF_LIVE_FRAMES_REFUSED(g);
    ASSERT_EQ(g.rc, 0) << g.err;
    ASSERT_TRUE(s.is_object() && s.contains("packets")) << sink.errors();
    const uint64_t sent = g.report["sent"];
    EXPECT_GE(sent, 47500u);
    EXPECT_LE(sent, 52500u);
    EXPECT_EQ(s["packets"], sent);
    const double seconds = g.report["seconds"];
    EXPECT_GE(seconds, 0.95);
    EXPECT_LE(seconds, 1.5);
}

// The first frames the sink saw decode as valid UDP or TCP over IPv4 or
// IPv6 (tshark with checksum validation), with the requested size,
// addresses, VLAN and flows.
TEST_F(WeirGen, FramesDecode)
{
    if (!weir::test::have_tool("tshark"))
        GTEST_SKIP() << "tshark not installed";
    struct Case {
        const char* tag;
        std::string args;
        std::string proto;
        std::string size, vlan, src, dst, sport_base, dport;
    };
    const Case cases[] = {
        {"wgdu", "--size 64 --flows 10 --proto udp", "udp", "64", "", "10.0.0.1", "10.0.0.2", "1024", "9"},
        {"wgdt", "--size 64 --flows 10 --proto tcp --vlan 7 --mode afxdp", "tcp", "64", "7", "10.0.0.1", "10.0.0.2",
         "1024", "9"},
        {"wgdx", "--size 100 --flows 10 --src-ip 192.0.2.9 --dst-ip 198.51.100.1 --sport 40000 --dport 4789", "udp",
         "100", "", "192.0.2.9", "198.51.100.1", "40000", "4789"},
        {"wgd6", "--ipv6 --size 62 --flows 10 --proto udp", "udp", "62", "", "fd00::1", "fd00::2", "1024", "9"},
        {"wgd6t", "--ipv6 --size 90 --flows 10 --proto tcp --vlan 9 --mode afxdp --src-ip 2001:db8::a", "tcp", "90",
         "9", "2001:db8::a", "fd00::2", "1024", "9"},
    };
    std::vector<std::string> refused; // live-mode cases the kernel refused
    for (const Case& c : cases) {
        SCOPED_TRACE(c.args);
        auto v = pair(c.tag, 1);
        ASSERT_TRUE(v);
        Sink sink(v->outer, c.tag);
        ASSERT_TRUE(sink.wait_ready()) << sink.errors();
        const GenRun g = run_gen(*v, c.args + " --count 1000");
        const nlohmann::json s = sink.stop();
        if (live_frames_refused(g)) {
            refused.push_back(c.args); // the AF_XDP cases still run
            continue;
        }
        ASSERT_EQ(g.rc, 0) << g.err;
        ASSERT_EQ(s["packets"], 1000u) << sink.errors();
        EXPECT_EQ(s["flows"], 10u);
        EXPECT_EQ(s["unparsed"], 0u);
        // The first 16 frames of every CPU that received some.
        const uint64_t samples = s["samples"];
        ASSERT_GE(samples, 16u);
        ASSERT_EQ(samples % 16, 0u);

        const bool v6 = c.args.find("--ipv6") != std::string::npos;
        const std::string ip = v6 ? "ipv6" : "ip";
        const std::string& p = c.proto;
        const auto rows = tshark_fields(sink.pcap(), "-e frame.len -e vlan.id -e " + ip + ".src -e " + ip +
                                                         ".dst -e " + p + ".srcport -e " + p + ".dstport -e " + p +
                                                         ".checksum.status -e ip.checksum.status -e _ws.expert");
        ASSERT_EQ(rows.size(), samples);
        std::set<std::string> sports;
        for (const auto& f : rows) {
            EXPECT_EQ(f[0], c.size);
            EXPECT_EQ(f[1], c.vlan);
            EXPECT_EQ(f[2], c.src);
            EXPECT_EQ(f[3], c.dst);
            EXPECT_EQ(f[5], c.dport);
            EXPECT_EQ(f[6], "1") << p << " checksum not good"; // 1 = good
            EXPECT_EQ(f[7], v6 ? "" : "1") << "IPv4 checksum not good";
            EXPECT_EQ(f[8], "") << "tshark expert info (malformed, bad length...)";
            sports.insert(f[4]);
        }
        // 16 consecutive frames over 10 flows: all 10 source ports.
        std::set<std::string> want;
        for (int i = 0; i < 10; ++i)
            want.insert(std::to_string(std::stoi(c.sport_base) + i));
        EXPECT_EQ(sports, want);
    }
    if (!refused.empty()) {
        std::string list;
        for (const auto& a : refused)
            list += "\n  " + a;
        GTEST_SKIP() << "this kernel refuses BPF_PROG_RUN live frames (EPERM); live-mode cases not run:" << list;
    }
}

// Without a sink the veth peer drops every redirected frame: live mode
// counts them as failed (raw tracepoints) and says so.
TEST_F(WeirGen, DroppedFramesAreReportedAsFailed)
{
    auto v = pair("wgf", 1);
    ASSERT_TRUE(v);
    const GenRun g = run_gen(*v, "--count 1000");
    SKIP_IF_LIVE_FRAMES_REFUSED(g);
    EXPECT_NE(g.rc, 0);
    EXPECT_NE(g.err.find("refused all 1000 frames"), std::string::npos) << g.err;
}

/// rx_queue_N_xdp_packets of `iface` from ethtool -S, -1 when missing.
long long queue_xdp_packets(const std::string& iface, unsigned q)
{
    const std::string txt = tmp_path(iface + "_ethtool.txt");
    sh("ethtool -S " + iface + " >" + txt + " 2>/dev/null");
    std::istringstream in(slurp(txt));
    ::unlink(txt.c_str());
    const std::string key = "rx_queue_" + std::to_string(q) + "_xdp_packets:";
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string name;
        long long value = 0;
        if (ls >> name >> value && name == key)
            return value;
    }
    return -1;
}

// A redirected frame lands on the veth queue of the sending CPU: under
// `taskset -c 1` every frame must arrive on queue 1 (the generator thread
// pins itself inside the allowed CPUs, never to CPU 0 regardless).
TEST_F(WeirGen, LiveModeRunsOnTheCpusTasksetAllows)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0 || !CPU_ISSET(0, &set) || !CPU_ISSET(1, &set))
        GTEST_SKIP() << "needs CPUs 0 and 1";
    if (!weir::test::have_tool("ethtool") || !weir::test::have_tool("taskset"))
        GTEST_SKIP() << "needs ethtool and taskset";
    auto v = pair("wgc", 2);
    ASSERT_TRUE(v);
    Sink sink(v->outer, "wgc");
    ASSERT_TRUE(sink.wait_ready()) << sink.errors();
    const long long q0 = queue_xdp_packets(v->outer, 0), q1 = queue_xdp_packets(v->outer, 1);
    if (q0 < 0 || q1 < 0)
        GTEST_SKIP() << "ethtool -S shows no per-queue XDP counters on " << v->outer;
    const std::string out = tmp_path("wgc_gen.json"), err = tmp_path("wgc_gen.err");
    const int rc = v->in_ns("taskset -c 1 " + kGen + " -i " + v->inner + " --json --count 20000 >" + out + " 2>" + err);
    const nlohmann::json g = nlohmann::json::parse(slurp(out), nullptr, false);
    const GenRun run{rc, g, slurp(err)};
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    const nlohmann::json s = sink.stop();
    SKIP_IF_LIVE_FRAMES_REFUSED(run);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(g.is_object() && s.is_object() && s.contains("packets")) << sink.errors();
    EXPECT_EQ(g["sent"], 20000u);
    EXPECT_EQ(s["packets"], 20000u);
    EXPECT_EQ(queue_xdp_packets(v->outer, 0) - q0, 0);
    EXPECT_EQ(queue_xdp_packets(v->outer, 1) - q1, 20000);
    // More threads than allowed CPUs is an error, not a silent fallback.
    EXPECT_NE(v->in_ns("taskset -c 1 " + kGen + " -i " + v->inner + " --threads 2 --count 10 2>/dev/null"), 0);
}

TEST(WeirGenErrors, NonexistentInterfaceFailsClearly)
{
    if (!exists(kGen))
        GTEST_SKIP() << "weir-gen not built";
    const std::string err = tmp_path("noif.err");
    EXPECT_NE(sh(kGen + " -i wgnosuch0 --count 10 --dry-run 2>" + err), 0);
    EXPECT_NE(slurp(err).find("no such interface 'wgnosuch0'"), std::string::npos) << slurp(err);
    EXPECT_NE(sh(kGen + " --sink -i wgnosuch0 --duration 1 2>" + err), 0);
    EXPECT_NE(slurp(err).find("no such interface 'wgnosuch0'"), std::string::npos) << slurp(err);
    // Bad options fail before anything is sent.
    EXPECT_NE(sh(kGen + " -i lo --size 20 --count 1 --dry-run 2>" + err), 0);
    EXPECT_NE(slurp(err).find("frame size 20 outside 60..1514"), std::string::npos) << slurp(err);
    EXPECT_NE(sh(kGen + " -i lo --flows 70000 --sport 30000 --count 1 --dry-run 2>" + err), 0);
    EXPECT_NE(slurp(err).find("do not fit"), std::string::npos) << slurp(err);
    ::unlink(err.c_str());
}

} // namespace
