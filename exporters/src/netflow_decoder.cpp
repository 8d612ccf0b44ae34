// FlowDecoder: NetFlow v5, NetFlow v9 and IPFIX messages into FlowRecords.
//
// Design:
//  - Sources (exporter address, session, version, domain) live in a hash
//    map capped at max_sources; each holds its templates in a map capped at
//    max_templates. Both are allocated when first seen, never on the data
//    path.
//  - A template is compiled once into a list of Fields, each with the Slot
//    of the FlowRecord it fills (or Skip) and its length; a data record is
//    then one pass over that list into a flat Parsed struct, and Parsed
//    becomes a FlowRecord (canonical key, client = exporter's source side).
//  - The field ids are the encoders' (netflow.hpp, ipfix.hpp), so what
//    weir's own v5/v9/IPFIX encoders write maps back onto the same
//    FlowRecord fields.
//  - Every read is bounded by the set (v9 FlowSet / IPFIX set) it belongs
//    to, sets by the message; a set, record or template that does not fit
//    is counted as malformed and the rest of it is dropped. Every loop
//    advances by at least one byte or stops.
//
// Times: v5 and v9 First/Last are sysUptime ms, turned into epoch through
// the header (unix secs [+ nsecs for v5] minus the header's sysUptime,
// 32-bit wrap-safe). v9 headers carry whole seconds only, so v9 times are
// exact only to the second the exporter rounded its clock to. IPFIX: seconds,
// milliseconds, NTP micro/nanoseconds, sysUptime with
// systemInitTimeMilliseconds (160) and flowDurationMilliseconds (161).
#include <weir/exporters/flow_decoder.hpp>
#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include <weir/core/ndpi_vocab.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

namespace weir::exporters {

namespace {

// IEs the exporters do not write but collectors meet from routers and
// probes (IANA registry numbers, RFC 7012).
namespace ie {
inline constexpr uint16_t kOctetTotalCount = 85;
inline constexpr uint16_t kPacketTotalCount = 86;
inline constexpr uint16_t kIpVersion = 60;
inline constexpr uint16_t kFlowStartSeconds = 150;
inline constexpr uint16_t kFlowEndSeconds = 151;
inline constexpr uint16_t kFlowStartMicroseconds = 154;
inline constexpr uint16_t kFlowEndMicroseconds = 155;
inline constexpr uint16_t kFlowStartNanoseconds = 156;
inline constexpr uint16_t kFlowEndNanoseconds = 157;
inline constexpr uint16_t kSystemInitTimeMilliseconds = 160;
inline constexpr uint16_t kFlowDurationMilliseconds = 161;
inline constexpr uint16_t kIcmpTypeIPv4 = 176;
inline constexpr uint16_t kIcmpCodeIPv4 = 177;
inline constexpr uint16_t kIcmpTypeIPv6 = 178;
inline constexpr uint16_t kIcmpCodeIPv6 = 179;
inline constexpr uint16_t kDot1qVlanId = 243;
inline constexpr uint16_t kOptionsTemplateSetId = 3;
inline constexpr uint16_t kV9OptionsFlowSetId = 1;
inline constexpr uint16_t kVarLen = 65535;
} // namespace ie

inline uint16_t rd16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) noexcept
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
/// Unsigned big-endian integer of 1..8 bytes (reduced-size encoding).
inline uint64_t rd_uint(const uint8_t* p, uint32_t len) noexcept
{
    if (len == 8) {
        uint64_t v;
        std::memcpy(&v, p, 8);
        return __builtin_bswap64(v);
    }
    if (len == 4)
        return rd32(p);
    if (len == 2)
        return rd16(p);
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; ++i)
        v = v << 8 | p[i];
    return v;
}

enum class Slot : uint8_t {
    Skip, Bytes, Packets, RevBytes, RevPackets, PostBytes, PostPackets, TotBytes, TotPackets, RevTotBytes,
    RevTotPackets, Proto, Tos, RevTos, TcpFlags, RevTcpFlags, SrcPort, DstPort, Src4, Dst4, Src6, Dst6, Vlan,
    SrcMac, DstMac, Start, End, RevStart, RevEnd, DurationMs, SysInitMs, EndReason, MinTtl, MaxTtl, RevMinTtl,
    RevMaxTtl, Icmp, IcmpType, IcmpCode, IpVersion,
    // ntop enterprise elements (PEN 35632 / v9 57472 + n)
    L7Proto, DnsQtype, DnsRcode, ClientLatMs, ServerLatMs, ApplLatMs, TunnelId, Confidence, Risk, RiskScore,
    HttpRetCode, L7Name, Category, DnsQuery, TlsSni, HttpHost, HttpSite, HttpUrl, HttpMethod, HttpUa, Ja3c, Ja3s, Ja4, // strings, in this order
};
constexpr int kStrSlots = static_cast<int>(Slot::Ja4) - static_cast<int>(Slot::L7Name) + 1;

/// Time encodings of the start/end slots.
enum class Unit : uint8_t { Sec, Ms, NtpUs, NtpNs, Uptime };

struct Field {
    Slot slot;
    Unit unit;
    uint16_t len; ///< 65535 = variable (IPFIX)
};

struct Template {
    uint16_t id = 0;
    bool options = false;
    bool varlen = false;
    uint32_t min_len = 0; ///< bytes of a record with every variable field empty
    uint64_t refreshed_ns = 0;
    std::vector<Field> fields;
};

struct Parsed {
    uint64_t bytes[2];
    uint64_t packets[2];
    uint64_t post_bytes;
    uint64_t post_packets;
    uint64_t tot_bytes[2];
    uint64_t tot_packets[2];
    uint64_t t[4];  ///< start, end, reverse start, reverse end (raw)
    Unit unit[4];
    uint64_t duration_ms;
    uint64_t sysinit_ms;
    std::array<uint8_t, 16> src;
    std::array<uint8_t, 16> dst;
    std::array<uint8_t, 6> src_mac;
    std::array<uint8_t, 6> dst_mac;
    uint16_t sport, dport, vlan, icmp;
    uint8_t icmp_type, icmp_code;
    uint8_t proto, ipver;
    uint8_t tos[2], flags[2], min_ttl[2], max_ttl[2];
    uint8_t end_reason;
    bool have_bytes, have_packets, have_rev, have_post, have_tot, have_rev_tot;
    bool have_t[4];
    bool have_duration, have_sysinit, have_icmp, have_icmp_tc;
    bool v4, v6;
    bool have_l7;
    uint16_t l7_proto, dns_qtype, risk_score, http_status;
    uint8_t dns_rcode, confidence;
    uint64_t risk;
    uint32_t latency_ms[3]; ///< client, server, application
    uint32_t tunnel_id;
    const uint8_t* str[kStrSlots]; ///< L7 strings in the message (v9: NUL-padded)
    uint16_t str_len[kStrSlots];
};

