// Parser for the per-flow lines of nDPI's ndpiReader output (the result
// files of nDPI's regression suite, tests/cfgs/default/result/*.out), used by
// the golden tests as ground truth. Test-only code: it allocates freely.
//
// A flow line looks like
//   \t1\tTCP 192.168.1.13:53096 <-> 178.62.197.130:443 [VLAN: 505][proto: 91.26/TLS.ntop]...
//       [316 pkts/28495 bytes <-> 351 pkts/429572 bytes]...[Hostname/SNI: www.ntop.org]...
// The first endpoint is the one ndpiReader took as the flow's source; `->`
// marks a flow seen in one direction only. IPv6 endpoints are bracketed
// ("[2a00::1]:443"); protocols without ports print ":0" (or no port at all).
// Every "[Key: value]" group lands in NdpiFlow::fields, so later tests can
// compare SNI, JA3C, JA4, URL or User-Agent without touching the parser.
#pragma once

#include <weir/core/result.hpp>

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::test {

struct NdpiEndpoint {
    std::array<uint8_t, 16> addr{}; ///< network order; IPv4 in the first 4 bytes
    uint8_t ip_version = 0;         ///< 4 or 6; 0 when the text is not a valid address
    bool has_port = false;
    uint16_t port = 0;
    std::string text;               ///< as printed, e.g. "[2a00::1]:443"
};

struct NdpiCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
};

struct NdpiFlow {
    uint32_t id = 0;           ///< the flow number printed at the start of the line
    std::string l4;            ///< "TCP", "UDP", "ICMP", "ICMPV6", ... or a number
    uint8_t ip_proto = 0;      ///< l4 as an IP protocol number
    NdpiEndpoint src;          ///< printed first
    NdpiEndpoint dst;
    bool bidirectional = false;///< "<->" (packets both ways) rather than "->"
    uint16_t vlan = 0;         ///< [VLAN: n], 0 when absent
    std::array<NdpiCounters, 2> dir{}; ///< [0] src -> dst, [1] dst -> src
    std::string proto;         ///< value of [proto: ...] without the tunnel prefix
    std::string tunnel;        ///< "GTP", "CAPWAP", "VXLAN", "GRE" from [proto: GTP:91/TLS]
    bool undetected = false;   ///< listed under "Undetected flows:"
    /// Every bracketed group: "Key: value" as fields["Key"] = "value" (first
    /// occurrence wins); a group without ": " (e.g. "[ClearText]") maps to "".
    std::map<std::string, std::string, std::less<>> fields;

    /// "TCP 1.2.3.4:80 <-> 5.6.7.8:1234", as ndpiReader prints the flow.
    [[nodiscard]] std::string endpoints_text() const
    {
        return l4 + " " + src.text + (bidirectional ? " <-> " : " -> ") + dst.text;
    }

    /// A field's value, or nullopt when the line has no such group.
    [[nodiscard]] std::optional<std::string_view> field(std::string_view key) const
    {
        auto it = fields.find(key);
        if (it == fields.end())
            return std::nullopt;
        return std::string_view(it->second);
    }
};

struct NdpiResult {
    std::vector<NdpiFlow> flows;
    /// Lines that looked like flow lines but did not parse: "line N: why".
    std::vector<std::string> errors;
};

