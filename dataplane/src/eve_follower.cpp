// Suricata eve.json follower: the tail -F reader, the rules file, the
// event -> verdict item mapping and the batching client (see
// eve_follower.hpp). Events are parsed with nlohmann's DOM: one eve line is
// small and the rate is an IDS's alert rate, not a packet rate.
#include <weir/dataplane/eve_follower.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace weir::dataplane {

using json = nlohmann::json;

// ---------------------------------------------------------------- follower

LineFollower::LineFollower(std::string path, LineFollowerOptions opts) : path_(std::move(path)), opts_(opts) {}

LineFollower::~LineFollower()
{
    close_file();
}

void LineFollower::close_file()
{
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

bool LineFollower::open_file(bool at_end)
{
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return false;
    }
    close_file();
    fd_ = fd;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    offset_ = 0;
    buf_.clear();
    skipping_ = false;
    if (at_end) {
        offset_ = static_cast<uint64_t>(st.st_size);
        // Starting mid-file: the partial line at the end is the tail of an
        // event already written; skip it rather than parse half an event.
        if (offset_ > 0) {
            char c = 0;
            if (::pread(fd_, &c, 1, static_cast<off_t>(offset_ - 1)) == 1 && c != '\n')
                skipping_ = true;
        }
    }
    ++st_.opens;
    return true;
}

size_t LineFollower::read_some(const std::function<void(std::string_view)>& on_line, size_t budget, bool* eof)
{
    size_t lines = 0;
    *eof = false;
    chunk_.resize(1 << 20);
    while (budget > 0) {
        const size_t want = std::min(budget, chunk_.size());
        ssize_t n = ::pread(fd_, chunk_.data(), want, static_cast<off_t>(offset_));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *eof = true;  // an I/O error ends this poll; the next one retries
            return lines;
        }
        if (n == 0) {
            *eof = true;
            return lines;
        }
        offset_ += static_cast<uint64_t>(n);
        st_.bytes += static_cast<uint64_t>(n);
        budget -= static_cast<size_t>(n);
        std::string_view data(chunk_.data(), static_cast<size_t>(n));
        while (!data.empty()) {
            const size_t nl = data.find('\n');
            if (nl == std::string_view::npos) {
                if (!skipping_) {
                    buf_.append(data);
                    if (buf_.size() > opts_.max_line_bytes) {
                        ++st_.overlong;
                        buf_.clear();
                        skipping_ = true;
                    }
                }
                break;
            }
            if (skipping_) {
                skipping_ = false;
            } else {
                std::string_view line;
                if (buf_.empty()) {
                    line = data.substr(0, nl);
                } else {
                    buf_.append(data.substr(0, nl));
                    line = buf_;
                }
                if (line.size() > opts_.max_line_bytes) {
                    ++st_.overlong;
                } else {
                    if (!line.empty() && line.back() == '\r')
                        line.remove_suffix(1);
                    ++st_.lines;
                    ++lines;
                    on_line(line);
                }
                buf_.clear();
            }
            data.remove_prefix(nl + 1);
        }
    }
    return lines;
}

size_t LineFollower::poll(const std::function<void(std::string_view)>& on_line)
{
    at_end_ = false;
    if (fd_ < 0) {
        // The first file honours from_beginning; a file that appears later
        // (created after we started, or after a rotation) is new: read it all.
        const bool at_end = first_open_ && !opts_.from_beginning;
        first_open_ = false;
        if (!open_file(at_end)) {
            at_end_ = true;
            return 0;
        }
    }
    size_t lines = 0;
    size_t budget = opts_.read_bytes_per_poll;
    bool eof = false;
    struct stat cur{};
    if (::fstat(fd_, &cur) == 0 && static_cast<uint64_t>(cur.st_size) < offset_) {
        // copytruncate: the file was emptied (and maybe written again).
        ++st_.truncations;
        if (!buf_.empty() || skipping_)
            ++st_.partial_dropped;
        offset_ = 0;
        buf_.clear();
        skipping_ = false;
    }
    lines += read_some(on_line, budget, &eof);
    if (!eof)
        return lines;  // budget used up; more next time
    struct stat now{};
    const bool replaced = ::stat(path_.c_str(), &now) == 0 && (now.st_ino != ino_ || now.st_dev != dev_);
    if (replaced) {
        // Rotated by rename: the writer may have appended to the old file
        // until it reopened; read the old one to its end, then switch.
        lines += read_some(on_line, SIZE_MAX, &eof);
        if (!buf_.empty() || skipping_)
            ++st_.partial_dropped;
        if (open_file(false)) {
            ++st_.rotations;
            lines += read_some(on_line, opts_.read_bytes_per_poll, &eof);
        }
    }
    at_end_ = eof;
    return lines;
}