/// ntop's L7 elements. n = element id (PEN 35632).
Field compile_ntop(uint16_t n, uint16_t len) noexcept
{
    Field f{Slot::Skip, Unit::Ms, len};
    auto str = [&](Slot s) { f.slot = s; };
    auto num = [&](Slot s) { if (len != ie::kVarLen && len <= 8) f.slot = s; };
    switch (n) {
    case ntop::kL7Proto: num(Slot::L7Proto); break;
    case ntop::kClientNwLatencyMs: num(Slot::ClientLatMs); break;
    case ntop::kServerNwLatencyMs: num(Slot::ServerLatMs); break;
    case ntop::kApplLatencyMs: num(Slot::ApplLatMs); break;
    case ntop::kUpstreamTunnelId: num(Slot::TunnelId); break;
    case ntop::kDnsQueryType: num(Slot::DnsQtype); break;
    case ntop::kDnsRetCode: num(Slot::DnsRcode); break;
    case ntop::kL7Confidence: num(Slot::Confidence); break;
    case ntop::kL7ProtoRisk: num(Slot::Risk); break;
    case ntop::kL7RiskScore: num(Slot::RiskScore); break;
    case ntop::kHttpRetCode: num(Slot::HttpRetCode); break;
    case ntop::kHttpMethod: str(Slot::HttpMethod); break;
    case ntop::kL7ProtoName: str(Slot::L7Name); break;
    case ntop::kL7ProtoCategory: str(Slot::Category); break;
    case ntop::kDnsQuery: str(Slot::DnsQuery); break;
    case ntop::kTlsServerName: str(Slot::TlsSni); break;
    case ntop::kHttpHost: str(Slot::HttpHost); break;
    case ntop::kHttpSite: str(Slot::HttpSite); break;
    case ntop::kHttpUrl: str(Slot::HttpUrl); break;
    case ntop::kHttpUserAgent: str(Slot::HttpUa); break;
    case ntop::kJa3cHash: str(Slot::Ja3c); break;
    case ntop::kJa3sHash: str(Slot::Ja3s); break;
    case ntop::kJa4cHash: str(Slot::Ja4); break;
    default: break;
    }
    return f;
}

/// Which slot an (enterprise, id, length) field fills.
Field compile_field(uint32_t pen, uint16_t id, uint16_t len) noexcept
{
    Field f{Slot::Skip, Unit::Ms, len};
    if (len == 0)
        return f;
    // v9 has no enterprise numbers: ntop's fields are 57472 + n there (IPFIX
    // ids stop at 32767, so this cannot catch an IPFIX IANA element).
    if (pen == ntop::kPen)
        return compile_ntop(id, len);
    if (pen == 0 && id >= ntop::kV9Base)
        return compile_ntop(static_cast<uint16_t>(id - ntop::kV9Base), len);
    if (len == ie::kVarLen)
        return f;
    const bool num = len <= 8;
    auto n = [&](Slot s) { if (num) f.slot = s; };
    auto time = [&](Slot s, Unit u, uint16_t want) {
        if (len == want) {
            f.slot = s;
            f.unit = u;
        }
    };
    if (pen == 0) {
        switch (id) {
        case ipfix::kOctetDeltaCount: n(Slot::Bytes); break;
        case ipfix::kPacketDeltaCount: n(Slot::Packets); break;
        case ie::kOctetTotalCount: n(Slot::TotBytes); break;
        case ie::kPacketTotalCount: n(Slot::TotPackets); break;
        case ipfix::kPostOctetDeltaCount: n(Slot::PostBytes); break;
        case ipfix::kPostPacketDeltaCount: n(Slot::PostPackets); break;
        case ipfix::kProtocolIdentifier: n(Slot::Proto); break;
        case ipfix::kIpClassOfService: n(Slot::Tos); break;
        case ipfix::kTcpControlBits: n(Slot::TcpFlags); break;
        case ipfix::kSourceTransportPort: n(Slot::SrcPort); break;
        case ipfix::kDestinationTransportPort: n(Slot::DstPort); break;
        case ipfix::kSourceIPv4Address: if (len == 4) f.slot = Slot::Src4; break;
        case ipfix::kDestinationIPv4Address: if (len == 4) f.slot = Slot::Dst4; break;
        case ipfix::kSourceIPv6Address: if (len == 16) f.slot = Slot::Src6; break;
        case ipfix::kDestinationIPv6Address: if (len == 16) f.slot = Slot::Dst6; break;
        case ipfix::kVlanId: n(Slot::Vlan); break;
        case ie::kDot1qVlanId: n(Slot::Vlan); break;
        case ipfix::kSourceMacAddress: if (len == 6) f.slot = Slot::SrcMac; break;
        case ipfix::kDestinationMacAddress: if (len == 6) f.slot = Slot::DstMac; break;
        case ipfix::kFlowStartMilliseconds: time(Slot::Start, Unit::Ms, 8); break;
        case ipfix::kFlowEndMilliseconds: time(Slot::End, Unit::Ms, 8); break;
        case ie::kFlowStartSeconds: time(Slot::Start, Unit::Sec, 4); break;
        case ie::kFlowEndSeconds: time(Slot::End, Unit::Sec, 4); break;
        case ie::kFlowStartMicroseconds: time(Slot::Start, Unit::NtpUs, 8); break;
        case ie::kFlowEndMicroseconds: time(Slot::End, Unit::NtpUs, 8); break;
        case ie::kFlowStartNanoseconds: time(Slot::Start, Unit::NtpNs, 8); break;
        case ie::kFlowEndNanoseconds: time(Slot::End, Unit::NtpNs, 8); break;
        case v9::kFirstSwitched: time(Slot::Start, Unit::Uptime, 4); break;
        case v9::kLastSwitched: time(Slot::End, Unit::Uptime, 4); break;
        case ie::kSystemInitTimeMilliseconds: if (len == 8) f.slot = Slot::SysInitMs; break;
        case ie::kFlowDurationMilliseconds: n(Slot::DurationMs); break;
        case ipfix::kFlowEndReason: n(Slot::EndReason); break;
        case ipfix::kMinimumTTL: n(Slot::MinTtl); break;
        case ipfix::kMaximumTTL: n(Slot::MaxTtl); break;
        case ipfix::kIcmpTypeCodeIPv4:
        case ipfix::kIcmpTypeCodeIPv6: n(Slot::Icmp); break;
        case ie::kIcmpTypeIPv4:
        case ie::kIcmpTypeIPv6: n(Slot::IcmpType); break;
        case ie::kIcmpCodeIPv4:
        case ie::kIcmpCodeIPv6: n(Slot::IcmpCode); break;
        case ie::kIpVersion: n(Slot::IpVersion); break;
        default: break;
        }
    } else if (pen == ipfix::kReversePen) {
        switch (id) {
        case ipfix::kOctetDeltaCount: n(Slot::RevBytes); break;
        case ipfix::kPacketDeltaCount: n(Slot::RevPackets); break;
        case ie::kOctetTotalCount: n(Slot::RevTotBytes); break;
        case ie::kPacketTotalCount: n(Slot::RevTotPackets); break;
        case ipfix::kIpClassOfService: n(Slot::RevTos); break;
        case ipfix::kTcpControlBits: n(Slot::RevTcpFlags); break;
        case ipfix::kMinimumTTL: n(Slot::RevMinTtl); break;
        case ipfix::kMaximumTTL: n(Slot::RevMaxTtl); break;
        case ipfix::kFlowStartMilliseconds: time(Slot::RevStart, Unit::Ms, 8); break;
        case ipfix::kFlowEndMilliseconds: time(Slot::RevEnd, Unit::Ms, 8); break;
        case ie::kFlowStartSeconds: time(Slot::RevStart, Unit::Sec, 4); break;
        case ie::kFlowEndSeconds: time(Slot::RevEnd, Unit::Sec, 4); break;
        case ie::kFlowStartMicroseconds: time(Slot::RevStart, Unit::NtpUs, 8); break;
        case ie::kFlowEndMicroseconds: time(Slot::RevEnd, Unit::NtpUs, 8); break;
        case ie::kFlowStartNanoseconds: time(Slot::RevStart, Unit::NtpNs, 8); break;
        case ie::kFlowEndNanoseconds: time(Slot::RevEnd, Unit::NtpNs, 8); break;
        default: break;
        }
    }
    return f;
}