namespace ndpi_detail {

inline bool parse_u64(std::string_view s, uint64_t& out)
{
    if (s.empty() || s.size() > 19)
        return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

/// nDPI's ndpi_get_ip_proto_name(): names for a few protocols, the decimal
/// number for the rest.
inline std::optional<uint8_t> ip_proto_number(std::string_view name)
{
    static constexpr std::pair<std::string_view, uint8_t> kNames[] = {
        {"ICMP", 1}, {"IGMP", 2}, {"TCP", 6}, {"UDP", 17}, {"GRE", 47}, {"ESP", 50},
        {"AH", 51}, {"ICMPV6", 58}, {"OSPF", 89}, {"PIM", 103}, {"VRRP", 112},
        {"PGM", 113}, {"SCTP", 132},
    };
    for (const auto& [n, v] : kNames)
        if (n == name)
            return v;
    uint64_t v = 0;
    if (parse_u64(name, v) && v <= 255)
        return static_cast<uint8_t>(v);
    return std::nullopt;
}

/// "1.2.3.4:80", "1.2.3.4", "[2a00::1]:443", "[2a00::1]" (and a bare IPv6
/// address without port, which a colon-separated port cannot follow).
inline bool parse_endpoint(std::string_view s, NdpiEndpoint& ep, std::string& error)
{
    ep = NdpiEndpoint{};
    ep.text = std::string(s);
    std::string_view addr = s;
    std::string_view port;
    bool v6 = false;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos) {
            error = "unterminated IPv6 endpoint '" + ep.text + "'";
            return false;
        }
        addr = s.substr(1, close - 1);
        auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                error = "junk after IPv6 endpoint '" + ep.text + "'";
                return false;
            }
            port = rest.substr(1);
            ep.has_port = true;
        }
        v6 = true;
    } else {
        auto first = s.find(':');
        if (first != std::string_view::npos && s.find(':', first + 1) != std::string_view::npos) {
            v6 = true; // bare IPv6 address, no port
        } else if (first != std::string_view::npos) {
            addr = s.substr(0, first);
            port = s.substr(first + 1);
            ep.has_port = true;
        }
    }
    if (ep.has_port) {
        uint64_t p = 0;
        if (!parse_u64(port, p) || p > 65535) {
            error = "bad port in '" + ep.text + "'";
            return false;
        }
        ep.port = static_cast<uint16_t>(p);
    }
    // ndpiReader formats addresses itself and, on malformed packets (fuzz
    // captures), can print text inet_pton rejects ("302e::3d00::8001"). Such
    // an endpoint is kept with ip_version 0 so the flow can still be listed.
    std::string a(addr);
    if (v6) {
        if (inet_pton(AF_INET6, a.c_str(), ep.addr.data()) == 1)
            ep.ip_version = 6;
    } else if (inet_pton(AF_INET, a.c_str(), ep.addr.data()) == 1) {
        ep.ip_version = 4;
    } else {
        error = "bad IPv4 address in '" + ep.text + "'";
        return false;
    }
    return true;
}

/// "316 pkts/28495 bytes <-> 351 pkts/429572 bytes" (or "->").
inline bool parse_counters(std::string_view g, NdpiFlow& f, bool& arrow_bidir)
{
    auto take_word = [&g]() {
        while (!g.empty() && g.front() == ' ')
            g.remove_prefix(1);
        auto sp = g.find(' ');
        auto w = g.substr(0, sp);
        g.remove_prefix(sp == std::string_view::npos ? g.size() : sp);
        return w;
    };
    auto counter = [](std::string_view pk, std::string_view by, NdpiCounters& c) {
        // pk = "316", by = "pkts/28495"; the unit after the bytes was checked by the caller
        constexpr std::string_view kPkts = "pkts/";
        if (by.substr(0, kPkts.size()) != kPkts)
            return false;
        return parse_u64(pk, c.packets) && parse_u64(by.substr(kPkts.size()), c.bytes);
    };
    auto p0 = take_word(), b0 = take_word(), u0 = take_word();
    auto arrow = take_word();
    auto p1 = take_word(), b1 = take_word(), u1 = take_word();
    if (u0 != "bytes" || u1 != "bytes" || !take_word().empty())
        return false;
    if (arrow != "<->" && arrow != "->")
        return false;
    arrow_bidir = arrow == "<->";
    return counter(p0, b0, f.dir[0]) && counter(p1, b1, f.dir[1]);
}

