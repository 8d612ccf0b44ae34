// Golden test of micro-DPI: the TLS, HTTP, DNS, QUIC Initial and DTLS parsers on nDPI's
// regression captures, field by field against what nDPI 4.11-dev's
// ndpiReader printed for each flow (../shared/pcaps/ndpi/result). See
// docs/dpi.md.
//
// Each capture is decoded with weir's Decoder; a test-local map keeps, per
// nDPI-style flow key, the parser state of both directions, and the first
// kInspectPackets payloads of each direction are fed to the parsers. Then,
// for each field (Hostname/SNI, JA3C, JA4, JA3S, URL, User-Agent) and each
// nDPI flow that prints it and whose protocol micro-DPI parses, micro-DPI's
// value must equal nDPI's. The test fails when fewer than 99 % agree for a
// field, when a disagreement is missing from dpi_known_differences.txt, and
// when that file lists one that no longer occurs.
#include "dpi_golden_check.hpp"
#include "ndpi_result.hpp"

#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>
#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/ssh.hpp>
#include <weir/engine/dpi/stun.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace weir::test::dpi_golden;
namespace dpi = weir::engine::dpi;

// ---------------------------------------------------------------- DPI state

/// What micro-DPI learned about one flow (test-side; allocates freely).
struct FlowDpi {
    uint8_t proto = 0;
    std::array<int, 2> payloads{};                   ///< payloads seen per side (A, B)
    std::array<std::unique_ptr<dpi::TlsStream>, 2> tls;
    std::array<std::unique_ptr<dpi::HelloAssembler>, 2> hello; ///< UDP: QUIC CRYPTO / DTLS fragments
    std::array<bool, 2> tls_done{};
    bool http_response_seen = false;
    bool dns_response_seen = false;
    int http_more_side = -1;                         ///< request headers continue on this side
    bool http_need_host = false, http_need_ua = false;
    std::map<std::string, std::string> fields;       ///< ndpiReader label -> value
};

void set_field(FlowDpi& f, const std::string& k, std::string_view v)
{
    if (!v.empty())
        f.fields.try_emplace(k, std::string(v));
}

void set_hostname(FlowDpi& f, std::string_view v, bool overwrite)
{
    dpi::FixedString<256> h;
    dpi::ndpi_hostname(v, h);
    if (h.empty())
        return;
    if (overwrite)
        f.fields["Hostname/SNI"] = std::string(h.view());
    else
        f.fields.try_emplace("Hostname/SNI", std::string(h.view()));
}

/// nDPI's DNS dissector takes the name from the response when it sees one,
/// else from the query.
void inspect_dns(FlowDpi& f, const dpi::DnsMessage& m)
{
    if (f.dns_response_seen || m.qname.empty() || !dpi::ndpi_dns_plausible(m, m.flags))
        return;
    dpi::FixedString<256> name;
    dpi::ndpi_dns_name(m.qname.view(), name);
    if (m.is_response) {
        f.dns_response_seen = true;
        f.fields["Hostname/SNI"] = std::string(name.view());
    } else {
        f.fields["Hostname/SNI"] = std::string(name.view());
    }
}

void inspect_tls(FlowDpi& f, int side, dpi::Bytes payload)
{
    if (f.tls_done[side])
        return;
    auto& s = f.tls[side];
    if (!s) {
        payload = dpi::tls_skip_leading_records(payload);
        if (payload.empty() || payload[0] != 0x16)
            return;
        s = std::make_unique<dpi::TlsStream>();
    }
    auto st = s->feed(payload);
    if (st == dpi::ParseStatus::NeedMore)
        return;
    f.tls_done[side] = true;
    if (st != dpi::ParseStatus::Ok)
        return;
    if (s->message_type() == dpi::kTlsHandshakeClientHello) {
        dpi::TlsClientHello ch;
        if (dpi::parse_client_hello_message(s->message(), dpi::TlsTransport::Tcp, ch) == dpi::ParseStatus::Ok) {
            set_hostname(f, ch.sni.view(), false);
            set_field(f, "JA3C", ch.ja3);
            set_field(f, "JA4", ch.ja4);
        }
    } else if (s->message_type() == dpi::kTlsHandshakeServerHello) {
        dpi::TlsServerHello sh;
        if (dpi::parse_server_hello_message(s->message(), sh) == dpi::ParseStatus::Ok)
            set_field(f, "JA3S", sh.ja3s);
    }
    s.reset(); // the buffer is only needed until the message is complete
}

