// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) encoding.
//
// Sequence numbers: v9 counts export packets sent before this one (RFC 3954
// s.5.1); IPFIX counts data records (options data records included) sent
// before this message in this session, templates excluded (RFC 7011 s.3.1).
// Templates (one for IPv4, one for IPv6) open the first datagram and every
// datagram started after N datagrams or T seconds without them, so a
// collector that starts late or restarts gets them back quickly over UDP.
//
// L7: a flow with L7 data (L7Info app or master set) goes out under the L7
// templates (base + 16 / base + 17): the same fields followed by ntop's
// enterprise elements (PEN 35632 in IPFIX, v9 type 57472 + n). IPFIX carries
// the strings variable-length (RFC 7011 s.7), v9 fixed-width, NUL-padded
// and cut to the width. The L7 templates are announced with the first L7
// flow (which starts a new datagram) and from then on with every refresh; a
// flow without L7 data keeps the plain template, so a template changes only
// when its field set does.
//
// v9 has no variable-length fields, so its L7 template is wide (about 500
// bytes of NUL-padded strings, two records to a datagram). A flow whose L7
// data is only the protocol (a port guess, or DPI that found no host, URL,
// fingerprint or risk) goes out under the compact L7 templates instead (base +
// 24 / base + 25: L7_PROTO, L7_PROTO_NAME, L7_PROTO_CATEGORY and
// L7_CONFIDENCE only), announced with their
// first use like the full ones. IPFIX keeps one L7 template per family:
// an empty variable-length string costs one byte. Both L7 kinds end with
// CLIENT/SERVER_NW_LATENCY_MS and APPL_LATENCY_MS (u32 ms); a flow with a
// measured latency and no protocol goes out under them too.
//
// Tunnels: a flow whose key has a tunnel id (VXLAN VNI, GRE key) goes out
// under the tunnel variant of its template (base + 48/49, L7 + 64/65,
// compact + 72/73): UPSTREAM_TUNNEL_ID after the base fields. Variants
// rather than the field everywhere: untunnelled records stay 4 bytes
// shorter, and only links with tunnels see the extra templates.
//
// Options (EncoderOptions::options_records): every template announcement
// also carries an options template and one options record with the
// exporting process statistics and reliability counters (RFC 7011 s.4.1-4.3;
// v9 scope System, RFC 3954 s.6.1) and, in IPFIX once L7 templates are in
// use, RFC 5610 type records for each ntop element. Each announcement piece
// is a whole set; when the datagram is full the rest goes in the next one.
//
// Sampling (EncoderOptions::sampling_interval > 1): every template
// announcement also carries the sampling parameters as options, whether or
// not options_records is set, since collectors need them to scale the
// counters. v9: one options template (scope System; SAMPLING_INTERVAL 34,
// SAMPLING_ALGORITHM 35) and its record. IPFIX: two options templates scoped
// to the observation domain, each with one record: the PSAMP one (RFC 5477:
// selectorAlgorithm 304 with samplingPacketInterval/Space 305/306, or for
// random 1-out-of-N samplingSize/Population 309/310), and one with the older
// samplingInterval/samplingAlgorithm (34/35) that some collectors (nfdump
// 1.7.1) read instead. They are separate templates because a collector that
// maps 34 and 306 onto one slot would otherwise read N as the space and
// scale by N + 1. Each template and record is a set of its own (nfdump reads
// one options template per set).
//
// restart_session() (a TCP reconnect) makes the next datagram start a new
// session: templates first, IPFIX sequence from 0.
#include "template_encoder.hpp"

#include "encode_util.hpp"
#include "l7_fields.hpp"

#include <weir/core/ndpi_vocab.hpp>

