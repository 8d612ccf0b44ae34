// Egress policy: a hand-written INI reader (every error names its line and
// the text), the parsed Policy, and the store that swaps policies on
// reload. Semantics in docs/ids.md; syntax summary in policy.hpp.
//
// INI rules: "[section]" lines, "key = value" lines, blank lines; comments
// are lines starting with ';' or '#', and the rest of a line after a ';' or
// '#' that follows white space. Section and key names are case-insensitive
// (subnet keys are addresses). A key given twice in one logical section
// (aliases included) is an error, so is a key outside any section.
#include <weir/engine/policy.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace weir::engine {

namespace {

constexpr size_t kMaxLineLength = 4096;
constexpr uint32_t kMaxShunt = 1u << 30;

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::string upper(std::string_view s)
{
    std::string r(s);
    for (char& c : r)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return r;
}

std::string lower(std::string_view s)
{
    std::string r(s);
    for (char& c : r)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

// Strips a comment: ';' or '#' at the start, or after white space.
std::string_view strip_comment(std::string_view s) noexcept
{
    for (size_t i = 0; i < s.size(); ++i) {
        if ((s[i] == ';' || s[i] == '#') && (i == 0 || std::isspace(static_cast<unsigned char>(s[i - 1]))))
            return s.substr(0, i);
    }
    return s;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) noexcept
{
    if (s.empty())
        return false;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v > max)
        return false;
    *out = v;
    return true;
}

bool valid_ifname(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 15)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':' ||
               c == '@';
    });
}

bool valid_protocol_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 64)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

// nDPI renamed SSL to TLS; Cento's documented examples still say SSL.
std::string canonical_protocol(std::string_view name)
{
    std::string u = upper(name);
    if (u == "SSL")
        return "TLS";
    return u;
}

bool slice_from(std::string_view s, Slice* out) noexcept
{
    if (s == "l3") {
        *out = Slice{SliceMode::L3, 0};
        return true;
    }
    if (s == "l4") {
        *out = Slice{SliceMode::L4, 0};
        return true;
    }
    uint64_t n = 0;
    if (parse_uint(s, 65535, &n) && n > 0) {
        *out = Slice{SliceMode::Bytes, static_cast<uint16_t>(n)};
        return true;
    }
    return false;
}

bool prefix_covers(const PolicyCidr& c, const std::array<uint8_t, 16>& addr) noexcept
{
    const unsigned full = c.prefix_len / 8;
    if (std::memcmp(c.addr.data(), addr.data(), full) != 0)
        return false;
    const unsigned rest = c.prefix_len % 8;
    if (rest == 0)
        return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (addr[full] & mask) == c.addr[full];
}

} // namespace

std::string_view policy_action_name(PolicyAction a) noexcept
{
    switch (a) {
    case PolicyAction::Forward:
        return "forward";
    case PolicyAction::Discard:
        return "discard";
    case PolicyAction::Shunt:
        return "shunt";
    case PolicyAction::Slice:
        return "slice";
    case PolicyAction::Egress:
        return "egress";
    }
    return "?";
}

Result<PolicyCidr> parse_policy_cidr(std::string_view text)
{
    PolicyCidr c;
    std::string_view addr = text;
    int bits = -1;
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
        addr = text.substr(0, slash);
        uint64_t v = 0;
        if (!parse_uint(text.substr(slash + 1), 128, &v))
            return invalid("bad prefix length");
        bits = static_cast<int>(v);
    }
    std::string a(addr);
    if (a.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, a.c_str(), c.addr.data()) != 1)
            return invalid("bad IPv6 address");
        c.ip_version = 6;
        if (bits < 0)
            bits = 128;
    } else {
        // Cento's short form: "10.10.10/24" = 10.10.10.0/24. Only with an
        // explicit prefix, so a bare "10.1" is not silently a network.
        const auto dots = std::count(a.begin(), a.end(), '.');
        if (dots < 3 && bits >= 0 && !a.empty() && a.back() != '.') {
            for (auto i = dots; i < 3; ++i)
                a += ".0";
        }
        if (inet_pton(AF_INET, a.c_str(), c.addr.data()) != 1)
            return invalid("bad IPv4 address");
        c.ip_version = 4;
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return invalid("prefix length over 32");
    }
    c.prefix_len = static_cast<uint8_t>(bits);
    for (int i = bits; i < 128; ++i) {
        if (c.addr[i / 8] & (0x80 >> (i % 8)))
            return invalid("host bits set past /" + std::to_string(bits));
    }
    return c;
}

// ---------------------------------------------------------------------------

class PolicyParser {
public:
    explicit PolicyParser(std::string_view origin) { p_.origin_ = std::string(origin); }

