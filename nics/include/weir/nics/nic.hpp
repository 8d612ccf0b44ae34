// NIC inspection and set-up for capture, through the ethtool ioctl
// (SIOCETHTOOL), rtnetlink and the "netdev" generic netlink family.
//
// query() gathers what decides how well a capture runs on an interface:
// queues (ethtool channels and the RX queues the stack sees), RSS (key,
// hash function, hash fields: is it symmetric, so that both directions of
// a connection land on one queue and one worker?), offloads that merge or
// split packets before capture (GRO, LRO, GSO, TSO), and XDP (program
// already attached, driver features, AF_XDP zero-copy). Each part a driver
// does not implement is reported as not supported, distinct from a zero.
//
// The setters change one thing each and return a Result whose error carries
// the interface and the ethtool command. A driver that lacks an operation
// gives EOPNOTSUPP (see not_supported()), which callers treat as a warning.
// Setters need CAP_NET_ADMIN; query() does not.
#pragma once

#include <weir/core/result.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace weir::nics {

enum class Support : uint8_t { Supported, NotSupported, Unknown };

[[nodiscard]] const char* support_name(Support s) noexcept;

/// ETHTOOL_GCHANNELS. max_* == 0 means the driver has no channel of that kind.
struct Channels {
    Support support = Support::Unknown;
    std::string note; ///< why not supported or unknown
    uint32_t max_rx = 0, max_tx = 0, max_other = 0, max_combined = 0;
    uint32_t rx = 0, tx = 0, other = 0, combined = 0;
};

/// RSS hash input for one flow type (ETHTOOL_GRXFH), e.g. "tcp4".
struct HashFields {
    std::string flow;   ///< tcp4, udp4, tcp6, udp6
    Support support = Support::Unknown;
    uint64_t fields = 0; ///< RXH_* bits
    /// True when the fields are exactly src/dst IP and both L4 port halves.
    [[nodiscard]] bool four_tuple() const noexcept;
};

/// "ip-src ip-dst l4-0-1 l4-2-3" style names of RXH_* bits.
[[nodiscard]] std::string hash_fields_name(uint64_t fields);

struct Rss {
    Support support = Support::Unknown;
    std::string note;
    uint32_t indir_size = 0;
    std::vector<uint32_t> indir; ///< indirection table: hash bucket -> queue
    std::vector<uint8_t> key;
    uint32_t hfunc = 0;          ///< ETH_RSS_HASH_* bits of the active function
    std::string hash_function;   ///< "toeplitz", "xor", "crc32" or "unknown"
    bool key_symmetric = false;  ///< is_symmetric_key(key)
    uint8_t input_xfrm = 0;      ///< RXH_XFRM_* (kernel 6.8+): symmetric-xor input
    std::vector<HashFields> hash_fields; ///< tcp4, udp4, tcp6, udp6

    /// Distinct queues the indirection table spreads over (0: no table).
    [[nodiscard]] uint32_t table_queues() const;

    /// Both directions of a connection hash alike: a Toeplitz hash with a
    /// symmetric key, or a symmetric input transform.
    [[nodiscard]] bool symmetric() const noexcept;
};

/// One ETH_SS_FEATURES entry, by its kernel name (rx-gro, rx-lro, ...).
struct Offload {
    std::string name;
    bool active = false;
    bool requested = false;
    bool fixed = false; ///< the driver does not let it change
};

struct Offloads {
    Support support = Support::Unknown;
    std::string note;
    std::vector<Offload> features;
    [[nodiscard]] const Offload* find(const std::string& name) const noexcept;
};

enum class XdpAttach : uint8_t { None, Driver, Generic, Offload, Multi };
[[nodiscard]] const char* xdp_attach_name(XdpAttach a) noexcept;

/// NETDEV_XDP_ACT_* bits (linux/netdev.h, kernel 6.3+).
inline constexpr uint64_t kXdpActBasic = 1u << 0;
inline constexpr uint64_t kXdpActRedirect = 1u << 1;
inline constexpr uint64_t kXdpActNdoXmit = 1u << 2;
inline constexpr uint64_t kXdpActXskZeroCopy = 1u << 3;
inline constexpr uint64_t kXdpActHwOffload = 1u << 4;
inline constexpr uint64_t kXdpActRxSg = 1u << 5;
inline constexpr uint64_t kXdpActNdoXmitSg = 1u << 6;

/// Names of the set NETDEV_XDP_ACT_* bits ("basic", "redirect", "ndo-xmit",
/// "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg", "bit<N>").
[[nodiscard]] std::vector<std::string> xdp_feature_names(uint64_t features);

