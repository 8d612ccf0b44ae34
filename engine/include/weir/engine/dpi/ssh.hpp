// SSH identification-string parser of weir's micro-DPI (RFC 4253 §4.2):
// "SSH-<protoversion>-<softwareversion> [comments]\r\n", the first payload
// each side sends.
#pragma once

#include <weir/engine/dpi/types.hpp>

namespace weir::engine::dpi {

struct SshBanner {
    FixedString<16> proto_version;  ///< "2.0", "1.99"
    FixedString<256> software;      ///< software version and comments, without CR LF
};

/// Ok when the payload starts with "SSH-<ver>-"; the banner ends at CR, LF
/// or the payload end (RFC 4253 allows up to 255 bytes).
ParseStatus parse_ssh_banner(Bytes payload, SshBanner& out) noexcept;

} // namespace weir::engine::dpi
