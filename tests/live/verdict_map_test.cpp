// VerdictMap against the kernel's maps (root, CAP_BPF), and the verdict
// server end to end over its Unix socket (and ZMQ), with weirctl as the
// client: install/lookup/remove, batches, a full table, expiry returning
// counters, subnet (LPM) verdicts as XDP looks them up, pins, credentials
// (a child that becomes nobody), malformed lines.
//
// The XDP program is not part of these tests: where counters matter the
// test writes them into the kernel map as the XDP program would
// (bpf_map_update_elem on the same fd), and checks they come back.
#include <weir/dataplane/verdict_map.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include "verdict_rig.hpp"

#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <nlohmann/json.hpp>
#include <zmq.h>

#include <arpa/inet.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <span>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace weir::dataplane;
using json = nlohmann::json;
using weir::FlowKey;
using namespace weir::test;

namespace {

constexpr uid_t kNobody = 65534;

FlowKey nth_key(uint32_t i)
{
    FlowKey k;
    k.addr_a = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    k.addr_b = {192, 168, 0, 1};
    k.port_a = static_cast<uint16_t>(1024 + i % 50000);
    k.port_b = 443;
    k.proto = 6;
    k.ip_version = 4;
    return k;
}

Subnet sn(const std::string& text)
{
    auto s = parse_subnet(text);
    if (!s.ok())
        throw std::runtime_error(s.error().message());
    return s.value();
}

Verdict drop_verdict(uint16_t reason = 0)
{
    Verdict v{};
    v.action = WEIR_VERDICT_DROP;
    v.source = WEIR_VERDICT_SRC_API;
    v.reason = reason;
    return v;
}

// Adds counters to an installed flow as the XDP program does.
void xdp_count(const VerdictMap& m, const FlowKey& k, uint64_t packets, uint64_t bytes, uint64_t bypassed)
{
    Verdict v{};
    ASSERT_EQ(bpf_map_lookup_elem(m.fd(), &k, &v), 0);
    v.packets += packets;
    v.bytes += bytes;
    v.bypassed += bypassed;
    v.last_ns = VerdictMap::now_ns();
    ASSERT_EQ(bpf_map_update_elem(m.fd(), &k, &v, BPF_EXIST), 0);
}

std::string run(const std::string& cmd, int* status) { return run_command(cmd, status); }

json request(const std::string& sock, const std::string& line)
{
    auto r = verdict_request(sock, line, 10000);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    if (!r.ok())
        return json{{"ok", false}, {"error", "no reply"}};
    return json::parse(*r);
}

// One connection, several lines, read the replies in order.
std::vector<json> converse(const std::string& sock, const std::string& lines, size_t replies)
{
    std::vector<json> out;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, sock.c_str(), sizeof(sa.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        close(fd);
        return out;
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)!write(fd, lines.data(), lines.size());
    std::string buf;
    char c[4096];
    while (out.size() < replies) {
        ssize_t n = read(fd, c, sizeof(c));
        if (n <= 0)
            break;
        buf.append(c, static_cast<size_t>(n));
        size_t nl;
        while ((nl = buf.find('\n')) != std::string::npos) {
            out.push_back(json::parse(buf.substr(0, nl), nullptr, false));
            buf.erase(0, nl + 1);
        }
    }
    close(fd);
    return out;
}

} // namespace