#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace weir::exporters::detail {
namespace {

enum class F : uint8_t {
    Bytes, Packets, Proto, Tos, TcpFlags, SrcPort, DstPort, SrcAddr, DstAddr, InIf, OutIf, Vlan,
    SrcMac, DstMac, StartMs, EndMs, StartUptime, EndUptime, EndReason, BiflowDir, MinTtl, MaxTtl,
    Icmp, RevBytes, RevPackets, RevTcpFlags, RevTos, RevStartMs, RevEndMs, RevMinTtl, RevMaxTtl,
    OutBytes, OutPackets,
    // ntop L7 (PEN 35632)
    L7Proto, L7Name, Category, Confidence, Risk, RiskScore, DnsQuery, DnsQtype, DnsRcode, TlsSni, HttpHost,
    HttpUrl, HttpMethod, HttpRetCode, HttpUa, Ja3c, Ja3s, Ja4, ClientLat, ServerLat, ApplLat, TunnelId,
};

/// The string fields of the L7 templates (see str_index()).
enum L7Str : uint8_t { kName, kCat, kDns, kTls, kHost, kUrl, kMethod, kUa, kJa3c, kJa3s, kJa4, kL7StrCount };

struct L7View {
    const char* s[kL7StrCount];
    uint16_t n[kL7StrCount];
};

/// Latencies in whole ms, as nProbe exports them (truncated).
uint32_t ms_of(uint32_t us) noexcept { return us / 1000; }

/// L7 template material: a protocol, a measured latency (a TCP flow
/// whose protocol DPI did not find still has its handshake times), or
/// nDPI's risks (which an undetected flow may have too).
bool has_l7(const L7Info& l) noexcept
{
    return l.app != 0 || l.master != 0 || ms_of(l.client_nw_latency_us) || ms_of(l.server_nw_latency_us)
        || ms_of(l.appl_latency_us) || l.risk != 0;
}

uint16_t cstrlen(const char* p, std::size_t cap) noexcept
{
    return static_cast<uint16_t>(strnlen(p, cap));
}

/// Which L7 fields a flow fills: the server name goes where
/// server_name_field() says (l7_fields.hpp), as nProbe does.
L7View l7_view(const L7Info& l) noexcept
{
    L7View v{};
    auto set = [&](L7Str i, const char* p, std::size_t cap) {
        v.s[i] = p;
        v.n[i] = cstrlen(p, cap);
    };
    static const char kEmpty[1] = {0};
    for (auto& p : v.s)
        p = kEmpty;
    set(kName, l.name, sizeof(l.name));
    if (l.category) {
        const std::string_view cat = ndpi_vocab::category_name(l.category); // a literal: NUL-terminated
        v.s[kCat] = cat.empty() ? kEmpty : cat.data();
        v.n[kCat] = static_cast<uint16_t>(cat.size());
    }
    const ServerNameField sf = server_name_field(l);
    if (sf == ServerNameField::DnsQuery)
        set(kDns, l.server_name, sizeof(l.server_name));
    else if (sf == ServerNameField::TlsServerName)
        set(kTls, l.server_name, sizeof(l.server_name));
    else
        set(kHost, l.server_name, sizeof(l.server_name));
    set(kUrl, l.url, sizeof(l.url));
    if (const std::string_view m = ndpi_vocab::http_method_name(l.http_method); !m.empty()) {
        v.s[kMethod] = m.data(); // a literal: NUL-terminated
        v.n[kMethod] = static_cast<uint16_t>(m.size());
    }
    set(kUa, l.user_agent, sizeof(l.user_agent));
    set(kJa3c, l.ja3c, sizeof(l.ja3c));
    set(kJa3s, l.ja3s, sizeof(l.ja3s));
    set(kJa4, l.ja4, sizeof(l.ja4));
    return v;
}

/// One ntop element of the L7 templates. v9_len: fixed width in v9 (the
/// strings are cut to it); IPFIX strings are variable-length.
struct NtopField {
    F f;
    uint16_t n;      ///< ntop element id (PEN 35632)
    uint16_t v9_len;
    bool string;
    const char* name; ///< nProbe's name, for RFC 5610 type records
    bool latency = false; ///< u32 ms; in the compact templates too
    bool compact = false; ///< in the compact templates too (the protocol's own fields)
};

constexpr NtopField kNtopFields[] = {
    {F::L7Proto, ntop::kL7Proto, 2, false, "L7_PROTO", false, true},
    {F::L7Name, ntop::kL7ProtoName, 24, true, "L7_PROTO_NAME", false, true},
    {F::Category, ntop::kL7ProtoCategory, 16, true, "L7_PROTO_CATEGORY", false, true},
    {F::Confidence, ntop::kL7Confidence, 1, false, "L7_CONFIDENCE", false, true},
    {F::Risk, ntop::kL7ProtoRisk, 8, false, "L7_PROTO_RISK"},
    {F::RiskScore, ntop::kL7RiskScore, 2, false, "L7_RISK_SCORE"},
    {F::DnsQuery, ntop::kDnsQuery, 64, true, "DNS_QUERY"},
    {F::DnsQtype, ntop::kDnsQueryType, 2, false, "DNS_QUERY_TYPE"},
    {F::DnsRcode, ntop::kDnsRetCode, 1, false, "DNS_RET_CODE"},
    {F::TlsSni, ntop::kTlsServerName, 64, true, "TLS_SERVER_NAME"},
    {F::HttpHost, ntop::kHttpHost, 64, true, "HTTP_HOST"},
    {F::HttpUrl, ntop::kHttpUrl, 128, true, "HTTP_URL"},
    {F::HttpMethod, ntop::kHttpMethod, 8, true, "HTTP_METHOD"},
    {F::HttpRetCode, ntop::kHttpRetCode, 2, false, "HTTP_RET_CODE"},
    {F::HttpUa, ntop::kHttpUserAgent, 64, true, "HTTP_USER_AGENT"},
    {F::Ja3c, ntop::kJa3cHash, 32, true, "JA3C_HASH"},
    {F::Ja3s, ntop::kJa3sHash, 32, true, "JA3S_HASH"},
    {F::Ja4, ntop::kJa4cHash, 36, true, "JA4C_HASH"},
    {F::ClientLat, ntop::kClientNwLatencyMs, 4, false, "CLIENT_NW_LATENCY_MS", true},
    {F::ServerLat, ntop::kServerNwLatencyMs, 4, false, "SERVER_NW_LATENCY_MS", true},
    {F::ApplLat, ntop::kApplLatencyMs, 4, false, "APPL_LATENCY_MS", true},
};

/// The tunnel templates' element (after the base fields, before L7).
constexpr NtopField kTunnelField{F::TunnelId, ntop::kUpstreamTunnelId, 4, false, "UPSTREAM_TUNNEL_ID"};

/// Index into L7View of a string field.
L7Str str_index(F f) noexcept
{
    switch (f) {
    case F::L7Name: return kName;
    case F::Category: return kCat;
    case F::DnsQuery: return kDns;
    case F::TlsSni: return kTls;
    case F::HttpHost: return kHost;
    case F::HttpUrl: return kUrl;
    case F::HttpMethod: return kMethod;
    case F::HttpUa: return kUa;
    case F::Ja3c: return kJa3c;
    case F::Ja3s: return kJa3s;
    default: return kJa4;
    }
}

/// Options record layout (both dialects; the scope differs).
constexpr uint16_t kStatFields[] = {
    ipfix::kExportedOctetTotalCount,  ipfix::kExportedMessageTotalCount, ipfix::kExportedFlowRecordTotalCount,
    ipfix::kIgnoredPacketTotalCount,  ipfix::kIgnoredOctetTotalCount,    ipfix::kNotSentFlowTotalCount,
    ipfix::kNotSentPacketTotalCount,  ipfix::kNotSentOctetTotalCount,
};
constexpr uint32_t kStatCount = sizeof(kStatFields) / sizeof(kStatFields[0]);

struct FieldSpec {
    F f;
    uint16_t id;
    uint16_t len; ///< 65535 = variable length (IPFIX strings)
    uint32_t pen; ///< 0 = IANA
};

struct Template {
    uint16_t id = 0;
    std::vector<FieldSpec> fields;
    uint32_t record_len = 0; ///< fixed part (variable-length fields: 0)
    uint32_t spec_len = 0; ///< bytes of this template record in a template set
    bool var = false;      ///< has variable-length fields
    bool l7 = false;
};

/// What one export record is made of.
struct Rec {
    OneWay fwd;
    const DirCounters* rev; ///< nullptr in one-way mode
    uint64_t start_ns;
    uint64_t end_ns;
    uint8_t biflow_dir;     ///< IE 239: 1 initiator, 2 reverse initiator
    uint8_t tcp_flags;      ///< forward flags, or both ORed in InOut mode
};

Template build_template(Dialect d, BiflowMode mode, bool v6, uint16_t id, bool l7, bool compact, bool tunnel)
{
    const bool ipfix = d == Dialect::Ipfix;
    Template t;
    t.id = id;
    auto add = [&](F f, uint16_t ie, uint16_t len, uint32_t pen = 0) { t.fields.push_back({f, ie, len, pen}); };
    add(F::Bytes, ipfix::kOctetDeltaCount, 8);
    add(F::Packets, ipfix::kPacketDeltaCount, 8);
    add(F::Proto, ipfix::kProtocolIdentifier, 1);
    add(F::Tos, ipfix::kIpClassOfService, 1);
    // tcpControlBits is unsigned16 in IPFIX (RFC 7125), one byte in v9.
    add(F::TcpFlags, ipfix::kTcpControlBits, ipfix ? 2 : 1);
    add(F::SrcPort, ipfix::kSourceTransportPort, 2);
    add(F::DstPort, ipfix::kDestinationTransportPort, 2);
    add(F::SrcAddr, v6 ? ipfix::kSourceIPv6Address : ipfix::kSourceIPv4Address, v6 ? 16 : 4);
    add(F::DstAddr, v6 ? ipfix::kDestinationIPv6Address : ipfix::kDestinationIPv4Address, v6 ? 16 : 4);
    add(F::InIf, ipfix::kIngressInterface, 4);
    add(F::OutIf, ipfix::kEgressInterface, 4);
    add(F::Vlan, ipfix::kVlanId, 2);
    add(F::SrcMac, ipfix::kSourceMacAddress, 6);
    add(F::DstMac, ipfix::kDestinationMacAddress, 6);
    if (ipfix) {
        add(F::StartMs, ipfix::kFlowStartMilliseconds, 8);
        add(F::EndMs, ipfix::kFlowEndMilliseconds, 8);
    } else {
        add(F::StartUptime, v9::kFirstSwitched, 4);
        add(F::EndUptime, v9::kLastSwitched, 4);
    }
    add(F::EndReason, ipfix::kFlowEndReason, 1);
    add(F::BiflowDir, ipfix::kBiflowDirection, 1);
    add(F::MinTtl, ipfix::kMinimumTTL, 1);
    add(F::MaxTtl, ipfix::kMaximumTTL, 1);
    // v9 has one ICMP_TYPE (32) for both families; icmpTypeCodeIPv6 (139) is
    // IPFIX-only and v9 collectors (nfdump) ignore it.
    add(F::Icmp, v6 && ipfix ? ipfix::kIcmpTypeCodeIPv6 : ipfix::kIcmpTypeCodeIPv4, 2);
    if (mode == BiflowMode::Rfc5103) {
        const uint32_t pen = ipfix::kReversePen;
        add(F::RevBytes, ipfix::kOctetDeltaCount, 8, pen);
        add(F::RevPackets, ipfix::kPacketDeltaCount, 8, pen);
        add(F::RevTos, ipfix::kIpClassOfService, 1, pen);
        add(F::RevTcpFlags, ipfix::kTcpControlBits, 2, pen);
        add(F::RevStartMs, ipfix::kFlowStartMilliseconds, 8, pen);
        add(F::RevEndMs, ipfix::kFlowEndMilliseconds, 8, pen);
        add(F::RevMinTtl, ipfix::kMinimumTTL, 1, pen);
        add(F::RevMaxTtl, ipfix::kMaximumTTL, 1, pen);
    } else if (mode == BiflowMode::InOut) {
        add(F::OutBytes, ipfix::kPostOctetDeltaCount, 8);
        add(F::OutPackets, ipfix::kPostPacketDeltaCount, 8);
    }
    auto add_ntop = [&](const NtopField& n) {
        if (ipfix)
            add(n.f, n.n, n.string ? ipfix::kVarLen : n.v9_len, ntop::kPen);
        else
            add(n.f, ntop::v9_id(n.n), n.v9_len);
    };
    if (tunnel)
        add_ntop(kTunnelField);
    t.l7 = l7;
    if (l7) {
        for (const NtopField& n : kNtopFields) {
            if (compact && !n.compact && !n.latency)
                continue;
            add_ntop(n);
        }
    }
    t.spec_len = 4;
    for (const FieldSpec& f : t.fields) {
        if (f.len == ipfix::kVarLen)
            t.var = true;
        else
            t.record_len += f.len;
        t.spec_len += f.pen ? 8 : 4;
    }
    return t;
}

/// Reverse start/end in ms. A direction without packets repeats the flow's
/// own times: collectors such as nfdump take the earliest start of both
/// directions, and a 0 there would date the flow to 1970.
uint64_t reverse_ms(const DirCounters* c, uint64_t flow_ns, bool last) noexcept
{
    if (c == nullptr || c->packets == 0)
        return flow_ns / 1000000ULL;
    return (last ? c->last_ns : c->first_ns) / 1000000ULL;
}

class TemplateEncoder final : public Encoder {
public:
    TemplateEncoder(Dialect d, const EncoderOptions& o, BiflowMode mode, uint16_t base)
        : d_(d), opts_(o), mode_(mode),
          stats_id_(static_cast<uint16_t>(base + kOptionsOffset)),
          types_id_(static_cast<uint16_t>(base + kOptionsOffset + 1)),
          psamp_id_(static_cast<uint16_t>(base + kSamplingOffset)),
          legacy_id_(static_cast<uint16_t>(base + kSamplingOffset + 1)),
          header_len_(d == Dialect::Ipfix ? ipfix::kHeaderSize : v9::kHeaderSize),
          w_(o.mtu)
    {
        static constexpr uint16_t kKindOffset[kKinds] = {0, kL7Offset, kL7Offset + 8};
        for (int k = 0; k < kKinds; ++k)
            for (int tun = 0; tun < 2; ++tun)
                for (int v6 = 0; v6 < 2; ++v6)
                    tpl_[k][tun][v6] = build_template(
                        d, mode, v6 != 0, static_cast<uint16_t>(base + kKindOffset[k] + (tun ? kTunnelOffset : 0) + v6),
                        k != kPlain, k == kL7Compact, tun != 0);
        announced_[kPlain][0] = true;
        // Pieces that can never fit a datagram are left out (counted per record).
        const uint32_t room = opts_.mtu - header_len_;
        l7_ok_ = opts_.l7_fields && pair_len(kL7, 1) <= room;
        tunnel_ok_ = pair_len(kPlain, 1) <= room;
        options_ok_ = opts_.options_records && options_templates_len(true) + 3 <= room
            && stats_set_len() + 3 <= room && types_set_len() <= room;
        sampling_ = opts_.sampling_interval > 1;
    }

