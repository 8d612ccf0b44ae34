// HTTP/1.x request and response-line parsers of weir's micro-DPI: method,
// Host, request target, User-Agent, status code. They read only the bytes
// of one payload (the first request of a flow fits one segment almost
// always); header lines cut by the payload end are ignored.
#pragma once

#include <weir/engine/dpi/types.hpp>

#include <cstdint>

namespace weir::engine::dpi {

struct HttpRequest {
    FixedString<16> method;
    FixedString<512> target;       ///< request target as sent ("/a?b", "http://h/a", "h:443")
    FixedString<256> host;         ///< Host header value, port included
    FixedString<256> user_agent;
    uint8_t version_minor = 0;     ///< 0 or 1; 9 when the request line has no version
    uint8_t headers_complete = 0;  ///< the empty line ending the headers was seen
};

struct HttpResponse {
    uint16_t status = 0;
    uint8_t version_minor = 0;
    FixedString<128> server;
    FixedString<128> content_type;
};

/// Ok when the payload starts with "<METHOD> <target> HTTP/1.x" (the
/// version may be cut by the payload end). NotMatched otherwise.
ParseStatus parse_http_request(Bytes payload, HttpRequest& out) noexcept;

/// A request whose headers continue in the next segment of the same
/// direction (headers_complete 0): reads every line of `segment` as a
/// header line, the first one too (the segment may start with a header, or
/// with the rest of a request line cut by the previous segment's end, as
/// nDPI reads each packet's lines), and fills req.host / req.user_agent
/// where they are still empty. Sets req.headers_complete at the empty line.
void http_continue_headers(Bytes segment, HttpRequest& req) noexcept;

/// Ok when the payload starts with "HTTP/1.x <3-digit status>".
ParseStatus parse_http_response(Bytes payload, HttpResponse& out) noexcept;

/// The URL as nDPI reports it: the Host value followed by the target, or
/// the target alone when it is absolute or there is no Host.
template <std::size_t N>
void http_url(const HttpRequest& req, FixedString<N>& out) noexcept
{
    out.clear();
    std::string_view t = req.target.view();
    bool absolute = t.substr(0, 7) == "http://" || t.substr(0, 8) == "https://";
    if (!absolute && req.method.view() != "CONNECT")
        out.append(req.host.view());
    out.append(t);
}

/// True when `name` is the nDPI (HTTP) method list entry the parser accepts.
bool is_http_method(std::string_view name) noexcept;

} // namespace weir::engine::dpi