TEST(VerdictMap, InstallLookupRemove)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(1024);
    EXPECT_GE(m.fd(), 0);
    EXPECT_GE(m.subnet_fd(), 0);
    const FlowKey k = nth_key(1);
    auto none = m.lookup(k);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());

    Verdict v = drop_verdict(9);
    v.installed_ns = VerdictMap::now_ns();
    ASSERT_TRUE(m.install(k, v).ok());
    EXPECT_EQ(m.counts().flows, 1u);
    auto got = m.lookup(k);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->action, WEIR_VERDICT_DROP);
    EXPECT_EQ((*got)->reason, 9);

    // Reinstall replaces (counters zero again), the count stays.
    xdp_count(m, k, 5, 500, 5);
    Verdict s{};
    s.action = WEIR_VERDICT_SHUNT;
    s.shunt_after = 3;
    ASSERT_TRUE(m.install(k, s).ok());
    EXPECT_EQ(m.counts().flows, 1u);
    got = m.lookup(k);
    EXPECT_EQ((*got)->action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ((*got)->packets, 0u);

    xdp_count(m, k, 7, 700, 4);
    auto removed = m.remove(k);
    ASSERT_TRUE(removed.ok() && removed->has_value());
    EXPECT_EQ((*removed)->packets, 7u);
    EXPECT_EQ((*removed)->bytes, 700u);
    EXPECT_EQ((*removed)->bypassed, 4u);
    EXPECT_EQ(m.counts().flows, 0u);
    auto again = m.remove(k);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->has_value());
}

TEST(VerdictMap, BatchInstallAndList)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(50000);
    std::vector<FlowKey> keys;
    std::vector<Verdict> vals;
    for (uint32_t i = 0; i < 20000; ++i) {
        keys.push_back(nth_key(i));
        Verdict v = drop_verdict(static_cast<uint16_t>(i % 1000 + 1));
        v.egress = i;
        vals.push_back(v);
    }
    auto n = m.install_batch(keys, vals);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, keys.size());
    auto all = m.list();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), keys.size());
    std::vector<bool> seen(keys.size());
    for (const FlowVerdict& fv : *all) {
        const uint32_t i = fv.verdict.egress;
        ASSERT_LT(i, keys.size());
        EXPECT_TRUE(fv.key == keys[i]);
        EXPECT_EQ(fv.verdict.reason, i % 1000 + 1);
        seen[i] = true;
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(keys.size()));
    EXPECT_FALSE(m.install_batch(std::span(keys).first(2), std::span(vals).first(1)).ok());
}

TEST(VerdictMap, FullTableSaysTableFullAndEvictsNothing)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(64);
    for (uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(m.install(nth_key(i), drop_verdict()).ok()) << i;
    auto r = m.install(nth_key(64), drop_verdict());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, std::errc::no_space_on_device);
    EXPECT_NE(r.error().message().find("table full"), std::string::npos) << r.error().message();
    // Replacing an installed flow still works when full.
    EXPECT_TRUE(m.install(nth_key(3), drop_verdict(5)).ok());
    for (uint32_t i = 0; i < 64; ++i) {
        auto l = m.lookup(nth_key(i));
        ASSERT_TRUE(l.ok() && l->has_value()) << "flow " << i << " was evicted";
    }
    ASSERT_TRUE(m.remove(nth_key(10)).ok());
    EXPECT_TRUE(m.install(nth_key(64), drop_verdict()).ok());

    // Batches: the table takes what fits, the rest is refused.
    VerdictMap b = make_map(1000);
    std::vector<FlowKey> keys;
    std::vector<Verdict> vals;
    for (uint32_t i = 0; i < 1500; ++i) {
        keys.push_back(nth_key(i));
        vals.push_back(drop_verdict());
    }
    auto n = b.install_batch(keys, vals);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 1000u);
    auto all = b.list();
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->size(), 1000u);
    // Installed flows again (replacements) fit in a full table: the bound
    // is recounted exactly before refusing.
    n = b.install_batch(std::span(keys).first(300), std::span(vals).first(300));
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 300u);
    n = b.install_batch(std::span(keys).subspan(1200, 5), std::span(vals).subspan(1200, 5));
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 0u);
    EXPECT_EQ(b.counts().flows, 1000u);
    for (uint32_t i = 0; i < 1000; ++i)
        ASSERT_TRUE(b.lookup(keys[i])->has_value()) << i;
}