void take_hello(FlowDpi& f, dpi::Bytes msg, dpi::TlsTransport transport)
{
    dpi::TlsClientHello ch;
    dpi::TlsServerHello sh;
    if (dpi::parse_client_hello_message(msg, transport, ch) == dpi::ParseStatus::Ok) {
        set_hostname(f, ch.sni.view(), false);
        set_field(f, "JA3C", ch.ja3);
        set_field(f, "JA4", ch.ja4);
        dpi::FixedString<256> ua;
        if (transport == dpi::TlsTransport::Quic && dpi::quic_user_agent(msg, ua) == dpi::ParseStatus::Ok)
            set_field(f, "User-Agent", ua.view());
    } else if (dpi::parse_server_hello_message(msg, sh) == dpi::ParseStatus::Ok) {
        set_field(f, "JA3S", sh.ja3s);
    }
}

/// QUIC Initial (client side), DTLS hellos, gQUIC's clear CHLO.
void inspect_udp_hello(FlowDpi& f, int side, dpi::Bytes payload)
{
    if (f.tls_done[side])
        return;
    const bool quic = dpi::quic_looks_initial(payload);
    if (!quic && !dpi::dtls_looks_handshake(payload)) {
        dpi::GquicChlo chlo;
        if (!f.hello[side] && dpi::parse_gquic_chlo(payload, chlo) == dpi::ParseStatus::Ok) {
            set_hostname(f, chlo.sni.view(), false);
            set_field(f, "User-Agent", chlo.uaid.view());
            f.tls_done[side] = true;
        }
        return;
    }
    auto& h = f.hello[side];
    if (!h) {
        h = std::make_unique<dpi::HelloAssembler>();
        h->reset();
    }
    dpi::ParseStatus st;
    if (quic) {
        dpi::QuicDatagramInfo info;
        st = dpi::quic_read_initial(payload, *h, info);
        // A server Initial (other keys) or a corrupt one: the next may do.
        if (st == dpi::ParseStatus::NotMatched ||
            (st == dpi::ParseStatus::Malformed && info.give_up == dpi::QuicGiveUp::DecryptFailed))
            return;
    } else {
        dpi::DtlsDatagramInfo info;
        st = dpi::dtls_read_handshake(payload, *h, info);
        // A corrupt datagram that placed nothing: a retransmission may do.
        if (st == dpi::ParseStatus::Malformed && info.fragments == 0)
            return;
    }
    if (st == dpi::ParseStatus::NeedMore)
        return;
    f.tls_done[side] = true;
    if (st == dpi::ParseStatus::Ok)
        take_hello(f, h->message(), quic ? dpi::TlsTransport::Quic : dpi::TlsTransport::Dtls);
    h.reset();
}