struct SourceKey {
    std::array<uint8_t, 16> addr;
    uint32_t session;
    uint32_t domain;
    uint8_t version;
    uint8_t family;
    uint8_t pad[2];
    bool operator==(const SourceKey& o) const noexcept { return std::memcmp(this, &o, sizeof(*this)) == 0; }
};
static_assert(std::is_trivially_copyable_v<SourceKey> && sizeof(SourceKey) == 28);

struct SourceKeyHash {
    std::size_t operator()(const SourceKey& k) const noexcept
    {
        uint64_t h = 0xcbf29ce484222325ULL;
        const auto* p = reinterpret_cast<const uint8_t*>(&k);
        for (std::size_t i = 0; i < sizeof(k); ++i)
            h = (h ^ p[i]) * 0x100000001b3ULL;
        return static_cast<std::size_t>(h);
    }
};

struct Source {
    FlowSourceInfo info;
    std::unordered_map<uint16_t, Template> templates;
    bool seq_seen = false;
    bool seq_uncertain = false; ///< last message had records of unknown length
    uint32_t last_seq = 0;
    uint32_t last_units = 0;    ///< v5 flows / IPFIX data records of the last message
    bool ended = false;         ///< TCP session closed: may be evicted
};

/// Header facts a data record needs.
struct MsgCtx {
    Source* src;
    uint64_t header_ns;    ///< exporter's clock at export (epoch ns)
    uint32_t sys_uptime;   ///< v5/v9 header sysUptime ms
    bool has_uptime;
};

constexpr uint64_t kNtpEpochOffset = 2208988800ULL; // 1900 -> 1970

} // namespace

std::string format_exporter(const ExporterAddress& a)
{
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(a.family == 6 ? AF_INET6 : AF_INET, a.addr.data(), buf, sizeof(buf));
    return a.family == 6 ? fmt::format("[{}]:{}", buf, a.port) : fmt::format("{}:{}", buf, a.port);
}

std::string_view decode_status_name(DecodeStatus s) noexcept
{
    switch (s) {
    case DecodeStatus::Ok: return "ok";
    case DecodeStatus::TooShort: return "too short";
    case DecodeStatus::BadVersion: return "bad version";
    case DecodeStatus::BadLength: return "bad length";
    case DecodeStatus::SourceRefused: return "source refused";
    case DecodeStatus::Malformed: return "malformed";
    }
    return "unknown";
}

struct FlowDecoder::Impl {
    DecoderOptions opts;
    DecoderTotals totals;
    std::unordered_map<SourceKey, std::unique_ptr<Source>, SourceKeyHash> sources;
    FlowRecord rec; ///< reused for every record

    Source* source(const ExporterAddress& from, uint8_t version, uint32_t domain, uint64_t now_ns)
    {
        SourceKey k{};
        k.addr = from.addr;
        k.session = from.session;
        k.domain = domain;
        k.version = version;
        k.family = from.family;
        auto it = sources.find(k);
        if (it != sources.end())
            return it->second.get();
        if (sources.size() >= opts.max_sources) {
            // Make room from closed TCP sessions first.
            auto ended = std::find_if(sources.begin(), sources.end(), [](const auto& s) { return s.second->ended; });
            if (ended == sources.end()) {
                ++totals.sources_refused;
                return nullptr;
            }
            sources.erase(ended);
        }
        auto s = std::make_unique<Source>();
        s->info.address = from;
        s->info.version = version;
        s->info.domain = domain;
        s->info.stats.first_seen_ns = now_ns;
        Source* p = s.get();
        sources.emplace(k, std::move(s));
        return p;
    }

