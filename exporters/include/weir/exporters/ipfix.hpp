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

// Options (RFC 7011 s.4, RFC 5610).
inline constexpr uint16_t kOptionsTemplateSetId = 3;
inline constexpr uint16_t kVarLen = 65535;
inline constexpr uint16_t kExportedOctetTotalCount = 40;
inline constexpr uint16_t kExportedMessageTotalCount = 41;
inline constexpr uint16_t kExportedFlowRecordTotalCount = 42;
inline constexpr uint16_t kObservationDomainId = 149;
inline constexpr uint16_t kIgnoredPacketTotalCount = 164;
inline constexpr uint16_t kIgnoredOctetTotalCount = 165;
inline constexpr uint16_t kNotSentFlowTotalCount = 166;
inline constexpr uint16_t kNotSentPacketTotalCount = 167;
inline constexpr uint16_t kNotSentOctetTotalCount = 168;
// Sampling (RFC 5477 PSAMP, RFC 7014 s.6; 34/35 deprecated, kept for
// collectors that read only those).
inline constexpr uint16_t kSamplingInterval = 34;
inline constexpr uint16_t kSamplingAlgorithm = 35;
inline constexpr uint16_t kSelectorAlgorithm = 304;
inline constexpr uint16_t kSamplingPacketInterval = 305;
inline constexpr uint16_t kSamplingPacketSpace = 306;
inline constexpr uint16_t kSamplingSize = 309;
inline constexpr uint16_t kSamplingPopulation = 310;
/// selectorAlgorithm values (IANA PSAMP parameters registry).
inline constexpr uint16_t kSelectorSystematicCount = 1;
inline constexpr uint16_t kSelectorRandomNOutOfN = 3;
inline constexpr uint16_t kInformationElementId = 303;
inline constexpr uint16_t kInformationElementDataType = 339;
inline constexpr uint16_t kInformationElementName = 341;
inline constexpr uint16_t kInformationElementSemantics = 344;
inline constexpr uint16_t kInformationElementUnits = 345;
inline constexpr uint16_t kPrivateEnterpriseNumber = 346;
// RFC 7012 data types and semantics (IANA registries) used in type records.
inline constexpr uint8_t kTypeUnsigned8 = 1;
inline constexpr uint8_t kTypeUnsigned16 = 2;
inline constexpr uint8_t kTypeUnsigned32 = 3;
inline constexpr uint8_t kTypeUnsigned64 = 4;
inline constexpr uint8_t kTypeString = 13;
inline constexpr uint8_t kSemanticsDefault = 0;
inline constexpr uint8_t kSemanticsQuantity = 1;
inline constexpr uint16_t kUnitsMilliseconds = 6; ///< RFC 5610 s.3.7 units registry
inline constexpr uint8_t kSemanticsIdentifier = 4;
inline constexpr uint8_t kSemanticsFlags = 5;
} // namespace ipfix

/// ntop's enterprise elements (nProbe): IPFIX PEN 35632 element n, NetFlow
/// v9 field type 57472 + n.
namespace ntop {
inline constexpr uint32_t kPen = 35632;
inline constexpr uint16_t kV9Base = 57472;
inline constexpr uint16_t kL7Proto = 118;
inline constexpr uint16_t kL7ProtoName = 119;
inline constexpr uint16_t kUpstreamTunnelId = 106;   ///< u32: VXLAN VNI, GRE key
inline constexpr uint16_t kClientNwLatencyMs = 123;  ///< u32 ms, RTT/2 client <-> probe
inline constexpr uint16_t kServerNwLatencyMs = 124;  ///< u32 ms, RTT/2 probe <-> server
inline constexpr uint16_t kApplLatencyMs = 125;      ///< u32 ms, server response time
inline constexpr uint16_t kHttpUrl = 180;
inline constexpr uint16_t kHttpRetCode = 181;      ///< u16: status of the first response
inline constexpr uint16_t kHttpMethod = 360;       ///< string: "GET", ...
inline constexpr uint16_t kHttpUserAgent = 183;
inline constexpr uint16_t kHttpHost = 187;
inline constexpr uint16_t kTlsServerName = 188;
inline constexpr uint16_t kDnsQuery = 205;
inline constexpr uint16_t kDnsQueryType = 207;
inline constexpr uint16_t kDnsRetCode = 208;
inline constexpr uint16_t kHttpSite = 361;
inline constexpr uint16_t kJa3cHash = 489;
inline constexpr uint16_t kJa3sHash = 490;
inline constexpr uint16_t kL7ProtoCategory = 501;    ///< string: nDPI category name
inline constexpr uint16_t kL7ProtoRisk = 509;        ///< u64: nDPI risk bitmap
inline constexpr uint16_t kL7RiskScore = 527;        ///< u16
inline constexpr uint16_t kL7Confidence = 560;       ///< u8: ndpi_confidence_t
inline constexpr uint16_t kJa4cHash = 576;
constexpr uint16_t v9_id(uint16_t n) noexcept { return static_cast<uint16_t>(kV9Base + n); }
} // namespace ntop

/// Errors: EINVAL for an MTU that cannot hold header, templates and a record.
Result<std::unique_ptr<Encoder>> make_ipfix_encoder(const EncoderOptions& opts);

} // namespace weir::exporters
