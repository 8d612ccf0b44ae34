// Binary verdict batches (weir/abi/verdict_wire.h) through a real verdict
// server and the kernel's verdict map (root, CAP_BPF): add and del batches
// checked in the map, frames mixed with JSON lines on one connection and
// cut into small pieces, bad input (bad records, garbage after the magic,
// counts over the limit, truncated and stalled frames) answered with one
// error and nothing installed, a full table, a caller without the right
// credentials, and weirctl "verdict load".
#include <weir/dataplane/verdict_client.hpp>
#include <weir/dataplane/verdict_map.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include "verdict_rig.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <zmq.h>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace weir::dataplane;
using json = nlohmann::json;
using weir::FlowKey;
using namespace weir::test;

namespace {

constexpr uid_t kNobody = 65534;

// Record i: 10.1.x.y:(1024+i) <-> 192.168.0.1:443, given destination
// first for odd i (the server canonicalises).
weir_verdict_req nth(uint32_t i, uint8_t action = WEIR_VERDICT_SHUNT)
{
    weir_verdict_req r{};
    const uint8_t src[4] = {10, 1, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    const uint8_t dst[4] = {192, 168, 0, 1};
    const uint16_t sport = static_cast<uint16_t>(1024 + i % 50000), dport = 443;
    const bool rev = i & 1;
    std::memcpy(r.key.addr_a, rev ? dst : src, 4);
    std::memcpy(r.key.addr_b, rev ? src : dst, 4);
    r.key.port_a = rev ? dport : sport;
    r.key.port_b = rev ? sport : dport;
    r.key.proto = 6;
    r.key.ip_version = 4;
    r.action = action;
    if (action == WEIR_VERDICT_SHUNT)
        r.shunt_after = 5;
    if (action == WEIR_VERDICT_DIVERT)
        r.egress = 2;
    r.ttl_ms = 600000;
    return r;
}

FlowKey nth_key(uint32_t i)
{
    char src[32];
    std::snprintf(src, sizeof(src), "10.1.%u.%u", (i >> 8) & 0xff, i & 0xff);
    return make_flow_key(src, "192.168.0.1", static_cast<uint16_t>(1024 + i % 50000), 443, 6).value();
}

std::vector<weir_verdict_req> range(uint32_t from, uint32_t n, uint8_t action = WEIR_VERDICT_SHUNT)
{
    std::vector<weir_verdict_req> v;
    for (uint32_t i = from; i < from + n; ++i)
        v.push_back(nth(i, action));
    return v;
}

std::string frame(uint8_t op, const std::vector<weir_verdict_req>& recs, uint32_t flags = 0,
                  uint32_t count_override = 0)
{
    weir_vwire_hdr h{};
    h.magic[0] = WEIR_VWIRE_MAGIC0;
    h.magic[1] = WEIR_VWIRE_MAGIC1;
    h.version = WEIR_VWIRE_VERSION;
    h.op = op;
    h.count = count_override ? count_override : static_cast<uint32_t>(recs.size());
    h.flags = flags;
    h.rec_size = sizeof(weir_verdict_req);
    std::string f(reinterpret_cast<const char*>(&h), sizeof(h));
    f.append(reinterpret_cast<const char*>(recs.data()), recs.size() * sizeof(weir_verdict_req));
    return f;
}

json parse(const std::string& s)
{
    json j = json::parse(s, nullptr, false);
    EXPECT_TRUE(j.is_object()) << s;
    return j;
}

// A raw connection: bytes out as given, reply lines in.
class Raw {
public:
    explicit Raw(const std::string& path)
    {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
            throw std::runtime_error("connect " + path);
    }
    ~Raw() { ::close(fd_); }
    bool send(std::string_view s)
    {
        while (!s.empty()) {
            ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            s.remove_prefix(static_cast<size_t>(n));
        }
        return true;
    }
    void shut_wr() { ::shutdown(fd_, SHUT_WR); }
    // The next reply line; "" on end of stream or timeout.
    std::string line(int timeout_ms = 10000)
    {
        for (;;) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                std::string l = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return l;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, timeout_ms) <= 0)
                return {};
            char b[4096];
            ssize_t n = ::recv(fd_, b, sizeof(b), 0);
            if (n <= 0)
                return {};
            buf_.append(b, static_cast<size_t>(n));
        }
    }
    // True when the server closed the connection (within the timeout).
    bool closed(int timeout_ms = 5000)
    {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0)
            return false;
        char b[64];
        return ::recv(fd_, b, sizeof(b), 0) == 0;
    }

