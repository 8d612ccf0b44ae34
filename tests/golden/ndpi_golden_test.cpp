// Golden test: weir's decoder and flow table on nDPI's regression captures,
// compared flow by flow with what nDPI 4.11-dev's ndpiReader reported for
// them (../shared/pcaps/ndpi/{pcap,result}). See docs/golden.md.
//
// A flow of nDPI's matches when exactly one weir flow has the same L4
// protocol, VLAN and unordered endpoint pair (ports only where nDPI keys on
// them), and its packet and byte counters agree in both directions. The test
// fails when fewer than 99 % of nDPI's flows match, when a flow that does
// not match is missing from known_differences.txt, and when that file lists
// a flow that now matches (or no longer exists).
#include "ndpi_result.hpp"

#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/flow_table.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using weir::FlowRecord;
using weir::test::NdpiFlow;

constexpr uint64_t kSecond = 1000000000ULL;
constexpr uint64_t kCentury = 100ULL * 365 * 24 * 3600 * kSecond;

// Reason categories a known difference may carry. Each one is a documented
// semantic difference between ndpiReader and weir (docs/golden.md).
const std::set<std::string, std::less<>> kReasonCategories = {
    "vlan-tag",             // QinQ: nDPI keys on the inner tag, weir on the outer
    "tunnel-decap",         // a tunnel only ndpiReader opens (CAPWAP, PPTP GRE)
    "ndpi-skips-fragments", // ndpiReader drops IP fragments with a non-zero offset
    "ndpi-skips-truncated", // ndpiReader drops packets captured shorter than their IP length
    "icmp-keying",          // weir keys ICMP by type/code, nDPI by host pair
    "ndpi-address-text",    // ndpiReader printed an IPv6 address that names none
    "ndpi-malformed",       // ndpiReader accounted a malformed packet weir rejects
};

// ---------------------------------------------------------------- matching

/// nDPI's flow key: protocol, VLAN and the unordered endpoint pair.
struct MatchKey {
    uint8_t proto = 0;
    uint8_t ip_version = 0;
    uint16_t vlan = 0;
    std::array<uint8_t, 16> lo_addr{};
    std::array<uint8_t, 16> hi_addr{};
    uint16_t lo_port = 0;
    uint16_t hi_port = 0;

    auto operator<=>(const MatchKey&) const = default;
};

/// ndpiReader reads ports for TCP and UDP only; every other protocol
/// (ICMP included) is keyed by the address pair with ports 0.
bool ndpi_has_ports(uint8_t proto)
{
    return proto == 6 || proto == 17;
}

MatchKey make_key(uint8_t proto, uint16_t vlan, uint8_t ipv, const std::array<uint8_t, 16>& a, uint16_t pa,
                  const std::array<uint8_t, 16>& b, uint16_t pb)
{
    MatchKey k;
    k.proto = proto;
    k.vlan = vlan;
    k.ip_version = ipv;
    if (!ndpi_has_ports(proto))
        pa = pb = 0;
    if (std::tie(a, pa) <= std::tie(b, pb)) {
        k.lo_addr = a, k.lo_port = pa, k.hi_addr = b, k.hi_port = pb;
    } else {
        k.lo_addr = b, k.lo_port = pb, k.hi_addr = a, k.hi_port = pa;
    }
    return k;
}

MatchKey key_of(const FlowRecord& r)
{
    return make_key(r.key.proto, r.key.vlan, r.key.ip_version, r.key.addr_a, r.key.port_a, r.key.addr_b, r.key.port_b);
}

MatchKey key_of(const NdpiFlow& f)
{
    return make_key(f.ip_proto, f.vlan, f.src.ip_version, f.src.addr, f.src.port, f.dst.addr, f.dst.port);
}

// ---------------------------------------------------------------- weir run

struct WeirRun {
    std::vector<FlowRecord> flows;
    weir::engine::DecoderStats decoder;
    uint64_t packets = 0;
    uint64_t evicted = 0;
    std::string open_error; ///< the capture could not be opened
    std::string error;      ///< the capture ended early (cut short, corrupt)
};

weir::engine::DecoderConfig golden_decoder_config()
{
    weir::engine::DecoderConfig c;
    c.decap_tunnels = true;
    return c;
}

