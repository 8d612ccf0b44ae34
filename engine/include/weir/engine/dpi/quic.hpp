// QUIC Initial packets for weir's micro-DPI: the client's ClientHello, read
// from the CRYPTO frames of its Initial packets (RFC 9000, RFC 9001 for the
// protection, RFC 9369 for QUIC v2, and the draft-22..34 / mvfst / Google
// T050-T051 versions nDPI 4.x also reads), then parsed by the TLS
// ClientHello parser with JA4's 'q' prefix.
//
// Initial packets are protected with keys every observer can derive from the
// client's Destination Connection ID: HKDF-Extract(version salt, DCID), then
// HKDF-Expand-Label for the "client in" secret, the AEAD key, IV and the
// header-protection key. The header protection mask is AES-128-ECB of a
// 16-byte sample of the ciphertext; the payload is AES-128-GCM. The
// primitives are OpenSSL's libcrypto (HMAC-SHA-256, AES-ECB, AES-GCM), with
// one context per thread created on first use; nothing else allocates.
//
// Google QUIC Q046 sends its CHLO in clear: parse_gquic_chlo() reads its SNI
// and UAID (User-Agent) tags.
#pragma once

#include <weir/engine/dpi/tls.hpp>
#include <weir/engine/dpi/types.hpp>

#include <cstdint>

namespace weir::engine::dpi {

/// Rebuilds one handshake message (4-byte TLS handshake header first) from
/// pieces at arbitrary offsets, in any order, overlapping or repeated, in a
/// bounded inline buffer: QUIC CRYPTO frames (Chrome splits and shuffles its
/// ClientHello over several frames) and DTLS handshake fragments. Bytes past
/// kCapacity cannot be held: such a message is reported as Malformed.
class HelloAssembler {
public:
    static constexpr uint32_t kCapacity = 4096;

    /// Places `data` at `offset` of the message. NeedMore while bytes are
    /// missing, Ok once the whole message is present, Malformed when the
    /// message (or this piece) ends past kCapacity. After Ok or Malformed
    /// further pieces change nothing.
    ParseStatus add(uint64_t offset, Bytes data) noexcept;

    [[nodiscard]] ParseStatus status() const noexcept { return status_; }
    /// The complete message, header included (valid after Ok).
    [[nodiscard]] Bytes message() const noexcept { return {buf_, msg_len_}; }
    void reset() noexcept;

    /// The caller's label for the message being assembled (DTLS: handshake
    /// type and message_seq), kept until reset().
    uint32_t tag = 0;
    /// QUIC: the Destination Connection ID of the client's first Initial.
    /// Initial keys stay those of that DCID even after the client switches
    /// to the server's connection ID (RFC 9001 §5.2).
    uint8_t dcid[20]{};
    uint8_t dcid_len = 0;

private:
    void advance() noexcept;

    ParseStatus status_ = ParseStatus::NeedMore;
    uint32_t filled_ = 0;   ///< every byte before this offset is present
    uint32_t msg_len_ = 0;  ///< header + body once the header is present, else 0
    uint8_t have_[kCapacity / 8]{};
    uint8_t buf_[kCapacity];
};

/// Why a datagram gave no ClientHello bytes (for counters and tests).
enum class QuicGiveUp : uint8_t {
    None = 0,
    NotLongHeader,   ///< short header or not QUIC at all
    UnknownVersion,  ///< version negotiation, or a version whose Initial keys are unknown
    NotInitial,      ///< long-header packets, none of them an Initial
    Truncated,       ///< a length runs past the datagram
    HeaderInvalid,   ///< a connection ID longer than 20 bytes, a packet too short to sample
    DecryptFailed,   ///< the AEAD tag does not verify (a server Initial, a corrupt packet)
    FrameInvalid,    ///< a frame that cannot be in an Initial, or one running past the payload
    TooLarge,        ///< the ClientHello or a CRYPTO frame ends past HelloAssembler::kCapacity
};

std::string_view quic_give_up_name(QuicGiveUp r) noexcept;

/// Version information for a QUIC version number.
struct QuicVersionInfo {
    bool known = false;  ///< Initial keys can be derived
    bool v2 = false;     ///< RFC 9369 labels and packet types
    bool gquic = false;  ///< Google QUIC Q050: Initial protected the same way, but a CHLO inside (parse_gquic_chlo)
    const uint8_t* salt = nullptr;  ///< 20 bytes
};

QuicVersionInfo quic_version_info(uint32_t version) noexcept;

/// Initial keys of one direction, derived from a Destination Connection ID.
struct QuicInitialKeys {
    uint8_t key[16];
    uint8_t iv[12];
    uint8_t hp[16];
};

/// Derives the client's (or, with `server`, the server's) Initial keys.
/// False when the version is unknown or libcrypto fails.
bool quic_initial_keys(uint32_t version, Bytes dcid, bool server, QuicInitialKeys& out) noexcept;

/// What one datagram held.
struct QuicDatagramInfo {
    uint32_t version = 0;
    uint8_t initials = 0;       ///< Initial packets decrypted
    uint8_t crypto_frames = 0;  ///< CRYPTO frames placed into the assembler
    QuicGiveUp give_up = QuicGiveUp::None;
};

/// Reads every client Initial packet of one UDP datagram (coalesced packets
/// are walked by their Length; 0-RTT and Handshake packets are skipped, a
/// short-header packet ends the walk): removes header protection, decrypts,
/// and places its CRYPTO frames into `hello`. Returns Ok when `hello` now
/// holds the complete ClientHello, NeedMore when an Initial was read but the
/// message continues in a later packet, NotMatched when the datagram is no
/// QUIC Initial of a known version, Malformed when it is one that cannot be
/// read (info.give_up says why). Bounded by the datagram; allocation-free.
ParseStatus quic_read_initial(Bytes datagram, HelloAssembler& hello, QuicDatagramInfo& info) noexcept;

/// True when the datagram starts like a QUIC long-header packet of a version
/// quic_read_initial() can read (a cheap test before taking any state).
bool quic_looks_initial(Bytes datagram) noexcept;

/// The Google User-Agent transport parameter (id 0x3129) of a QUIC
/// ClientHello (`msg` from the 4-byte handshake header, as
/// parse_client_hello_message() takes it): Chrome sends its product and OS
/// there, and nDPI reports it as the flow's User-Agent. Ok with `out` set,
/// NotMatched when absent, Malformed when a length runs past its container.
ParseStatus quic_user_agent(Bytes msg, FixedString<256>& out) noexcept;

/// Google QUIC CHLO: in clear (Q046: long header, Q043 and older: public
/// header) or in Q050's Initial packet, decrypted as an IETF Initial with
/// Q050's salt; the first "CHLO" tag message in the (decrypted) datagram.
struct GquicChlo {
    uint32_t version = 0;     ///< "Q046" as a big-endian number, 0 when not seen
    FixedString<256> sni;     ///< SNI tag
    FixedString<256> uaid;    ///< UAID tag (the client's User-Agent)
};

/// Ok when a CHLO was found and its tag list is consistent; NotMatched when
/// the datagram is no gQUIC packet with a CHLO; Malformed when the tag list
/// runs past the datagram or a Q050 Initial does not decrypt.
ParseStatus parse_gquic_chlo(Bytes datagram, GquicChlo& out) noexcept;

} // namespace weir::engine::dpi
