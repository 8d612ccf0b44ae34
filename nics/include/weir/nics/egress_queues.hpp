// Egress queues for IDS mode (weir -o N): veth pairs weir makes itself, so
// that N IDS instances (Suricata, Snort, Zeek over AF_PACKET or AF_XDP) can
// each read one flow-balanced share of the traffic without PF_RING.
//
// Pair i is PREFIX<i> (weir's side, an egress of the IDS mode) and
// PREFIX<i>p (the IDS side). weir transmits on its side; the kernel hands
// every frame to the other end, where the IDS captures. Pairs that already
// exist as veths with those names are reused as they are (an IDS may be
// attached); pairs made here are removed when the EgressQueues object goes,
// unless asked to keep them.
//
// Also the rtnetlink primitives this needs (link query, veth creation,
// deletion, up): the same minimal netlink client as nic.hpp, no libnl.
// Everything that changes links needs CAP_NET_ADMIN.
#pragma once

#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weir::nics {

/// What RTM_GETLINK says about one interface.
struct LinkInfo {
    std::string name;
    uint32_t ifindex = 0;
    std::string kind;            ///< IFLA_INFO_KIND ("veth", "bridge", ...); empty for a physical device
    uint32_t mtu = 0;
    uint32_t link = 0;           ///< IFLA_LINK: a veth's peer ifindex (0: none)
    bool link_elsewhere = false; ///< IFLA_LINK_NETNSID: that peer lives in another namespace
    bool up = false;             ///< IFF_UP
    bool noarp = false;          ///< IFF_NOARP
};

/// The interface named `ifname`, or nullopt when there is none.
/// Errors: EINVAL (not a valid interface name), the netlink socket's errno.
Result<std::optional<LinkInfo>> link_info(const std::string& ifname);

/// The interface with index `ifindex` in this namespace, or nullopt.
/// Errors: the netlink socket's errno.
Result<std::optional<LinkInfo>> link_info(uint32_t ifindex);

/// Creates the veth pair `name` <-> `peer`, both with `mtu` (0: the
/// kernel's default), down. Errors: EEXIST (either name taken), EINVAL
/// (bad name, MTU outside 68..65535), EPERM, EOPNOTSUPP (no veth driver).
Result<void> create_veth(const std::string& name, const std::string& peer, uint32_t mtu);

/// Deletes an interface (for a veth: both ends). Errors: ENODEV, EPERM.
Result<void> delete_link(const std::string& ifname);

/// Sets IFF_UP and, with `noarp`, IFF_NOARP. Errors: ENODEV, EPERM.
Result<void> set_link_up(const std::string& ifname, bool noarp);

inline constexpr uint32_t kMaxEgressQueues = 64;
/// Largest MTU a veth takes (ETH_MAX_MTU).
inline constexpr uint32_t kMaxVethMtu = 65535;

struct EgressQueueName {
    std::string weir_side; ///< PREFIX<i>: weir transmits here
    std::string ids_side;  ///< PREFIX<i>p: the IDS reads here
};

/// Names of `count` egress queues: PREFIX0/PREFIX0p .. PREFIX<count-1>/..p.
/// A prefix starts with a letter, holds letters, digits, '-' and '_', does
/// not end in a digit (PREFIX1 + 0 would read as queue 10), and leaves room
/// for the longest index and the 'p' within IFNAMSIZ (15 characters).
/// Errors: EINVAL naming what is wrong (count outside 1..kMaxEgressQueues,
/// or the prefix).
Result<std::vector<EgressQueueName>> egress_queue_names(const std::string& prefix, uint32_t count);

/// "weirq0p..weirq3p" (or "weirq0p" for one queue): the IDS sides.
[[nodiscard]] std::string ids_side_range(const std::vector<EgressQueueName>& names);

struct EgressQueueOptions {
    std::string prefix = "weirq";
    uint32_t count = 0;
    uint32_t mtu = 1500;   ///< of pairs made here (reused pairs keep theirs)
    bool keep = false;     ///< leave the pairs made here in place at the end
    /// GRO on at the IDS sides: frames an XDP program redirects into a veth
    /// are only delivered when its peer has GRO (or an XDP program) on.
    /// Off otherwise, with LRO, GSO and TSO, so the IDS sees frames as sent.
    bool ids_side_gro = false;
};

class EgressQueues {
public:
    /// Checks every name first, then makes the missing pairs: IPv6 off on
    /// both ends (no router solicitations or MLD reports of the host's own
    /// in the IDS's traffic), ARP off, offloads as in the options, up.
    /// Existing veth pairs with the names are reused (brought up; an MTU
    /// below `mtu` is reported in `notes`, not changed). On any failure the
    /// pairs made so far are removed again.
    /// Errors: EINVAL (bad prefix or count), EEXIST (a name taken by an
    /// interface that is not a veth, or a veth paired with another name),
    /// EPERM (no CAP_NET_ADMIN), and what create_veth() gives.
    static Result<std::unique_ptr<EgressQueues>> create(const EgressQueueOptions& opt,
                                                        std::vector<std::string>* notes = nullptr);
    /// Removes the pairs made by create() unless `keep` was asked for.
    ~EgressQueues();
    EgressQueues(const EgressQueues&) = delete;
    EgressQueues& operator=(const EgressQueues&) = delete;

    [[nodiscard]] const std::vector<EgressQueueName>& names() const noexcept { return names_; }
    /// weir's sides, in queue order: the IDS mode's egress list.
    [[nodiscard]] std::vector<std::string> weir_sides() const;
    [[nodiscard]] uint32_t created() const noexcept { return static_cast<uint32_t>(created_.size()); }
    [[nodiscard]] uint32_t reused() const noexcept { return static_cast<uint32_t>(names_.size() - created_.size()); }

private:
    EgressQueues() = default;
    std::vector<EgressQueueName> names_;
    std::vector<std::string> created_; ///< weir sides of the pairs made here
    bool keep_ = false;
};

} // namespace weir::nics
