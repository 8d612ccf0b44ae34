// libFuzzer targets for micro-DPI's parsers. One source, built once per
// parser (WEIR_DPI_FUZZ_TLS / _HTTP / _DNS / _SSH / _UDP, see CMakeLists.txt), so
// each target's coverage map follows one parser. Besides ASan/UBSan, the
// targets check the result invariants: strings within capacity and
// NUL-terminated, fingerprints of the right shape.
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>
#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/ssh.hpp>
#include <weir/engine/dpi/stun.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace dpi = weir::engine::dpi;

namespace {

template <std::size_t N>
void check(const dpi::FixedString<N>& s)
{
    if (s.len > s.capacity() || s.data[s.len] != '\0')
        std::abort();
}

void check_hex(const char* s, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            std::abort();
    if (s[n] != '\0')
        std::abort();
}

[[maybe_unused]] void fuzz_tls(const uint8_t* data, std::size_t size)
{
    dpi::Bytes in(data, size);
    dpi::TlsClientHello ch;
    if (dpi::parse_tls_client_hello(in, ch) == dpi::ParseStatus::Ok) {
        check(ch.sni);
        check(ch.alpn);
        check_hex(ch.ja3, 32);
        if (std::strlen(ch.ja4) != 36 || ch.ja4[10] != '_' || ch.ja4[23] != '_')
            std::abort();
    }
    dpi::TlsServerHello sh;
    if (dpi::parse_tls_server_hello(in, sh) == dpi::ParseStatus::Ok) {
        check(sh.alpn);
        check_hex(sh.ja3s, 32);
    }
    // Alert / ChangeCipherSpec records skipped before a hello: a suffix.
    const dpi::Bytes rest = dpi::tls_skip_leading_records(in);
    if (rest.size() > size || (!rest.empty() && rest.data() + rest.size() != data + size))
        std::abort();
    if (rest.size() != size && dpi::parse_tls_server_hello(rest, sh) == dpi::ParseStatus::Ok)
        check_hex(sh.ja3s, 32);
    // The same bytes through the stream, cut into segments whose sizes come
    // from the first byte, as a ClientHello split over TCP segments.
    if (size < 1)
        return;
    static auto stream = std::make_unique<dpi::TlsStream>();
    stream->reset();
    std::size_t seg = 1 + data[0] % 64;
    for (std::size_t pos = 1; pos < size; pos += seg)
        if (stream->feed(in.subspan(pos, std::min(seg, size - pos))) != dpi::ParseStatus::NeedMore)
            break;
    if (stream->status() == dpi::ParseStatus::Ok) {
        if (stream->message().size() > dpi::TlsStream::kCapacity)
            std::abort();
        dpi::parse_client_hello_message(stream->message(), dpi::TlsTransport::Tcp, ch);
        dpi::parse_server_hello_message(stream->message(), sh);
    }
}

[[maybe_unused]] void fuzz_http(const uint8_t* data, std::size_t size)
{
    dpi::Bytes in(data, size);
    dpi::HttpRequest req;
    if (dpi::parse_http_request(in, req) == dpi::ParseStatus::Ok) {
        check(req.method);
        check(req.target);
        check(req.host);
        check(req.user_agent);
        dpi::FixedString<1024> url;
        dpi::http_url(req, url);
        check(url);
        dpi::FixedString<256> host;
        dpi::ndpi_hostname(req.host.view(), host);
        check(host);
    }
    dpi::HttpResponse resp;
    if (dpi::parse_http_response(in, resp) == dpi::ParseStatus::Ok && resp.status > 999)
        std::abort();
    // The same bytes as the continuation of a request's headers.
    dpi::HttpRequest more;
    dpi::http_continue_headers(in, more);
    check(more.host);
    check(more.user_agent);
}

[[maybe_unused]] void fuzz_dns(const uint8_t* data, std::size_t size)
{
    dpi::Bytes in(data, size);
    dpi::DnsMessage m;
    if (dpi::parse_dns(in, m) == dpi::ParseStatus::Ok) {
        check(m.qname);
        dpi::FixedString<256> n;
        dpi::ndpi_dns_name(m.qname.view(), n);
        check(n);
        (void)dpi::ndpi_dns_plausible(m, m.flags);
    }
    dpi::parse_dns_tcp(in, m);
    check(m.qname);
}

[[maybe_unused]] void fuzz_ssh(const uint8_t* data, std::size_t size)
{
    dpi::SshBanner b;
    if (dpi::parse_ssh_banner(dpi::Bytes(data, size), b) == dpi::ParseStatus::Ok) {
        check(b.proto_version);
        check(b.software);
    }
}

void check_stun(const dpi::StunMessage& m, std::size_t size)
{
    check(m.realm);
    check(m.software);
    check(m.username);
    if (static_cast<std::size_t>(m.length) + dpi::kStunHeader > size || m.attributes > m.length / 4)
        std::abort();
}

/// UDP hellos: the input as one QUIC datagram and as two DTLS datagrams
/// (split at its first byte's value) into one assembler, gQUIC's CHLO, the
/// QUIC User-Agent walk over the input taken as a ClientHello, and STUN
/// (as a datagram and as a TCP payload).
[[maybe_unused]] void fuzz_udp(const uint8_t* data, std::size_t size)
{
    dpi::Bytes in(data, size);
    auto h = std::make_unique<dpi::HelloAssembler>();
    h->reset();
    dpi::QuicDatagramInfo qi;
    if (dpi::quic_read_initial(in, *h, qi) == dpi::ParseStatus::Ok && h->message().size() < 4)
        std::abort();
    h->reset();
    dpi::DtlsDatagramInfo di;
    const std::size_t cut = size ? std::min<std::size_t>(data[0], size) : 0;
    dpi::dtls_read_handshake(in.subspan(0, cut), *h, di);
    if (dpi::dtls_read_handshake(in.subspan(cut), *h, di) == dpi::ParseStatus::Ok) {
        if (h->message().size() > dpi::HelloAssembler::kCapacity)
            std::abort();
        dpi::TlsClientHello ch;
        if (dpi::parse_client_hello_message(h->message(), dpi::TlsTransport::Dtls, ch) == dpi::ParseStatus::Ok) {
            check(ch.sni);
            check_hex(ch.ja3, 32);
        }
    }
    dpi::GquicChlo chlo;
    if (dpi::parse_gquic_chlo(in, chlo) == dpi::ParseStatus::Ok) {
        check(chlo.sni);
        check(chlo.uaid);
    }
    dpi::FixedString<256> ua;
    dpi::quic_user_agent(in, ua);
    check(ua);
    dpi::StunMessage stun;
    if (dpi::parse_stun(in, stun) == dpi::ParseStatus::Ok) {
        check_stun(stun, size);
        if (!dpi::stun_may_be(in)) // the cheap test must never refuse a message parse_stun() takes
            std::abort();
    }
    if (dpi::parse_stun_tcp(in, stun) == dpi::ParseStatus::Ok) {
        check_stun(stun, size);
        if (!dpi::stun_tcp_may_be(in))
            std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
#if defined(WEIR_DPI_FUZZ_TLS)
    fuzz_tls(data, size);
#elif defined(WEIR_DPI_FUZZ_HTTP)
    fuzz_http(data, size);
#elif defined(WEIR_DPI_FUZZ_DNS)
    fuzz_dns(data, size);
#elif defined(WEIR_DPI_FUZZ_SSH)
    fuzz_ssh(data, size);
#elif defined(WEIR_DPI_FUZZ_UDP)
    fuzz_udp(data, size);
#else
#error "define WEIR_DPI_FUZZ_TLS, _HTTP, _DNS, _SSH or _UDP"
#endif
    return 0;
}