    static constexpr uint16_t kL7Offset = 16;
    /// Tunnel variants of the plain, L7 and compact templates: +48/49,
    /// +64/65, +72/73 (clear of the other modes' ids, as below).
    static constexpr uint16_t kTunnelOffset = 48;
    enum Kind { kPlain, kL7, kL7Compact, kKinds };
    static constexpr uint16_t kOptionsOffset = 32;
    /// Sampling options templates: base + 40/41, clear of every other
    /// mode's ids (bases 256, 258, 260 use +0/1, +16/17, +24/25, +32/33).
    static constexpr uint16_t kSamplingOffset = 40;

    [[nodiscard]] uint32_t min_datagram() const noexcept
    {
        const uint32_t rec = std::max(tpl_[kPlain][0][0].record_len, tpl_[kPlain][0][1].record_len);
        return header_len_ + templates_len() + 4 + rec + 3;
    }

    void add(const FlowRecord& r, const ExportClock& clk, DatagramSink& out) noexcept override
    {
        ++stats_.flows_in;
        if (r.dir[0].packets == 0 && r.dir[1].packets == 0) {
            ++stats_.skipped_empty;
            return;
        }
        const int v6 = r.key.ip_version == 6 ? 1 : 0;
        // A tunnelled flow (VXLAN VNI, GRE key) goes out under the tunnel
        // variant of its template: UPSTREAM_TUNNEL_ID after the base fields.
        const int tun = tunnel_ok_ && r.key.tunnel_id != 0 ? 1 : 0;
        int kind = kPlain;
        L7View l7v{};
        uint32_t var_len = 0;
        if (l7_ok_ && has_l7(r.l7)) {
            const Template& tl = tpl_[kL7][tun][v6];
            l7v = l7_view(r.l7);
            var_len = var_bytes(tl, l7v);
            if (!ipfix_dialect() && only_name(l7v) && r.l7.risk == 0) {
                kind = kL7Compact;
            } else if (header_len_ + 4 + tl.record_len + var_len + 3 <= opts_.mtu) {
                kind = kL7;
            } else {
                ++stats_.l7_dropped;
                var_len = 0;
            }
        }
        const Template* t = &tpl_[kind][tun][v6];
        if (!announced_[kind][tun]) {
            // New templates: announce them before the first record.
            announced_[kind][tun] = true;
            force_announce_ = true;
        }
        if (mode_ == BiflowMode::OneWay) {
            for (int d = 0; d < 2; ++d) {
                if (r.dir[d].packets == 0)
                    continue;
                const DirCounters& c = r.dir[d];
                Rec rec{one_way(r, d), nullptr, c.first_ns, c.last_ns, static_cast<uint8_t>(d + 1), c.tcp_flags};
                put(r, *t, rec, l7v, var_len, clk, out);
            }
            return;
        }
        const uint8_t flags = mode_ == BiflowMode::InOut
            ? static_cast<uint8_t>(r.dir[0].tcp_flags | r.dir[1].tcp_flags) : r.dir[0].tcp_flags;
        Rec rec{one_way(r, 0), &r.dir[1], r.first_ns(), r.last_ns(), 1, flags};
        put(r, *t, rec, l7v, var_len, clk, out);
    }