/// Splits "[a][b: c]..." into group contents. Brackets nest (an IPv6
/// address inside a value); a value that ndpiReader truncated can leave
/// them unbalanced, and then a group ends at the next "][" instead.
inline bool split_groups(std::string_view s, std::vector<std::string_view>& out)
{
    std::size_t pos = 0;
    while (pos < s.size()) {
        if (s[pos] == ' ' || s[pos] == '\r') {
            ++pos;
            continue;
        }
        if (s[pos] != '[')
            return false;
        std::size_t end = std::string_view::npos;
        int depth = 0;
        for (std::size_t i = pos; i < s.size(); ++i) {
            if (s[i] == '[') {
                ++depth;
            } else if (s[i] == ']' && --depth == 0) {
                end = i;
                break;
            }
        }
        bool clean_end = end != std::string_view::npos &&
                         (end + 1 == s.size() || s[end + 1] == '[' || s[end + 1] == ' ' || s[end + 1] == '\r');
        if (!clean_end) {
            end = s.find("][", pos + 1);
            if (end == std::string_view::npos) {
                end = s.find_last_of(']');
                if (end == std::string_view::npos || end < pos)
                    return false;
            }
        }
        out.push_back(s.substr(pos + 1, end - pos - 1));
        pos = end + 1;
    }
    return true;
}

} // namespace ndpi_detail

/// True for lines that ndpiReader prints for a flow: "\t<n>\t<proto> ".
/// (Other numbered lines, such as the JA3 host table, have a space after
/// the second tab.)
inline bool looks_like_ndpi_flow_line(std::string_view line)
{
    if (line.size() < 4 || line[0] != '\t')
        return false;
    std::size_t i = 1;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9')
        ++i;
    return i > 1 && i + 1 < line.size() && line[i] == '\t' && line[i + 1] != ' ' && line[i + 1] != '\t';
}

/// Parses one flow line. On failure returns nullopt and, if `error` is set,
/// says why.
inline std::optional<NdpiFlow> parse_ndpi_flow_line(std::string_view line, std::string* error = nullptr)
{
    using namespace ndpi_detail;
    auto fail = [error](std::string why) -> std::optional<NdpiFlow> {
        if (error)
            *error = std::move(why);
        return std::nullopt;
    };
    if (!looks_like_ndpi_flow_line(line))
        return fail("not a flow line");
    NdpiFlow f;
    std::string_view s = line.substr(1);
    auto tab = s.find('\t');
    uint64_t id = 0;
    if (!parse_u64(s.substr(0, tab), id) || id > UINT32_MAX)
        return fail("bad flow number");
    f.id = static_cast<uint32_t>(id);
    s.remove_prefix(tab + 1);

    // "<proto> <src> <arrow> <dst> " then the bracket groups.
    auto word = [&s]() {
        auto sp = s.find(' ');
        auto w = s.substr(0, sp);
        s.remove_prefix(sp == std::string_view::npos ? s.size() : sp + 1);
        return w;
    };
    auto l4 = word();
    auto src = word();
    auto arrow = word();
    auto dst = word();
    if (l4.empty() || src.empty() || dst.empty())
        return fail("missing endpoints");
    auto proto = ip_proto_number(l4);
    if (!proto)
        return fail("unknown L4 protocol '" + std::string(l4) + "'");
    f.l4 = std::string(l4);
    f.ip_proto = *proto;
    if (arrow != "<->" && arrow != "->")
        return fail("bad direction arrow '" + std::string(arrow) + "'");
    f.bidirectional = arrow == "<->";
    std::string why;
    if (!parse_endpoint(src, f.src, why) || !parse_endpoint(dst, f.dst, why))
        return fail(why);

    std::vector<std::string_view> groups;
    if (!split_groups(s, groups))
        return fail("malformed bracket groups");
    bool have_counters = false;
    for (auto g : groups) {
        bool bidir = false;
        if (!have_counters && g.find(" pkts/") != std::string_view::npos && parse_counters(g, f, bidir)) {
            if (bidir != f.bidirectional)
                return fail("counter arrow differs from endpoint arrow");
            have_counters = true;
            continue;
        }
        auto colon = g.find(": ");
        std::string key(g.substr(0, colon));
        std::string value = colon == std::string_view::npos ? std::string() : std::string(g.substr(colon + 2));
        f.fields.try_emplace(std::move(key), std::move(value));
    }
    if (!have_counters)
        return fail("no [pkts/bytes] group");

    if (auto v = f.field("VLAN")) {
        uint64_t vlan = 0;
        if (!parse_u64(*v, vlan) || vlan > 4095)
            return fail("bad VLAN '" + std::string(*v) + "'");
        f.vlan = static_cast<uint16_t>(vlan);
    }
    if (auto p = f.field("proto")) {
        // "GTP:91/TLS": the tunnel ndpiReader decapsulated, then master.app/name.
        auto colon = p->find(':');
        auto slash = p->find('/');
        if (colon != std::string_view::npos && colon < slash) {
            f.tunnel = std::string(p->substr(0, colon));
            f.proto = std::string(p->substr(colon + 1));
        } else {
            f.proto = std::string(*p);
        }
    }
    return f;
}