    Result<Policy> run(std::string_view text)
    {
        uint32_t line_no = 0;
        size_t pos = 0;
        while (pos <= text.size()) {
            size_t nl = text.find('\n', pos);
            if (nl == std::string_view::npos)
                nl = text.size();
            std::string_view raw = text.substr(pos, nl - pos);
            pos = nl + 1;
            ++line_no;
            if (!raw.empty() && raw.back() == '\r')
                raw.remove_suffix(1);
            if (auto r = line(line_no, raw); !r)
                return r.error();
            if (nl == text.size())
                break;
        }
        // Longest prefix first; file order among equal lengths (stable).
        std::stable_sort(p_.subnets_.begin(), p_.subnets_.end(), [](const auto& a, const auto& b) {
            return a.cidr.prefix_len > b.cidr.prefix_len;
        });
        return std::move(p_);
    }

private:
    enum class Section { None, Global, Shunt, Subnet, Protocol };

    struct Seen {
        std::string key;
        uint32_t line;
    };

    Error err(uint32_t line, std::string_view raw, const std::string& what) const
    {
        std::string t(trim(raw).substr(0, 200));
        return invalid(p_.origin_ + ":" + std::to_string(line) + ": " + what + " in '" + t + "'");
    }

    Result<void> line(uint32_t n, std::string_view raw)
    {
        if (raw.size() > kMaxLineLength)
            return err(n, raw, "line longer than " + std::to_string(kMaxLineLength) + " bytes");
        if (std::any_of(raw.begin(), raw.end(), [](char c) { return c == '\0'; }))
            return err(n, raw, "NUL byte");
        std::string_view s = trim(strip_comment(raw));
        if (s.empty())
            return {};
        if (s.front() == '[') {
            if (s.back() != ']')
                return err(n, raw, "section header without ']'");
            return section(n, raw, trim(s.substr(1, s.size() - 2)));
        }
        const size_t eq = s.find('=');
        if (eq == std::string_view::npos)
            return err(n, raw, "expected 'key = value'");
        std::string_view key = trim(s.substr(0, eq));
        std::string_view value = trim(s.substr(eq + 1));
        if (key.empty())
            return err(n, raw, "empty key");
        if (value.empty())
            return err(n, raw, "empty value");
        switch (section_) {
        case Section::None:
            return err(n, raw, "key outside any section");
        case Section::Global:
            return global(n, raw, lower(key), value);
        case Section::Shunt:
            return shunt(n, raw, key, value);
        case Section::Subnet:
            return subnet(n, raw, key, value);
        case Section::Protocol:
            return protocol(n, raw, key, value);
        }
        return {};
    }

    Result<void> section(uint32_t n, std::string_view raw, std::string_view name)
    {
        const std::string s = lower(name);
        if (s == "global" || s == "egress.balanced" || s == "egress.aggregated" || s == "bridge")
            section_ = Section::Global;
        else if (s == "shunt")
            section_ = Section::Shunt;
        else if (s == "subnet" || s == "egress.balanced.subnet" || s == "egress.aggregated.subnet" ||
                 s == "bridge.subnet")
            section_ = Section::Subnet;
        else if (s == "protocol" || s == "egress.balanced.protocol" || s == "egress.aggregated.protocol" ||
                 s == "bridge.protocol")
            section_ = Section::Protocol;
        else
            return err(n, raw, "unknown section '" + std::string(name) +
                                   "' (known: global, shunt, subnet, protocol and Cento's egress.*/bridge names)");
        return {};
    }

    // Duplicate check within a logical section.
    Result<void> once(std::vector<Seen>& seen, const std::string& key, uint32_t n, std::string_view raw)
    {
        for (const Seen& s : seen)
            if (s.key == key)
                return err(n, raw, "duplicate key '" + key + "' (first on line " + std::to_string(s.line) + ")");
        seen.push_back(Seen{key, n});
        return {};
    }

