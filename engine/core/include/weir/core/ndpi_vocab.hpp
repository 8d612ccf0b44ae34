// nDPI 4.2's names for what L7Info carries by number: categories
// (ndpi_protocol_category_t), flow risks (ndpi_risk_enum, one bit each in
// L7Info::risk), confidence (ndpi_confidence_t) and HTTP methods
// (ndpi_http_method), as ndpiReader prints
// them and nProbe exports them. Tables rather than calls into libndpi so the
// exporters and a build without libndpi name them too;
// tests/unit/ndpi_vocab_test.cpp checks every entry against the library.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace weir::ndpi_vocab {

/// ndpi_confidence_t.
enum Confidence : uint8_t {
    kConfidenceUnknown = 0,
    kConfidenceMatchByPort = 1,
    kConfidenceMatchByIp = 2,
    kConfidenceDpiCache = 3,
    kConfidenceDpi = 4,
};

inline constexpr std::array<std::string_view, 5> kConfidenceNames = {
    "Unknown", "Match by port", "Match by IP", "DPI (cache)", "DPI",
};

/// ndpi_category_get_name() for ids 0..32 (the custom categories 20..24
/// under their default labels) and 99..105; "" for the ids in between.
inline constexpr std::array<std::string_view, 33> kCategoryNames = {
    "Unspecified", "Media", "VPN", "Email", "DataTransfer", "Web", "SocialNetwork", "Download", "Game",
    "Chat", "VoIP", "Database", "RemoteAccess", "Cloud", "Network", "Collaborative", "RPC", "Streaming",
    "System", "SoftwareUpdate", "User custom category 1", "User custom category 2", "User custom category 3",
    "User custom category 4", "User custom category 5", "Music", "Video", "Shopping", "Productivity",
    "FileSharing", "ConnCheck", "IoT-Scada", "VirtAssistant",
};
inline constexpr uint16_t kCategoryHighFirst = 99;
inline constexpr std::array<std::string_view, 7> kCategoryHighNames = {
    "Mining", "Malware", "Advertisement", "Banned_Site", "Site_Unavailable", "Allowed_Site", "Antimalware",
};

/// ndpi_risk2str() for bits 1..41 (bit 0, NDPI_NO_RISK, is never set).
inline constexpr std::array<std::string_view, 42> kRiskNames = {
    "",
    "XSS Attack",
    "SQL Injection",
    "RCE Injection",
    "Binary Application Transfer",
    "Known Protocol on Non Standard Port",
    "Self-signed Certificate",
    "Obsolete TLS Version (1.1 or older)",
    "Weak TLS Cipher",
    "TLS Expired Certificate",
    "TLS Certificate Mismatch",
    "HTTP Suspicious User-Agent",
    "HTTP Numeric IP Address",
    "HTTP Suspicious URL",
    "HTTP Suspicious Header",
    "TLS (probably) Not Carrying HTTPS",
    "Suspicious DGA Domain name",
    "Malformed Packet",
    "SSH Obsolete Client Version/Cipher",
    "SSH Obsolete Server Version/Cipher",
    "SMB Insecure Version",
    "TLS Suspicious ESNI Usage",
    "Unsafe Protocol",
    "Suspicious DNS Traffic",
    "Missing SNI TLS Extension",
    "HTTP Suspicious Content",
    "Risky ASN",
    "Risky Domain Name",
    "Possibly Malicious JA3 Fingerprint",
    "Possibly Malicious SSL Cert. SHA1 Fingerprint",
    "Desktop/File Sharing Session",
    "Uncommon TLS ALPN",
    "TLS Certificate Validity Too Long",
    "TLS Suspicious Extension",
    "TLS Fatal Alert",
    "Suspicious Entropy",
    "Clear-Text Credentials",
    "DNS Packet Larger Than 512 bytes",
    "Fragmented DNS Message",
    "Text Contains Non-Printable Characters",
    "Possible Exploit Detected",
    "TLS Certificate About To Expire",
};

/// ndpi_http_method2str() for ndpi_http_method 1..9 (0: unknown).
inline constexpr std::array<std::string_view, 10> kHttpMethodNames = {
    "", "OPTIONS", "GET", "HEAD", "PATCH", "POST", "PUT", "DELETE", "TRACE", "CONNECT",
};

/// "" for 0 or an id nDPI 4.2 does not name.
constexpr std::string_view http_method_name(uint8_t m) noexcept
{
    return m < kHttpMethodNames.size() ? kHttpMethodNames[m] : std::string_view{};
}

