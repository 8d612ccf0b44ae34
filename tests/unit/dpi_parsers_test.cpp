// HTTP, DNS and SSH parsers of micro-DPI and the nDPI-compatible string
// helpers, on hand-built payloads (malformed ones included).
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>
#include <weir/engine/dpi/ssh.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;

dpi::Bytes bytes(const std::string& s)
{
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(DpiHttp, RequestFieldsAndUrl)
{
    std::string req = "GET /a/b?c=1 HTTP/1.1\r\nhOsT: www.lan:8080\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
    dpi::HttpRequest r;
    ASSERT_EQ(dpi::parse_http_request(bytes(req), r), dpi::ParseStatus::Ok);
    EXPECT_EQ(r.method.view(), "GET");
    EXPECT_EQ(r.target.view(), "/a/b?c=1");
    EXPECT_EQ(r.host.view(), "www.lan:8080");
    EXPECT_EQ(r.user_agent.view(), "curl/8.0");
    EXPECT_EQ(r.version_minor, 1);
    EXPECT_TRUE(r.headers_complete);
    dpi::FixedString<512> url;
    dpi::http_url(r, url);
    EXPECT_EQ(url.view(), "www.lan:8080/a/b?c=1");
}

TEST(DpiHttp, HeaderCutByPayloadEndIsReadPartially)
{
    std::string req = "POST /x HTTP/1.1\r\nHost: h\r\nUser-Agent: Mozil";
    dpi::HttpRequest r;
    ASSERT_EQ(dpi::parse_http_request(bytes(req), r), dpi::ParseStatus::Ok);
    EXPECT_EQ(r.user_agent.view(), "Mozil");
    EXPECT_FALSE(r.headers_complete);
}

// A request line longer than a segment, and a request whose headers come
// in the next segment (1kxun.pcap, crawler_false_positive.pcapng): the
// continuation's lines, the first one too, fill what is still missing.
TEST(DpiHttp, HeadersContinuedInLaterSegments)
{
    dpi::HttpRequest r;
    ASSERT_EQ(dpi::parse_http_request(bytes("GET /track?rid=f84f54bf&impid=1&cid=65"), r), dpi::ParseStatus::Ok);
    EXPECT_EQ(r.headers_complete, 0);
    EXPECT_TRUE(r.host.empty());
    dpi::http_continue_headers(bytes("-143845&crid=65:253640"), r); // still the request line
    EXPECT_TRUE(r.host.empty());
    EXPECT_EQ(r.headers_complete, 0);
    dpi::http_continue_headers(bytes("&rate=0 HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\nHost: adx-tk.example.com\r\n"), r);
    EXPECT_EQ(r.user_agent.view(), "Mozilla/5.0");
    EXPECT_EQ(r.host.view(), "adx-tk.example.com");
    EXPECT_EQ(r.headers_complete, 0);
    dpi::http_continue_headers(bytes("Host: other.example.com\r\nAccept: */*\r\n\r\nbody"), r);
    EXPECT_EQ(r.host.view(), "adx-tk.example.com"); // the first one stays
    EXPECT_EQ(r.headers_complete, 1);

    ASSERT_EQ(dpi::parse_http_request(bytes("POST / HTTP/1.1\r\n"), r), dpi::ParseStatus::Ok);
    EXPECT_EQ(r.headers_complete, 0);
    dpi::http_continue_headers(bytes("Content-Length: 83\r\nHost: ocsp.example.com\r\nUser-Agent: zbtls http\r\n\r\n0Q0O"), r);
    EXPECT_EQ(r.host.view(), "ocsp.example.com");
    EXPECT_EQ(r.user_agent.view(), "zbtls http");
    EXPECT_EQ(r.headers_complete, 1);
    // The empty line first: the headers ended with the previous segment.
    dpi::HttpRequest e;
    dpi::http_continue_headers(bytes("\r\nHost: late.example.com\r\n"), e);
    EXPECT_EQ(e.headers_complete, 1);
    EXPECT_TRUE(e.host.empty());
}

TEST(DpiHttp, NotHttpAndResponses)
{
    dpi::HttpRequest r;
    EXPECT_EQ(dpi::parse_http_request(bytes("FOO / HTTP/1.1\r\n"), r), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_http_request(bytes("GET"), r), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_http_request(bytes("GET  HTTP/1.1"), r), dpi::ParseStatus::NotMatched);
    dpi::HttpResponse resp;
    ASSERT_EQ(dpi::parse_http_response(bytes("HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n"), resp),
              dpi::ParseStatus::Ok);
    EXPECT_EQ(resp.status, 404);
    EXPECT_EQ(resp.server.view(), "nginx");
    EXPECT_EQ(dpi::parse_http_response(bytes("HTTP/1.1 2x0 OK\r\n"), resp), dpi::ParseStatus::Malformed);
}

std::vector<uint8_t> dns_query(const std::vector<std::string>& labels, uint16_t qtype, bool response = false)
{
    std::vector<uint8_t> m = {0x12, 0x34, static_cast<uint8_t>(response ? 0x81 : 0x01), 0x00, 0, 1,
                              0,    static_cast<uint8_t>(response ? 1 : 0), 0, 0, 0, 0};
    for (const auto& l : labels) {
        m.push_back(static_cast<uint8_t>(l.size()));
        m.insert(m.end(), l.begin(), l.end());
    }
    m.push_back(0);
    m.push_back(static_cast<uint8_t>(qtype >> 8));
    m.push_back(static_cast<uint8_t>(qtype));
    m.push_back(0);
    m.push_back(1);
    return m;
}

TEST(DpiDns, QueryOverUdpAndTcp)
{
    auto q = dns_query({"www", "Example", "org"}, 28);
    dpi::DnsMessage m;
    ASSERT_EQ(dpi::parse_dns(q, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.qname.view(), "www.Example.org");
    EXPECT_EQ(m.qtype, 28);
    EXPECT_FALSE(m.is_response);
    EXPECT_TRUE(dpi::ndpi_dns_plausible(m, m.flags));
    dpi::FixedString<256> n;
    dpi::ndpi_dns_name(m.qname.view(), n);
    EXPECT_EQ(n.view(), "www.example.org");

    std::vector<uint8_t> tcp = {0, static_cast<uint8_t>(q.size())};
    tcp.insert(tcp.end(), q.begin(), q.end());
    ASSERT_EQ(dpi::parse_dns_tcp(tcp, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.qname.view(), "www.Example.org");
    tcp[1] = static_cast<uint8_t>(q.size() + 20); // the message continues in the next segment
    EXPECT_EQ(dpi::parse_dns_tcp(tcp, m), dpi::ParseStatus::NeedMore);
}

TEST(DpiDns, CompressionLoopsAndOverrunsAreMalformed)
{
    // The question name is a pointer to itself.
    std::vector<uint8_t> loop = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    dpi::DnsMessage m;
    EXPECT_EQ(dpi::parse_dns(loop, m), dpi::ParseStatus::Malformed);
    // Two pointers to each other.
    std::vector<uint8_t> pingpong = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1};
    EXPECT_EQ(dpi::parse_dns(pingpong, m), dpi::ParseStatus::Malformed);
    // A label longer than the message, and a pointer past it.
    std::vector<uint8_t> overrun = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 60, 'a', 'b'};
    EXPECT_EQ(dpi::parse_dns(overrun, m), dpi::ParseStatus::Malformed);
    std::vector<uint8_t> far = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 1, 0, 1};
    EXPECT_EQ(dpi::parse_dns(far, m), dpi::ParseStatus::Malformed);
    // A forward pointer to a valid name is followed.
    std::vector<uint8_t> fwd = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 18, 0, 1, 0, 1, 1, 'a', 0};
    ASSERT_EQ(dpi::parse_dns(fwd, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.qname.view(), "a");
    EXPECT_EQ(m.qtype, 1);
}

