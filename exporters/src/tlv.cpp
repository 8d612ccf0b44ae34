// nDPI "tlv" serializer and deserializer (see tlv.hpp for the format).
#include <weir/exporters/tlv.hpp>

#include <cstring>

namespace weir::exporters::tlv {

std::string_view key_name(uint32_t id) noexcept
{
    switch (id) {
    case key::kInBytes: return "IN_BYTES";
    case key::kInPkts: return "IN_PKTS";
    case key::kProtocol: return "PROTOCOL";
    case key::kSrcTos: return "SRC_TOS";
    case key::kTcpFlags: return "TCP_FLAGS";
    case key::kL4SrcPort: return "L4_SRC_PORT";
    case key::kIpv4SrcAddr: return "IPV4_SRC_ADDR";
    case key::kL4DstPort: return "L4_DST_PORT";
    case key::kIpv4DstAddr: return "IPV4_DST_ADDR";
    case key::kLastSwitched: return "LAST_SWITCHED";
    case key::kFirstSwitched: return "FIRST_SWITCHED";
    case key::kOutBytes: return "OUT_BYTES";
    case key::kOutPkts: return "OUT_PKTS";
    case key::kIpv6SrcAddr: return "IPV6_SRC_ADDR";
    case key::kIpv6DstAddr: return "IPV6_DST_ADDR";
    case key::kDstTos: return "DST_TOS";
    case key::kInSrcMac: return "IN_SRC_MAC";
    case key::kOutDstMac: return "OUT_DST_MAC";
    case key::kSrcVlan: return "SRC_VLAN";
    case key::kIpProtocolVersion: return "IP_PROTOCOL_VERSION";
    case key::kClientTcpFlags: return "CLIENT_TCP_FLAGS";
    case key::kServerTcpFlags: return "SERVER_TCP_FLAGS";
    case key::kL7Proto: return "L7_PROTO";
    case key::kL7ProtoName: return "L7_PROTO_NAME";
    case key::kClientNwLatencyMs: return "CLIENT_NW_LATENCY_MS";
    case key::kServerNwLatencyMs: return "SERVER_NW_LATENCY_MS";
    case key::kApplLatencyMs: return "APPL_LATENCY_MS";
    case key::kHttpUrl: return "HTTP_URL";
    case key::kHttpRetCode: return "HTTP_RET_CODE";
    case key::kHttpMethod: return "HTTP_METHOD";
    case key::kHttpUserAgent: return "HTTP_USER_AGENT";
    case key::kTlsServerName: return "TLS_SERVER_NAME";
    case key::kDnsQuery: return "DNS_QUERY";
    case key::kDnsQueryType: return "DNS_QUERY_TYPE";
    case key::kDnsRetCode: return "DNS_RET_CODE";
    case key::kHttpSite: return "HTTP_SITE";
    case key::kL7ProtoCategory: return "L7_PROTO_CATEGORY";
    case key::kL7ProtoRisk: return "L7_PROTO_RISK";
    case key::kL7ProtoRiskName: return "L7_PROTO_RISK_NAME";
    case key::kL7RiskScore: return "L7_RISK_SCORE";
    case key::kL7Confidence: return "L7_CONFIDENCE";
    case key::kJa4cHash: return "JA4C_HASH";
    default: return {};
    }
}

uint32_t key_id(std::string_view name) noexcept
{
    static constexpr uint32_t kIds[] = {
        key::kInBytes, key::kInPkts, key::kProtocol, key::kSrcTos, key::kTcpFlags, key::kL4SrcPort,
        key::kIpv4SrcAddr, key::kL4DstPort, key::kIpv4DstAddr, key::kLastSwitched, key::kFirstSwitched,
        key::kOutBytes, key::kOutPkts, key::kIpv6SrcAddr, key::kIpv6DstAddr, key::kDstTos, key::kInSrcMac,
        key::kOutDstMac, key::kSrcVlan, key::kIpProtocolVersion, key::kClientTcpFlags, key::kServerTcpFlags,
        key::kL7Proto, key::kL7ProtoName, key::kHttpUrl, key::kHttpUserAgent, key::kTlsServerName,
        key::kDnsQuery, key::kDnsQueryType, key::kDnsRetCode, key::kHttpSite, key::kJa4cHash,
        key::kClientNwLatencyMs, key::kServerNwLatencyMs, key::kApplLatencyMs, key::kL7ProtoCategory,
        key::kL7ProtoRisk, key::kL7ProtoRiskName, key::kL7RiskScore, key::kL7Confidence, key::kHttpRetCode,
        key::kHttpMethod};
    for (uint32_t id : kIds)
        if (key_name(id) == name)
            return id;
    return 0;
}

std::string_view read_error_name(ReadError e) noexcept
{
    switch (e) {
    case ReadError::None: return "none";
    case ReadError::BadPreamble: return "bad preamble";
    case ReadError::Truncated: return "truncated item";
    case ReadError::BadKeyType: return "bad key type";
    case ReadError::BadValueType: return "bad value type";
    }
    return "unknown";
}

// ---- Reader --------------------------------------------------------------

bool Reader::preamble() noexcept
{
    if (buf_.size() < 2 || buf_[0] != kSerializerVersion || buf_[1] != kFormatTlv) {
        err_ = ReadError::BadPreamble;
        return false;
    }
    pos_ = 2;
    return true;
}

bool Reader::read_be(std::size_t n, uint64_t& v) noexcept
{
    if (buf_.size() - pos_ < n)
        return false;
    v = 0;
    for (std::size_t k = 0; k < n; ++k)
        v = v << 8 | buf_[pos_ + k];
    pos_ += n;
    return true;
}

Reader::Next Reader::next(Item& out) noexcept
{
    if (err_ != ReadError::None)
        return Next::Error;
    if (pos_ >= buf_.size())
        return Next::End;
    const uint8_t tb = buf_[pos_];
    if (tb == 0)
        return Next::End;
    if (tb == static_cast<uint8_t>(Type::EndOfRecord)) {
        ++pos_;
        return Next::EndOfRecord;
    }
    const auto kt = static_cast<Type>(tb >> 4);
    const auto vt = static_cast<Type>(tb & 0x0f);
    const std::size_t start = pos_;
    ++pos_;
    out = Item{};
    uint64_t v = 0;
    switch (kt) {
    case Type::U8:
    case Type::U16:
    case Type::U32: {
        const std::size_t n = kt == Type::U8 ? 1 : kt == Type::U16 ? 2 : 4;
        if (!read_be(n, v)) {
            pos_ = start;
            return fail(ReadError::Truncated);
        }
        out.key = static_cast<uint32_t>(v);
        break;
    }
    case Type::String: {
        if (!read_be(2, v) || buf_.size() - pos_ < v) {
            pos_ = start;
            return fail(ReadError::Truncated);
        }
        out.string_key = true;
        out.key_str = {reinterpret_cast<const char*>(buf_.data() + pos_), static_cast<std::size_t>(v)};
        pos_ += v;
        break;
    }
    default:
        pos_ = start;
        return fail(ReadError::BadKeyType);
    }
    out.type = vt;
    switch (vt) {
    case Type::U8:
    case Type::U16:
    case Type::U32:
    case Type::U64: {
        const std::size_t n = vt == Type::U8 ? 1 : vt == Type::U16 ? 2 : vt == Type::U32 ? 4 : 8;
        if (!read_be(n, v))
            break;
        out.u = v;
        return Next::Item;
    }
    case Type::I8:
    case Type::I16:
    case Type::I32:
    case Type::I64: {
        const std::size_t n = vt == Type::I8 ? 1 : vt == Type::I16 ? 2 : vt == Type::I32 ? 4 : 8;
        if (!read_be(n, v))
            break;
        // Sign-extend from n bytes.
        const unsigned shift = static_cast<unsigned>(64 - 8 * n);
        out.i = static_cast<int64_t>(v << shift) >> shift;
        return Next::Item;
    }
    case Type::Float:
        if (buf_.size() - pos_ < 4)
            break;
        std::memcpy(&out.f, buf_.data() + pos_, 4);
        pos_ += 4;
        return Next::Item;
    case Type::String:
        if (!read_be(2, v) || buf_.size() - pos_ < v)
            break;
        out.s = {reinterpret_cast<const char*>(buf_.data() + pos_), static_cast<std::size_t>(v)};
        pos_ += v;
        return Next::Item;
    default:
        pos_ = start;
        return fail(ReadError::BadValueType);
    }
    pos_ = start;
    return fail(ReadError::Truncated);
}

} // namespace weir::exporters::tlv