/// ndpi_http_method of a method name; 0 for the others (WebDAV's, say).
constexpr uint8_t http_method_id(std::string_view name) noexcept
{
    for (uint8_t i = 1; i < kHttpMethodNames.size(); ++i)
        if (kHttpMethodNames[i] == name)
            return i;
    return 0;
}

constexpr std::string_view confidence_name(uint8_t c) noexcept
{
    return c < kConfidenceNames.size() ? kConfidenceNames[c] : std::string_view{};
}

/// "" for an id nDPI 4.2 does not name.
constexpr std::string_view category_name(uint16_t id) noexcept
{
    if (id < kCategoryNames.size())
        return kCategoryNames[id];
    if (id >= kCategoryHighFirst && id < kCategoryHighFirst + kCategoryHighNames.size())
        return kCategoryHighNames[id - kCategoryHighFirst];
    return {};
}

/// Reverse of category_name(); 0 (Unspecified) for a name it does not give.
constexpr uint16_t category_id(std::string_view name) noexcept
{
    for (uint16_t i = 0; i < kCategoryNames.size(); ++i)
        if (kCategoryNames[i] == name)
            return i;
    for (uint16_t i = 0; i < kCategoryHighNames.size(); ++i)
        if (kCategoryHighNames[i] == name)
            return static_cast<uint16_t>(kCategoryHighFirst + i);
    return 0;
}

/// Risk bits (ndpi_risk_enum) that weir's own micro-DPI sets.
inline constexpr unsigned kRiskKnownProtocolOnNonStandardPort = 5; ///< NDPI_KNOWN_PROTOCOL_ON_NON_STANDARD_PORT
inline constexpr unsigned kRiskTlsObsoleteVersion = 7;  ///< NDPI_TLS_OBSOLETE_VERSION
inline constexpr unsigned kRiskTlsWeakCipher = 8;       ///< NDPI_TLS_WEAK_CIPHER
inline constexpr unsigned kRiskHttpNumericIpHost = 12;  ///< NDPI_HTTP_NUMERIC_IP_HOST
inline constexpr unsigned kRiskTlsNotCarryingHttps = 15;///< NDPI_TLS_NOT_CARRYING_HTTPS
inline constexpr unsigned kRiskTlsMissingSni = 24;      ///< NDPI_TLS_MISSING_SNI

/// ndpi_risk2score() of each risk alone (client + server score), bits 0..41:
/// its severity's score (low 10, medium 50, high 100, severe 250). The
/// score of a set of risks is the sum (risk_score()).
inline constexpr std::array<uint16_t, 42> kRiskScores = {
    0,   250, 250, 250, 250, 50,  100, 100, 100, 100, 100, 100, 10,  100, //  0..13
    100, 10,  100, 10,  100, 50,  100, 50,  10,  100, 50,  100, 50,  50,  // 14..27
    50,  50,  10,  50,  50,  100, 10,  50,  100, 50,  50,  100, 250, 50,  // 28..41
};

/// ndpi_risk2score(risk): the sum of the scores of the risks set (bits nDPI
/// 4.2 does not know count 0).
constexpr uint16_t risk_score(uint64_t risk) noexcept
{
    unsigned total = 0;
    for (unsigned bit = 1; bit < kRiskScores.size(); ++bit)
        if (risk >> bit & 1)
            total += kRiskScores[bit];
    return static_cast<uint16_t>(total > 0xFFFF ? 0xFFFF : total);
}

/// "" for a bit nDPI 4.2 does not name.
constexpr std::string_view risk_name(unsigned bit) noexcept
{
    return bit < kRiskNames.size() ? kRiskNames[bit] : std::string_view{};
}

/// Calls out(name) for each risk set in `risk`, lowest bit first; a bit
/// without a name is given as "risk N" (a newer nDPI's risk).
template <class Out>
void for_each_risk(uint64_t risk, Out&& out)
{
    for (unsigned bit = 1; bit < 64; ++bit) {
        if (!(risk >> bit & 1))
            continue;
        const std::string_view n = risk_name(bit);
        if (!n.empty()) {
            out(n);
        } else {
            char buf[16] = "risk ";
            unsigned v = bit, len = 5;
            if (v >= 10)
                buf[len++] = static_cast<char>('0' + v / 10);
            buf[len++] = static_cast<char>('0' + v % 10);
            out(std::string_view(buf, len));
        }
    }
}

/// Appends the names of the risks set in `risk`, `sep` between them.
inline void append_risk_names(std::string& out, uint64_t risk, std::string_view sep)
{
    bool first = true;
    for_each_risk(risk, [&](std::string_view n) {
        if (!first)
            out += sep;
        out += n;
        first = false;
    });
}

} // namespace weir::ndpi_vocab