TEST(VerdictMap, ExpiryReturnsFinalCounters)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(128);
    const uint64_t now = VerdictMap::now_ns();
    Verdict old = drop_verdict(1), later = drop_verdict(2), never = drop_verdict(3);
    old.expires_ns = now - 1;
    later.expires_ns = now + 3'600'000'000'000ULL;
    ASSERT_TRUE(m.install(nth_key(1), old).ok());
    ASSERT_TRUE(m.install(nth_key(2), later).ok());
    ASSERT_TRUE(m.install(nth_key(3), never).ok());
    xdp_count(m, nth_key(1), 42, 4200, 40);
    const Subnet net = sn("10.9.0.0/16");
    ASSERT_TRUE(m.add_subnet(net, old).ok());

    std::vector<SubnetVerdict> subnets;
    auto e = m.expire(VerdictMap::now_ns(), &subnets);
    ASSERT_TRUE(e.ok());
    ASSERT_EQ(e->size(), 1u);
    EXPECT_TRUE((*e)[0].key == nth_key(1));
    EXPECT_EQ((*e)[0].verdict.packets, 42u);
    EXPECT_EQ((*e)[0].verdict.bytes, 4200u);
    EXPECT_EQ((*e)[0].verdict.bypassed, 40u);
    ASSERT_EQ(subnets.size(), 1u);
    EXPECT_EQ(subnets[0].subnet, net);
    EXPECT_EQ(m.counts().flows, 2u);
    EXPECT_EQ(m.counts().subnets, 0u);
    EXPECT_FALSE(m.lookup(nth_key(1))->has_value());
    EXPECT_TRUE(m.lookup(nth_key(2))->has_value());
    EXPECT_TRUE(m.lookup(nth_key(3))->has_value());

    // Nothing due: nothing removed; at the later entry's time it goes.
    e = m.expire(VerdictMap::now_ns(), &subnets);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->empty());
    e = m.expire(later.expires_ns, &subnets);
    ASSERT_TRUE(e.ok());
    ASSERT_EQ(e->size(), 1u);
    EXPECT_TRUE((*e)[0].key == nth_key(2));
    EXPECT_TRUE(m.lookup(nth_key(3))->has_value());
    EXPECT_TRUE(m.expire(UINT64_MAX - 1)->empty());
}

// Undelivered counters as the XDP program adds them: a packets from side
// A, b from side B, `bytes` each.
void xdp_keep(const VerdictMap& m, const FlowKey& k, uint64_t a, uint64_t b, uint64_t bytes)
{
    Verdict v{};
    ASSERT_EQ(bpf_map_lookup_elem(m.fd(), &k, &v), 0);
    v.undelivered += a + b;
    v.undelivered_bytes += (a + b) * bytes;
    v.ba_undelivered += b;
    v.ba_undelivered_bytes += b * bytes;
    v.last_ns = VerdictMap::now_ns();
    ASSERT_EQ(bpf_map_update_elem(m.fd(), &k, &v, BPF_EXIST), 0);
}