void inspect(FlowDpi& f, int side, dpi::Bytes payload, uint16_t sport, uint16_t dport)
{
    if (f.proto == 6) {
        inspect_tls(f, side, payload);
        // nDPI keeps the fields of the last request seen before the first
        // response ends its HTTP dissection.
        dpi::HttpRequest req;
        dpi::HttpResponse resp;
        if (!f.http_response_seen && dpi::parse_http_request(payload, req) == dpi::ParseStatus::Ok) {
            dpi::FixedString<1024> url;
            dpi::http_url(req, url);
            f.fields["URL"] = std::string(url.view());
            f.fields.erase("User-Agent");
            set_field(f, "User-Agent", req.user_agent.view());
            std::string_view host = req.host.view();
            // nDPI's Hostname drops the port of the Host header.
            if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon)
                host = host.substr(0, colon);
            set_hostname(f, host, true);
            // Headers cut by the segment end: the next segments' lines.
            f.http_need_host = req.host.empty();
            f.http_need_ua = req.user_agent.empty();
            f.http_more_side = !req.headers_complete && (f.http_need_host || f.http_need_ua) ? side : -1;
        } else if (f.fields.contains("URL") && dpi::parse_http_response(payload, resp) == dpi::ParseStatus::Ok) {
            f.http_response_seen = true;
        } else if (f.http_more_side == side && !f.http_response_seen) {
            dpi::HttpRequest more;
            dpi::http_continue_headers(payload, more);
            if (f.http_need_host && !more.host.empty()) {
                std::string_view host = more.host.view();
                if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon)
                    host = host.substr(0, colon);
                set_hostname(f, host, true);
                f.http_need_host = false;
            }
            if (f.http_need_ua && !more.user_agent.empty()) {
                set_field(f, "User-Agent", more.user_agent.view());
                f.http_need_ua = false;
            }
            if (more.headers_complete || (!f.http_need_host && !f.http_need_ua))
                f.http_more_side = -1;
        }
        dpi::DnsMessage dns;
        if ((sport == 53 || dport == 53) && dpi::parse_dns_tcp(payload, dns) != dpi::ParseStatus::NotMatched)
            inspect_dns(f, dns);
        // STUN over TCP: REALM is nDPI's host name.
        dpi::StunMessage stun;
        if (dpi::parse_stun_tcp(payload, stun) == dpi::ParseStatus::Ok)
            set_hostname(f, stun.realm.view(), false);
    } else if (f.proto == 17) {
        dpi::DnsMessage dns;
        dpi::StunMessage stun;
        if ((sport == 53 || dport == 53) && dpi::parse_dns(payload, dns) == dpi::ParseStatus::Ok)
            inspect_dns(f, dns);
        else if (dpi::parse_stun(payload, stun) == dpi::ParseStatus::Ok)
            set_hostname(f, stun.realm.view(), false);
        else
            inspect_udp_hello(f, side, payload);
    }
}

struct CaptureRun {
    std::map<MatchKey, FlowDpi> flows;
    std::string error;
};

CaptureRun run_capture(const std::string& path)
{
    CaptureRun run;
    auto src = weir::dataplane::open_pcap_file(path);
    if (!src) {
        run.error = src.error().message();
        return run;
    }
    weir::engine::DecoderConfig dc;
    dc.decap_tunnels = true;
    weir::engine::Decoder decoder(dc);
    std::array<weir::RawPacket, 64> burst;
    weir::PacketMeta m;
    while (!(*src)->finished()) {
        uint32_t n = (*src)->rx_burst(burst.data(), static_cast<uint32_t>(burst.size()));
        for (uint32_t i = 0; i < n; ++i) {
            if (!decoder.decode(burst[i], m) || m.l4_payload_len == 0 || m.l4_payload_offset == 0)
                continue;
            const auto& k = m.key;
            if (k.proto != 6 && k.proto != 17)
                continue;
            // ndpiReader skips non-first fragments; their "payload" is no L4 header's.
            if (m.is_fragment)
                continue;
            auto& f = run.flows[make_key(k.proto, k.vlan, k.addr_a, k.port_a, k.addr_b, k.port_b)];
            f.proto = k.proto;
            int side = m.src_is_a ? 0 : 1;
            if (f.payloads[side] >= kInspectPackets)
                continue;
            ++f.payloads[side];
            dpi::Bytes payload(burst[i].data + m.l4_payload_offset,
                               std::min<std::size_t>(m.l4_payload_len, burst[i].caplen - m.l4_payload_offset));
            uint16_t sport = m.src_is_a ? k.port_a : k.port_b;
            uint16_t dport = m.src_is_a ? k.port_b : k.port_a;
            inspect(f, side, payload, sport, dport);
        }
    }
    return run;
}

} // namespace

TEST(DpiGolden, FieldsMatchNdpiReader)
{
    check_against_ndpi(run_capture, {"dpi_known_differences.txt", "WEIR_DPI_GOLDEN_FIXTURE", "micro-DPI golden", " (no payload seen)"});
}
