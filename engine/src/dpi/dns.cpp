// DNS header and first-question parsing (see dns.hpp).
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>

namespace weir::engine::dpi {

std::size_t read_dns_name(Bytes msg, std::size_t offset, FixedString<256>& out) noexcept
{
    out.clear();
    std::size_t pos = offset;
    std::size_t end_of_name = 0; // where parsing resumes after the first jump
    int jumps = 0;
    // Each label consumes at least one byte, so the loop is bounded by the
    // message length; jumps are capped separately against pointer loops.
    for (std::size_t steps = 0; steps <= msg.size(); ++steps) {
        if (pos >= msg.size())
            return 0;
        uint8_t len = msg[pos];
        if (len == 0)
            return end_of_name ? end_of_name : pos + 1;
        if ((len & 0xc0) == 0xc0) {
            if (pos + 1 >= msg.size() || ++jumps > kMaxDnsJumps)
                return 0;
            if (!end_of_name)
                end_of_name = pos + 2;
            pos = static_cast<std::size_t>(len & 0x3f) << 8 | msg[pos + 1];
            continue;
        }
        if (len & 0xc0)
            return 0; // 0x40 / 0x80 label types are obsolete
        if (pos + 1 + len > msg.size())
            return 0;
        if (!out.empty())
            out.append(".");
        out.append(std::string_view(reinterpret_cast<const char*>(msg.data() + pos + 1), len));
        pos += 1 + len;
    }
    return 0;
}

ParseStatus parse_dns(Bytes payload, DnsMessage& out) noexcept
{
    out = DnsMessage{};
    if (payload.size() < 12)
        return ParseStatus::NotMatched;
    const uint8_t* p = payload.data();
    out.id = be16(p);
    out.flags = be16(p + 2);
    out.is_response = p[2] >> 7;
    out.opcode = (p[2] >> 3) & 0x0f;
    out.rcode = p[3] & 0x0f;
    out.qdcount = be16(p + 4);
    out.ancount = be16(p + 6);
    out.nscount = be16(p + 8);
    out.arcount = be16(p + 10);
    // Opcodes 3 and 6+ are unassigned; a query (or response) carries at most
    // a handful of questions in practice.
    if (out.opcode == 3 || out.opcode > 6 || out.qdcount > 16)
        return ParseStatus::NotMatched;
    if (out.qdcount == 0)
        return out.is_response ? ParseStatus::Ok : ParseStatus::NotMatched;
    std::size_t after = read_dns_name(payload, 12, out.qname);
    if (after == 0 || after + 4 > payload.size())
        return ParseStatus::Malformed;
    out.qtype = be16(p + after);
    out.qclass = be16(p + after + 2);
    return ParseStatus::Ok;
}

ParseStatus parse_dns_tcp(Bytes payload, DnsMessage& out) noexcept
{
    out = DnsMessage{};
    if (payload.size() < 2 + 12)
        return ParseStatus::NotMatched;
    uint16_t len = be16(payload.data());
    if (len < 12)
        return ParseStatus::NotMatched;
    Bytes msg = payload.subspan(2, std::min<std::size_t>(len, payload.size() - 2));
    auto st = parse_dns(msg, out);
    if (st == ParseStatus::Ok && msg.size() < len)
        return ParseStatus::NeedMore;
    return st;
}

bool ndpi_dns_plausible(const DnsMessage& m, uint16_t flags) noexcept
{
    constexpr uint16_t kMax = 48;
    if (m.qdcount == 0 || m.qdcount > kMax)
        return false;
    if (!m.is_response)
        return (flags & 0x2800) == 0x2800 || (flags & 0xfcf0) == 0 || (flags & 0xfcff) == 0x0800 ||
               (m.ancount == 0 && m.nscount == 0);
    return (m.ancount > 0 && m.ancount <= kMax) || (m.nscount > 0 && m.nscount <= kMax) ||
           (m.arcount > 0 && m.arcount <= kMax);
}

} // namespace weir::engine::dpi
