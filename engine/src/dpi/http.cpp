// HTTP/1.x request and status-line parsing (see http.hpp).
#include <weir/engine/dpi/http.hpp>

namespace weir::engine::dpi {

namespace {

constexpr std::string_view kMethods[] = {
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
    "PROPFIND", "PROPPATCH", "MKCOL", "MOVE", "COPY", "LOCK", "UNLOCK", "REPORT",
    "SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "M-SEARCH", "RPC_IN_DATA", "RPC_OUT_DATA",
};

bool iequals(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

/// Calls f(name, value) for each complete header line after the first line
/// (every line with `first_too`); returns true when the empty line ending
/// the headers was reached.
template <class F>
bool for_each_header(std::string_view s, F f, bool first_too = false) noexcept
{
    if (!first_too) {
        auto eol = s.find('\n');
        if (eol == std::string_view::npos)
            return false;
        s.remove_prefix(eol + 1);
    }
    while (true) {
        const std::size_t eol = s.find('\n');
        // A line cut by the payload end is still read (as nDPI does): a
        // header split over two segments yields its first part.
        bool cut = eol == std::string_view::npos;
        std::string_view line = cut ? s : s.substr(0, eol);
        s.remove_prefix(cut ? s.size() : eol + 1);
        if (cut && line.empty())
            return false;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty())
            return true;
        auto colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        f(line.substr(0, colon), trim(line.substr(colon + 1)));
        if (cut)
            return false;
    }
}

} // namespace

bool is_http_method(std::string_view name) noexcept
{
    for (auto m : kMethods)
        if (m == name)
            return true;
    return false;
}

ParseStatus parse_http_request(Bytes payload, HttpRequest& out) noexcept
{
    out = HttpRequest{};
    std::string_view s(reinterpret_cast<const char*>(payload.data()), payload.size());
    auto sp = s.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 12 || !is_http_method(s.substr(0, sp)))
        return ParseStatus::NotMatched;
    out.method.assign(s.substr(0, sp));
    std::string_view rest = s.substr(sp + 1);
    std::string_view line = rest.substr(0, rest.find_first_of("\r\n"));
    // The target ends at the last space before "HTTP/"; a target with
    // spaces (seen in the wild) stays whole.
    auto ver = line.rfind(" HTTP/");
    std::string_view target = ver == std::string_view::npos ? line.substr(0, line.find(' ')) : line.substr(0, ver);
    if (target.empty())
        return ParseStatus::NotMatched;
    out.target.assign(target);
    out.version_minor = 9;
    if (ver != std::string_view::npos) {
        std::string_view v = line.substr(ver + 1);
        if (v.size() >= 8 && v.substr(0, 7) == "HTTP/1." && v[7] >= '0' && v[7] <= '9')
            out.version_minor = static_cast<uint8_t>(v[7] - '0');
    }
    out.headers_complete = for_each_header(s, [&out](std::string_view name, std::string_view value) {
        if (iequals(name, "host") && out.host.empty())
            out.host.assign(value);
        else if (iequals(name, "user-agent") && out.user_agent.empty())
            out.user_agent.assign(value);
    });
    return ParseStatus::Ok;
}

void http_continue_headers(Bytes segment, HttpRequest& req) noexcept
{
    std::string_view s(reinterpret_cast<const char*>(segment.data()), segment.size());
    if (for_each_header(
            s,
            [&req](std::string_view name, std::string_view value) {
                if (iequals(name, "host") && req.host.empty())
                    req.host.assign(value);
                else if (iequals(name, "user-agent") && req.user_agent.empty())
                    req.user_agent.assign(value);
            },
            true))
        req.headers_complete = 1;
}

ParseStatus parse_http_response(Bytes payload, HttpResponse& out) noexcept
{
    out = HttpResponse{};
    std::string_view s(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (s.size() < 12 || s.substr(0, 7) != "HTTP/1." || s[8] != ' ')
        return ParseStatus::NotMatched;
    if (s[7] < '0' || s[7] > '9')
        return ParseStatus::NotMatched;
    out.version_minor = static_cast<uint8_t>(s[7] - '0');
    uint16_t status = 0;
    for (int i = 9; i < 12; ++i) {
        if (s[static_cast<std::size_t>(i)] < '0' || s[static_cast<std::size_t>(i)] > '9')
            return ParseStatus::Malformed;
        status = static_cast<uint16_t>(status * 10 + (s[static_cast<std::size_t>(i)] - '0'));
    }
    out.status = status;
    for_each_header(s, [&out](std::string_view name, std::string_view value) {
        if (iequals(name, "server") && out.server.empty())
            out.server.assign(value);
        else if (iequals(name, "content-type") && out.content_type.empty())
            out.content_type.assign(value);
    });
    return ParseStatus::Ok;
}

} // namespace weir::engine::dpi
