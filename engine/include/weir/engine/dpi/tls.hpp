// TLS ClientHello and ServerHello parsers of weir's micro-DPI: SNI, ALPN,
// versions, the JA3 / JA3S fingerprints (MD5 of the classic strings) and the
// JA4 client fingerprint (FoxIO's spec: "t13d1516h2_<ciphers>_<extensions>"),
// plus TlsStream, which rebuilds the first handshake message of a direction
// from TLS records split over several TCP segments.
//
// Fast path: every function is noexcept, allocation-free and bounded by the
// input length; results are fixed-size structs.
#pragma once

#include <weir/engine/dpi/types.hpp>

#include <cstdint>

namespace weir::engine::dpi {

/// What carried the handshake; it is JA4's first character.
enum class TlsTransport : uint8_t {
    Tcp = 0,  ///< 't'
    Quic = 1, ///< 'q'
    Dtls = 2, ///< 'd'
};

inline constexpr uint8_t kTlsHandshakeClientHello = 1;
inline constexpr uint8_t kTlsHandshakeServerHello = 2;

struct TlsClientHello {
    uint16_t legacy_version = 0;      ///< the handshake's client_version (0x0303 for TLS 1.2 and 1.3)
    uint16_t supported_version = 0;   ///< highest non-GREASE entry of supported_versions, 0 when absent
    uint16_t cipher_count = 0;        ///< cipher suites, GREASE excluded
    uint16_t extension_count = 0;     ///< extensions, GREASE excluded
    FixedString<256> sni;             ///< server_name (host_name entry), as sent
    FixedString<128> alpn;            ///< offered ALPN protocols, comma-separated, in order
    bool alpn_present = false;        ///< an ALPN extension was sent (even an empty one)
    bool esni_present = false;        ///< an encrypted_server_name extension (0xffce, ESNI drafts) was sent
    char ja3[33]{};                   ///< MD5 of the JA3 string, lower-case hex
    /// JA4 as nDPI 4.11 prints it, e.g. "t13d1516h2_8daaf6152771_e5627efa2ab1". It differs from
    /// FoxIO's in two characters of the first part: the 4th is 'i' only when the SNI is an IP
    /// literal ('d' when there is no SNI), and the ALPN pair is the first two characters of the
    /// first ALPN value rather than its first and last.
    char ja4[37]{};
    char ja4_foxio[37]{};             ///< JA4 per FoxIO's specification
};

struct TlsServerHello {
    uint16_t legacy_version = 0;      ///< the handshake's server_version
    uint16_t selected_version = 0;    ///< supported_versions when present, else legacy_version
    uint16_t cipher = 0;              ///< chosen cipher suite
    uint16_t extension_count = 0;
    FixedString<64> alpn;             ///< chosen ALPN protocol
    char ja3s[33]{};                  ///< MD5 of the JA3S string, lower-case hex
};

/// How nDPI 4.2 rates a cipher suite (ndpi_is_safe_ssl_cipher): 0 safe,
/// 1 weak (RSA key exchange, 3DES, CBC with plain RSA...), 2 insecure (RC4).
/// Its TLS dissector flags "Weak TLS Cipher" for a ServerHello choosing a
/// weak one (1) only.
uint8_t tls_cipher_safety(uint16_t cipher) noexcept;

/// Parses a ClientHello handshake message: `msg` starts at the 4-byte
/// handshake header (type 1). Ok: `out` is filled. NeedMore: the message is
/// longer than `msg`. NotMatched: another handshake type. Malformed: a
/// length inside the message runs past its end (legacy_version is kept when
/// it could be read: nDPI judges the version before the lengths).
ParseStatus parse_client_hello_message(Bytes msg, TlsTransport transport, TlsClientHello& out) noexcept;

/// Same for a ServerHello (type 2).
ParseStatus parse_server_hello_message(Bytes msg, TlsServerHello& out) noexcept;

/// ClientHello from one TCP payload starting at a TLS record. Handles the
/// common case of a ClientHello inside the payload's first record; a
/// message split over records or segments gives NeedMore (use TlsStream).
ParseStatus parse_tls_client_hello(Bytes payload, TlsClientHello& out) noexcept;

/// ServerHello from one TCP payload starting at a TLS record (as above).
ParseStatus parse_tls_server_hello(Bytes payload, TlsServerHello& out) noexcept;

/// The payload past whole Alert (21) and ChangeCipherSpec (20) records at
/// its start: a server may send a warning alert (unrecognized_name) in the
/// segment before its ServerHello, and nDPI reads on past it. The payload
/// unchanged when it does not start with such a record.
Bytes tls_skip_leading_records(Bytes payload) noexcept;

/// Rebuilds the first handshake message of one direction of a TCP flow from
/// its payloads in order: record headers are stripped as bytes arrive, and
/// the handshake bytes collect in a bounded inline buffer. Feed it only the
/// first few payloads of a flow (the caller decides how many); it never
/// looks at sequence numbers, so a retransmitted or reordered segment
/// garbles the message, which the parsers then reject as Malformed.
class TlsStream {
public:
    static constexpr uint32_t kCapacity = 16384;

    /// Appends one payload. Returns NeedMore while the first handshake
    /// message is incomplete, Ok once it is (message() then holds it),
    /// NotMatched when the bytes are not TLS handshake records, Malformed
    /// when a record is inconsistent or the message exceeds kCapacity.
    /// After Ok, NotMatched or Malformed further feeds change nothing.
    ParseStatus feed(Bytes payload) noexcept;

    [[nodiscard]] ParseStatus status() const noexcept { return status_; }
    /// The first handshake message, header included (valid after Ok).
    [[nodiscard]] Bytes message() const noexcept { return {buf_, msg_len_}; }
    /// Handshake type of the message (1 ClientHello, 2 ServerHello), 0 until known.
    [[nodiscard]] uint8_t message_type() const noexcept { return len_ ? buf_[0] : 0; }
    void reset() noexcept;

private:
    ParseStatus status_ = ParseStatus::NeedMore;
    uint8_t hdr_len_ = 0;     ///< bytes of the current record header collected so far
    uint8_t hdr_[5]{};
    uint16_t body_left_ = 0;  ///< body bytes of the current record still to come
    uint32_t len_ = 0;        ///< handshake bytes in buf_
    uint32_t msg_len_ = 0;    ///< length of the complete first message (header included)
    uint8_t buf_[kCapacity];
};

} // namespace weir::engine::dpi