    void flush(const ExportClock& clk, DatagramSink& out) noexcept override
    {
        if (!open_)
            return;
        close_set();
        const uint32_t secs = static_cast<uint32_t>(clk.now_ns / 1000000000ULL);
        if (d_ == Dialect::Ipfix) {
            w_.put_u16_at(0, ipfix::kVersion);
            w_.put_u16_at(2, static_cast<uint16_t>(w_.size()));
            w_.put_u32_at(4, secs);
            w_.put_u32_at(8, static_cast<uint32_t>(records_sent_));
            w_.put_u32_at(12, opts_.domain_id);
        } else {
            uint64_t ignored = 0;
            w_.put_u16_at(0, v9::kVersion);
            w_.put_u16_at(2, static_cast<uint16_t>(count_records_));
            w_.put_u32_at(4, uptime_ms(clk.now_ns, clk.boot_ns, ignored));
            w_.put_u32_at(8, secs);
            w_.put_u32_at(12, static_cast<uint32_t>(v9_sequence_));
            w_.put_u32_at(16, opts_.domain_id);
        }
        // Counted before the sink runs, so a sink that restarts the session
        // sees a finished datagram.
        ++stats_.datagrams;
        ++v9_sequence_;
        stats_.bytes += w_.size();
        records_sent_ += data_records_;
        ++since_templates_;
        data_records_ = 0;
        count_records_ = 0;
        open_ = false;
        out.on_datagram({w_.data(), w_.size()});
        w_.reset();
    }

    [[nodiscard]] bool pending() const noexcept override { return open_; }
    [[nodiscard]] ExportFormat format() const noexcept override
    {
        return d_ == Dialect::Ipfix ? ExportFormat::Ipfix : ExportFormat::NetflowV9;
    }

