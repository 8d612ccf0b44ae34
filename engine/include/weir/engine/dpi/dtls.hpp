// DTLS 1.0 / 1.2 / 1.3 ClientHello and ServerHello for weir's micro-DPI
// (RFC 6347, RFC 9147). DTLS 1.3 hellos still travel in DTLSPlaintext
// records (version 0xfefd) and offer 0xfefc in supported_versions (the TLS
// parser reports it, JA4 "d3"); its encrypted records use the unified header
// (first byte 001xxxxx), which ends the walk of a datagram.
//
// A DTLS record has a 13-byte header (type, version 0xfeff/0xfefd, epoch,
// 48-bit sequence number, length) and a handshake message a 12-byte one
// (type, length, message_seq, fragment_offset, fragment_length), so a hello
// may arrive in fragments, in several records and datagrams, in any order.
// dtls_read_handshake() places the fragments of the first ClientHello or
// ServerHello of a direction into a HelloAssembler, rebuilt as a TLS
// handshake message (4-byte header), which the TLS parsers then read
// (parse_client_hello_message with TlsTransport::Dtls skips the cookie).
// HelloVerifyRequest and other handshake messages are skipped.
//
// Fast path: noexcept, allocation-free, bounded by the datagram.
#pragma once

#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/types.hpp>

#include <cstdint>

namespace weir::engine::dpi {

/// What one datagram held.
struct DtlsDatagramInfo {
    uint16_t version = 0;     ///< record version of the first handshake record (0xfeff DTLS 1.0, 0xfefd 1.2)
    uint8_t records = 0;      ///< handshake records walked
    uint8_t fragments = 0;    ///< hello fragments placed
};

/// True when the datagram starts with a DTLS handshake record header.
bool dtls_looks_handshake(Bytes datagram) noexcept;

/// Walks the records of one datagram and places the fragments of the first
/// ClientHello (type 1) or ServerHello (type 2) into `hello` (the first
/// fragment seen fixes type and message_seq, in `hello.tag`). Ok: the
/// message is complete (hello.message()). NeedMore: fragments are missing.
/// NotMatched: no DTLS handshake record. Malformed: a record or fragment
/// length runs past its container, or the message exceeds the assembler.
ParseStatus dtls_read_handshake(Bytes datagram, HelloAssembler& hello, DtlsDatagramInfo& info) noexcept;

} // namespace weir::engine::dpi
