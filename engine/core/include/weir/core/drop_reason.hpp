// C++ view of the shared drop-reason codes (ebpf/include/weir/abi/drop_reason.h):
// a per-core counter array indexed by them, and their printable names.
#pragma once

#include <weir/abi/drop_reason.h>

#include <array>
#include <cstdint>
#include <string_view>

namespace weir {

enum class DropReason : uint8_t {
    None = WEIR_DROP_NONE,
    TruncatedL2 = WEIR_DROP_TRUNCATED_L2,
    CaplenGtLen = WEIR_DROP_CAPLEN_GT_LEN,
    UnknownLinktype = WEIR_DROP_UNKNOWN_LINKTYPE,
    NonIp = WEIR_DROP_NON_IP,
    TruncatedIp = WEIR_DROP_TRUNCATED_IP,
    BadIpHeader = WEIR_DROP_BAD_IP_HEADER,
    TruncatedL4 = WEIR_DROP_TRUNCATED_L4,
    BadIpv6Ext = WEIR_DROP_BAD_IPV6_EXT,
    TooManyEncaps = WEIR_DROP_TOO_MANY_ENCAPS,
    BadTunnel = WEIR_DROP_BAD_TUNNEL,
    BadMpls = WEIR_DROP_BAD_MPLS,
    BadPppoe = WEIR_DROP_BAD_PPPOE,
    FragNoFirst = WEIR_DROP_FRAG_NO_FIRST,
    TableFull = WEIR_DROP_TABLE_FULL,
    RingFull = WEIR_DROP_RING_FULL,
    ExportRingFull = WEIR_DROP_EXPORT_RING_FULL,
};

inline constexpr std::size_t kDropReasonCount = WEIR_DROP__MAX;

/// Stable snake_case name of a reason, as printed in summaries and JSON stats.
constexpr std::string_view drop_reason_name(DropReason r) noexcept
{
    switch (r) {
    case DropReason::None: return "none";
    case DropReason::TruncatedL2: return "truncated_l2";
    case DropReason::CaplenGtLen: return "caplen_gt_len";
    case DropReason::UnknownLinktype: return "unknown_linktype";
    case DropReason::NonIp: return "non_ip";
    case DropReason::TruncatedIp: return "truncated_ip";
    case DropReason::BadIpHeader: return "bad_ip_header";
    case DropReason::TruncatedL4: return "truncated_l4";
    case DropReason::BadIpv6Ext: return "bad_ipv6_ext";
    case DropReason::TooManyEncaps: return "too_many_encaps";
    case DropReason::BadTunnel: return "bad_tunnel";
    case DropReason::BadMpls: return "bad_mpls";
    case DropReason::BadPppoe: return "bad_pppoe";
    case DropReason::FragNoFirst: return "frag_no_first";
    case DropReason::TableFull: return "table_full";
    case DropReason::RingFull: return "ring_full";
    case DropReason::ExportRingFull: return "export_ring_full";
    }
    return "unknown";
}

/// Per-core drop counters, indexed by DropReason. Owned by one thread.
struct DropCounters {
    std::array<uint64_t, kDropReasonCount> n{};

    void inc(DropReason r) noexcept { ++n[static_cast<std::size_t>(r)]; }
    [[nodiscard]] uint64_t get(DropReason r) const noexcept { return n[static_cast<std::size_t>(r)]; }
    DropCounters& operator+=(const DropCounters& o) noexcept
    {
        for (std::size_t i = 0; i < kDropReasonCount; ++i)
            n[i] += o.n[i];
        return *this;
    }
};

} // namespace weir