TEST(VerdictAccounting, PollDeleteAndExpiryReportEveryPacketOnce)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(128);
    TempDir tmp;
    VerdictAccounting acct;
    std::mutex mu;
    std::map<uint32_t, std::array<uint64_t, 4>> sum;  // by nth_key: A packets, A bytes, B packets, B bytes
    auto add = [&](const std::vector<UndeliveredDelta>& ds) {
        std::lock_guard g(mu);
        for (const auto& d : ds) {
            auto& s = sum[(uint32_t(d.key.addr_a[2]) << 8) | d.key.addr_a[3]];
            s[0] += d.packets[0];
            s[1] += d.bytes[0];
            s[2] += d.packets[1];
            s[3] += d.bytes[1];
            EXPECT_GT(d.last_ns, 0u);
        }
    };
    VerdictServerOptions o;
    o.unix_path = tmp.path + "/verdict.sock";
    o.sweep_interval_ms = 50;
    o.on_removed = [&](std::span<const FlowVerdict> fv) { add(acct.removed(fv)); };
    o.on_expired = [&](const std::vector<FlowVerdict>& fv, const std::vector<SubnetVerdict>&) { add(acct.removed(fv)); };
    auto srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok()) << srv.error().message();

    Verdict ttl = drop_verdict();
    ttl.installed_ns = VerdictMap::now_ns();
    ttl.expires_ns = ttl.installed_ns + 300'000'000ULL;
    Verdict keep = drop_verdict();
    keep.installed_ns = ttl.installed_ns;
    ASSERT_TRUE(m.install(nth_key(1), keep).ok());
    ASSERT_TRUE(m.install(nth_key(2), keep).ok());
    ASSERT_TRUE(m.install(nth_key(3), ttl).ok());
    xdp_keep(m, nth_key(1), 5, 2, 100);
    xdp_keep(m, nth_key(2), 1, 0, 60);
    xdp_keep(m, nth_key(3), 0, 4, 70);
    auto p = acct.poll(m);
    ASSERT_TRUE(p.ok()) << p.error().message();
    add(*p);
    xdp_keep(m, nth_key(1), 1, 1, 100);  // after the poll, before the delete
    xdp_keep(m, nth_key(3), 3, 0, 70);   // after the poll, before the expiry
    json r = request(o.unix_path, R"({"op":"del","flow":{"src":"10.0.0.1","dst":"192.168.0.1","sport":1025,"dport":443,"proto":"tcp"}})");
    ASSERT_EQ(r["removed"], 1) << r.dump();
    EXPECT_EQ(r["entries"][0]["undelivered"], 9);
    EXPECT_EQ(r["entries"][0]["ba_undelivered"], 3);
    for (int i = 0; i < 100 && acct.tracked() > 1; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p = acct.poll(m);
    ASSERT_TRUE(p.ok());
    add(*p);
    std::lock_guard g(mu);
    EXPECT_EQ(sum[1], (std::array<uint64_t, 4>{6, 600, 3, 300})) << "deleted: poll + final counters";
    EXPECT_EQ(sum[2], (std::array<uint64_t, 4>{1, 60, 0, 0}));
    EXPECT_EQ(sum[3], (std::array<uint64_t, 4>{3, 210, 4, 280})) << "expired: poll + final counters";
    EXPECT_EQ(acct.tracked(), 1u) << "only the live entry is remembered";
}

TEST(VerdictMap, SubnetVerdictsAsXdpLooksThemUp)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(16, 8);
    Verdict v8 = drop_verdict(8), v16 = drop_verdict(16), v6 = drop_verdict(6);
    v16.action = WEIR_VERDICT_FORWARD;
    ASSERT_TRUE(m.add_subnet(sn("10.0.0.0/8"), v8).ok());
    ASSERT_TRUE(m.add_subnet(sn("10.1.0.0/16"), v16).ok());
    ASSERT_TRUE(m.add_subnet(sn("2001:db8::/32"), v6).ok());
    EXPECT_EQ(m.counts().subnets, 3u);
    ASSERT_TRUE(m.add_subnet(sn("10.0.0.0/8"), v8).ok());  // replace
    EXPECT_EQ(m.counts().subnets, 3u);

    // The XDP lookup: prefixlen = 8 + full address length.
    auto lpm = [&](const char* addr) -> int {
        weir_subnet_key k{};
        if (inet_pton(AF_INET, addr, k.addr) == 1) {
            k.ip_version = 4;
            k.prefixlen = WEIR_SUBNET_KEY_PREFIX(32);
        } else {
            inet_pton(AF_INET6, addr, k.addr);
            k.ip_version = 6;
            k.prefixlen = WEIR_SUBNET_KEY_PREFIX(128);
        }
        Verdict out{};
        if (bpf_map_lookup_elem(m.subnet_fd(), &k, &out) != 0)
            return -1;
        return out.reason;
    };
    EXPECT_EQ(lpm("10.1.2.3"), 16);
    EXPECT_EQ(lpm("10.2.2.3"), 8);
    EXPECT_EQ(lpm("11.0.0.1"), -1);
    EXPECT_EQ(lpm("2001:db8::5"), 6);
    EXPECT_EQ(lpm("a00::1"), -1);  // same first byte as 10/8, other family

    auto l = m.list_subnets();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->size(), 3u);
    auto exact = m.lookup_subnet(sn("10.1.0.0/16"));
    ASSERT_TRUE(exact.ok() && exact->has_value());
    EXPECT_EQ((*exact)->reason, 16);
    EXPECT_EQ((*exact)->prefix_len, 16);
    EXPECT_FALSE(m.lookup_subnet(sn("10.1.0.0/24"))->has_value());
    auto d = m.del_subnet(sn("10.1.0.0/16"));
    ASSERT_TRUE(d.ok() && d->has_value());
    EXPECT_EQ(lpm("10.1.2.3"), 8);
    EXPECT_FALSE(m.del_subnet(sn("10.1.0.0/16"))->has_value());

    // The trie is bounded too.
    for (int i = 0; i < 6; ++i)
        ASSERT_TRUE(m.add_subnet(sn("172.16." + std::to_string(i) + ".0/24"), v8).ok()) << i;
    auto full = m.add_subnet(sn("172.17.0.0/24"), v8);
    ASSERT_FALSE(full.ok());
    EXPECT_NE(full.error().message().find("table full"), std::string::npos);
}