    /// Sequence check; `units` is what this message adds (v5 flows, IPFIX records).
    static void sequence(Source& s, uint32_t seq, uint32_t step_from_last)
    {
        FlowSourceStats& st = s.info.stats;
        if (s.seq_seen && !s.seq_uncertain) {
            const uint32_t expected = s.last_seq + step_from_last;
            const uint32_t diff = seq - expected;
            if (diff != 0) {
                if (diff < 0x80000000U) {
                    ++st.sequence_gaps;
                    st.sequence_lost += diff;
                } else {
                    ++st.sequence_resets;
                }
            }
        }
        s.seq_seen = true;
        s.last_seq = seq;
        st.last_sequence = seq;
    }

    // --- templates ---------------------------------------------------------

    void purge_expired(Source& s, uint64_t now_ns)
    {
        if (!expires(s))
            return;
        for (auto it = s.templates.begin(); it != s.templates.end();) {
            if (now_ns - it->second.refreshed_ns > opts.template_timeout_ns && now_ns > it->second.refreshed_ns) {
                ++s.info.stats.templates_expired;
                it = s.templates.erase(it);
            } else {
                ++it;
            }
        }
    }

    [[nodiscard]] bool expires(const Source& s) const noexcept
    {
        return opts.template_timeout_ns != 0 && s.info.address.session == 0;
    }

    /// Stores t (replacing one with its id). False when refused.
    bool store(Source& s, Template&& t, uint64_t now_ns)
    {
        FlowSourceStats& st = s.info.stats;
        ++(t.options ? st.options_templates : st.templates);
        if (t.min_len == 0 && !t.varlen) {
            ++st.templates_refused; // a record of no bytes could never advance
            return false;
        }
        t.refreshed_ns = now_ns;
        auto it = s.templates.find(t.id);
        if (it != s.templates.end()) {
            it->second = std::move(t);
            return true;
        }
        if (s.templates.size() >= opts.max_templates)
            purge_expired(s, now_ns);
        if (s.templates.size() >= opts.max_templates) {
            ++st.templates_refused;
            return false;
        }
        s.templates.emplace(t.id, std::move(t));
        return true;
    }

    const Template* find(Source& s, uint16_t id, uint64_t now_ns)
    {
        auto it = s.templates.find(id);
        if (it == s.templates.end())
            return nullptr;
        if (expires(s) && now_ns > it->second.refreshed_ns
            && now_ns - it->second.refreshed_ns > opts.template_timeout_ns) {
            ++s.info.stats.templates_expired;
            s.templates.erase(it);
            return nullptr;
        }
        return &it->second;
    }

    /// Reads field specifiers into t. IPFIX: enterprise bit + PEN.
    /// Returns the bytes used, 0 when they do not fit.
    static std::size_t read_fields(const uint8_t* p, std::size_t avail, uint32_t count, bool ipfix, Template& t)
    {
        std::size_t off = 0;
        t.fields.reserve(count);
        for (uint32_t i = 0; i < count; ++i) {
            if (off + 4 > avail)
                return 0;
            uint16_t id = rd16(p + off);
            const uint16_t len = rd16(p + off + 2);
            off += 4;
            uint32_t pen = 0;
            if (ipfix && (id & ipfix::kEnterpriseBit)) {
                if (off + 4 > avail)
                    return 0;
                pen = rd32(p + off);
                off += 4;
                id &= static_cast<uint16_t>(~ipfix::kEnterpriseBit);
            }
            if (len == ie::kVarLen && !ipfix)
                return 0; // v9 has no variable-length fields
            const Field f = compile_field(pen, id, len);
            t.fields.push_back(f);
            if (len == ie::kVarLen) {
                t.varlen = true;
                t.min_len += 1;
            } else {
                t.min_len += len;
            }
        }
        if (t.min_len > 65535)
            return 0;
        return off;
    }

    // --- data records --------------------------------------------------------