    void restart_session() noexcept override
    {
        restart_pending_ = true;
        ++stats_.session_restarts;
    }

private:
    [[nodiscard]] bool ipfix_dialect() const noexcept { return d_ == Dialect::Ipfix; }
    [[nodiscard]] uint32_t pair_len(int kind, int tun) const noexcept
    {
        return 4 + tpl_[kind][tun][0].spec_len + tpl_[kind][tun][1].spec_len;
    }
    [[nodiscard]] uint32_t templates_len() const noexcept { return pair_len(kPlain, 0); }
    /// Some announced template carries ntop elements (L7 or tunnel).
    [[nodiscard]] bool ntop_announced() const noexcept
    {
        return announced_[kL7][0] || announced_[kL7Compact][0] || announced_[kPlain][1] || announced_[kL7][1]
            || announced_[kL7Compact][1];
    }
    [[nodiscard]] uint32_t pad_of(std::size_t len) const noexcept
    {
        // v9 SHOULD pad flowsets to 32-bit boundaries; IPFIX padding is
        // optional and left out.
        return d_ == Dialect::V9 ? static_cast<uint32_t>((4 - len % 4) % 4) : 0;
    }

    /// True when the flow's only L7 string is the protocol name.
    static bool only_name(const L7View& v) noexcept
    {
        for (uint32_t i = kCat + 1; i < kL7StrCount; ++i)
            if (v.n[i] != 0)
                return false;
        return true;
    }

    static uint32_t var_bytes(const Template& t, const L7View& v) noexcept
    {
        if (!t.var)
            return 0;
        uint32_t n = 0;
        for (const FieldSpec& f : t.fields) {
            if (f.len != ipfix::kVarLen)
                continue;
            const uint16_t len = v.n[str_index(f.f)];
            n += (len < 255 ? 1 : 3) + len;
        }
        return n;
    }

    // --- options layouts -----------------------------------------------------

    /// Statistics options template record (bytes).
    [[nodiscard]] uint32_t stats_template_len() const noexcept
    {
        // IPFIX: id, count, scope count; v9: id, scope len, option len. Then
        // 1 scope + kStatCount fields of 4 bytes.
        return 6 + 4 * (1 + kStatCount);
    }
    [[nodiscard]] uint32_t types_template_len() const noexcept { return 6 + 4 * 6; }
    [[nodiscard]] uint32_t options_templates_len(bool types) const noexcept
    {
        return 4 + stats_template_len() + (types ? types_template_len() : 0);
    }
    [[nodiscard]] uint32_t stats_record_len() const noexcept { return 4 + 8 * kStatCount; }
    /// The ntop elements of every template: the L7 ones, then the tunnel id.
    template <class Fn>
    static void for_each_type_field(Fn&& fn)
    {
        for (const NtopField& f : kNtopFields)
            fn(f);
        fn(kTunnelField);
    }
    [[nodiscard]] static uint32_t types_set_len() noexcept
    {
        uint32_t n = 4;
        for_each_type_field([&n](const NtopField& f) {
            n += 2 + 4 + 1 + 1 + 2 + 1 + static_cast<uint32_t>(std::strlen(f.name));
        });
        return n;
    }
    [[nodiscard]] uint32_t stats_set_len() const noexcept { return 4 + stats_record_len(); }
    [[nodiscard]] bool send_types() const noexcept { return ipfix_dialect() && options_ok_ && ntop_announced(); }

    // --- datagram assembly ---------------------------------------------------

    void open_datagram() noexcept
    {
        w_.zeros(header_len_);
        open_ = true;
        set_open_ = false;
    }

    /// Makes room for n more bytes: finishes the datagram when they do not fit.
    void room(std::size_t n, const ExportClock& clk, DatagramSink& out) noexcept
    {
        if (open_ && w_.size() + n > opts_.mtu)
            flush(clk, out);
        if (!open_)
            open_datagram();
    }

    void begin(const ExportClock& clk, DatagramSink& out, bool may_announce) noexcept
    {
        if (restart_pending_) {
            // New transport session: sequence from 0, templates first.
            restart_pending_ = false;
            records_sent_ = 0;
            templates_ever_ = false;
        }
        open_datagram();
        const bool due = !templates_ever_ || force_announce_
            || (opts_.template_refresh_packets && since_templates_ >= opts_.template_refresh_packets)
            || (opts_.template_refresh_s && clk.now_ns >= last_templates_ns_
                && clk.now_ns - last_templates_ns_ >= uint64_t{opts_.template_refresh_s} * 1000000000ULL);
        if (due && may_announce)
            announce(clk, out);
    }

    /// Templates, then (options) the options templates, the statistics
    /// record and the type records; each a whole set.
    void announce(const ExportClock& clk, DatagramSink& out) noexcept
    {
        force_announce_ = false;
        templates_ever_ = true;
        last_templates_ns_ = clk.now_ns;
        ++stats_.template_sends;
        const uint16_t tset = ipfix_dialect() ? ipfix::kTemplateSetId : v9::kTemplateFlowSetId;
        // The datagram is fresh and the MTU holds the base templates.
        // Each pair in use is a set: plain first, then L7, compact L7, and
        // their tunnel variants.
        for (int tun = 0; tun < 2; ++tun) {
            for (int k : {kPlain, kL7, kL7Compact}) {
                if (!announced_[k][tun])
                    continue;
                room(pair_len(k, tun), clk, out);
                w_.u16(tset);
                w_.u16(static_cast<uint16_t>(pair_len(k, tun)));
                write_template(tpl_[k][tun][0]);
                write_template(tpl_[k][tun][1]);
                count_records_ += 2;
            }
        }
        if (sampling_)
            write_sampling(clk, out);
        if (options_ok_) {
            write_options_templates(clk, out);
            write_stats(clk, out);
            if (send_types())
                write_types(clk, out);
        }
        since_templates_ = 0;
    }

    void write_template(const Template& t) noexcept
    {
        w_.u16(t.id);
        w_.u16(static_cast<uint16_t>(t.fields.size()));
        for (const FieldSpec& f : t.fields) {
            w_.u16(f.pen ? static_cast<uint16_t>(f.id | ipfix::kEnterpriseBit) : f.id);
            w_.u16(f.len);
            if (f.pen)
                w_.u32(f.pen);
        }
    }