TEST(VerdictMap, PinnedMapsAreShared)
{
    NEED_VERDICT_MAPS();
    struct statfs fs{};
    if (statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != 0xcafe4a11) {
        mkdir("/sys/fs/bpf", 0700);
        if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0)
            GTEST_SKIP() << "bpffs not mounted and cannot be mounted";
    }
    const std::string dir = "/sys/fs/bpf/wv-verdict-" + std::to_string(getpid());
    {
        VerdictMap a = make_map(256, 16, dir);
        ASSERT_TRUE(a.install(nth_key(7), drop_verdict(77)).ok());
        ASSERT_TRUE(a.add_subnet(sn("10.0.0.0/8"), drop_verdict(8)).ok());
        VerdictMap b = make_map(256, 16, dir);
        EXPECT_EQ(b.counts().flows, 1u);
        EXPECT_EQ(b.counts().subnets, 1u);
        auto l = b.lookup(nth_key(7));
        ASSERT_TRUE(l.ok() && l->has_value());
        EXPECT_EQ((*l)->reason, 77);
        // Other limits than the pinned map's are refused.
        VerdictMapOptions o;
        o.max_flows = 512;
        o.max_subnets = 16;
        o.pin_dir = dir;
        auto c = VerdictMap::create(o);
        ASSERT_FALSE(c.ok());
        EXPECT_NE(c.error().message().find("pinned map"), std::string::npos);
    }
    unlink((dir + "/" WEIR_VERDICT_MAP_NAME).c_str());
    unlink((dir + "/" WEIR_SUBNET_VERDICT_MAP_NAME).c_str());

    // A pin of an older weir (96-byte verdicts, before
    // undelivered_tcp_flags) is refused with what to do, never reused.
    {
        const int old = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, WEIR_VERDICT_MAP_NAME, sizeof(weir_flow_key), 96, 1024,
                                       nullptr);
        ASSERT_GE(old, 0) << strerror(-old);
        mkdir(dir.c_str(), 0700);
        ASSERT_EQ(bpf_obj_pin(old, (dir + "/" WEIR_VERDICT_MAP_NAME).c_str()), 0);
        close(old);
        VerdictMapOptions o;
        o.max_flows = 256;
        o.max_subnets = 16;
        o.pin_dir = dir;
        auto c = VerdictMap::create(o);
        ASSERT_FALSE(c.ok());
        EXPECT_NE(c.error().message().find("96-byte verdicts, this weir needs 104"), std::string::npos)
            << c.error().message();
        EXPECT_NE(c.error().message().find("remove the pin"), std::string::npos);
    }
    unlink((dir + "/" WEIR_VERDICT_MAP_NAME).c_str());
    unlink((dir + "/" WEIR_SUBNET_VERDICT_MAP_NAME).c_str());
    rmdir(dir.c_str());
}

// ---------------------------------------------------------------------------