private:
    int fd_ = -1;
    std::string buf_;
};

struct Server {
    TempDir tmp{"wv-vbin"};
    VerdictServerOptions o;
    std::unique_ptr<VerdictServer> srv;
    std::vector<FlowVerdict> removed;

    Server(VerdictMap& m, uint32_t frame_timeout_ms = 10000, uint32_t mode = 0660)
    {
        o.unix_path = tmp.path + "/v.sock";
        o.unix_mode = mode;
        o.sweep_interval_ms = 0;
        o.frame_timeout_ms = frame_timeout_ms;
        o.on_removed = [this](std::span<const FlowVerdict> fv) { removed.insert(removed.end(), fv.begin(), fv.end()); };
        auto s = VerdictServer::start(m, o);
        if (!s.ok())
            throw std::runtime_error(s.error().message());
        srv = std::move(*s);
    }
};

} // namespace

TEST(VerdictBatch, AddAndDelThroughTheServer)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(1u << 16);
    Server s(m);
    auto c = VerdictClient::connect(s.o.unix_path);
    ASSERT_TRUE(c.ok()) << c.error().message();

    auto recs = range(0, 10000);
    recs[7].action = WEIR_VERDICT_DIVERT;
    recs[7].shunt_after = 0;
    recs[7].egress = 3;
    recs[8].action = WEIR_VERDICT_DROP;
    recs[8].shunt_after = 0;
    recs[8].ttl_ms = 0;
    recs[8].reason = 42;
    recs[8].flags = WEIR_VERDICT_F_TCP_CONTROL;
    const uint64_t before = VerdictMap::now_ns();
    auto r = c->send_binary(WEIR_VWIRE_OP_ADD, recs);
    ASSERT_TRUE(r.ok()) << r.error().message();
    json j = parse(*r);
    EXPECT_EQ(j["ok"], true) << *r;
    EXPECT_EQ(j["installed"], 10000);
    EXPECT_EQ(m.counts().flows, 10000u);

    // The canonical key of either direction finds the entry.
    for (uint32_t i : {0u, 1u, 2u, 3u, 5000u, 9999u}) {
        auto v = m.lookup(nth_key(i));
        ASSERT_TRUE(v.ok() && v->has_value()) << i;
        EXPECT_EQ((*v)->action, WEIR_VERDICT_SHUNT);
        EXPECT_EQ((*v)->shunt_after, 5u);
        EXPECT_EQ((*v)->source, WEIR_VERDICT_SRC_API);
        EXPECT_GE((*v)->installed_ns, before);
        EXPECT_EQ((*v)->expires_ns, (*v)->installed_ns + 600000000000ull);
    }
    auto d = m.lookup(nth_key(7));
    ASSERT_TRUE(d.ok() && d->has_value());
    EXPECT_EQ((*d)->action, WEIR_VERDICT_DIVERT);
    EXPECT_EQ((*d)->egress, 3u);
    auto dr = m.lookup(nth_key(8));
    ASSERT_TRUE(dr.ok() && dr->has_value());
    EXPECT_EQ((*dr)->action, WEIR_VERDICT_DROP);
    EXPECT_EQ((*dr)->expires_ns, 0u);
    EXPECT_EQ((*dr)->reason, 42);
    EXPECT_EQ((*dr)->flags, WEIR_VERDICT_F_TCP_CONTROL);

    // JSON on the same connection sees them.
    auto st = c->request(R"({"op":"stats"})");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(parse(*st)["flows"], 10000);
    EXPECT_EQ(parse(*st)["installed"], 10000);

    // Del with the entries' final counters, then without.
    r = c->send_binary(WEIR_VWIRE_OP_DEL, range(0, 4000));
    ASSERT_TRUE(r.ok());
    j = parse(*r);
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["removed"], 4000);
    ASSERT_TRUE(j["entries"].is_array());
    EXPECT_EQ(j["entries"].size(), 4000u);
    EXPECT_EQ(j["entries"][0]["verdict"], "shunt");
    EXPECT_EQ(s.removed.size(), 4000u);
    r = c->send_binary(WEIR_VWIRE_OP_DEL, range(4000, 6000), WEIR_VWIRE_F_NO_ENTRIES);
    ASSERT_TRUE(r.ok());
    j = parse(*r);
    EXPECT_EQ(j["removed"], 6000);
    EXPECT_FALSE(j.contains("entries"));
    EXPECT_EQ(s.removed.size(), 10000u);  // the export still gets them
    EXPECT_EQ(m.counts().flows, 0u);
    EXPECT_FALSE(m.lookup(nth_key(9999))->has_value());
    // Deleting what is not there removes nothing.
    r = c->send_binary(WEIR_VWIRE_OP_DEL, range(0, 10));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(parse(*r)["removed"], 0);
}