    void write_options_templates(const ExportClock& clk, DatagramSink& out) noexcept
    {
        const bool types = send_types();
        const uint32_t len = options_templates_len(types);
        const uint32_t pad = pad_of(len);
        room(len + pad, clk, out);
        if (ipfix_dialect()) {
            w_.u16(ipfix::kOptionsTemplateSetId);
            w_.u16(static_cast<uint16_t>(len));
            w_.u16(stats_id_);
            w_.u16(static_cast<uint16_t>(1 + kStatCount));
            w_.u16(1); // scope field count
            w_.u16(ipfix::kObservationDomainId);
            w_.u16(4);
            for (uint16_t id : kStatFields) {
                w_.u16(id);
                w_.u16(8);
            }
            if (types) {
                // RFC 5610 s.3.9: scope informationElementId + privateEnterpriseNumber.
                w_.u16(types_id_);
                w_.u16(6);
                w_.u16(2);
                w_.u16(ipfix::kInformationElementId);
                w_.u16(2);
                w_.u16(ipfix::kPrivateEnterpriseNumber);
                w_.u16(4);
                w_.u16(ipfix::kInformationElementDataType);
                w_.u16(1);
                w_.u16(ipfix::kInformationElementSemantics);
                w_.u16(1);
                w_.u16(ipfix::kInformationElementUnits);
                w_.u16(2);
                w_.u16(ipfix::kInformationElementName);
                w_.u16(ipfix::kVarLen);
            }
            ++count_records_;
        } else {
            // RFC 3954 s.6.1: option scope length and option length in bytes.
            w_.u16(v9::kOptionsTemplateFlowSetId);
            w_.u16(static_cast<uint16_t>(len + pad));
            w_.u16(stats_id_);
            w_.u16(4);
            w_.u16(static_cast<uint16_t>(4 * kStatCount));
            w_.u16(v9::kScopeSystem);
            w_.u16(4);
            for (uint16_t id : kStatFields) {
                w_.u16(id);
                w_.u16(8);
            }
            w_.zeros(pad);
            ++count_records_;
        }
    }

    /// One whole set of `len` bytes (v9: padded) starting with id and length.
    void set_header(uint16_t id, uint32_t len, uint32_t pad, const ExportClock& clk, DatagramSink& out) noexcept
    {
        room(len + pad, clk, out);
        w_.u16(id);
        w_.u16(static_cast<uint16_t>(len + pad));
    }

    void write_sampling(const ExportClock& clk, DatagramSink& out) noexcept
    {
        const uint32_t n = opts_.sampling_interval;
        const bool rnd = opts_.sampling_random;
        if (!ipfix_dialect()) {
            // Options template: id, scope length, option length (bytes of
            // field specs), scope System (4), SAMPLING_INTERVAL (4),
            // SAMPLING_ALGORITHM (1).
            uint32_t len = 4 + 6 + 4 + 8;
            uint32_t pad = pad_of(len);
            set_header(v9::kOptionsTemplateFlowSetId, len, pad, clk, out);
            w_.u16(psamp_id_);
            w_.u16(4);
            w_.u16(8);
            w_.u16(v9::kScopeSystem);
            w_.u16(4);
            w_.u16(v9::kSamplingInterval);
            w_.u16(4);
            w_.u16(v9::kSamplingAlgorithm);
            w_.u16(1);
            w_.zeros(pad);
            ++count_records_;
            len = 4 + 4 + 4 + 1;
            pad = pad_of(len);
            set_header(psamp_id_, len, pad, clk, out);
            w_.u32(opts_.domain_id);
            w_.u32(n);
            w_.u8(rnd ? v9::kAlgorithmRandom : v9::kAlgorithmDeterministic);
            w_.zeros(pad);
            ++count_records_;
            ++data_records_;
            ++stats_.options_records;
            return;
        }
        // PSAMP template: scope observationDomainId, selectorAlgorithm, then
        // 305/306 (systematic: 1 packet selected, N - 1 skipped) or 309/310
        // (random: 1 out of every N).
        set_header(ipfix::kOptionsTemplateSetId, 4 + 6 + 4 * 4, 0, clk, out);
        w_.u16(psamp_id_);
        w_.u16(4);
        w_.u16(1);
        w_.u16(ipfix::kObservationDomainId);
        w_.u16(4);
        w_.u16(ipfix::kSelectorAlgorithm);
        w_.u16(2);
        w_.u16(rnd ? ipfix::kSamplingSize : ipfix::kSamplingPacketInterval);
        w_.u16(4);
        w_.u16(rnd ? ipfix::kSamplingPopulation : ipfix::kSamplingPacketSpace);
        w_.u16(4);
        ++count_records_;
        // Older elements: samplingInterval, samplingAlgorithm.
        set_header(ipfix::kOptionsTemplateSetId, 4 + 6 + 3 * 4, 0, clk, out);
        w_.u16(legacy_id_);
        w_.u16(3);
        w_.u16(1);
        w_.u16(ipfix::kObservationDomainId);
        w_.u16(4);
        w_.u16(ipfix::kSamplingInterval);
        w_.u16(4);
        w_.u16(ipfix::kSamplingAlgorithm);
        w_.u16(1);
        ++count_records_;
        set_header(psamp_id_, 4 + 4 + 2 + 4 + 4, 0, clk, out);
        w_.u32(opts_.domain_id);
        w_.u16(rnd ? ipfix::kSelectorRandomNOutOfN : ipfix::kSelectorSystematicCount);
        w_.u32(1);
        w_.u32(rnd ? n : n - 1);
        set_header(legacy_id_, 4 + 4 + 4 + 1, 0, clk, out);
        w_.u32(opts_.domain_id);
        w_.u32(n);
        w_.u8(rnd ? v9::kAlgorithmRandom : v9::kAlgorithmDeterministic);
        count_records_ += 2;
        data_records_ += 2;
        stats_.options_records += 2;
    }