weir::engine::FlowTableConfig golden_table_config()
{
    weir::engine::FlowTableConfig c;
    // Far above the flows of any one capture; the test checks nothing was
    // evicted, since ndpiReader never evicts.
    c.capacity = 1u << 16;
    // ndpiReader has no active timeout, and its idle purge drops a flow
    // without printing it (so nothing it printed was split by time). Both
    // timeouts are set past the span of any capture here (collectd.pcap
    // jumps 22 years), so weir keeps every flow whole as nDPI does.
    c.idle_timeout_ns = kCentury;
    c.active_timeout_ns = kCentury;
    // ndpiReader does not end a flow at FIN or RST: late ACKs and
    // retransmissions after the end stay in the flow. weir's linger (2 s by
    // default) would start a new flow with them; a new SYN still does.
    c.tcp_end_linger_ns = kCentury;
    c.byte_count = weir::engine::ByteCount::Wire;
    return c;
}

WeirRun run_weir(const std::string& path)
{
    WeirRun run;
    auto src = weir::dataplane::open_pcap_file(path);
    if (!src) {
        run.open_error = src.error().message();
        return run;
    }
    weir::engine::Decoder decoder(golden_decoder_config());
    auto table = weir::engine::FlowTable::create(golden_table_config());
    if (!table) {
        run.open_error = table.error().message();
        return run;
    }
    weir::engine::FlowSink sink = [&run](const FlowRecord& r) { run.flows.push_back(r); };
    std::array<weir::RawPacket, 64> burst;
    weir::PacketMeta meta;
    while (!(*src)->finished()) {
        uint32_t n = (*src)->rx_burst(burst.data(), static_cast<uint32_t>(burst.size()));
        if (n == 0)
            continue;
        for (uint32_t i = 0; i < n; ++i) {
            weir::RawPacket p = burst[i];
            // ndpiReader adds the captured length (pcap caplen, its
            // "rawsize") to a flow's bytes, not the wire length: feed that
            // as the frame length so ByteCount::Wire counts the same.
            p.wire_len = p.caplen;
            ++run.packets;
            if (decoder.decode(p, meta))
                (*table)->update(meta, sink);
        }
    }
    if (auto e = (*src)->error())
        run.error = e->message();
    (*table)->flush(sink);
    run.evicted = (*table)->stats().exported[static_cast<int>(weir::EndReason::LackOfResources)] +
                  (*table)->stats().drops.get(weir::DropReason::TableFull);
    run.decoder = decoder.stats();
    return run;
}

// ---------------------------------------------------------------- fixture

struct KnownDifference {
    std::string capture;
    std::string flow;
    std::string category;
    std::string text;
    int line = 0;
};

/// "capture | flow | category | text" per line; '#' starts a comment line.
std::vector<KnownDifference> read_known_differences(const fs::path& path, std::vector<std::string>& errors)
{
    std::vector<KnownDifference> out;
    for (auto& l : weir::test::read_fixture(path.string(), 4, "capture | flow | category | text", 2, kReasonCategories, errors))
        out.push_back({l.parts[0], l.parts[1], l.parts[2], l.parts[3], l.line});
    return out;
}

// ---------------------------------------------------------------- compare

std::string flow_id(const NdpiFlow& f)
{
    std::string s = f.endpoints_text();
    if (f.vlan)
        s += " [VLAN: " + std::to_string(f.vlan) + "]";
    return s;
}

std::string counts(uint64_t p0, uint64_t b0, uint64_t p1, uint64_t b1)
{
    return std::to_string(p0) + "/" + std::to_string(b0) + " <-> " + std::to_string(p1) + "/" + std::to_string(b1);
}

struct Mismatch {
    std::string capture;
    std::string flow;
    std::string detail;
};

struct Totals {
    std::size_t ndpi_flows = 0;
    std::size_t matched = 0;
    std::size_t client_agrees = 0;   // among matched flows with an orientation
    std::size_t oriented = 0;
    std::size_t weir_flows = 0;
    std::size_t weir_unmatched = 0;  // weir flows no nDPI flow claims
    uint64_t packets = 0;
    std::vector<Mismatch> mismatches;
};

