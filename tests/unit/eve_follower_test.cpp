// Suricata eve.json follower: tail -F semantics on real files (start at the
// end or the beginning, partial lines, copytruncate, rotation by rename, a
// file created late, overlong lines), the rules file, and events (in
// Suricata's documented eve format) turned into verdict items, checked with
// the verdict server's own request parser. Sending to weir is covered by
// tests/e2e/eve_verdicts.sh.
#include <weir/dataplane/eve_follower.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace weir::dataplane;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

class TmpDir {
public:
    TmpDir()
    {
        char t[] = "/tmp/wrd_eveXXXXXX";
        path_ = ::mkdtemp(t);
    }
    ~TmpDir() { fs::remove_all(path_); }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

void append(const std::string& path, const std::string& text)
{
    std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

std::vector<std::string> poll_all(LineFollower& f)
{
    std::vector<std::string> v;
    f.poll([&](std::string_view l) { v.emplace_back(l); });
    return v;
}

using Lines = std::vector<std::string>;

TEST(LineFollower, StartsAtEndAndKeepsPartialLines)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    append(p, "old1\nold2\nhalf-of-old");
    LineFollower f(p);
    EXPECT_EQ(poll_all(f), Lines{});
    // The rest of the line that was being written when we started is
    // skipped; later lines are read.
    append(p, "-rest\nnew1\nnew");
    EXPECT_EQ(poll_all(f), Lines{"new1"});
    EXPECT_EQ(poll_all(f), Lines{});
    append(p, "2\r\n");
    EXPECT_EQ(poll_all(f), Lines{"new2"});
    EXPECT_TRUE(f.at_end());
}

TEST(LineFollower, FromBeginning)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    append(p, "a\nb\n");
    LineFollower f(p, LineFollowerOptions{.from_beginning = true});
    EXPECT_EQ(poll_all(f), (Lines{"a", "b"}));
    EXPECT_EQ(f.stats().lines, 2u);
}

TEST(LineFollower, FileCreatedLater)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    LineFollower f(p);
    EXPECT_EQ(poll_all(f), Lines{});
    EXPECT_EQ(f.stats().opens, 0u);
    append(p, "x\ny\n");
    // A file that appears after start is new: read whole.
    EXPECT_EQ(poll_all(f), (Lines{"x", "y"}));
}

TEST(LineFollower, Truncation)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    append(p, "1\n2\n3\n");
    LineFollower f(p, LineFollowerOptions{.from_beginning = true});
    EXPECT_EQ(poll_all(f).size(), 3u);
    // copytruncate: emptied in place, then written again (shorter).
    ASSERT_EQ(::truncate(p.c_str(), 0), 0);
    append(p, "4\n");
    EXPECT_EQ(poll_all(f), Lines{"4"});
    EXPECT_EQ(f.stats().truncations, 1u);
    EXPECT_EQ(f.stats().rotations, 0u);
}

TEST(LineFollower, RotationByRename)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    append(p, "1\n");
    LineFollower f(p, LineFollowerOptions{.from_beginning = true});
    EXPECT_EQ(poll_all(f), Lines{"1"});
    // The writer appends once more after the rename (before it reopens);
    // that line must not be lost, and the new file is read from its start.
    append(p, "2\n");
    fs::rename(p, p + ".1");
    append(p + ".1", "3\n");
    append(p, "4\n5");
    EXPECT_EQ(poll_all(f), (Lines{"2", "3", "4"}));
    EXPECT_EQ(f.stats().rotations, 1u);
    append(p, "\n");
    EXPECT_EQ(poll_all(f), Lines{"5"});
    // The path gone for a while (moved away, not yet re-created): the old
    // file is still followed, nothing breaks.
    fs::rename(p, p + ".2");
    append(p + ".2", "6\n");
    EXPECT_EQ(poll_all(f), Lines{"6"});
    append(p, "7\n");
    EXPECT_EQ(poll_all(f), Lines{"7"});
    EXPECT_EQ(f.stats().rotations, 2u);
}

TEST(LineFollower, OverlongLinesAreSkipped)
{
    TmpDir d;
    const auto p = d.file("eve.json");
    LineFollowerOptions o;
    o.from_beginning = true;
    o.max_line_bytes = 16;
    LineFollower f(p, o);
    append(p, "short\n" + std::string(40, 'x'));
    EXPECT_EQ(poll_all(f), Lines{"short"});
    append(p, std::string(40, 'y') + "\nok\n" + std::string(17, 'z') + "\nend\n");
    EXPECT_EQ(poll_all(f), (Lines{"ok", "end"}));
    EXPECT_EQ(f.stats().overlong, 2u);
}