    void write_stats(const ExportClock& clk, DatagramSink& out) noexcept
    {
        const uint32_t len = stats_set_len();
        const uint32_t pad = pad_of(len);
        room(len + pad, clk, out);
        w_.u16(stats_id_);
        w_.u16(static_cast<uint16_t>(len + pad));
        w_.u32(opts_.domain_id); // observationDomainId / v9 System scope (source id)
        w_.u64(stats_.bytes);
        w_.u64(stats_.datagrams);
        w_.u64(stats_.records);
        w_.u64(process_.ignored_packets);
        w_.u64(process_.ignored_octets);
        w_.u64(process_.not_sent_flows);
        w_.u64(process_.not_sent_packets);
        w_.u64(process_.not_sent_octets);
        w_.zeros(pad);
        ++data_records_;
        ++count_records_;
        ++stats_.options_records;
    }

    void write_types(const ExportClock& clk, DatagramSink& out) noexcept
    {
        const uint32_t len = types_set_len();
        room(len, clk, out);
        w_.u16(types_id_);
        w_.u16(static_cast<uint16_t>(len));
        for_each_type_field([&](const NtopField& f) {
            const std::size_t n = std::strlen(f.name);
            w_.u16(f.n);
            w_.u32(ntop::kPen);
            if (f.string) {
                w_.u8(ipfix::kTypeString);
                w_.u8(ipfix::kSemanticsDefault);
            } else {
                w_.u8(f.v9_len == 1   ? ipfix::kTypeUnsigned8
                      : f.v9_len == 2 ? ipfix::kTypeUnsigned16
                      : f.v9_len == 8 ? ipfix::kTypeUnsigned64
                                      : ipfix::kTypeUnsigned32);
                // The risk bitmap is flags (RFC 5610 s.3.2); a score, a quantity.
                w_.u8(f.latency || f.f == F::RiskScore ? ipfix::kSemanticsQuantity
                      : f.f == F::Risk                 ? ipfix::kSemanticsFlags
                                                       : ipfix::kSemanticsIdentifier);
            }
            w_.u16(f.latency ? ipfix::kUnitsMilliseconds : 0);
            w_.u8(static_cast<uint8_t>(n));
            w_.bytes(reinterpret_cast<const uint8_t*>(f.name), n);
            ++data_records_;
            ++stats_.options_records;
        });
    }

    void close_set() noexcept
    {
        if (!set_open_)
            return;
        const std::size_t len = w_.size() - set_at_;
        const uint32_t pad = pad_of(len);
        w_.zeros(pad);
        w_.put_u16_at(set_at_ + 2, static_cast<uint16_t>(len + pad));
        set_open_ = false;
    }

    void put(const FlowRecord& r, const Template& t, const Rec& rec, const L7View& l7v, uint32_t var_len,
             const ExportClock& clk, DatagramSink& out) noexcept
    {
        const std::size_t rec_len = t.record_len + var_len;
        auto need = [&]() {
            std::size_t n = rec_len + 3;
            if (!set_open_ || set_id_ != t.id)
                n += 4 + (set_open_ ? 3 : 0);
            return n;
        };
        if (open_ && (force_announce_ || w_.size() + need() > opts_.mtu))
            flush(clk, out);
        if (!open_)
            begin(clk, out, true);
        if (w_.size() + need() > opts_.mtu) {
            // The announcement filled this datagram: the record starts the next.
            flush(clk, out);
            begin(clk, out, false);
        }
        if (!set_open_ || set_id_ != t.id) {
            close_set();
            set_at_ = w_.size();
            set_id_ = t.id;
            set_open_ = true;
            w_.u16(t.id);
            w_.u16(0);
        }
        write_record(r, t, rec, l7v, clk);
        ++data_records_;
        ++count_records_;
        ++stats_.records;
        if (t.l7)
            ++stats_.l7_records;
        stats_.packets_total += rec.fwd.c->packets + (rec.rev ? rec.rev->packets : 0);
        stats_.bytes_total += rec.fwd.c->bytes + (rec.rev ? rec.rev->bytes : 0);
    }

    void put_string(const FieldSpec& f, const L7View& v) noexcept
    {
        const L7Str i = str_index(f.f);
        const uint16_t n = v.n[i];
        const auto* p = reinterpret_cast<const uint8_t*>(v.s[i]);
        if (f.len == ipfix::kVarLen) {
            if (n < 255) {
                w_.u8(static_cast<uint8_t>(n));
            } else {
                w_.u8(255);
                w_.u16(n);
            }
            w_.bytes(p, n);
            return;
        }
        const uint16_t k = std::min(n, f.len);
        w_.bytes(p, k);
        w_.zeros(f.len - k);
    }