    Result<PolicyRule> action(uint32_t n, std::string_view raw, std::string_view value)
    {
        PolicyRule r;
        r.line = n;
        const std::string v = lower(value);
        std::string_view word = v, arg;
        bool has_arg = false;
        if (auto c = v.find(':'); c != std::string::npos) {
            word = std::string_view(v).substr(0, c);
            arg = std::string_view(v).substr(c + 1);
            has_arg = true;
        }
        uint64_t num = 0;
        if (word == "forward" && !has_arg) {
            r.action = PolicyAction::Forward;
        } else if ((word == "discard" || word == "drop") && !has_arg) {
            r.action = PolicyAction::Discard;
        } else if (word == "shunt") {
            r.action = PolicyAction::Shunt;
            if (has_arg) {
                if (!parse_uint(arg, kMaxShunt, &num))
                    return err(n, raw, "shunt needs a packet count 0.." + std::to_string(kMaxShunt));
                r.shunt_after = static_cast<int64_t>(num);
            }
        } else if (word == "slice" || v == "slice-l3" || v == "slice-l4") {
            r.action = PolicyAction::Slice;
            if (v == "slice-l3" || v == "slice-l4") {
                r.slice_explicit = true;
                slice_from(v.substr(6), &r.slice);
            } else if (has_arg) {
                if (!slice_from(arg, &r.slice))
                    return err(n, raw, "slice takes l3, l4 or a byte count 1..65535");
                r.slice_explicit = true;
            }
        } else if (word == "egress") {
            r.action = PolicyAction::Egress;
            // Interface names are case-sensitive: take the original text.
            std::string_view orig = trim(value.substr(value.find(':') + 1));
            if (parse_uint(orig, INT32_MAX, &num)) {
                r.egress_index = static_cast<int32_t>(num);
            } else if (valid_ifname(orig)) {
                r.egress = std::string(orig);
            } else {
                return err(n, raw, "egress takes an index or an interface name");
            }
        } else if (!has_arg && parse_uint(v, INT32_MAX, &num)) {
            // Cento's bare queue index.
            r.action = PolicyAction::Egress;
            r.egress_index = static_cast<int32_t>(num);
        } else {
            std::string hint = "unknown action '" + std::string(value) +
                               "' (forward, discard, shunt[:K], slice[:l3|l4|N], egress:X)";
            if (!has_arg && valid_ifname(value))
                hint += "; to steer to an interface write egress:" + std::string(value);
            return err(n, raw, hint);
        }
        return r;
    }

    Result<void> global(uint32_t n, std::string_view raw, const std::string& key, std::string_view value)
    {
        if (auto r = once(global_seen_, key, n, raw); !r)
            return r;
        if (key == "default") {
            auto a = action(n, raw, value);
            if (!a)
                return a.error();
            p_.default_ = std::move(*a);
            return {};
        }
        if (key == "slice") {
            if (!slice_from(lower(value), &p_.slice_default_))
                return err(n, raw, "slice takes l3, l4 or a byte count 1..65535");
            return {};
        }
        if (key == "banned-hosts")
            return err(n, raw, "banned-hosts is not supported (use [subnet] host = action)");
        return err(n, raw, "unknown key '" + key + "' (default, slice)");
    }

    Result<void> shunt(uint32_t n, std::string_view raw, std::string_view key, std::string_view value)
    {
        const std::string k = canonical_protocol(key);
        if (auto r = once(shunt_seen_, k, n, raw); !r)
            return r;
        uint64_t num = 0;
        if (!parse_uint(value, kMaxShunt, &num))
            return err(n, raw, "shunt thresholds are packet counts 0.." + std::to_string(kMaxShunt));
        if (k == "DEFAULT")
            p_.shunt_default_ = static_cast<uint32_t>(num);
        else if (k == "TCP")
            p_.shunt_tcp_ = static_cast<int64_t>(num);
        else if (k == "UDP")
            p_.shunt_udp_ = static_cast<int64_t>(num);
        else if (valid_protocol_name(key))
            p_.shunt_l7_.push_back(Policy::NamedCount{k, static_cast<uint32_t>(num)});
        else
            return err(n, raw, "bad protocol name '" + std::string(key) + "'");
        return {};
    }

    Result<void> subnet(uint32_t n, std::string_view raw, std::string_view key, std::string_view value)
    {
        auto c = parse_policy_cidr(key);
        if (!c)
            return err(n, raw, c.error().context + " '" + std::string(key) + "'");
        for (const auto& s : p_.subnets_) {
            if (s.cidr.ip_version == c->ip_version && s.cidr.prefix_len == c->prefix_len &&
                s.cidr.addr == c->addr)
                return err(n, raw, "duplicate subnet (first on line " + std::to_string(s.rule.line) + ")");
        }
        auto a = action(n, raw, value);
        if (!a)
            return a.error();
        p_.subnets_.push_back(Policy::SubnetRule{*c, std::move(*a)});
        return {};
    }

    Result<void> protocol(uint32_t n, std::string_view raw, std::string_view key, std::string_view value)
    {
        if (!valid_protocol_name(key))
            return err(n, raw, "bad protocol name '" + std::string(key) + "'");
        const std::string k = canonical_protocol(key);
        if (auto r = once(protocol_seen_, k, n, raw); !r)
            return r;
        auto a = action(n, raw, value);
        if (!a)
            return a.error();
        p_.protocols_.push_back(Policy::NamedRule{k, std::move(*a)});
        return {};
    }

    Policy p_;
    Section section_ = Section::None;
    std::vector<Seen> global_seen_, shunt_seen_, protocol_seen_;
};

// ---------------------------------------------------------------------------

Policy::Policy() = default;

Result<Policy> Policy::parse(std::string_view text, std::string_view origin)
{
    return PolicyParser(origin).run(text);
}

