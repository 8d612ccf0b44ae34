// DNS message parser of weir's micro-DPI (also reads mDNS and LLMNR, which
// share the format): header flags, the first question's name and type,
// response code and answer count. Compressed names are followed with a
// bounded number of jumps, so a pointer loop ends as Malformed.
#pragma once

#include <weir/engine/dpi/types.hpp>

#include <cstdint>

namespace weir::engine::dpi {

struct DnsMessage {
    uint16_t id = 0;
    uint16_t flags = 0;          ///< the header's flags word (QR, opcode, AA, TC, RD, RA, Z, rcode)
    uint8_t is_response = 0;
    uint8_t opcode = 0;
    uint8_t rcode = 0;
    uint16_t qdcount = 0;
    uint16_t ancount = 0;
    uint16_t nscount = 0;
    uint16_t arcount = 0;
    uint16_t qtype = 0;          ///< of the first question, 0 when there is none
    uint16_t qclass = 0;
    FixedString<256> qname;      ///< dotted, as sent (no trailing dot)
};

/// A DNS message as carried by UDP (no length prefix). Ok when the header
/// is plausible and the first question (if any) decodes. Malformed for a
/// name that runs past the message, a pointer loop or a bad label.
ParseStatus parse_dns(Bytes payload, DnsMessage& out) noexcept;

/// A DNS message over TCP: the 2-byte length prefix, then the message.
/// NeedMore when the payload holds less than the prefix announces (the
/// header and question are still parsed from what is there).
ParseStatus parse_dns_tcp(Bytes payload, DnsMessage& out) noexcept;

/// Reads the (possibly compressed) name at `offset` in `msg` into `out`;
/// returns the offset just past the name in the original position, or 0
/// on error. At most kMaxDnsJumps pointer jumps are followed.
inline constexpr int kMaxDnsJumps = 16;
std::size_t read_dns_name(Bytes msg, std::size_t offset, FixedString<256>& out) noexcept;

} // namespace weir::engine::dpi