TEST(VerdictBatch, MixedWithJsonOnOneConnection)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(1024);
    Server s(m);
    Raw c(s.o.unix_path);
    // JSON, frame, JSON, frame back to back in one write.
    std::string all = R"({"op":"add","host":"10.9.0.1","verdict":"drop"})" "\n";
    all += frame(WEIR_VWIRE_OP_ADD, range(0, 100));
    all += R"({"op":"stats"})" "\r\n";
    all += frame(WEIR_VWIRE_OP_DEL, range(0, 40), WEIR_VWIRE_F_NO_ENTRIES);
    ASSERT_TRUE(c.send(all));
    EXPECT_EQ(parse(c.line())["installed"], 1);
    EXPECT_EQ(parse(c.line())["installed"], 100);
    json st = parse(c.line());
    EXPECT_EQ(st["flows"], 100);
    EXPECT_EQ(st["subnets"], 1);
    EXPECT_EQ(parse(c.line())["removed"], 40);
    EXPECT_EQ(m.counts().flows, 60u);

    // A frame dribbled in 7-byte pieces, a JSON line in the same piece as
    // its end.
    std::string f = frame(WEIR_VWIRE_OP_ADD, range(500, 30)) + R"({"op":"stats"})" "\n";
    for (size_t off = 0; off < f.size(); off += 7) {
        ASSERT_TRUE(c.send(std::string_view(f).substr(off, 7)));
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    EXPECT_EQ(parse(c.line())["installed"], 30);
    EXPECT_EQ(parse(c.line())["flows"], 90);
}

TEST(VerdictBatch, BadRecordInstallsNothing)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(4096);
    Server s(m);
    Raw c(s.o.unix_path);
    auto recs = range(0, 1000);
    recs[500].action = 9;
    ASSERT_TRUE(c.send(frame(WEIR_VWIRE_OP_ADD, recs)));
    json j = parse(c.line());
    EXPECT_EQ(j["ok"], false);
    EXPECT_EQ(j["error"].get<std::string>().rfind("bad request: record 500: unknown action", 0), 0u) << j.dump();
    EXPECT_EQ(m.counts().flows, 0u);
    recs[500] = nth(500);
    recs[999].key.ip_version = 5;
    ASSERT_TRUE(c.send(frame(WEIR_VWIRE_OP_ADD, recs)));
    EXPECT_EQ(parse(c.line())["error"], "bad request: record 999: ip_version must be 4 or 6");
    EXPECT_EQ(m.counts().flows, 0u);
    // The frame's length was known: the connection goes on.
    ASSERT_TRUE(c.send(R"({"op":"stats"})" "\n"));
    json st = parse(c.line());
    EXPECT_EQ(st["errors"], 2);
    EXPECT_EQ(st["flows"], 0);
}

TEST(VerdictBatch, UnusableHeadersCloseTheConnection)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(4096);
    Server s(m);
    {
        // Garbage after the magic.
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send(std::string("WV\x07\xff garbage, not a header\n", 26)));
        json j = parse(c.line());
        EXPECT_EQ(j["ok"], false);
        EXPECT_EQ(j["error"], "bad request: binary frame version 7 (this server takes 1)");
        EXPECT_TRUE(c.closed());
    }
    {
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send("WX" + std::string(30, 'a')));
        EXPECT_EQ(parse(c.line())["error"], "bad request: not a binary frame (bad magic)");
        EXPECT_TRUE(c.closed());
    }
    {
        // A count over the limit: refused from the header, before any
        // record arrives.
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send(frame(WEIR_VWIRE_OP_ADD, {}, 0, WEIR_VWIRE_MAX_COUNT)));
        json j = parse(c.line());
        EXPECT_NE(j["error"].get<std::string>().find("records (at most"), std::string::npos) << j.dump();
        EXPECT_TRUE(c.closed());
    }
    {
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send(frame(WEIR_VWIRE_OP_ADD, {}, 0x10, 1)));
        EXPECT_EQ(parse(c.line())["error"], "bad request: binary frame flags 0x10 unknown");
        EXPECT_TRUE(c.closed());
    }
    EXPECT_EQ(m.counts().flows, 0u);
    EXPECT_EQ(s.srv->stats().errors, 4u);
}