const char* kRules = R"J({"rules":[
  {"name":"trojans","event_type":"alert","sid":["2000000-2099999",2100498],"severity":[1,2],
   "action":"drop","ttl":3600,"reason":"{signature} (sid {sid})"},
  {"name":"policy","event_type":"alert","category":"Potential Corporate Privacy Violation","action":"divert","egress":1},
  {"name":"scanner","event_type":"alert","sid":"9000000-9000009","target":"src","action":"drop"},
  {"name":"bypassed","bypassed":true,"action":"shunt","after":0},
  {"name":"tls","event_type":"tls","app_proto":"TLS","action":"shunt","after":5,"tcp_control":true}
]})J";

std::vector<EveRule> rules()
{
    auto r = parse_eve_rules(kRules);
    if (!r)
        throw std::runtime_error(r.error().message());
    return std::move(r.value());
}

// An alert as Suricata writes it (docs: Eve JSON Format, "Event type: Alert").
std::string alert(uint64_t sid, int severity, const std::string& extra = {})
{
    return R"({"timestamp":"2024-01-01T10:00:00.000000+0000","flow_id":1234,"in_iface":"eth0","event_type":"alert",)"
           R"("src_ip":"10.0.0.1","src_port":51000,"dest_ip":"93.184.216.34","dest_port":80,"proto":"TCP",)" +
           extra +
           R"("alert":{"action":"allowed","gid":1,"signature_id":)" + std::to_string(sid) +
           R"(,"rev":1,"signature":"ET TROJAN test","category":"A Network Trojan was detected","severity":)" +
           std::to_string(severity) + R"(},"app_proto":"http"})";
}

json item_of(const std::string& line, size_t* rule = nullptr)
{
    EveItem it;
    std::string why;
    auto r = rules();
    EXPECT_EQ(eve_event_to_item(r, line, &it, &why), EveOutcome::Item) << why;
    if (rule)
        *rule = it.rule;
    // The server's parser accepts it.
    auto req = parse_verdict_request(R"({"op":"add","items":[)" + it.json + "]}");
    EXPECT_TRUE(req.ok()) << (req.ok() ? "" : req.error().message()) << " " << it.json;
    return json::parse(it.json);
}

TEST(EveRules, ParseErrors)
{
    EXPECT_TRUE(parse_eve_rules(kRules).ok());
    for (const char* bad : {
             "", "[]", R"({"rules":[]})", R"({"rules":[{"action":"drop"}],"x":1})",
             R"({"rules":[{"event_type":"alert"}]})",                    // no action
             R"({"rules":[{"action":"explode"}]})",
             R"({"rules":[{"action":"drop","sid":"20-10"}]})",
             R"({"rules":[{"action":"drop","sid":"abc"}]})",
             R"({"rules":[{"action":"divert"}]})",                       // no egress
             R"({"rules":[{"action":"drop","after":3}]})",               // after on drop
             R"({"rules":[{"action":"drop","egress":1}]})",
             R"({"rules":[{"action":"drop","ttl":-1}]})",
             R"({"rules":[{"action":"drop","target":"both"}]})",
             R"({"rules":[{"action":"drop","severty":1}]})",             // typo: unknown key
         }) {
        auto r = parse_eve_rules(bad);
        EXPECT_FALSE(r.ok()) << bad;
    }
    auto r = parse_eve_rules(R"({"rules":[{"action":"drop"},{"action":"drop","sid":[]}]})");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().context.find("rule 1"), std::string::npos) << r.error().context;
}

TEST(EveEvents, AlertBySidAndSeverity)
{
    size_t rule = 99;
    json it = item_of(alert(2012345, 1), &rule);
    EXPECT_EQ(rule, 0u);
    EXPECT_EQ(it["verdict"], "drop");
    EXPECT_EQ(it["ttl"], 3600);
    EXPECT_EQ(it["reason"], "ET TROJAN test (sid 2012345)");
    EXPECT_EQ(it["flow"]["src"], "10.0.0.1");
    EXPECT_EQ(it["flow"]["dst"], "93.184.216.34");
    EXPECT_EQ(it["flow"]["sport"], 51000);
    EXPECT_EQ(it["flow"]["dport"], 80);
    EXPECT_EQ(it["flow"]["proto"], "tcp");
    item_of(alert(2100498, 2), &rule);
    EXPECT_EQ(rule, 0u);

    auto r = rules();
    EveItem x;
    std::string why;
    // Severity 3 and a sid outside every range: no rule.
    EXPECT_EQ(eve_event_to_item(r, alert(2012345, 3), &x, &why), EveOutcome::NoMatch);
    EXPECT_EQ(eve_event_to_item(r, alert(2200000, 1), &x, &why), EveOutcome::NoMatch);
}