    /// One record at p (at most avail bytes). Returns its length, 0 when cut.
    static std::size_t parse_record(const Template& t, const uint8_t* p, std::size_t avail, Parsed& x) noexcept
    {
        std::size_t off = 0;
        for (const Field& f : t.fields) {
            uint32_t len = f.len;
            if (len == ie::kVarLen) {
                if (off + 1 > avail)
                    return 0;
                len = p[off++];
                if (len == 255) {
                    if (off + 2 > avail)
                        return 0;
                    len = rd16(p + off);
                    off += 2;
                }
            }
            if (off + len > avail)
                return 0;
            const uint8_t* v = p + off;
            off += len;
            switch (f.slot) {
            case Slot::Skip: break;
            case Slot::Bytes: x.bytes[0] = rd_uint(v, len); x.have_bytes = true; break;
            case Slot::Packets: x.packets[0] = rd_uint(v, len); x.have_packets = true; break;
            case Slot::RevBytes: x.bytes[1] = rd_uint(v, len); x.have_rev = true; break;
            case Slot::RevPackets: x.packets[1] = rd_uint(v, len); x.have_rev = true; break;
            case Slot::PostBytes: x.post_bytes = rd_uint(v, len); x.have_post = true; break;
            case Slot::PostPackets: x.post_packets = rd_uint(v, len); x.have_post = true; break;
            case Slot::TotBytes: x.tot_bytes[0] = rd_uint(v, len); x.have_tot = true; break;
            case Slot::TotPackets: x.tot_packets[0] = rd_uint(v, len); x.have_tot = true; break;
            case Slot::RevTotBytes: x.tot_bytes[1] = rd_uint(v, len); x.have_rev_tot = true; break;
            case Slot::RevTotPackets: x.tot_packets[1] = rd_uint(v, len); x.have_rev_tot = true; break;
            case Slot::Proto: x.proto = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::Tos: x.tos[0] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::RevTos: x.tos[1] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::TcpFlags: x.flags[0] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::RevTcpFlags: x.flags[1] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::SrcPort: x.sport = static_cast<uint16_t>(rd_uint(v, len)); break;
            case Slot::DstPort: x.dport = static_cast<uint16_t>(rd_uint(v, len)); break;
            case Slot::Src4: std::memcpy(x.src.data(), v, 4); x.v4 = true; break;
            case Slot::Dst4: std::memcpy(x.dst.data(), v, 4); x.v4 = true; break;
            case Slot::Src6: std::memcpy(x.src.data(), v, 16); x.v6 = true; break;
            case Slot::Dst6: std::memcpy(x.dst.data(), v, 16); x.v6 = true; break;
            case Slot::Vlan: x.vlan = static_cast<uint16_t>(rd_uint(v, len) & 0x0fff); break;
            case Slot::SrcMac: std::memcpy(x.src_mac.data(), v, 6); break;
            case Slot::DstMac: std::memcpy(x.dst_mac.data(), v, 6); break;
            case Slot::Start:
            case Slot::End:
            case Slot::RevStart:
            case Slot::RevEnd: {
                const int i = static_cast<int>(f.slot) - static_cast<int>(Slot::Start);
                x.t[i] = rd_uint(v, len);
                x.unit[i] = f.unit;
                x.have_t[i] = true;
                break;
            }
            case Slot::DurationMs: x.duration_ms = rd_uint(v, len); x.have_duration = true; break;
            case Slot::SysInitMs: x.sysinit_ms = rd_uint(v, len); x.have_sysinit = true; break;
            case Slot::EndReason: x.end_reason = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::MinTtl: x.min_ttl[0] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::MaxTtl: x.max_ttl[0] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::RevMinTtl: x.min_ttl[1] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::RevMaxTtl: x.max_ttl[1] = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::Icmp: x.icmp = static_cast<uint16_t>(rd_uint(v, len)); x.have_icmp = true; break;
            case Slot::IcmpType: x.icmp_type = static_cast<uint8_t>(rd_uint(v, len)); x.have_icmp_tc = true; break;
            case Slot::IcmpCode: x.icmp_code = static_cast<uint8_t>(rd_uint(v, len)); x.have_icmp_tc = true; break;
            case Slot::IpVersion: x.ipver = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::L7Proto: x.l7_proto = static_cast<uint16_t>(rd_uint(v, len)); x.have_l7 = true; break;
            case Slot::DnsQtype: x.dns_qtype = static_cast<uint16_t>(rd_uint(v, len)); break;
            case Slot::DnsRcode: x.dns_rcode = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::ClientLatMs:
            case Slot::ServerLatMs:
            case Slot::ApplLatMs:
                x.latency_ms[static_cast<int>(f.slot) - static_cast<int>(Slot::ClientLatMs)] =
                    static_cast<uint32_t>(std::min<uint64_t>(rd_uint(v, len), 0xFFFFFFFFu / 1000));
                break;
            case Slot::TunnelId: x.tunnel_id = static_cast<uint32_t>(rd_uint(v, len)); break;
            case Slot::Confidence: x.confidence = static_cast<uint8_t>(rd_uint(v, len)); break;
            case Slot::Risk: x.risk = rd_uint(v, len); x.have_l7 = true; break;
            case Slot::RiskScore: x.risk_score = static_cast<uint16_t>(rd_uint(v, len)); break;
            case Slot::HttpRetCode: x.http_status = static_cast<uint16_t>(rd_uint(v, len)); break;
            case Slot::L7Name:
            case Slot::Category:
            case Slot::DnsQuery:
            case Slot::TlsSni:
            case Slot::HttpHost:
            case Slot::HttpSite:
            case Slot::HttpUrl:
            case Slot::HttpMethod:
            case Slot::HttpUa:
            case Slot::Ja3c:
            case Slot::Ja3s:
            case Slot::Ja4: {
                const int i = static_cast<int>(f.slot) - static_cast<int>(Slot::L7Name);
                x.str[i] = v;
                // Fixed-width (v9) strings are NUL-padded.
                x.str_len[i] = static_cast<uint16_t>(strnlen(reinterpret_cast<const char*>(v), len));
                x.have_l7 = true;
                break;
            }
            }
        }
        return off;
    }

    static uint64_t to_ns(const Parsed& x, int i, const MsgCtx& m) noexcept
    {
        const uint64_t v = x.t[i];
        switch (x.unit[i]) {
        case Unit::Sec: return v * 1000000000ULL;
        case Unit::Ms: return v * 1000000ULL;
        case Unit::NtpUs:
        case Unit::NtpNs: {
            const uint64_t secs = v >> 32;
            const uint64_t frac = v & 0xffffffffULL;
            if (secs < kNtpEpochOffset)
                return 0;
            uint64_t sub = (frac * 1000000000ULL) >> 32;
            if (x.unit[i] == Unit::NtpUs)
                sub = sub / 1000 * 1000; // microsecond resolution (RFC 7011 s.6.1.9)
            return (secs - kNtpEpochOffset) * 1000000000ULL + sub;
        }
        case Unit::Uptime:
            if (x.have_sysinit)
                return (x.sysinit_ms + (v & 0xffffffffULL)) * 1000000ULL;
            if (m.has_uptime) {
                // Age of the event at export time, wrap-safe over 2^32 ms.
                const uint64_t age_ms = static_cast<uint32_t>(m.sys_uptime - static_cast<uint32_t>(v));
                const uint64_t age_ns = age_ms * 1000000ULL;
                return m.header_ns > age_ns ? m.header_ns - age_ns : 0;
            }
            return m.header_ns; // IPFIX uptime without an init time: export time
        }
        return 0;
    }