struct Xdp {
    XdpAttach attached = XdpAttach::None;
    uint32_t prog_id = 0; ///< the attached program (0: none, or several: see the mode ids)
    uint32_t drv_prog_id = 0, skb_prog_id = 0, hw_prog_id = 0;
    Support features_support = Support::Unknown; ///< Unknown before kernel 6.3
    std::string note;
    uint64_t features = 0;    ///< NETDEV_XDP_ACT_*
    uint32_t zc_max_segs = 0; ///< NETDEV_A_DEV_XDP_ZC_MAX_SEGS
    [[nodiscard]] bool zero_copy() const noexcept
    {
        return features_support == Support::Supported && (features & kXdpActXskZeroCopy);
    }
};

struct NicInfo {
    std::string name;
    uint32_t ifindex = 0;
    Support drvinfo_support = Support::Unknown;
    std::string driver, version, firmware, bus;
    uint32_t mtu = 0;
    bool admin_up = false;   ///< IFF_UP
    bool lower_up = false;   ///< IFF_LOWER_UP: carrier
    std::string operstate;   ///< IF_OPER_*: "up", "down", "lowerlayerdown", ...
    bool promisc = false;    ///< IFF_PROMISC set by an administrator
    std::string mac;         ///< "aa:bb:cc:dd:ee:ff", empty if none
    uint32_t rx_queues = 0;  ///< rx-N entries under /sys/class/net/IF/queues
    uint32_t tx_queues = 0;
    Channels channels;
    Rss rss;
    Offloads offloads;
    Xdp xdp;
};

/// True when err means the driver does not implement the operation.
[[nodiscard]] bool not_supported(const Error& err) noexcept;

/// Everything above about one interface. Parts a driver lacks are marked
/// NotSupported; only a failure to find or talk to the interface is an error.
/// Errors: ENODEV (no such interface), EINVAL (bad name), or the netlink
/// socket's errno, with the interface in the context.
Result<NicInfo> query(const std::string& ifname);

/// Sets the number of RX queues: combined channels when the driver has
/// them, else RX channels. Errors: EINVAL (0 or above the maximum),
/// EOPNOTSUPP, EPERM, ENODEV.
Result<void> set_channels(const std::string& ifname, uint32_t count);

struct SymmetricRssReport {
    std::vector<std::string> fields_set;     ///< flows now hashed on IPs + ports
    std::vector<std::string> fields_refused; ///< "udp4: reason"
};

/// Writes the 0x6d5a key (at the device's key size, Toeplitz) with
/// ETHTOOL_SRSSH, then asks for src/dst IP + L4 ports hashing of TCP and
/// UDP over IPv4 and IPv6 (ETHTOOL_SRXFH); flows the driver refuses are
/// listed, not errors. Errors: EOPNOTSUPP (no RSS or no key), EPERM, EIO
/// (the key read back is not the one written), ENODEV.
Result<SymmetricRssReport> set_symmetric_rss(const std::string& ifname);

struct OffloadReport {
    std::vector<std::string> changed;   ///< "rx-gro off"
    std::vector<std::string> unchanged; ///< already as asked
    std::vector<std::string> refused;   ///< fixed, or the driver did not apply it
    std::vector<std::string> absent;    ///< not a feature of this device
};

/// Turns features on or off by kernel name (rx-gro, rx-lro,
/// tx-generic-segmentation, ...) or by ethtool's long names
/// (generic-receive-offload, large-receive-offload,
/// generic-segmentation-offload, tcp-segmentation-offload = every
/// tx-tcp*-segmentation, rx-vlan-offload). The result is read back; what
/// did not take is listed as refused. Errors: EINVAL (a name that is no
/// feature the kernel knows), EOPNOTSUPP, EPERM, ENODEV.
Result<OffloadReport> set_offloads(const std::string& ifname, const std::map<std::string, bool>& wanted);

/// GRO, hardware GRO, LRO, GSO and TSO off: a probe wants packets as they
/// were on the wire. Features the device does not have are listed as absent.
Result<OffloadReport> capture_offloads_off(const std::string& ifname);

/// The kernel names capture_offloads_off() turns off when present.
[[nodiscard]] const std::vector<std::string>& capture_offload_names();

/// Sets or clears IFF_PROMISC (SIOCSIFFLAGS). Errors: EPERM, ENODEV.
Result<void> set_promisc(const std::string& ifname, bool on);

/// What the capture will ask of the interface.
struct CapturePlan {
    uint32_t workers = 0; ///< 0: no queue count check
    bool af_xdp = true;   ///< warn about copy mode and attached programs
};

/// Human-readable problems for a capture with `plan` on `nic`: asymmetric
/// RSS, GRO/LRO/GSO/TSO on, fewer RX queues than workers (or an RSS table
/// spreading over fewer queues than workers), an XDP program
/// already attached, no zero-copy, promiscuous mode off, link down.
[[nodiscard]] std::vector<std::string> warnings(const NicInfo& nic, const CapturePlan& plan);

} // namespace weir::nics
