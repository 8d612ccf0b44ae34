// NetFlow v5 (Cisco) and v9 (RFC 3954) encoders and their wire constants.
// See encoder.hpp for the Encoder contract and docs/export.md for the
// record layouts and how bidirectional flows map onto them.
#pragma once

#include <weir/exporters/encoder.hpp>

#include <cstdint>

namespace weir::exporters {

namespace v5 {
inline constexpr uint16_t kVersion = 5;
inline constexpr uint32_t kHeaderSize = 24;
inline constexpr uint32_t kRecordSize = 48;
inline constexpr uint32_t kMaxRecords = 30;
/// Header sampling_interval: 2-bit mode, 14-bit interval.
inline constexpr uint16_t kSamplingDeterministic = 1;
inline constexpr uint16_t kSamplingRandom = 2;
inline constexpr uint32_t kMaxSamplingInterval = 0x3fff;
} // namespace v5

namespace v9 {
inline constexpr uint16_t kVersion = 9;
inline constexpr uint32_t kHeaderSize = 20;
inline constexpr uint16_t kTemplateFlowSetId = 0;
inline constexpr uint16_t kOptionsTemplateFlowSetId = 1;
inline constexpr uint16_t kScopeSystem = 1; ///< options scope type (RFC 3954 s.6.1)

// Field types (RFC 3954 s.8; ids above 79 are the IANA IPFIX ids, which v9
// collectors share).
inline constexpr uint16_t kInBytes = 1;
inline constexpr uint16_t kInPkts = 2;
inline constexpr uint16_t kProtocol = 4;
inline constexpr uint16_t kSrcTos = 5;
inline constexpr uint16_t kTcpFlags = 6;
inline constexpr uint16_t kL4SrcPort = 7;
inline constexpr uint16_t kIpv4SrcAddr = 8;
inline constexpr uint16_t kInputSnmp = 10;
inline constexpr uint16_t kL4DstPort = 11;
inline constexpr uint16_t kIpv4DstAddr = 12;
inline constexpr uint16_t kOutputSnmp = 14;
inline constexpr uint16_t kLastSwitched = 21;
inline constexpr uint16_t kTotalBytesExp = 40;
inline constexpr uint16_t kTotalPktsExp = 41;
inline constexpr uint16_t kTotalFlowsExp = 42;
inline constexpr uint16_t kFirstSwitched = 22;
inline constexpr uint16_t kOutBytes = 23;
inline constexpr uint16_t kOutPkts = 24;
inline constexpr uint16_t kIpv6SrcAddr = 27;
inline constexpr uint16_t kIpv6DstAddr = 28;
inline constexpr uint16_t kIcmpType = 32;
inline constexpr uint16_t kSamplingInterval = 34;
inline constexpr uint16_t kSamplingAlgorithm = 35;
/// SAMPLING_ALGORITHM values (RFC 3954 s.8; the same for IPFIX IE 35).
inline constexpr uint8_t kAlgorithmDeterministic = 1;
inline constexpr uint8_t kAlgorithmRandom = 2;
inline constexpr uint16_t kMinTtl = 52;
inline constexpr uint16_t kMaxTtl = 53;
inline constexpr uint16_t kInSrcMac = 56;
inline constexpr uint16_t kSrcVlan = 58;
inline constexpr uint16_t kInDstMac = 80;
inline constexpr uint16_t kFlowEndReason = 136;
inline constexpr uint16_t kIcmpTypeIpv6 = 139;
inline constexpr uint16_t kBiflowDirection = 239;
} // namespace v9

/// Errors: EINVAL for an MTU below 72 or above 65535.
Result<std::unique_ptr<Encoder>> make_netflow_v5_encoder(const EncoderOptions& opts);

/// Errors: EINVAL for an MTU that cannot hold header, templates and a record.
Result<std::unique_ptr<Encoder>> make_netflow_v9_encoder(const EncoderOptions& opts);

} // namespace weir::exporters