TEST(VerdictBatch, TruncatedAndStalledFrames)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(4096);
    Server s(m, 400);
    const std::string f = frame(WEIR_VWIRE_OP_ADD, range(0, 100));
    {
        // The client ends its side in the middle of a frame.
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send(std::string_view(f).substr(0, 16 + 72 * 50 + 3)));
        c.shut_wr();
        EXPECT_EQ(parse(c.line())["error"],
                  "bad request: truncated binary frame: " + std::to_string(16 + 72 * 50 + 3) + " bytes of " +
                      std::to_string(f.size()));
        EXPECT_TRUE(c.closed());
    }
    {
        // Half a header, then nothing.
        Raw c(s.o.unix_path);
        ASSERT_TRUE(c.send(std::string_view(f).substr(0, 9)));
        c.shut_wr();
        EXPECT_EQ(parse(c.line())["error"], "bad request: truncated binary frame: 9 bytes");
    }
    {
        // A stalled frame does not hold up other clients, and is given up
        // after frame_timeout_ms without progress.
        Raw stalled(s.o.unix_path);
        const auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(stalled.send(std::string_view(f).substr(0, 1000)));
        Raw other(s.o.unix_path);
        ASSERT_TRUE(other.send(frame(WEIR_VWIRE_OP_ADD, range(200, 10))));
        EXPECT_EQ(parse(other.line(300))["installed"], 10);
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        ASSERT_TRUE(stalled.send(std::string_view(f).substr(1000, 100)));  // progress: the clock restarts
        const std::string reply = stalled.line(3000);
        const auto waited = std::chrono::steady_clock::now() - t0;
        EXPECT_EQ(parse(reply)["error"], "bad request: truncated binary frame: 1100 bytes of " + std::to_string(f.size()));
        EXPECT_GE(waited, std::chrono::milliseconds(600));
        EXPECT_LT(waited, std::chrono::milliseconds(3000));
        EXPECT_TRUE(stalled.closed());
    }
    EXPECT_EQ(m.counts().flows, 10u);  // only the other client's
}

TEST(VerdictBatch, TableFullInstallsWhatFits)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(100);
    Server s(m);
    auto c = VerdictClient::connect(s.o.unix_path);
    ASSERT_TRUE(c.ok());
    auto r = c->send_binary(WEIR_VWIRE_OP_ADD, range(0, 150));
    ASSERT_TRUE(r.ok());
    json j = parse(*r);
    EXPECT_EQ(j["ok"], false);
    EXPECT_EQ(j["error"], "table full");
    EXPECT_EQ(j["installed"], 100);
    EXPECT_EQ(m.counts().flows, 100u);
    // Replacing installed flows still works when full.
    r = c->send_binary(WEIR_VWIRE_OP_ADD, range(0, 100, WEIR_VERDICT_DROP));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(parse(*r)["installed"], 100);
    EXPECT_EQ(m.lookup(nth_key(99)).value()->action, WEIR_VERDICT_DROP);
}

TEST(VerdictBatch, UnauthorisedCaller)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(1024);
    Server s(m, 10000, 0666);  // let nobody reach the credential check
    // Child: becomes nobody and sends a frame; exit 10 = "unauthorised",
    // 11 = installed, 12 = other reply, 13 = no reply.
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(kNobody) != 0 || setuid(kNobody) != 0)
            _exit(20);
        auto c = VerdictClient::connect(s.o.unix_path, 5000);
        if (!c.ok())
            _exit(13);
        auto r = c->send_binary(WEIR_VWIRE_OP_ADD, range(0, 1000));
        if (!r.ok())
            _exit(13);
        json j = json::parse(*r, nullptr, false);
        if (j.is_object() && j.value("error", "") == "unauthorised")
            _exit(10);
        _exit(j.is_object() && j.value("ok", false) ? 11 : 12);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 10);
    EXPECT_EQ(s.srv->stats().unauthorised, 1u);
    EXPECT_EQ(m.counts().flows, 0u);
}