// ---------------------------------------------------------------- rules

namespace {

std::string lower(std::string_view s)
{
    std::string r(s);
    std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return r;
}

// A string or an array of strings.
Result<std::vector<std::string>> strings(const json& v, const std::string& what, bool fold)
{
    std::vector<std::string> out;
    auto one = [&](const json& e) -> bool {
        if (!e.is_string() || e.get_ref<const std::string&>().empty())
            return false;
        out.push_back(fold ? lower(e.get_ref<const std::string&>()) : e.get<std::string>());
        return true;
    };
    if (v.is_array()) {
        for (const auto& e : v)
            if (!one(e))
                return invalid(what + " must be a non-empty string or an array of them");
        if (out.empty())
            return invalid(what + " is an empty array");
    } else if (!one(v)) {
        return invalid(what + " must be a non-empty string or an array of them");
    }
    return out;
}

// 2100498, "2100000-2199999", or an array of those.
Result<std::vector<std::pair<uint64_t, uint64_t>>> sid_ranges(const json& v)
{
    std::vector<std::pair<uint64_t, uint64_t>> out;
    auto one = [&](const json& e) -> std::string {
        if (e.is_number_unsigned()) {
            out.emplace_back(e.get<uint64_t>(), e.get<uint64_t>());
            return {};
        }
        if (!e.is_string())
            return "\"sid\" entries are numbers or \"LOW-HIGH\" strings";
        const std::string& s = e.get_ref<const std::string&>();
        const size_t dash = s.find('-');
        uint64_t lo = 0, hi = 0;
        auto num = [](std::string_view t, uint64_t* v) {
            auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *v);
            return !t.empty() && ec == std::errc() && p == t.data() + t.size();
        };
        if (dash == std::string::npos ? !num(s, &lo) : !num(std::string_view(s).substr(0, dash), &lo) ||
                                                           !num(std::string_view(s).substr(dash + 1), &hi))
            return "bad sid range '" + s + "'";
        if (dash == std::string::npos)
            hi = lo;
        if (hi < lo)
            return "sid range '" + s + "' ends before it starts";
        out.emplace_back(lo, hi);
        return {};
    };
    if (v.is_array()) {
        for (const auto& e : v)
            if (std::string why = one(e); !why.empty())
                return invalid(why);
        if (out.empty())
            return invalid("\"sid\" is an empty array");
    } else if (std::string why = one(v); !why.empty()) {
        return invalid(why);
    }
    return out;
}