TEST(EveEvents, CategorySrcHostVlanIpv6)
{
    std::string pol = alert(1, 3);
    pol.replace(pol.find("A Network Trojan was detected"), 29, "Potential Corporate Privacy Violation");
    size_t rule = 99;
    json it = item_of(pol, &rule);
    EXPECT_EQ(rule, 1u);
    EXPECT_EQ(it["verdict"], "divert");
    EXPECT_EQ(it["egress"], 1);

    json h = item_of(alert(9000003, 3), &rule);
    EXPECT_EQ(rule, 2u);
    EXPECT_EQ(h["host"], "10.0.0.1");
    EXPECT_FALSE(h.contains("flow"));

    json v = item_of(alert(2000000, 1, R"("vlan":[100,200],)"));
    EXPECT_EQ(v["flow"]["vlan"], 100);  // the outer tag

    std::string six = alert(2000001, 1);
    six.replace(six.find("10.0.0.1"), 8, "2001:db8::1");
    six.replace(six.find("93.184.216.34"), 13, "2001:db8::2");
    json s = item_of(six);
    EXPECT_EQ(s["flow"]["src"], "2001:db8::1");
}

TEST(EveEvents, IcmpKeysAsTheDecoder)
{
    const std::string echo =
        R"({"event_type":"alert","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"ICMP","icmp_type":8,"icmp_code":0,)"
        R"("alert":{"signature_id":2000002,"severity":1,"signature":"ping"}})";
    json e = item_of(echo);
    EXPECT_EQ(e["flow"]["proto"], "icmp");
    EXPECT_EQ(e["flow"]["sport"], 8 << 8);
    EXPECT_EQ(e["flow"]["dport"], 0);
    // An echo reply names the same flow (the request's type as source port).
    std::string reply = echo;
    reply.replace(reply.find("\"icmp_type\":8"), 13, "\"icmp_type\":0");
    EXPECT_EQ(item_of(reply)["flow"]["sport"], 8 << 8);
    std::string unreach = echo;
    unreach.replace(unreach.find("\"icmp_type\":8,\"icmp_code\":0"), 27, "\"icmp_type\":3,\"icmp_code\":1");
    json u = item_of(unreach);
    EXPECT_EQ(u["flow"]["sport"], 0);
    EXPECT_EQ(u["flow"]["dport"], 3 << 8 | 1);
    std::string v6 = echo;
    v6.replace(v6.find("\"ICMP\""), 6, "\"IPv6-ICMP\"");
    v6.replace(v6.find("10.0.0.1"), 8, "2001:db8::1");
    v6.replace(v6.find("10.0.0.2"), 8, "2001:db8::2");
    v6.replace(v6.find("\"icmp_type\":8"), 13, "\"icmp_type\":129");
    json s = item_of(v6);
    EXPECT_EQ(s["flow"]["proto"], "ipv6-icmp");
    EXPECT_EQ(s["flow"]["sport"], 128 << 8);
}

TEST(EveEvents, BypassedFlowAndTls)
{
    // Suricata 6 (capture bypass counters) and 7 ("bypass": "local").
    const std::string f6 =
        R"({"event_type":"flow","src_ip":"10.0.0.5","src_port":443,"dest_ip":"10.0.0.6","dest_port":50000,"proto":"TCP",)"
        R"("app_proto":"tls","flow":{"pkts_toserver":10,"bypassed":{"pkts_toserver":100,"bytes_toserver":9000}}})";
    size_t rule = 99;
    json a = item_of(f6, &rule);
    EXPECT_EQ(rule, 3u);
    EXPECT_EQ(a["verdict"], "shunt");
    EXPECT_EQ(a["after"], 0);
    EXPECT_EQ(a["reason"], "suricata flow");  // {signature} without an alert
    const std::string f7 =
        R"({"event_type":"flow","src_ip":"10.0.0.5","src_port":443,"dest_ip":"10.0.0.6","dest_port":50000,"proto":"UDP",)"
        R"("flow":{"bypass":"local"}})";
    item_of(f7, &rule);
    EXPECT_EQ(rule, 3u);
    // Not bypassed: no rule for a plain flow event.
    auto r = rules();
    EveItem x;
    std::string why;
    EXPECT_EQ(eve_event_to_item(r, R"({"event_type":"flow","src_ip":"1.1.1.1","dest_ip":"2.2.2.2","proto":"TCP","flow":{}})", &x, &why),
              EveOutcome::NoMatch);

    const std::string tls =
        R"({"event_type":"tls","src_ip":"10.0.0.7","src_port":50001,"dest_ip":"10.0.0.8","dest_port":443,"proto":"TCP",)"
        R"("app_proto":"tls","tls":{"sni":"example.com","version":"TLS 1.3"}})";
    json t = item_of(tls, &rule);
    EXPECT_EQ(rule, 4u);
    EXPECT_EQ(t["after"], 5);
    EXPECT_EQ(t["tcp_control"], true);
}