TEST(VerdictServer, UnixSocketEndToEnd)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(4096);
    TempDir tmp;
    VerdictServerOptions o;
    o.unix_path = tmp.path + "/verdict.sock";
    o.sweep_interval_ms = 0;
    auto srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok()) << srv.error().message();
    struct stat st{};
    ASSERT_EQ(stat(o.unix_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);

    // Add one flow from one direction, find it from the other.
    json r = request(o.unix_path, R"({"op":"add","flow":{"src":"10.0.0.2","dst":"10.0.0.1","sport":80,)"
                                   R"("dport":1234,"proto":"tcp"},"verdict":"shunt","after":10,"reason":"tls"})");
    EXPECT_EQ(r, json::parse(R"({"ok":true,"installed":1})"));
    auto key = make_flow_key("10.0.0.1", "10.0.0.2", 1234, 80, 6);
    auto v = m.lookup(*key);
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((*v)->action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ((*v)->shunt_after, 10u);
    EXPECT_GT((*v)->installed_ns, 0u);

    // Batch with hosts and subnets.
    r = request(o.unix_path, R"({"op":"add","items":[{"host":"10.9.9.9","verdict":"drop"},)"
                             R"({"subnet":"172.16.0.0/12","verdict":"divert","egress":2},)"
                             R"({"flow":{"src":"::1","dst":"::2","sport":5,"dport":6,"proto":"udp"},"verdict":"forward"}]})");
    EXPECT_EQ(r, json::parse(R"({"ok":true,"installed":3})"));
    r = request(o.unix_path, R"({"op":"list"})");
    ASSERT_TRUE(r["ok"].get<bool>());
    EXPECT_EQ(r["flows"].size(), 2u);
    EXPECT_EQ(r["subnets"].size(), 2u);
    bool found = false;
    for (const json& f : r["flows"]) {
        if (f["flow"]["src"] == "10.0.0.1") {
            found = true;
            EXPECT_EQ(f["flow"]["sport"], 1234);
            EXPECT_EQ(f["flow"]["dport"], 80);
            EXPECT_EQ(f["verdict"], "shunt");
            EXPECT_EQ(f["after"], 10);
            EXPECT_EQ(f["reason"], "tls");
        }
    }
    EXPECT_TRUE(found);

    // Delete returns the final counters.
    xdp_count(m, *key, 12, 3400, 2);
    r = request(o.unix_path, R"({"op":"del","flow":{"src":"10.0.0.1","dst":"10.0.0.2","sport":1234,"dport":80,"proto":6}})");
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_EQ(r["removed"], 1);
    EXPECT_EQ(r["entries"][0]["packets"], 12);
    EXPECT_EQ(r["entries"][0]["bytes"], 3400);
    EXPECT_EQ(r["entries"][0]["bypassed"], 2);
    r = request(o.unix_path, R"({"op":"del","host":"10.9.9.9"})");
    EXPECT_EQ(r["removed"], 1);
    r = request(o.unix_path, R"({"op":"stats"})");
    EXPECT_EQ(r["flows"], 1);
    EXPECT_EQ(r["subnets"], 1);
    EXPECT_EQ(r["max_flows"], 4096);

    // Malformed lines get error replies on the same connection, which
    // stays usable.
    std::string garbage = "this is not json\n{\"op\":\n\x01\x02\xff\xfe\n[]\n{\"op\":\"add\",\"host\":\"x\",\"verdict\":\"drop\"}\n"
                          "\n{\"op\":\"stats\"}\n";
    auto replies = converse(o.unix_path, garbage, 6);
    ASSERT_EQ(replies.size(), 6u);
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(replies[i]["ok"].get<bool>()) << i;
        EXPECT_EQ(replies[i]["error"].get<std::string>().rfind("bad request: ", 0), 0u) << replies[i].dump();
    }
    EXPECT_TRUE(replies[5]["ok"].get<bool>());
    EXPECT_EQ((*srv)->stats().errors, 5u);

    // A line over the limit closes the connection after the reply.
    (*srv)->stop();
    o.max_request_bytes = 4096;
    srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok());
    replies = converse(o.unix_path, std::string(10000, 'x'), 1);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_NE(replies[0]["error"].get<std::string>().find("longer than 4096"), std::string::npos);
    EXPECT_TRUE(request(o.unix_path, R"({"op":"stats"})")["ok"].get<bool>());
}

