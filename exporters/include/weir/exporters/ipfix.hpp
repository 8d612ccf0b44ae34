// IPFIX (RFC 7011) encoder and its wire constants: information element ids
// from the IANA registry (RFC 7012) and RFC 5103 reverse elements.
// See encoder.hpp for the Encoder contract and docs/export.md for templates.
#pragma once

#include <weir/exporters/encoder.hpp>

#include <cstdint>

namespace weir::exporters {

namespace ipfix {
inline constexpr uint16_t kVersion = 10;
inline constexpr uint32_t kHeaderSize = 16;
inline constexpr uint16_t kTemplateSetId = 2;
inline constexpr uint32_t kReversePen = 29305; ///< RFC 5103 reverse information elements
inline constexpr uint16_t kEnterpriseBit = 0x8000;

inline constexpr uint16_t kOctetDeltaCount = 1;
inline constexpr uint16_t kPacketDeltaCount = 2;
inline constexpr uint16_t kProtocolIdentifier = 4;
inline constexpr uint16_t kIpClassOfService = 5;
inline constexpr uint16_t kTcpControlBits = 6;
inline constexpr uint16_t kSourceTransportPort = 7;
inline constexpr uint16_t kSourceIPv4Address = 8;
inline constexpr uint16_t kIngressInterface = 10;
inline constexpr uint16_t kDestinationTransportPort = 11;
inline constexpr uint16_t kDestinationIPv4Address = 12;
inline constexpr uint16_t kEgressInterface = 14;
inline constexpr uint16_t kPostOctetDeltaCount = 23;
inline constexpr uint16_t kPostPacketDeltaCount = 24;
inline constexpr uint16_t kSourceIPv6Address = 27;
inline constexpr uint16_t kDestinationIPv6Address = 28;
inline constexpr uint16_t kIcmpTypeCodeIPv4 = 32;
inline constexpr uint16_t kMinimumTTL = 52;
inline constexpr uint16_t kMaximumTTL = 53;
inline constexpr uint16_t kSourceMacAddress = 56;
inline constexpr uint16_t kVlanId = 58;
inline constexpr uint16_t kDestinationMacAddress = 80;
inline constexpr uint16_t kFlowEndReason = 136;
inline constexpr uint16_t kIcmpTypeCodeIPv6 = 139;
inline constexpr uint16_t kFlowStartMilliseconds = 152;
inline constexpr uint16_t kFlowEndMilliseconds = 153;
inline constexpr uint16_t kBiflowDirection = 239;
} // namespace ipfix

/// Errors: EINVAL for an MTU that cannot hold header, templates and a record.
Result<std::unique_ptr<Encoder>> make_ipfix_encoder(const EncoderOptions& opts);

} // namespace weir::exporters