Result<Policy> Policy::load(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return from_errno(errno ? errno : ENOENT, "policy file " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        return from_errno(EIO, "reading policy file " + path);
    const std::string text = ss.str();
    if (text.size() > (64u << 20))
        return invalid("policy file " + path + " larger than 64 MiB");
    return parse(text, path);
}

uint32_t Policy::shunt_threshold(uint8_t ip_proto, std::string_view l7) const noexcept
{
    if (!l7.empty()) {
        for (const NamedCount& c : shunt_l7_) {
            if (c.name.size() == l7.size() &&
                std::equal(l7.begin(), l7.end(), c.name.begin(), [](char a, char b) {
                    return std::toupper(static_cast<unsigned char>(a)) == b;
                }))
                return c.packets;
        }
    }
    if (ip_proto == 6 && shunt_tcp_ >= 0)
        return static_cast<uint32_t>(shunt_tcp_);
    if (ip_proto == 17 && shunt_udp_ >= 0)
        return static_cast<uint32_t>(shunt_udp_);
    return shunt_default_;
}

const Policy::SubnetRule* Policy::match_subnet(const FlowKey& key) const noexcept
{
    // Sorted longest prefix first, so the first rule covering either
    // endpoint is the answer (file order among equal lengths).
    for (const SubnetRule& s : subnets_) {
        if (s.cidr.ip_version != key.ip_version)
            continue;
        if (prefix_covers(s.cidr, key.addr_a) || prefix_covers(s.cidr, key.addr_b))
            return &s;
    }
    return nullptr;
}

namespace {

bool iequal_upper(std::string_view s, const std::string& up) noexcept
{
    return s.size() == up.size() && std::equal(s.begin(), s.end(), up.begin(), [](char a, char b) {
               return std::toupper(static_cast<unsigned char>(a)) == b;
           });
}

} // namespace

const PolicyRule* Policy::match_protocol(std::string_view l7) const noexcept
{
    if (l7.empty() || iequal_upper(l7, "UNKNOWN"))
        return nullptr;
    auto find = [&](std::string_view name) -> const PolicyRule* {
        for (const NamedRule& r : protocols_)
            if (iequal_upper(name, r.name) || (r.name == "TLS" && iequal_upper(name, "SSL")))
                return &r.rule;
        return nullptr;
    };
    if (const PolicyRule* r = find(l7))
        return r;
    // nDPI's "master.app" names: the application first, then the master.
    if (auto dot = l7.find('.'); dot != std::string_view::npos) {
        if (const PolicyRule* r = find(l7.substr(dot + 1)))
            return r;
        return find(l7.substr(0, dot));
    }
    return nullptr;
}

Decision Policy::resolve(const PolicyRule& r, PolicyLevel level, uint8_t ip_proto, std::string_view l7) const noexcept
{
    Decision d;
    d.action = r.action;
    d.level = level;
    d.line = r.line;
    switch (r.action) {
    case PolicyAction::Shunt:
        d.shunt_after = r.shunt_after >= 0 ? static_cast<uint32_t>(r.shunt_after) : shunt_threshold(ip_proto, l7);
        break;
    case PolicyAction::Slice:
        d.slice = r.slice_explicit ? r.slice : slice_default_;
        break;
    case PolicyAction::Egress:
        d.egress = r.egress;
        d.egress_index = r.egress_index;
        break;
    default:
        break;
    }
    return d;
}

Decision Policy::decide(const FlowKey& key, std::string_view l7) const noexcept
{
    if (const PolicyRule* r = match_protocol(l7))
        return resolve(*r, PolicyLevel::Protocol, key.proto, l7);
    if (const SubnetRule* s = match_subnet(key))
        return resolve(s->rule, PolicyLevel::Subnet, key.proto, l7);
    return resolve(default_, PolicyLevel::Default, key.proto, l7);
}

// ---------------------------------------------------------------------------

PolicyStore::PolicyStore(Policy initial) : cur_(std::make_shared<const Policy>(std::move(initial))) {}

std::shared_ptr<const Policy> PolicyStore::current() const
{
    std::lock_guard<std::mutex> g(mu_);
    return cur_;
}

Result<void> PolicyStore::reload(const std::string& path)
{
    auto p = Policy::load(path);
    if (!p)
        return p.error();
    auto next = std::make_shared<const Policy>(std::move(*p));
    std::lock_guard<std::mutex> g(mu_);
    cur_ = std::move(next);
    generation_.fetch_add(1, std::memory_order_release);
    return {};
}

Result<void> PolicyStore::reload_text(std::string_view text, std::string_view origin)
{
    auto p = Policy::parse(text, origin);
    if (!p)
        return p.error();
    auto next = std::make_shared<const Policy>(std::move(*p));
    std::lock_guard<std::mutex> g(mu_);
    cur_ = std::move(next);
    generation_.fetch_add(1, std::memory_order_release);
    return {};
}

} // namespace weir::engine