TEST(VerdictServer, TableFullAndExpiryOverTheSocket)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(3);
    TempDir tmp;
    VerdictServerOptions o;
    o.unix_path = tmp.path + "/v.sock";
    o.sweep_interval_ms = 50;
    auto srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok()) << srv.error().message();
    std::string items;
    for (int i = 1; i <= 5; ++i)
        items += std::string(i > 1 ? "," : "") + R"({"flow":{"src":"10.0.0.)" + std::to_string(i) +
                 R"(","dst":"10.1.0.1","sport":1,"dport":2,"proto":"udp"},"verdict":"drop","ttl":0.3})";
    json r = request(o.unix_path, R"({"op":"add","items":[)" + items + "]}");
    EXPECT_FALSE(r["ok"].get<bool>());
    EXPECT_EQ(r["error"], "table full");
    EXPECT_EQ(r["installed"], 3);
    r = request(o.unix_path, R"({"op":"add","host":"10.0.0.9","verdict":"drop"})");
    EXPECT_TRUE(r["ok"].get<bool>());  // subnets have their own table
    r = request(o.unix_path,
                R"({"op":"add","flow":{"src":"10.0.0.7","dst":"10.1.0.1","proto":"udp"},"verdict":"drop"})");
    EXPECT_EQ(r["error"], "table full");

    auto k = make_flow_key("10.0.0.2", "10.1.0.1", 1, 2, 17);
    xdp_count(m, *k, 9, 900, 9);
    // The sweeper removes them after 0.3 s; "expire" hands over the counters.
    json e;
    size_t got = 0;
    std::vector<json> entries;
    for (int i = 0; i < 40 && got < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        e = request(o.unix_path, R"({"op":"expire"})");
        ASSERT_TRUE(e["ok"].get<bool>());
        for (const json& x : e["entries"])
            entries.push_back(x);
        got = entries.size();
    }
    ASSERT_EQ(got, 3u);
    bool counted = false;
    for (const json& x : entries)
        if (x["flow"]["src"] == "10.0.0.2")
            counted = x["packets"] == 9 && x["bytes"] == 900 && x["bypassed"] == 9;
    EXPECT_TRUE(counted);
    EXPECT_EQ(m.counts().flows, 0u);
    EXPECT_EQ(request(o.unix_path, R"({"op":"stats"})")["expired"], 3);
}

TEST(VerdictServer, PeerCredentials)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(64);
    TempDir tmp;
    VerdictServerOptions o;
    o.unix_path = tmp.path + "/v.sock";
    o.unix_mode = 0666;  // let nobody reach the credential check
    o.sweep_interval_ms = 0;
    auto srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok()) << srv.error().message();

    // Child: becomes nobody, sends an add, reports the reply by exit code:
    // 10 = unauthorised, 11 = ok, 12 = other reply, 13 = connect refused.
    auto as_nobody = [&](const std::string& path) {
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(kNobody) != 0 || setuid(kNobody) != 0)
                _exit(20);
            auto r = verdict_request(path, R"({"op":"add","host":"10.0.0.1","verdict":"drop"})", 5000);
            if (!r.ok())
                _exit(r.error().code == std::errc::permission_denied ? 13 : 14);
            json j = json::parse(*r, nullptr, false);
            if (j.is_object() && j.value("error", "") == "unauthorised")
                _exit(10);
            if (j.is_object() && j.value("ok", false))
                _exit(11);
            _exit(12);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    EXPECT_EQ(as_nobody(o.unix_path), 10);
    EXPECT_EQ((*srv)->stats().unauthorised, 1u);
    EXPECT_EQ(m.counts().subnets, 0u);

    // Allowed by uid.
    (*srv)->stop();
    o.allowed_uids = {kNobody};
    srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok());
    EXPECT_EQ(as_nobody(o.unix_path), 11);
    EXPECT_EQ(m.counts().subnets, 1u);

    // Default mode 0660 root:root: nobody cannot even connect.
    (*srv)->stop();
    o.allowed_uids.clear();
    o.unix_mode = 0660;
    srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok());
    EXPECT_EQ(as_nobody(o.unix_path), 13);
}