/// Reads a whole ndpiReader output file: every flow line of the detected
/// list and of the "Undetected flows:" section. Errors: ENOENT/EIO when the
/// file cannot be read. Lines that look like flows but do not parse are
/// returned in NdpiResult::errors, not as an Error.
inline Result<NdpiResult> read_ndpi_result(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return from_errno(ENOENT, "open " + path);
    NdpiResult r;
    std::string line;
    bool undetected = false;
    std::size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.rfind("Undetected flows:", 0) == 0) {
            undetected = true;
            continue;
        }
        if (!looks_like_ndpi_flow_line(line))
            continue;
        std::string why;
        auto f = parse_ndpi_flow_line(line, &why);
        if (!f) {
            r.errors.push_back("line " + std::to_string(line_no) + ": " + why);
            continue;
        }
        f->undetected = undetected;
        r.flows.push_back(std::move(*f));
    }
    if (in.bad())
        return from_errno(EIO, "read " + path);
    return r;
}

/// One line of a golden test's known-differences fixture: `fields` columns
/// separated by " | ", the last one free text; '#' starts a comment line.
struct FixtureLine {
    std::vector<std::string> parts;
    int line = 0;
};

/// Reads a fixture of `fields` columns whose column `category_col` must be
/// one of `categories`; problems go to `errors` with their line number.
template <class Categories>
std::vector<FixtureLine> read_fixture(const std::string& path, std::size_t fields, const std::string& format,
                                      std::size_t category_col, const Categories& categories,
                                      std::vector<std::string>& errors)
{
    std::vector<FixtureLine> out;
    std::ifstream in(path);
    if (!in) {
        errors.push_back("cannot open " + path);
        return out;
    }
    auto trim = [](std::string s) {
        auto b = s.find_first_not_of(" \t");
        auto e = s.find_last_not_of(" \t\r");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    std::string line;
    int no = 0;
    while (std::getline(in, line)) {
        ++no;
        if (trim(line).empty() || trim(line)[0] == '#')
            continue;
        std::vector<std::string> parts;
        std::size_t pos = 0;
        for (std::size_t i = 0; i + 1 < fields; ++i) {
            auto bar = line.find(" | ", pos);
            if (bar == std::string::npos)
                break;
            parts.push_back(trim(line.substr(pos, bar - pos)));
            pos = bar + 3;
        }
        parts.push_back(trim(line.substr(pos)));
        if (parts.size() != fields || parts.back().empty()) {
            errors.push_back("line " + std::to_string(no) + ": want '" + format + "'");
            continue;
        }
        if (!categories.contains(parts[category_col])) {
            errors.push_back("line " + std::to_string(no) + ": unknown reason category '" + parts[category_col] + "'");
            continue;
        }
        out.push_back({std::move(parts), no});
    }
    return out;
}

} // namespace weir::test