TEST(DpiNdpiCompat, HostnameKeepsTailAndReplacesCharacters)
{
    dpi::FixedString<256> h;
    dpi::ndpi_hostname("WWW.Example.ORG", h);
    EXPECT_EQ(h.view(), "www.example.org");
    dpi::ndpi_hostname("a*b=c", h);
    EXPECT_EQ(h.view(), "a_b_c");
    std::string longname = std::string(100, 'x') + ".tail";
    dpi::ndpi_hostname(longname, h);
    EXPECT_EQ(h.len, dpi::kNdpiHostnameMax);
    EXPECT_EQ(h.view(), longname.substr(longname.size() - dpi::kNdpiHostnameMax));
    dpi::FixedString<256> n;
    dpi::ndpi_dns_name(std::string("ab\x01*"), n);
    EXPECT_EQ(n.view(), "ab?_");
}

TEST(DpiSsh, Banner)
{
    dpi::SshBanner b;
    ASSERT_EQ(dpi::parse_ssh_banner(bytes("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), b), dpi::ParseStatus::Ok);
    EXPECT_EQ(b.proto_version.view(), "2.0");
    EXPECT_EQ(b.software.view(), "OpenSSH_9.2p1 Debian-2");
    EXPECT_EQ(dpi::parse_ssh_banner(bytes("SS"), b), dpi::ParseStatus::NeedMore);
    EXPECT_EQ(dpi::parse_ssh_banner(bytes("HTTP/1.1 200"), b), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_ssh_banner(bytes("SSH-2.0\r\n"), b), dpi::ParseStatus::Malformed);
}

TEST(DpiProtocol, NdpiNamesRoundTrip)
{
    for (auto p : {dpi::AppProtocol::Tls, dpi::AppProtocol::Http, dpi::AppProtocol::Dns, dpi::AppProtocol::Quic,
                   dpi::AppProtocol::Ssh, dpi::AppProtocol::Mdns, dpi::AppProtocol::Llmnr})
        EXPECT_EQ(dpi::app_protocol_from_name(dpi::app_protocol_name(p)), p);
    EXPECT_EQ(dpi::app_protocol_name(dpi::AppProtocol::Tls), "TLS");
    EXPECT_EQ(static_cast<int>(dpi::AppProtocol::Tls), 91);
    EXPECT_EQ(dpi::app_protocol_from_name("NoSuch"), dpi::AppProtocol::Unknown);
}

} // namespace