Result<EveRule> parse_rule(const json& r)
{
    if (!r.is_object())
        return invalid("a rule must be an object");
    EveRule rule;
    for (const auto& [k, v] : r.items()) {
        if (k == "name") {
            if (!v.is_string())
                return invalid("\"name\" must be a string");
            rule.name = v.get<std::string>();
        } else if (k == "event_type") {
            auto s = strings(v, "\"event_type\"", true);
            if (!s)
                return s.error();
            rule.event_types = std::move(s.value());
        } else if (k == "sid" || k == "signature_id") {
            auto s = sid_ranges(v);
            if (!s)
                return s.error();
            rule.sids = std::move(s.value());
        } else if (k == "severity") {
            auto add = [&](const json& e) {
                if (!e.is_number_integer())
                    return false;
                rule.severities.push_back(e.get<int64_t>());
                return true;
            };
            bool ok = v.is_array() ? !v.empty() && std::all_of(v.begin(), v.end(), add) : add(v);
            if (!ok)
                return invalid("\"severity\" must be an integer or an array of integers");
        } else if (k == "category") {
            auto s = strings(v, "\"category\"", false);
            if (!s)
                return s.error();
            rule.categories = std::move(s.value());
        } else if (k == "app_proto") {
            auto s = strings(v, "\"app_proto\"", true);
            if (!s)
                return s.error();
            rule.app_protos = std::move(s.value());
        } else if (k == "bypassed") {
            if (!v.is_boolean())
                return invalid("\"bypassed\" must be true or false");
            rule.bypassed = v.get<bool>();
        } else if (k == "target") {
            const std::string t = v.is_string() ? v.get<std::string>() : "";
            if (t == "flow")
                rule.target = EveRule::Target::Flow;
            else if (t == "src" || t == "src_host")
                rule.target = EveRule::Target::SrcHost;
            else if (t == "dest" || t == "dest_host")
                rule.target = EveRule::Target::DestHost;
            else
                return invalid("\"target\" must be flow, src or dest");
        } else if (k == "action" || k == "verdict") {
            std::string a = v.is_string() ? lower(v.get<std::string>()) : "";
            if (a == "discard")
                a = "drop";
            if (a != "forward" && a != "drop" && a != "shunt" && a != "divert")
                return invalid("\"action\" must be drop, shunt, divert or forward");
            rule.verdict = a;
        } else if (k == "after") {
            if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
                return invalid("\"after\" must be a packet count");
            rule.after = v.get<uint32_t>();
        } else if (k == "egress") {
            if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
                return invalid("\"egress\" must be an egress index");
            rule.egress = v.get<uint32_t>();
        } else if (k == "ttl") {
            if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 10 * 365 * 86400.0)
                return invalid("\"ttl\" must be seconds, 0 (never) up to ten years");
            rule.ttl_s = v.get<double>();
        } else if (k == "tcp_control") {
            if (!v.is_boolean())
                return invalid("\"tcp_control\" must be true or false");
            rule.tcp_control = v.get<bool>();
        } else if (k == "reason") {
            if (!v.is_string())
                return invalid("\"reason\" must be a string (a template)");
            rule.reason = v.get<std::string>();
        } else {
            return invalid("unknown key \"" + k + "\"");
        }
    }
    if (!r.contains("action") && !r.contains("verdict"))
        return invalid("\"action\" is needed (drop, shunt, divert, forward)");
    if (rule.verdict == "divert" && !rule.egress)
        return invalid("divert needs \"egress\"");
    if (rule.verdict != "divert" && rule.egress)
        return invalid("\"egress\" applies to divert only");
    if (rule.verdict != "shunt" && r.contains("after"))
        return invalid("\"after\" applies to shunt only");
    return rule;
}

} // namespace

Result<std::vector<EveRule>> parse_eve_rules(std::string_view text)
{
    json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded())
        return invalid("rules: not valid JSON");
    if (!j.is_object() || !j.contains("rules") || !j["rules"].is_array())
        return invalid("rules: expected {\"rules\":[...]}");
    for (const auto& [k, v] : j.items())
        if (k != "rules")
            return invalid("rules: unknown key \"" + k + "\"");
    std::vector<EveRule> rules;
    size_t i = 0;
    for (const auto& r : j["rules"]) {
        auto rule = parse_rule(r);
        if (!rule)
            return invalid("rules: rule " + std::to_string(i) + ": " + rule.error().context);
        if (rule->name.empty())
            rule->name = "rule " + std::to_string(i);
        rules.push_back(std::move(rule.value()));
        ++i;
    }
    if (rules.empty())
        return invalid("rules: no rule");
    return rules;
}