TEST(VerdictBatch, WeirctlLoad)
{
    NEED_VERDICT_MAPS();
    const std::string weirctl = WEIR_BINARY_DIR "/tools/weirctl/weirctl";
    if (access(weirctl.c_str(), X_OK) != 0)
        GTEST_SKIP() << weirctl << " not built";
    VerdictMap m = make_map(1u << 16);
    Server s(m);
    const std::string file = s.tmp.path + "/verdicts.txt";
    {
        std::ofstream out(file);
        out << "# IDS verdicts\n\n";
        for (uint32_t i = 0; i < 3000; ++i)
            out << "10.1." << ((i >> 8) & 0xff) << "." << (i & 0xff) << " 192.168.0.1 " << 1024 + i << " 443 tcp "
                << (i % 3 == 0 ? "shunt 4 60" : i % 3 == 1 ? "drop ttl=30 reason=5" : "divert 1") << "\n";
        out << "2001:db8::2 2001:db8::1 53 40000 udp forward\n";
    }
    const auto run = run_command;
    int status = -1;
    std::string out = run(weirctl + " verdict load --socket " + s.o.unix_path + " --batch 1000 " + file, &status);
    EXPECT_EQ(status, 0) << out;
    json j = parse(out);
    EXPECT_EQ(j["installed"], 3001);
    EXPECT_EQ(j["batches"], 4);
    EXPECT_EQ(m.counts().flows, 3001u);
    auto v = m.lookup(nth_key(4));  // i % 3 == 1
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((*v)->action, WEIR_VERDICT_DROP);
    EXPECT_EQ((*v)->reason, 5);
    EXPECT_EQ((*v)->expires_ns, (*v)->installed_ns + 30000000000ull);
    v = m.lookup(nth_key(3));
    EXPECT_EQ((*v)->action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ((*v)->shunt_after, 4u);

    out = run(weirctl + " verdict load --del --socket " + s.o.unix_path + " " + file, &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(parse(out)["removed"], 3001);
    EXPECT_EQ(m.counts().flows, 0u);

    // A bad line: nothing is sent, the line is named.
    {
        std::ofstream out2(file, std::ios::app);
        out2 << "10.0.0.1 10.0.0.2 1 2 tcp explode\n";
    }
    out = run(weirctl + " verdict load --socket " + s.o.unix_path + " " + file, &status);
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find(":3004: unknown verdict 'explode'"), std::string::npos) << out;
    EXPECT_EQ(m.counts().flows, 0u);
}

TEST(VerdictBatch, Zmq)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(4096);
    TempDir tmp;
    VerdictServerOptions o;
    o.zmq_endpoint = "ipc://" + tmp.path + "/v.zmq";
    o.sweep_interval_ms = 0;
    auto srv = VerdictServer::start(m, o);
    if (!srv.ok() && srv.error().code == std::errc::not_supported)
        GTEST_SKIP() << srv.error().message();
    ASSERT_TRUE(srv.ok()) << srv.error().message();
    ZmqReq req(o.zmq_endpoint);
    ASSERT_TRUE(req.connected());
    auto ask = [&](const std::string& s) { return parse(req.ask(s)); };
    // One frame per message.
    json r = ask(frame(WEIR_VWIRE_OP_ADD, range(0, 500)));
    EXPECT_EQ(r["installed"], 500) << r.dump();
    EXPECT_EQ(m.counts().flows, 500u);
    // A frame ending in a newline byte (the high byte of the last
    // record's ttl_ms) is taken whole, not trimmed like a JSON message:
    // the absurd TTL is refused, not the frame's length.
    auto last = range(600, 1);
    last[0].ttl_ms = 0;
    reinterpret_cast<uint8_t*>(&last[0].ttl_ms)[7] = '\n';
    r = ask(frame(WEIR_VWIRE_OP_ADD, last));
    EXPECT_EQ(r["error"], "bad request: record 0: ttl_ms over ten years") << r.dump();
    r = ask(frame(WEIR_VWIRE_OP_ADD, {}, 0, 3));  // header says 3, none follow
    EXPECT_EQ(r["error"], "bad request: truncated binary frame: 16 bytes of 232") << r.dump();
    r = ask(frame(WEIR_VWIRE_OP_DEL, range(0, 500), WEIR_VWIRE_F_NO_ENTRIES));
    EXPECT_EQ(r["removed"], 500);
    EXPECT_EQ(m.counts().flows, 0u);
}