void compare_capture(const std::string& name, const std::vector<NdpiFlow>& ndpi, const WeirRun& run, Totals& t)
{
    std::map<MatchKey, std::vector<const FlowRecord*>> weir;
    for (const auto& r : run.flows)
        weir[key_of(r)].push_back(&r);
    t.weir_flows += run.flows.size();

    std::set<MatchKey> claimed;
    for (const auto& f : ndpi) {
        ++t.ndpi_flows;
        auto miss = [&](std::string detail) { t.mismatches.push_back({name, flow_id(f), std::move(detail)}); };
        if (f.src.ip_version == 0 || f.dst.ip_version == 0) {
            miss("nDPI printed an address that is not one");
            continue;
        }
        MatchKey k = key_of(f);
        claimed.insert(k);
        auto it = weir.find(k);
        if (it == weir.end()) {
            miss("no weir flow with these endpoints");
            continue;
        }
        if (it->second.size() != 1) {
            std::string d = std::to_string(it->second.size()) + " weir flows:";
            for (const FlowRecord* r : it->second) {
                bool src_is_a = std::tie(f.src.addr, f.src.port) == std::tie(r->key.addr_a, r->key.port_a) ||
                                (!ndpi_has_ports(f.ip_proto) && f.src.addr == r->key.addr_a);
                const auto& ab = r->dir[r->client_is_a ? 0 : 1];
                const auto& ba = r->dir[r->client_is_a ? 1 : 0];
                d += ' ';
                d += src_is_a ? counts(ab.packets, ab.bytes, ba.packets, ba.bytes)
                              : counts(ba.packets, ba.bytes, ab.packets, ab.bytes);
                if (!ndpi_has_ports(f.ip_proto))
                    d += " (" + std::to_string(r->key.port_a) + "/" + std::to_string(r->key.port_b) + ")";
                d += ";";
            }
            d += " nDPI " + counts(f.dir[0].packets, f.dir[0].bytes, f.dir[1].packets, f.dir[1].bytes);
            miss(d);
            continue;
        }
        const FlowRecord& r = *it->second.front();
        // Side A -> B and B -> A counters of the weir flow.
        const auto& ab = r.dir[r.client_is_a ? 0 : 1];
        const auto& ba = r.dir[r.client_is_a ? 1 : 0];
        bool src_is_a = std::tie(f.src.addr, f.src.port) == std::tie(r.key.addr_a, r.key.port_a);
        if (!ndpi_has_ports(f.ip_proto))
            src_is_a = f.src.addr == r.key.addr_a;
        bool same_ends = std::tie(r.key.addr_a, r.key.port_a) == std::tie(r.key.addr_b, r.key.port_b) ||
                         (!ndpi_has_ports(f.ip_proto) && r.key.addr_a == r.key.addr_b);
        auto agree = [&](const weir::DirCounters& s2d, const weir::DirCounters& d2s) {
            return s2d.packets == f.dir[0].packets && s2d.bytes == f.dir[0].bytes &&
                   d2s.packets == f.dir[1].packets && d2s.bytes == f.dir[1].bytes;
        };
        bool ok = src_is_a ? agree(ab, ba) : agree(ba, ab);
        if (!ok && same_ends)
            ok = agree(ba, ab) || agree(ab, ba);
        if (!ok) {
            const auto& s2d = src_is_a ? ab : ba;
            const auto& d2s = src_is_a ? ba : ab;
            miss("nDPI " + counts(f.dir[0].packets, f.dir[0].bytes, f.dir[1].packets, f.dir[1].bytes) + ", weir " +
                 counts(s2d.packets, s2d.bytes, d2s.packets, d2s.bytes));
            continue;
        }
        ++t.matched;
        if (!same_ends) {
            ++t.oriented;
            // ndpiReader prints the flow's source first; weir's client.
            bool agrees = src_is_a == (r.client_is_a == 1);
            t.client_agrees += agrees;
            if (!agrees && std::getenv("WEIR_GOLDEN_VERBOSE"))
                std::printf("  client differs: %s | %s\n", name.c_str(), flow_id(f).c_str());
        }
    }
    for (const auto& [k, v] : weir)
        if (!claimed.contains(k))
            t.weir_unmatched += v.size();
}

fs::path ndpi_dir()
{
    return fs::path(WEIR_SHARED_DIR) / "pcaps" / "ndpi";
}