    void write_record(const FlowRecord& r, const Template& t, const Rec& x, const L7View& l7v,
                      const ExportClock& clk) noexcept
    {
        const DirCounters& c = *x.fwd.c;
        static const DirCounters kNone{};
        const DirCounters& rv = x.rev ? *x.rev : kNone;
        const uint32_t addr_len = r.key.ip_version == 6 ? 16 : 4;
        for (const FieldSpec& f : t.fields) {
            switch (f.f) {
            case F::Bytes: w_.u64(c.bytes); break;
            case F::Packets: w_.u64(c.packets); break;
            case F::Proto: w_.u8(r.key.proto); break;
            case F::Tos: w_.u8(c.tos); break;
            case F::TcpFlags:
                if (f.len == 2) w_.u16(x.tcp_flags); else w_.u8(x.tcp_flags);
                break;
            case F::SrcPort: w_.u16(x.fwd.sport); break;
            case F::DstPort: w_.u16(x.fwd.dport); break;
            case F::SrcAddr: w_.bytes(x.fwd.src->data(), addr_len); break;
            case F::DstAddr: w_.bytes(x.fwd.dst->data(), addr_len); break;
            case F::InIf: w_.u32(0); break;
            case F::OutIf: w_.u32(0); break;
            case F::Vlan: w_.u16(r.key.vlan); break;
            case F::SrcMac: w_.bytes(x.fwd.src_mac->data(), 6); break;
            case F::DstMac: w_.bytes(x.fwd.dst_mac->data(), 6); break;
            case F::StartMs: w_.u64(x.start_ns / 1000000ULL); break;
            case F::EndMs: w_.u64(x.end_ns / 1000000ULL); break;
            case F::StartUptime: w_.u32(uptime_ms(x.start_ns, clk.boot_ns, stats_.clamped_times)); break;
            case F::EndUptime: w_.u32(uptime_ms(x.end_ns, clk.boot_ns, stats_.clamped_times)); break;
            case F::EndReason: w_.u8(static_cast<uint8_t>(r.end_reason)); break;
            case F::BiflowDir: w_.u8(x.biflow_dir); break;
            case F::MinTtl: w_.u8(c.min_ttl); break;
            case F::MaxTtl: w_.u8(c.max_ttl); break;
            case F::Icmp: w_.u16(x.fwd.icmp); break;
            case F::RevBytes: w_.u64(rv.bytes); break;
            case F::RevPackets: w_.u64(rv.packets); break;
            case F::RevTcpFlags: w_.u16(rv.tcp_flags); break;
            case F::RevTos: w_.u8(rv.tos); break;
            case F::RevStartMs: w_.u64(reverse_ms(x.rev, x.start_ns, false)); break;
            case F::RevEndMs: w_.u64(reverse_ms(x.rev, x.end_ns, true)); break;
            case F::RevMinTtl: w_.u8(rv.min_ttl); break;
            case F::RevMaxTtl: w_.u8(rv.max_ttl); break;
            case F::OutBytes: w_.u64(rv.bytes); break;
            case F::OutPackets: w_.u64(rv.packets); break;
            case F::L7Proto: w_.u16(r.l7.app ? r.l7.app : r.l7.master); break;
            case F::DnsQtype: w_.u16(l7v.n[kDns] ? r.l7.dns_qtype : 0); break;
            case F::DnsRcode: w_.u8(l7v.n[kDns] ? r.l7.dns_rcode : 0); break;
            case F::Confidence: w_.u8(r.l7.confidence); break;
            case F::Risk: w_.u64(r.l7.risk); break;
            case F::RiskScore: w_.u16(r.l7.risk_score); break;
            case F::HttpRetCode: w_.u16(r.l7.http_status); break;
            case F::L7Name:
            case F::Category:
            case F::DnsQuery:
            case F::TlsSni:
            case F::HttpHost:
            case F::HttpUrl:
            case F::HttpMethod:
            case F::HttpUa:
            case F::Ja3c:
            case F::Ja3s:
            case F::Ja4: put_string(f, l7v); break;
            case F::ClientLat: w_.u32(ms_of(r.l7.client_nw_latency_us)); break;
            case F::ServerLat: w_.u32(ms_of(r.l7.server_nw_latency_us)); break;
            case F::ApplLat: w_.u32(ms_of(r.l7.appl_latency_us)); break;
            case F::TunnelId: w_.u32(r.key.tunnel_id); break;
            }
        }
    }

    Dialect d_;
    EncoderOptions opts_;
    BiflowMode mode_;
    /// [kind][tunnel][IPv6]; kL7Compact (v9 only): L7_PROTO, L7_PROTO_NAME,
    /// L7_PROTO_CATEGORY, L7_CONFIDENCE and the latencies.
    Template tpl_[kKinds][2][2];
    bool announced_[kKinds][2]{};
    uint16_t stats_id_;
    uint16_t types_id_;
    uint16_t psamp_id_;  ///< sampling options template (v9: the only one)
    uint16_t legacy_id_; ///< IPFIX: sampling with samplingInterval/Algorithm (34/35)
    bool sampling_ = false;
    uint32_t header_len_;
    ByteWriter w_;
    bool l7_ok_ = false;
    bool tunnel_ok_ = false;
    bool options_ok_ = false;
    bool force_announce_ = false;
    bool restart_pending_ = false;
    bool open_ = false;
    bool set_open_ = false;
    uint16_t set_id_ = 0;        ///< data set being filled (when set_open_)
    std::size_t set_at_ = 0;
    uint32_t data_records_ = 0;  ///< in the current datagram (IPFIX: options data too)
    uint32_t count_records_ = 0; ///< v9 header count: template + data records
    uint64_t records_sent_ = 0;  ///< data records in finished datagrams (this session)
    uint64_t v9_sequence_ = 0;   ///< v9: export packets sent
    bool templates_ever_ = false;
    uint32_t since_templates_ = 0;
    uint64_t last_templates_ns_ = 0;
};

} // namespace

Result<std::unique_ptr<Encoder>> make_template_encoder(Dialect d, const EncoderOptions& opts)
{
    const char* name = d == Dialect::Ipfix ? "ipfix" : "netflow v9";
    // v9 cannot carry enterprise elements: RFC 5103 biflow falls back to IN/OUT pairs.
    BiflowMode mode = opts.biflow;
    if (d == Dialect::V9 && mode == BiflowMode::Rfc5103)
        mode = BiflowMode::InOut;
    uint16_t base = opts.template_id_base;
    if (base == 0)
        base = static_cast<uint16_t>(256 + 2 * static_cast<int>(mode));
    if (base < 256 || base > 65535 - 73)
        return invalid(std::string(name) + ": template id base " + std::to_string(base)
                       + " must be in 256..65462 (base+1, L7 base+16/17 and +24/25, options base+32/33, "
                         "sampling base+40/41, tunnel variants base+48/49, +64/65 and +72/73)");
    if (opts.mtu > 65535)
        return invalid(std::string(name) + ": MTU " + std::to_string(opts.mtu) + " above 65535");
    auto enc = std::make_unique<TemplateEncoder>(d, opts, mode, base);
    if (opts.mtu < enc->min_datagram())
        return invalid(std::string(name) + ": MTU " + std::to_string(opts.mtu) + " below "
                       + std::to_string(enc->min_datagram()) + " (header, templates and one record)");
    return std::unique_ptr<Encoder>(std::move(enc));
}

} // namespace weir::exporters::detail