Result<std::vector<EveRule>> load_eve_rules(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
        return from_errno(errno ? errno : ENOENT, "rules file " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = parse_eve_rules(ss.str());
    if (!r)
        return invalid(path + ": " + r.error().context);
    return r;
}

// ---------------------------------------------------------------- events

namespace {

const json* member(const json& j, const char* k)
{
    if (!j.is_object())
        return nullptr;
    auto it = j.find(k);
    return it == j.end() ? nullptr : &*it;
}

std::string str_of(const json* v)
{
    if (!v)
        return {};
    if (v->is_string())
        return v->get<std::string>();
    if (v->is_number())
        return v->dump();
    return {};
}

bool is_bypassed(const json& ev, const std::string& event_type)
{
    if (event_type == "bypass")
        return true;
    const json* flow = member(ev, "flow");
    if (!flow)
        return false;
    // Suricata 5/6: "bypassed": {counters} when the capture bypassed the
    // flow; 7: "bypass": "local" | "capture".
    if (const json* b = member(*flow, "bypassed"); b && !b->is_null() && !(b->is_boolean() && !b->get<bool>()))
        return true;
    if (const json* b = member(*flow, "bypass"); b && b->is_string() && !b->get_ref<const std::string&>().empty())
        return true;
    return false;
}

bool rule_matches(const EveRule& r, const json& ev, const std::string& event_type)
{
    if (!r.event_types.empty() && std::find(r.event_types.begin(), r.event_types.end(), event_type) == r.event_types.end())
        return false;
    const json* alert = member(ev, "alert");
    if (!r.sids.empty()) {
        const json* sid = alert ? member(*alert, "signature_id") : nullptr;
        if (!sid || !sid->is_number_unsigned())
            return false;
        const uint64_t s = sid->get<uint64_t>();
        if (std::none_of(r.sids.begin(), r.sids.end(), [s](auto& rg) { return s >= rg.first && s <= rg.second; }))
            return false;
    }
    if (!r.severities.empty()) {
        const json* sev = alert ? member(*alert, "severity") : nullptr;
        if (!sev || !sev->is_number_integer())
            return false;
        if (std::find(r.severities.begin(), r.severities.end(), sev->get<int64_t>()) == r.severities.end())
            return false;
    }
    if (!r.categories.empty()) {
        const json* cat = alert ? member(*alert, "category") : nullptr;
        if (!cat || !cat->is_string() ||
            std::find(r.categories.begin(), r.categories.end(), cat->get_ref<const std::string&>()) == r.categories.end())
            return false;
    }
    if (!r.app_protos.empty()) {
        const json* ap = member(ev, "app_proto");
        if (!ap || !ap->is_string() ||
            std::find(r.app_protos.begin(), r.app_protos.end(), lower(ap->get_ref<const std::string&>())) == r.app_protos.end())
            return false;
    }
    if (r.bypassed && *r.bypassed != is_bypassed(ev, event_type))
        return false;
    return true;
}

// Cuts s to at most n bytes without splitting a UTF-8 sequence.
void cut_utf8(std::string& s, size_t n)
{
    if (s.size() <= n)
        return;
    size_t i = n;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80)
        --i;
    s.resize(i);
}

std::string expand_reason(const EveRule& r, const json& ev, const std::string& event_type)
{
    const json* alert = member(ev, "alert");
    std::string out;
    std::string_view t = r.reason;
    while (!t.empty()) {
        const size_t open = t.find('{');
        if (open == std::string_view::npos) {
            out += t;
            break;
        }
        out += t.substr(0, open);
        const size_t close = t.find('}', open);
        if (close == std::string_view::npos) {
            out += t.substr(open);
            break;
        }
        const std::string_view name = t.substr(open + 1, close - open - 1);
        if (name == "signature")
            out += alert ? str_of(member(*alert, "signature")) : "suricata " + event_type;
        else if (name == "sid")
            out += alert ? str_of(member(*alert, "signature_id")) : "";
        else if (name == "category")
            out += alert ? str_of(member(*alert, "category")) : "";
        else if (name == "event_type")
            out += event_type;
        else if (name == "app_proto")
            out += str_of(member(ev, "app_proto"));
        else if (name == "rule")
            out += r.name;
        else
            out += t.substr(open, close - open + 1);
        t.remove_prefix(close + 1);
    }
    cut_utf8(out, 256);  // the server's limit for a reason text
    return out;
}

// Suricata's proto field: "TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", "GRE"
// or a number (as a string when Suricata has no name for it).
std::optional<json> proto_of(const json* p)
{
    if (!p)
        return std::nullopt;
    if (p->is_number_unsigned() && p->get<uint64_t>() <= 255)
        return json(p->get<uint64_t>());
    if (!p->is_string())
        return std::nullopt;
    const std::string s = lower(p->get_ref<const std::string&>());
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!s.empty() && ec == std::errc() && end == s.data() + s.size())
        return v <= 255 ? std::optional<json>(json(v)) : std::nullopt;
    if (s == "tcp" || s == "udp" || s == "icmp" || s == "ipv6-icmp" || s == "icmpv6" || s == "sctp" || s == "gre")
        return json(s);
    return std::nullopt;
}

} // namespace

