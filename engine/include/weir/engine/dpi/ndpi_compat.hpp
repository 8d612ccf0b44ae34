// How nDPI stores what its dissectors read, reproduced so micro-DPI reports
// the same strings as nDPI in both classification modes (exporters and
// ntopng then show one value whichever engine classified the flow).
#pragma once

#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/types.hpp>

namespace weir::engine::dpi {

/// nDPI keeps a host name (SNI, HTTP Host, DNS query) in an 80-byte field:
/// ndpi_hostname_sni_set() keeps the *last* 79 bytes, stops at a NUL,
/// lower-cases, replaces characters outside [A-Za-z0-9._-] with '_' and
/// strips trailing spaces.
inline constexpr std::size_t kNdpiHostnameMax = 79;

template <std::size_t N>
void ndpi_hostname(std::string_view in, FixedString<N>& out) noexcept
{
    static_assert(N > kNdpiHostnameMax);
    out.clear();
    std::size_t len = std::min(in.size(), kNdpiHostnameMax);
    std::string_view tail = in.substr(in.size() - len);
    std::size_t n = 0;
    for (; n < tail.size(); ++n) {
        char c = tail[n];
        if (c == '\0')
            break;
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        out.data[n] = ok ? c : '_';
    }
    while (n > 0 && out.data[n - 1] == ' ')
        --n;
    out.len = static_cast<uint16_t>(n);
    out.data[n] = '\0';
    out.truncated = in.size() > kNdpiHostnameMax;
}

/// nDPI's DNS dissector builds the query name itself before storing it:
/// letters are lower-cased, digits, '-' and '_' kept, other printable
/// characters become '_' and unprintable ones '?'; then, as for any host
/// name, the last 79 bytes are kept. `dotted` is the name as read_dns_name()
/// returns it (labels joined by '.').
template <std::size_t N>
void ndpi_dns_name(std::string_view dotted, FixedString<N>& out) noexcept
{
    static_assert(N > kNdpiHostnameMax);
    std::size_t len = std::min(dotted.size(), kNdpiHostnameMax);
    std::string_view tail = dotted.substr(dotted.size() - len);
    for (std::size_t i = 0; i < tail.size(); ++i) {
        auto c = static_cast<unsigned char>(tail[i]);
        if (c >= 'A' && c <= 'Z')
            c = static_cast<unsigned char>(c - 'A' + 'a');
        bool valid = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        out.data[i] = valid ? static_cast<char>(c) : (c >= 0x20 && c < 0x7f) ? '_' : '?';
    }
    out.len = static_cast<uint16_t>(tail.size());
    out.data[out.len] = '\0';
    out.truncated = dotted.size() > kNdpiHostnameMax;
}

/// nDPI's test of a plausible DNS message (dns.c, search_valid_dns): a
/// query with 1..48 questions and standard, inverse or update flags (or no
/// answer and authority records); a response with 1..48 questions and at
/// least one answer, authority or additional record (at most 48 each).
bool ndpi_dns_plausible(const DnsMessage& m, uint16_t flags) noexcept;

} // namespace weir::engine::dpi
