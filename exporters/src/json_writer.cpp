// JSON-lines form of a flow record (nProbe/IPFIX field names).
#include <weir/exporters/flow_format.hpp>

#include "l7_fields.hpp"

#include <weir/core/ndpi_vocab.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>

namespace weir::exporters {

std::string format_ip(const std::array<uint8_t, 16>& addr, uint8_t ip_version)
{
    char buf[INET6_ADDRSTRLEN];
    const int af = ip_version == 6 ? AF_INET6 : AF_INET;
    if (!inet_ntop(af, addr.data(), buf, sizeof(buf)))
        return "?";
    return buf;
}

std::string format_mac(const std::array<uint8_t, 6>& m)
{
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

namespace {

std::string_view tunnel_name(TunnelType t)
{
    switch (t) {
    case TunnelType::None: return "none";
    case TunnelType::Gre: return "gre";
    case TunnelType::Vxlan: return "vxlan";
    case TunnelType::GtpU: return "gtpu";
    case TunnelType::IpInIp: return "ipip";
    }
    return "unknown";
}

bool is_icmp(const FlowKey& k) { return k.proto == 1 || k.proto == 58; }

// DPI text comes from the wire: quotes, control bytes and invalid UTF-8
// must not break the line (invalid sequences become U+FFFD).
void append_string(std::string& out, std::string_view key, const char* value)
{
    if (!value[0])
        return;
    out += ",\"";
    out += key;
    out += "\":";
    out += nlohmann::json(std::string(value)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// nDPI ids: "app" alone, or "master.app" (ndpi_protocol2id's form).
// nProbe's latency fields, in ms with microsecond precision; only measured ones.
void append_latencies(const L7Info& l7, std::string& out)
{
    auto it = std::back_inserter(out);
    auto ms = [&](const char* key, uint32_t us) {
        if (us)
            fmt::format_to(it, R"(,"{}":{}.{:03})", key, us / 1000, us % 1000);
    };
    ms("CLIENT_NW_LATENCY_MS", l7.client_nw_latency_us);
    ms("SERVER_NW_LATENCY_MS", l7.server_nw_latency_us);
    ms("APPL_LATENCY_MS", l7.appl_latency_us);
}

// nDPI's flow risks: the bitmap, its names (comma-separated) and score.
void append_risk(const L7Info& l7, std::string& out)
{
    if (!l7.risk)
        return;
    auto it = std::back_inserter(out);
    fmt::format_to(it, R"(,"L7_PROTO_RISK":{})", l7.risk);
    std::string names;
    ndpi_vocab::append_risk_names(names, l7.risk, ",");
    append_string(out, "L7_PROTO_RISK_NAME", names.c_str());
    fmt::format_to(it, R"(,"L7_RISK_SCORE":{})", l7.risk_score);
}

void append_l7(const L7Info& l7, std::string& out)
{
    append_latencies(l7, out);
    append_risk(l7, out);
    if (l7.app == 0 && l7.master == 0)
        return;
    auto it = std::back_inserter(out);
    if (l7.master && l7.master != l7.app)
        fmt::format_to(it, R"(,"L7_PROTO":"{}.{}")", l7.master, l7.app);
    else
        fmt::format_to(it, R"(,"L7_PROTO":"{}")", l7.app);
    append_string(out, "L7_PROTO_NAME", l7.name);
    if (l7.guessed)
        out += R"(,"L7_PROTO_GUESSED":true)";
    if (l7.category) {
        const std::string cat(ndpi_vocab::category_name(l7.category));
        if (!cat.empty())
            append_string(out, "L7_PROTO_CATEGORY", cat.c_str());
    }
    if (l7.confidence)
        fmt::format_to(it, R"(,"L7_CONFIDENCE":{})", l7.confidence);
    // The server name goes under the field nProbe uses for the protocol.
    const detail::ServerNameField sf = detail::server_name_field(l7);
    if (sf == detail::ServerNameField::DnsQuery) {
        append_string(out, "DNS_QUERY", l7.server_name);
        if (l7.server_name[0])
            fmt::format_to(it, R"(,"DNS_QUERY_TYPE":{},"DNS_RET_CODE":{})", l7.dns_qtype, l7.dns_rcode);
    } else if (sf == detail::ServerNameField::TlsServerName) {
        append_string(out, "TLS_SERVER_NAME", l7.server_name);
    } else {
        append_string(out, "HTTP_HOST", l7.server_name);
    }
    append_string(out, "HTTP_URL", l7.url);
    if (const std::string m(ndpi_vocab::http_method_name(l7.http_method)); !m.empty())
        append_string(out, "HTTP_METHOD", m.c_str());
    if (l7.http_status)
        fmt::format_to(it, R"(,"HTTP_RET_CODE":{})", l7.http_status);
    append_string(out, "HTTP_USER_AGENT", l7.user_agent);
    append_string(out, "JA3C_HASH", l7.ja3c);
    append_string(out, "JA3S_HASH", l7.ja3s);
    append_string(out, "JA4C_HASH", l7.ja4);
}

} // namespace

void append_json(const FlowRecord& r, std::string& out)
{
    auto it = std::back_inserter(out);
    const FlowKey& k = r.key;
    const char* af = k.ip_version == 6 ? "IPV6" : "IPV4";
    const uint64_t first = r.first_ns();
    const uint64_t last = r.last_ns();
    const DirCounters& c = r.dir[0];
    const DirCounters& s = r.dir[1];
    fmt::format_to(it,
        R"({{"{}_SRC_ADDR":"{}","{}_DST_ADDR":"{}","L4_SRC_PORT":{},"L4_DST_PORT":{},"PROTOCOL":{},)"
        R"("IP_PROTOCOL_VERSION":{},"IN_PKTS":{},"IN_BYTES":{},"OUT_PKTS":{},"OUT_BYTES":{},)"
        R"("FIRST_SWITCHED":{},"LAST_SWITCHED":{},"FLOW_START_NANOSECONDS":{},"FLOW_END_NANOSECONDS":{},)"
        R"("TCP_FLAGS":{},"CLIENT_TCP_FLAGS":{},"SERVER_TCP_FLAGS":{},"SRC_TOS":{},"DST_TOS":{},)"
        R"("MIN_TTL":{},"MAX_TTL":{},"SERVER_MIN_TTL":{},"SERVER_MAX_TTL":{},)"
        R"("IN_SRC_MAC":"{}","OUT_DST_MAC":"{}","SRC_VLAN":{},"FRAGMENTS":{},)"
        R"("FLOW_END_REASON":{},"FLOW_END_REASON_NAME":"{}","WORKER":{})",
        af, format_ip(r.client_addr(), k.ip_version), af, format_ip(r.server_addr(), k.ip_version),
        is_icmp(k) ? 0 : r.client_port(), is_icmp(k) ? 0 : r.server_port(), k.proto, k.ip_version,
        c.packets, c.bytes, s.packets, s.bytes,
        first / 1000000, last / 1000000, first, last,
        c.tcp_flags | s.tcp_flags, c.tcp_flags, s.tcp_flags, c.tos, s.tos,
        c.min_ttl, c.max_ttl, s.min_ttl, s.max_ttl,
        format_mac(r.client_mac), format_mac(r.server_mac), k.vlan, r.fragments,
        static_cast<int>(r.end_reason), end_reason_name(r.end_reason), r.worker);
    if (is_icmp(k)) {
        // The decoder keys ICMP by type/code: the request's on the port of
        // the side that did not send it. Report the client's type/code.
        const uint16_t tc = r.client_port() ? r.client_port() : r.server_port();
        fmt::format_to(it, R"(,"ICMP_TYPE":{})", tc);
    }
    if (k.tunnel_type != TunnelType::None)
        fmt::format_to(it, R"(,"UPSTREAM_TUNNEL_ID":{},"TUNNEL_TYPE":"{}")", k.tunnel_id, tunnel_name(k.tunnel_type));
    else if (k.tunnel_id != 0) // read back from v9/IPFIX, which carry no tunnel type
        fmt::format_to(it, R"(,"UPSTREAM_TUNNEL_ID":{})", k.tunnel_id);
    append_l7(r.l7, out);
    out.push_back('}');
}

} // namespace weir::exporters