EveOutcome eve_event_to_item(const std::vector<EveRule>& rules, std::string_view line, EveItem* item, std::string* why)
{
    json ev = json::parse(line.begin(), line.end(), nullptr, false);
    if (!ev.is_object())
        return EveOutcome::BadLine;
    const json* et = member(ev, "event_type");
    const std::string event_type = et && et->is_string() ? lower(et->get_ref<const std::string&>()) : std::string();
    size_t ri = 0;
    for (; ri < rules.size(); ++ri)
        if (rule_matches(rules[ri], ev, event_type))
            break;
    if (ri == rules.size())
        return EveOutcome::NoMatch;
    const EveRule& r = rules[ri];
    auto fail = [&](std::string w) {
        if (why)
            *why = std::move(w);
        return EveOutcome::BadEvent;
    };
    const json* src = member(ev, "src_ip");
    const json* dst = member(ev, "dest_ip");
    json it;
    json target;
    if (r.target == EveRule::Target::Flow) {
        if (!src || !dst || !src->is_string() || !dst->is_string())
            return fail("no src_ip/dest_ip");
        auto proto = proto_of(member(ev, "proto"));
        if (!proto)
            return fail("no usable proto");
        json f;
        f["src"] = *src;
        f["dst"] = *dst;
        const bool icmp = (proto->is_string() && (*proto == "icmp" || *proto == "ipv6-icmp" || *proto == "icmpv6")) ||
                          (proto->is_number() && (*proto == 1 || *proto == 58));
        uint32_t sport = 0, dport = 0;
        if (icmp) {
            // As weir's decoder keys ICMP: a reply carries its request's
            // type in the source "port" so both make one flow; any other
            // message has type << 8 | code as destination "port".
            const json* ty = member(ev, "icmp_type");
            const json* co = member(ev, "icmp_code");
            if (!ty || !ty->is_number_unsigned() || ty->get<uint64_t>() > 255)
                return fail("ICMP event without icmp_type");
            const uint32_t type = ty->get<uint32_t>();
            const uint32_t code = co && co->is_number_unsigned() && co->get<uint64_t>() <= 255 ? co->get<uint32_t>() : 0;
            const bool v6 = (proto->is_string() && *proto != "icmp") || (proto->is_number() && *proto == 58);
            int request = -1;
            if (!v6) {
                switch (type) {
                case 8: case 0: request = 8; break;
                case 13: case 14: request = 13; break;
                case 15: case 16: request = 15; break;
                case 17: case 18: request = 17; break;
                default: break;
                }
            } else if (type == 128 || type == 129) {
                request = 128;
            }
            if (request >= 0)
                sport = static_cast<uint32_t>(request) << 8 | code;
            else
                dport = type << 8 | code;
        } else {
            const json* sp = member(ev, "src_port");
            const json* dp = member(ev, "dest_port");
            if ((sp && !(sp->is_number_unsigned() && sp->get<uint64_t>() <= 65535)) ||
                (dp && !(dp->is_number_unsigned() && dp->get<uint64_t>() <= 65535)))
                return fail("bad src_port/dest_port");
            sport = sp ? sp->get<uint32_t>() : 0;
            dport = dp ? dp->get<uint32_t>() : 0;
        }
        f["sport"] = sport;
        f["dport"] = dport;
        f["proto"] = *proto;
        if (const json* vl = member(ev, "vlan"); vl && vl->is_array() && !vl->empty()) {
            // weir keys a flow by its outer VLAN id.
            const json& outer = (*vl)[0];
            if (!outer.is_number_unsigned() || outer.get<uint64_t>() > 4095)
                return fail("bad vlan");
            f["vlan"] = outer;
        }
        target["flow"] = std::move(f);
    } else {
        const json* h = r.target == EveRule::Target::SrcHost ? src : dst;
        if (!h || !h->is_string())
            return fail(r.target == EveRule::Target::SrcHost ? "no src_ip" : "no dest_ip");
        target["host"] = *h;
    }
    item->target_key = target.dump();
    it = std::move(target);
    it["verdict"] = r.verdict;
    if (r.verdict == "shunt")
        it["after"] = r.after;
    if (r.egress)
        it["egress"] = *r.egress;
    if (r.ttl_s > 0)
        it["ttl"] = r.ttl_s;
    if (r.tcp_control)
        it["tcp_control"] = true;
    if (std::string reason = expand_reason(r, ev, event_type); !reason.empty())
        it["reason"] = std::move(reason);
    item->json = it.dump(-1, ' ', false, json::error_handler_t::replace);
    item->rule = ri;
    return EveOutcome::Item;
}