    /// Builds rec from a parsed record. False when it has no address.
    bool build(const Parsed& x, const MsgCtx& m) noexcept
    {
        if (!x.v4 && !x.v6)
            return false;
        FlowRecord& r = rec;
        r = FlowRecord{};
        FlowKey& k = r.key;
        const bool v6 = x.v6 && (!x.v4 || x.ipver == 6);
        k.ip_version = v6 ? 6 : 4;
        k.proto = x.proto;
        k.vlan = x.vlan;
        k.tunnel_id = x.tunnel_id; // the tunnel's type is not exported
        uint16_t sport = x.sport;
        uint16_t dport = x.dport;
        if (x.proto == 1 || x.proto == 58) {
            // As weir's decoder keys ICMP: type/code on the receiver's side.
            if (x.have_icmp)
                dport = x.icmp;
            else if (x.have_icmp_tc)
                dport = static_cast<uint16_t>(x.icmp_type << 8 | x.icmp_code);
            sport = 0;
        }
        std::array<uint8_t, 16> src{};
        std::array<uint8_t, 16> dst{};
        if (v6) {
            src = x.src;
            dst = x.dst;
        } else {
            std::memcpy(src.data(), x.src.data(), 4);
            std::memcpy(dst.data(), x.dst.data(), 4);
        }
        const int c = std::memcmp(src.data(), dst.data(), 16);
        const bool src_is_a = c < 0 || (c == 0 && sport <= dport);
        k.addr_a = src_is_a ? src : dst;
        k.addr_b = src_is_a ? dst : src;
        k.port_a = src_is_a ? sport : dport;
        k.port_b = src_is_a ? dport : sport;
        r.client_is_a = src_is_a ? 1 : 0;
        r.client_mac = x.src_mac;
        r.server_mac = x.dst_mac;
        if (x.end_reason >= 1 && x.end_reason <= 5)
            r.end_reason = static_cast<EndReason>(x.end_reason);

        DirCounters& f = r.dir[0];
        DirCounters& b = r.dir[1];
        f.bytes = x.have_bytes ? x.bytes[0] : x.tot_bytes[0];
        f.packets = x.have_packets ? x.packets[0] : x.tot_packets[0];
        if (x.have_rev) {
            b.bytes = x.bytes[1];
            b.packets = x.packets[1];
        } else if (x.have_rev_tot) {
            b.bytes = x.tot_bytes[1];
            b.packets = x.tot_packets[1];
        } else if (x.have_post) {
            b.bytes = x.post_bytes;
            b.packets = x.post_packets;
        }
        f.tos = x.tos[0];
        f.tcp_flags = x.flags[0];
        f.min_ttl = x.min_ttl[0];
        f.max_ttl = x.max_ttl[0];

        uint64_t start = x.have_t[0] ? to_ns(x, 0, m) : 0;
        uint64_t end = x.have_t[1] ? to_ns(x, 1, m) : 0;
        if (!x.have_t[0] && !x.have_t[1]) {
            start = end = m.header_ns;
        } else if (!x.have_t[1]) {
            end = x.have_duration ? start + x.duration_ms * 1000000ULL : start;
        } else if (!x.have_t[0]) {
            start = x.have_duration && end >= x.duration_ms * 1000000ULL ? end - x.duration_ms * 1000000ULL : end;
        }
        f.first_ns = start;
        f.last_ns = end;
        if (b.packets != 0 || b.bytes != 0) {
            b.tos = x.tos[1];
            b.tcp_flags = x.flags[1];
            b.min_ttl = x.min_ttl[1];
            b.max_ttl = x.max_ttl[1];
            b.first_ns = x.have_t[2] ? to_ns(x, 2, m) : start;
            b.last_ns = x.have_t[3] ? to_ns(x, 3, m) : end;
        }
        if (x.have_l7)
            build_l7(x, r.l7);
        // Milliseconds on the wire, microseconds in L7Info.
        r.l7.client_nw_latency_us = x.latency_ms[0] * 1000;
        r.l7.server_nw_latency_us = x.latency_ms[1] * 1000;
        r.l7.appl_latency_us = x.latency_ms[2] * 1000;
        return true;
    }

    template <std::size_t N>
    static void copy_str(char (&dst)[N], const Parsed& x, Slot s) noexcept
    {
        const int i = static_cast<int>(s) - static_cast<int>(Slot::L7Name);
        const std::size_t n = std::min<std::size_t>(x.str_len[i], N - 1);
        if (n != 0)
            std::memcpy(dst, x.str[i], n);
        dst[n] = '\0';
    }

    static void build_l7(const Parsed& x, L7Info& l) noexcept
    {
        l.app = x.l7_proto;
        l.dns_qtype = x.dns_qtype;
        l.dns_rcode = x.dns_rcode;
        copy_str(l.name, x, Slot::L7Name);
        l.confidence = x.confidence;
        l.risk = x.risk;
        l.risk_score = x.risk_score;
        char cat[sizeof(L7Info::name)];
        copy_str(cat, x, Slot::Category);
        l.category = ndpi_vocab::category_id(cat);
        l.http_status = x.http_status;
        char method[16];
        copy_str(method, x, Slot::HttpMethod);
        l.http_method = ndpi_vocab::http_method_id(method);
        // One server name: whichever of the four carries it.
        for (Slot s : {Slot::DnsQuery, Slot::TlsSni, Slot::HttpHost, Slot::HttpSite}) {
            if (x.str_len[static_cast<int>(s) - static_cast<int>(Slot::L7Name)] != 0) {
                copy_str(l.server_name, x, s);
                break;
            }
        }
        copy_str(l.url, x, Slot::HttpUrl);
        copy_str(l.user_agent, x, Slot::HttpUa);
        copy_str(l.ja3c, x, Slot::Ja3c);
        copy_str(l.ja3s, x, Slot::Ja3s);
        copy_str(l.ja4, x, Slot::Ja4);
    }

    /// Data records of one set/FlowSet. Returns the records read; sets
    /// `bad` when a record was cut.
    uint32_t data_set(Source& s, const Template& t, const uint8_t* p, std::size_t len, const MsgCtx& m,
                      const ExporterAddress& from, FlowRecordSink& sink, bool& bad) noexcept
    {
        FlowSourceStats& st = s.info.stats;
        uint32_t n = 0;
        std::size_t off = 0;
        // Whatever is left shorter than the smallest record is padding.
        const std::size_t min_len = std::max<std::size_t>(t.min_len, 1);
        const FlowOrigin origin{&from, s.info.version, s.info.domain, t.id};
        while (len - off >= min_len) {
            Parsed x{};
            const std::size_t used = parse_record(t, p + off, len - off, x);
            if (used == 0) {
                bad = true;
                ++st.malformed;
                break;
            }
            off += used;
            ++n;
            if (t.options) {
                ++st.options_records;
                continue;
            }
            if (!build(x, m)) {
                continue; // no address: not a flow (e.g. an interface counter record)
            }
            ++st.flows;
            ++totals.flows;
            sink.on_flow(rec, origin);
        }
        st.data_records += n;
        return n;
    }

    // --- NetFlow v5 ----------------------------------------------------------