TEST(NdpiGolden, FlowsMatchNdpiReader)
{
    fs::path pcaps = ndpi_dir() / "pcap";
    fs::path results = ndpi_dir() / "result";
    if (!fs::is_directory(pcaps) || !fs::is_directory(results))
        GTEST_SKIP() << "nDPI captures not found under " << ndpi_dir();

    std::vector<fs::path> captures;
    for (const auto& e : fs::directory_iterator(pcaps))
        if (e.is_regular_file())
            captures.push_back(e.path());
    std::sort(captures.begin(), captures.end());
    ASSERT_FALSE(captures.empty());

    auto t0 = std::chrono::steady_clock::now();
    Totals t;
    for (const auto& cap : captures) {
        std::string name = cap.filename().string();
        auto res = weir::test::read_ndpi_result((results / (name + ".out")).string());
        ASSERT_TRUE(res) << name << ": " << res.error().message();
        for (const auto& e : res->errors)
            ADD_FAILURE() << name << ".out " << e;
        WeirRun run = run_weir(cap.string());
        // A capture cut short ends ndpiReader's input as it ends weir's;
        // one weir cannot open at all is a failure.
        if (!run.open_error.empty())
            ADD_FAILURE() << name << ": " << run.open_error;
        if (!run.error.empty())
            std::printf("nDPI golden: %s ends early: %s\n", name.c_str(), run.error.c_str());
        EXPECT_EQ(run.evicted, 0u) << name << ": flow table too small for the golden run";
        t.packets += run.packets;
        compare_capture(name, res->flows, run, t);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::vector<std::string> fixture_errors;
    auto known = read_known_differences(fs::path(WEIR_SOURCE_DIR) / "tests/golden/known_differences.txt", fixture_errors);
    for (const auto& e : fixture_errors)
        ADD_FAILURE() << "known_differences.txt " << e;

    std::map<std::pair<std::string, std::string>, const KnownDifference*> listed;
    for (const auto& k : known) {
        if (!listed.emplace(std::pair{k.capture, k.flow}, &k).second)
            ADD_FAILURE() << "known_differences.txt line " << k.line << ": listed twice";
    }

    double pct = t.ndpi_flows ? 100.0 * static_cast<double>(t.matched) / static_cast<double>(t.ndpi_flows) : 0;
    std::printf("nDPI golden: %zu captures, %llu packets, %.2f s\n", captures.size(),
                static_cast<unsigned long long>(t.packets), secs);
    std::printf("nDPI golden: %zu of %zu nDPI flows match exactly (%.2f %%)\n", t.matched, t.ndpi_flows, pct);
    std::printf("nDPI golden: client = nDPI's first endpoint for %zu of %zu matched flows (%.2f %%)\n",
                t.client_agrees, t.oriented,
                t.oriented ? 100.0 * static_cast<double>(t.client_agrees) / static_cast<double>(t.oriented) : 0.0);
    std::printf("nDPI golden: weir flows %zu, of which %zu have no nDPI counterpart\n", t.weir_flows,
                t.weir_unmatched);

    std::map<std::string, std::size_t> by_category;
    std::set<std::pair<std::string, std::string>> seen;
    std::string last_capture;
    for (const auto& m : t.mismatches) {
        auto it = listed.find({m.capture, m.flow});
        if (m.capture != last_capture) {
            std::printf("  %s:\n", m.capture.c_str());
            last_capture = m.capture;
        }
        std::printf("    %s: %s [%s]\n", m.flow.c_str(), m.detail.c_str(),
                    it == listed.end() ? "NOT LISTED" : it->second->category.c_str());
        seen.insert({m.capture, m.flow});
        if (it == listed.end())
            ADD_FAILURE() << "unlisted difference: " << m.capture << " | " << m.flow << ": " << m.detail;
        else
            ++by_category[it->second->category];
    }
    for (const auto& k : known)
        if (!seen.contains({k.capture, k.flow}))
            ADD_FAILURE() << "known_differences.txt line " << k.line << " is stale (flow now matches or is gone): "
                          << k.capture << " | " << k.flow;
    for (const auto& [c, n] : by_category)
        std::printf("nDPI golden: %-22s %zu\n", c.c_str(), n);
    std::fflush(stdout);

    EXPECT_GE(pct, 99.0) << t.matched << " of " << t.ndpi_flows << " nDPI flows match";
}

} // namespace