// ---------------------------------------------------------------- forwarder

EveForwarder::EveForwarder(std::vector<EveRule> rules, EveForwarderOptions opts)
    : rules_(std::move(rules)), opts_(std::move(opts))
{
    if (opts_.batch_max == 0)
        opts_.batch_max = 1;
    st_.per_rule.assign(rules_.size(), 0);
}

bool EveForwarder::add_line(std::string_view line)
{
    ++st_.lines;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos)
        return false;
    EveItem item;
    std::string why;
    switch (eve_event_to_item(rules_, line, &item, &why)) {
    case EveOutcome::BadLine:
        ++st_.bad_lines;
        return false;
    case EveOutcome::NoMatch:
        ++st_.events;
        return false;
    case EveOutcome::BadEvent:
        ++st_.events;
        ++st_.matched;
        ++st_.bad_events;
        if (log)
            log("eve event skipped (" + why + ")");
        return false;
    case EveOutcome::Item:
        break;
    }
    ++st_.events;
    ++st_.matched;
    ++st_.per_rule[item.rule];
    // The server validates a batch whole: check the item on its own with the
    // server's parser so one odd event (a bad address) cannot sink the rest.
    std::string one = R"({"op":"add","items":[)" + item.json + "]}";
    if (auto p = parse_verdict_request(one); !p) {
        ++st_.bad_events;
        if (log)
            log("eve event skipped (" + p.error().context + ")");
        return false;
    }
    if (auto f = index_.find(item.target_key); f != index_.end()) {
        ++st_.merged;
        items_[f->second] = std::move(item);
    } else {
        index_.emplace(item.target_key, items_.size());
        items_.push_back(std::move(item));
    }
    return true;
}

Result<std::string> EveForwarder::flush_one()
{
    if (items_.empty())
        return std::string();
    const size_t n = std::min(items_.size(), opts_.batch_max);
    std::string req = R"({"op":"add","items":[)";
    for (size_t i = 0; i < n; ++i) {
        if (i)
            req += ',';
        req += items_[i].json;
    }
    req += "]}";
    auto reply = verdict_request(opts_.socket_path, req, opts_.timeout_ms);
    if (!reply) {
        ++st_.send_failures;
        return reply.error();
    }
    ++st_.requests;
    st_.sent += n;
    json j = json::parse(*reply, nullptr, false);
    if (j.is_object() && j.value("ok", false)) {
        ++st_.replies_ok;
    } else {
        ++st_.replies_error;
        if (log)
            log("weir refused a batch of " + std::to_string(n) + ": " + *reply);
    }
    items_.erase(items_.begin(), items_.begin() + static_cast<ptrdiff_t>(n));
    index_.clear();
    for (size_t i = 0; i < items_.size(); ++i)
        index_.emplace(items_[i].target_key, i);
    return reply;
}

std::string EveForwarder::stats_json(const LineFollowerStats* f) const
{
    json j;
    j["lines"] = st_.lines;
    j["bad_lines"] = st_.bad_lines;
    j["events"] = st_.events;
    j["matched"] = st_.matched;
    j["bad_events"] = st_.bad_events;
    j["merged"] = st_.merged;
    j["sent"] = st_.sent;
    j["requests"] = st_.requests;
    j["replies_ok"] = st_.replies_ok;
    j["replies_error"] = st_.replies_error;
    j["send_failures"] = st_.send_failures;
    j["pending"] = items_.size();
    json pr = json::object();
    for (size_t i = 0; i < rules_.size(); ++i)
        pr[rules_[i].name] = st_.per_rule[i];
    j["per_rule"] = std::move(pr);
    if (f) {
        json fj;
        fj["opens"] = f->opens;
        fj["rotations"] = f->rotations;
        fj["truncations"] = f->truncations;
        fj["overlong"] = f->overlong;
        fj["partial_dropped"] = f->partial_dropped;
        fj["bytes"] = f->bytes;
        j["file"] = std::move(fj);
    }
    return j.dump();
}

} // namespace weir::dataplane