    DecodeStatus v5(const ExporterAddress& from, std::span<const uint8_t> msg, uint64_t now_ns, FlowRecordSink& sink)
    {
        const uint8_t* p = msg.data();
        if (msg.size() < v5::kHeaderSize) {
            ++totals.too_short;
            return DecodeStatus::TooShort;
        }
        const uint32_t count = rd16(p + 2);
        const uint32_t fits = static_cast<uint32_t>((msg.size() - v5::kHeaderSize) / v5::kRecordSize);
        if (count == 0 || count > fits) {
            ++totals.bad_length;
            return DecodeStatus::BadLength;
        }
        Source* s = source(from, 5, static_cast<uint32_t>(rd16(p + 20)), now_ns);
        if (s == nullptr)
            return DecodeStatus::SourceRefused;
        account(*s, msg.size(), now_ns);
        sequence(*s, rd32(p + 16), s->last_units);
        s->last_units = count;
        const MsgCtx m{s, uint64_t{rd32(p + 8)} * 1000000000ULL + std::min<uint32_t>(rd32(p + 12), 999999999U),
                       rd32(p + 4), true};
        const FlowOrigin origin{&from, 5, s->info.domain, 0};
        FlowSourceStats& st = s->info.stats;
        for (uint32_t i = 0; i < count; ++i) {
            const uint8_t* r = p + v5::kHeaderSize + i * v5::kRecordSize;
            Parsed x{};
            std::memcpy(x.src.data(), r, 4);
            std::memcpy(x.dst.data(), r + 4, 4);
            x.v4 = true;
            x.packets[0] = rd32(r + 16);
            x.bytes[0] = rd32(r + 20);
            x.have_packets = x.have_bytes = true;
            x.t[0] = rd32(r + 24);
            x.t[1] = rd32(r + 28);
            x.unit[0] = x.unit[1] = Unit::Uptime;
            x.have_t[0] = x.have_t[1] = true;
            x.sport = rd16(r + 32);
            x.dport = rd16(r + 34);
            x.flags[0] = r[37];
            x.proto = r[38];
            x.tos[0] = r[39];
            build(x, m);
            ++st.data_records;
            ++st.flows;
            ++totals.flows;
            sink.on_flow(rec, origin);
        }
        return DecodeStatus::Ok;
    }

    void account(Source& s, std::size_t bytes, uint64_t now_ns) noexcept
    {
        ++s.info.stats.messages;
        s.info.stats.bytes += bytes;
        s.info.stats.last_seen_ns = now_ns;
    }

    // --- NetFlow v9 ----------------------------------------------------------

    DecodeStatus v9(const ExporterAddress& from, std::span<const uint8_t> msg, uint64_t now_ns, FlowRecordSink& sink)
    {
        const uint8_t* p = msg.data();
        const std::size_t len = msg.size();
        if (len < v9::kHeaderSize) {
            ++totals.too_short;
            return DecodeStatus::TooShort;
        }
        Source* s = source(from, 9, rd32(p + 16), now_ns);
        if (s == nullptr)
            return DecodeStatus::SourceRefused;
        FlowSourceStats& st = s->info.stats;
        account(*s, len, now_ns);
        sequence(*s, rd32(p + 12), 1);
        s->seq_uncertain = false;
        const MsgCtx m{s, uint64_t{rd32(p + 8)} * 1000000000ULL, rd32(p + 4), true};
        bool bad = false;
        std::size_t off = v9::kHeaderSize;
        while (len - off >= 4) {
            const uint16_t id = rd16(p + off);
            const uint16_t slen = rd16(p + off + 2);
            if (slen < 4 || slen > len - off) {
                ++st.malformed;
                bad = true;
                break;
            }
            const uint8_t* b = p + off + 4;
            const std::size_t blen = slen - 4u;
            off += slen;
            if (id == v9::kTemplateFlowSetId) {
                bad |= v9_templates(*s, b, blen, now_ns);
            } else if (id == ie::kV9OptionsFlowSetId) {
                bad |= v9_options(*s, b, blen, now_ns);
            } else if (id >= 256) {
                const Template* t = find(*s, id, now_ns);
                if (t == nullptr) {
                    ++st.unknown_template;
                    continue;
                }
                data_set(*s, *t, b, blen, m, from, sink, bad);
            }
            // 2..255: reserved, skipped.
        }
        return bad ? DecodeStatus::Malformed : DecodeStatus::Ok;
    }

    bool v9_templates(Source& s, const uint8_t* b, std::size_t blen, uint64_t now_ns)
    {
        std::size_t off = 0;
        while (blen - off >= 4) {
            const uint16_t tid = rd16(b + off);
            const uint16_t count = rd16(b + off + 2);
            if (tid == 0 && count == 0)
                break; // padding
            if (tid < 256 || count == 0 || count > kMaxTemplateFields) {
                ++s.info.stats.malformed;
                return true;
            }
            Template t;
            t.id = tid;
            const std::size_t used = read_fields(b + off + 4, blen - off - 4, count, false, t);
            if (used == 0) {
                ++s.info.stats.malformed;
                return true;
            }
            off += 4 + used;
            store(s, std::move(t), now_ns);
        }
        return false;
    }

    bool v9_options(Source& s, const uint8_t* b, std::size_t blen, uint64_t now_ns)
    {
        std::size_t off = 0;
        while (blen - off >= 6) {
            const uint16_t tid = rd16(b + off);
            const uint16_t scope_len = rd16(b + off + 2);
            const uint16_t opt_len = rd16(b + off + 4);
            const uint32_t bytes = uint32_t{scope_len} + opt_len;
            if (tid == 0 && bytes == 0)
                break; // padding
            if (tid < 256 || bytes == 0 || bytes % 4 != 0 || bytes / 4 > kMaxTemplateFields
                || bytes > blen - off - 6) {
                ++s.info.stats.malformed;
                return true;
            }
            Template t;
            t.id = tid;
            t.options = true;
            if (read_fields(b + off + 6, bytes, bytes / 4, false, t) == 0) {
                ++s.info.stats.malformed;
                return true;
            }
            off += 6 + bytes;
            store(s, std::move(t), now_ns);
            // The rest of the FlowSet is padding once fewer than a header's bytes remain.
        }
        return false;
    }

    // --- IPFIX ---------------------------------------------------------------