TEST(VerdictServer, Weirctl)
{
    NEED_VERDICT_MAPS();
    const std::string weirctl = WEIR_BINARY_DIR "/tools/weirctl/weirctl";
    if (access(weirctl.c_str(), X_OK) != 0)
        GTEST_SKIP() << weirctl << " not built";
    VerdictMap m = make_map(64);
    TempDir tmp;
    VerdictServerOptions o;
    o.unix_path = tmp.path + "/v.sock";
    o.sweep_interval_ms = 0;
    auto srv = VerdictServer::start(m, o);
    ASSERT_TRUE(srv.ok()) << srv.error().message();
    const std::string base = weirctl + " verdict --socket " + o.unix_path + " ";
    int status = -1;
    std::string out = run(base + "add --src 10.0.0.2 --dst 10.0.0.1 --sport 443 --dport 40000 --proto tcp "
                                 "--verdict shunt --after 4 --ttl 600 --reason ja3",
                          &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(json::parse(out), json::parse(R"({"ok":true,"installed":1})"));
    auto key = make_flow_key("10.0.0.1", "10.0.0.2", 40000, 443, 6);
    auto v = m.lookup(*key);
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((*v)->shunt_after, 4u);
    EXPECT_GT((*v)->expires_ns, VerdictMap::now_ns());

    out = run(base + "add --subnet 10.0.0.0/8 --verdict divert --egress 3", &status);
    EXPECT_EQ(status, 0) << out;
    out = run(base + "list", &status);
    EXPECT_EQ(status, 0) << out;
    json l = json::parse(out);
    EXPECT_EQ(l["flows"][0]["reason"], "ja3");
    EXPECT_EQ(l["subnets"][0]["subnet"], "10.0.0.0/8");
    EXPECT_EQ(l["subnets"][0]["egress"], 3);

    xdp_count(m, *key, 3, 300, 0);
    out = run(base + "del --src 10.0.0.1 --dst 10.0.0.2 --sport 40000 --dport 443 --proto 6", &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(json::parse(out)["entries"][0]["packets"], 3);
    out = run(base + "stats", &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(json::parse(out)["flows"], 0);

    // Error replies exit 1 and are printed; no server exits 2.
    out = run(base + "add --subnet 10.0.0.1/8 --verdict drop", &status);
    EXPECT_EQ(status, 1) << out;
    EXPECT_NE(out.find("host bits"), std::string::npos) << out;
    out = run(base + "raw 'not json'", &status);
    EXPECT_EQ(status, 1) << out;
    out = run(weirctl + " verdict --socket " + tmp.path + "/none.sock stats", &status);
    EXPECT_EQ(status, 2) << out;
    out = run(base + "add --host 10.0.0.1 --subnet 10.0.0.0/8 --verdict drop", &status);
    EXPECT_EQ(status, 2) << out;
}

TEST(VerdictServer, Zmq)
{
    NEED_VERDICT_MAPS();
    VerdictMap m = make_map(64);
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
    auto ask = [&](const std::string& s) {
        const std::string r = req.ask(s);
        return r.empty() ? json() : json::parse(r);
    };
    for (int i = 0; i < 20; ++i) {
        json r = ask(R"({"op":"add","host":"10.0.0.)" + std::to_string(i) + R"(","verdict":"drop"})");
        ASSERT_TRUE(r.is_object());
        EXPECT_TRUE(r["ok"].get<bool>());
    }
    EXPECT_EQ(m.counts().subnets, 20u);
    json bad = ask("garbage");
    EXPECT_FALSE(bad["ok"].get<bool>());
    EXPECT_EQ(ask(R"({"op":"stats"})")["subnets"], 20);
}