TEST(EveEvents, GarbageNeverCrashes)
{
    auto r = rules();
    EveItem x;
    std::string why;
    const std::string full = alert(2000000, 1);
    // Every prefix of a real event (a line cut by a crash or a full disk).
    for (size_t n = 0; n < full.size(); ++n) {
        auto o = eve_event_to_item(r, std::string_view(full).substr(0, n), &x, &why);
        EXPECT_EQ(o, EveOutcome::BadLine) << n;
    }
    for (const char* g : {"", "null", "[1,2]", "\"alert\"", "{\"event_type\":", "\xff\xfe{}", "{\"a\":\"\xc3\x28\"}"})
        EXPECT_EQ(eve_event_to_item(r, g, &x, &why), EveOutcome::BadLine) << g;
    // Matching events without a usable 5-tuple.
    EXPECT_EQ(eve_event_to_item(r, R"({"event_type":"alert","alert":{"signature_id":2000000,"severity":1}})", &x, &why),
              EveOutcome::BadEvent);
    std::string noproto = full;
    noproto.replace(noproto.find("\"TCP\""), 5, "\"XYZ\"");
    EXPECT_EQ(eve_event_to_item(r, noproto, &x, &why), EveOutcome::BadEvent);
    std::string badport = full;
    badport.replace(badport.find("51000"), 5, "99999");
    EXPECT_EQ(eve_event_to_item(r, badport, &x, &why), EveOutcome::BadEvent);
}

TEST(EveForwarder, CountsMergesAndValidates)
{
    EveForwarderOptions o;
    o.socket_path = "/nonexistent/wrd.sock";
    EveForwarder fw(rules(), o);
    EXPECT_TRUE(fw.add_line(alert(2000000, 1)));
    EXPECT_TRUE(fw.add_line(alert(2000001, 2)));  // same flow: merged
    EXPECT_FALSE(fw.add_line("not json"));
    EXPECT_FALSE(fw.add_line(alert(5, 1)));        // no rule
    std::string badaddr = alert(2000000, 1);
    badaddr.replace(badaddr.find("10.0.0.1"), 8, "10.0.0.300");
    EXPECT_FALSE(fw.add_line(badaddr));            // the server's parser refuses it
    EXPECT_FALSE(fw.add_line(""));
    EXPECT_EQ(fw.pending(), 1u);
    const auto& s = fw.stats();
    EXPECT_EQ(s.lines, 6u);
    EXPECT_EQ(s.bad_lines, 1u);
    EXPECT_EQ(s.events, 4u);
    EXPECT_EQ(s.matched, 3u);
    EXPECT_EQ(s.bad_events, 1u);
    EXPECT_EQ(s.merged, 1u);
    // weir unreachable: the batch stays queued.
    auto r = fw.flush_one();
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(fw.pending(), 1u);
    EXPECT_EQ(fw.stats().send_failures, 1u);
    json st = json::parse(fw.stats_json());
    EXPECT_EQ(st["per_rule"]["trojans"], 3);
    EXPECT_EQ(st["pending"], 1);
}

TEST(EveRules, ReasonIsCutAtUtf8Boundary)
{
    auto r = parse_eve_rules(R"({"rules":[{"action":"drop","reason":"{signature}"}]})");
    ASSERT_TRUE(r.ok());
    std::string sig;
    for (int i = 0; i < 200; ++i)
        sig += "\xc3\xa9";  // é, 2 bytes
    json ev = json::parse(alert(1, 1));
    ev["alert"]["signature"] = sig;
    EveItem it;
    std::string why;
    ASSERT_EQ(eve_event_to_item(*r, ev.dump(), &it, &why), EveOutcome::Item);
    json j = json::parse(it.json);
    EXPECT_EQ(j["reason"].get<std::string>().size(), 256u);
    EXPECT_TRUE(parse_verdict_request(R"({"op":"add","items":[)" + it.json + "]}").ok());
}

} // namespace