    DecodeStatus ipfix_msg(const ExporterAddress& from, std::span<const uint8_t> msg, uint64_t now_ns,
                           FlowRecordSink& sink)
    {
        const uint8_t* p = msg.data();
        if (msg.size() < ipfix::kHeaderSize) {
            ++totals.too_short;
            return DecodeStatus::TooShort;
        }
        const std::size_t len = rd16(p + 2);
        if (len != msg.size()) {
            ++totals.bad_length;
            return DecodeStatus::BadLength;
        }
        Source* s = source(from, 10, rd32(p + 12), now_ns);
        if (s == nullptr)
            return DecodeStatus::SourceRefused;
        FlowSourceStats& st = s->info.stats;
        account(*s, len, now_ns);
        sequence(*s, rd32(p + 8), s->last_units);
        s->seq_uncertain = false;
        const MsgCtx m{s, uint64_t{rd32(p + 4)} * 1000000000ULL, 0, false};
        bool bad = false;
        uint32_t records = 0;
        std::size_t off = ipfix::kHeaderSize;
        while (len - off >= 4) {
            const uint16_t id = rd16(p + off);
            const uint16_t slen = rd16(p + off + 2);
            if (slen < 4 || slen > len - off) {
                ++st.malformed;
                bad = true;
                s->seq_uncertain = true;
                break;
            }
            const uint8_t* b = p + off + 4;
            const std::size_t blen = slen - 4u;
            off += slen;
            if (id == ipfix::kTemplateSetId || id == ie::kOptionsTemplateSetId) {
                bad |= ipfix_templates(*s, id, b, blen, now_ns);
            } else if (id >= 256) {
                const Template* t = find(*s, id, now_ns);
                if (t == nullptr) {
                    ++st.unknown_template;
                    s->seq_uncertain = true; // its records count in the next sequence number
                    continue;
                }
                records += data_set(*s, *t, b, blen, m, from, sink, bad);
            }
        }
        if (len - off != 0 && !bad) {
            ++st.malformed; // 1..3 bytes after the last set
            bad = true;
        }
        s->last_units = records;
        return bad ? DecodeStatus::Malformed : DecodeStatus::Ok;
    }

    bool ipfix_templates(Source& s, uint16_t set_id, const uint8_t* b, std::size_t blen, uint64_t now_ns)
    {
        FlowSourceStats& st = s.info.stats;
        const bool options = set_id == ie::kOptionsTemplateSetId;
        std::size_t off = 0;
        while (blen - off >= 4) {
            const uint16_t tid = rd16(b + off);
            const uint16_t count = rd16(b + off + 2);
            if (tid == 0 && count == 0)
                break; // padding
            if (count == 0) {
                // Withdrawal (RFC 7011 s.8.1): one template, or all of this kind.
                off += 4;
                if (tid == set_id) {
                    for (auto it = s.templates.begin(); it != s.templates.end();) {
                        if (it->second.options == options) {
                            ++st.template_withdrawals;
                            it = s.templates.erase(it);
                        } else {
                            ++it;
                        }
                    }
                } else if (tid >= 256 && s.templates.erase(tid)) {
                    ++st.template_withdrawals;
                } else if (tid < 256) {
                    ++st.malformed;
                    return true;
                }
                continue;
            }
            std::size_t hdr = 4;
            if (options) {
                if (blen - off < 6) {
                    ++st.malformed;
                    return true;
                }
                const uint16_t scope = rd16(b + off + 4);
                if (scope == 0 || scope > count) {
                    ++st.malformed;
                    return true;
                }
                hdr = 6;
            }
            if (tid < 256 || count > kMaxTemplateFields) {
                ++st.malformed;
                return true;
            }
            Template t;
            t.id = tid;
            t.options = options;
            const std::size_t used = read_fields(b + off + hdr, blen - off - hdr, count, true, t);
            if (used == 0) {
                ++st.malformed;
                return true;
            }
            off += hdr + used;
            store(s, std::move(t), now_ns);
        }
        return false;
    }
};

FlowDecoder::FlowDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FlowDecoder::~FlowDecoder() = default;

Result<std::unique_ptr<FlowDecoder>> FlowDecoder::create(const DecoderOptions& opts)
{
    if (opts.max_sources == 0 || opts.max_templates == 0)
        return invalid("flow decoder: max_sources and max_templates must be at least 1");
    auto impl = std::make_unique<Impl>();
    impl->opts = opts;
    return std::unique_ptr<FlowDecoder>(new FlowDecoder(std::move(impl)));
}

DecodeStatus FlowDecoder::decode(const ExporterAddress& from, std::span<const uint8_t> msg, uint64_t now_ns,
                                 FlowRecordSink& sink) noexcept
{
    Impl& d = *impl_;
    ++d.totals.messages;
    d.totals.bytes += msg.size();
    if (msg.size() < 2) {
        ++d.totals.too_short;
        return DecodeStatus::TooShort;
    }
    // Allocation (a new source or template) is the only thing that can
    // throw; a decoder out of memory drops the message.
    try {
        switch (rd16(msg.data())) {
        case 5: return d.v5(from, msg, now_ns, sink);
        case 9: return d.v9(from, msg, now_ns, sink);
        case 10: return d.ipfix_msg(from, msg, now_ns, sink);
        default: break;
        }
    } catch (const std::bad_alloc&) {
        ++d.totals.sources_refused;
        return DecodeStatus::SourceRefused;
    }
    ++d.totals.bad_version;
    return DecodeStatus::BadVersion;
}

void FlowDecoder::end_session(const ExporterAddress& from)
{
    ++impl_->totals.sessions_ended;
    for (auto& [k, s] : impl_->sources) {
        if (k.session == from.session && k.addr == from.addr && from.session != 0) {
            s->templates.clear();
            s->ended = true;
        }
    }
}

void FlowDecoder::for_each_source(const std::function<void(const FlowSourceInfo&)>& fn) const
{
    for (const auto& [k, s] : impl_->sources) {
        s->info.live_templates = static_cast<uint32_t>(s->templates.size());
        fn(s->info);
    }
}

const DecoderTotals& FlowDecoder::totals() const noexcept { return impl_->totals; }
std::size_t FlowDecoder::source_count() const noexcept { return impl_->sources.size(); }

} // namespace weir::exporters
