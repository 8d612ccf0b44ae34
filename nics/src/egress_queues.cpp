// Egress queues (veth pairs) for IDS mode and the rtnetlink link requests
// they need (see egress_queues.hpp).
#include <weir/nics/egress_queues.hpp>
#include <weir/nics/nic.hpp>

#include "netlink.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <system_error>

namespace weir::nics {

namespace {

constexpr size_t kMaxIfName = IFNAMSIZ - 1;

Result<void> check_name(const std::string& ifname)
{
    if (ifname.empty() || ifname.size() > kMaxIfName || ifname.find_first_of("/: \t\n") != std::string::npos)
        return invalid("'" + ifname + "': not a valid interface name");
    return {};
}

ifinfomsg blank_ifinfo()
{
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    return ifi;
}

/// Parses RTM_NEWLINK into `out`.
void parse_link(const nlmsghdr* h, LinkInfo& out)
{
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg)))
        return;
    ifinfomsg ifi;
    std::memcpy(&ifi, NLMSG_DATA(h), sizeof ifi);
    out.ifindex = static_cast<uint32_t>(ifi.ifi_index);
    out.up = ifi.ifi_flags & IFF_UP;
    out.noarp = ifi.ifi_flags & IFF_NOARP;
    const auto* attrs = static_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(ifinfomsg));
    const size_t len = h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg));
    detail::for_each_attr(attrs, len, [&](uint16_t type, const uint8_t* v, size_t l) {
        switch (type) {
        case IFLA_IFNAME:
            out.name.assign(reinterpret_cast<const char*>(v), strnlen(reinterpret_cast<const char*>(v), l));
            break;
        case IFLA_MTU:
            out.mtu = detail::attr_get<uint32_t>(v, l);
            break;
        case IFLA_LINK:
            out.link = detail::attr_get<uint32_t>(v, l);
            break;
        case IFLA_LINK_NETNSID:
            out.link_elsewhere = true;
            break;
        case IFLA_LINKINFO:
            detail::for_each_attr(v, l, [&](uint16_t it, const uint8_t* iv, size_t il) {
                if (it == IFLA_INFO_KIND)
                    out.kind.assign(reinterpret_cast<const char*>(iv), strnlen(reinterpret_cast<const char*>(iv), il));
            });
            break;
        default:
            break;
        }
    });
}

Result<std::optional<LinkInfo>> get_link(const ifinfomsg& ifi, const std::string& ifname, const std::string& what)
{
    auto sock = detail::NlSocket::open(NETLINK_ROUTE, what);
    if (!sock)
        return sock.error();
    detail::NlMessage msg(RTM_GETLINK, NLM_F_REQUEST);
    msg.put(&ifi, sizeof ifi);
    if (!ifname.empty())
        msg.attr_str(IFLA_IFNAME, ifname);
    LinkInfo info;
    auto r = sock->request(msg, [&](const nlmsghdr* h) { parse_link(h, info); }, what + ": RTM_GETLINK");
    if (!r) {
        if (r.error().code == std::errc::no_such_device)
            return std::optional<LinkInfo>{};
        return r.error();
    }
    if (info.ifindex == 0)
        return std::optional<LinkInfo>{};
    return std::optional<LinkInfo>{std::move(info)};
}

Result<void> change(detail::NlMessage& msg, const std::string& what)
{
    auto sock = detail::NlSocket::open(NETLINK_ROUTE, what);
    if (!sock)
        return sock.error();
    return sock->request(msg, [](const nlmsghdr*) {}, what);
}

/// No IPv6 on a queue end: the host would otherwise send router
/// solicitations, MLD reports and DAD probes through it, into the IDS's
/// traffic. A kernel without IPv6 has nothing to turn off.
void ipv6_off(const std::string& ifname)
{
    std::ofstream f("/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6");
    if (f)
        f << "1\n";
}

/// The offloads of one end: GRO/LRO/GSO/TSO off (frames as sent, no
/// super-frames), GRO back on where asked; the IDS side also keeps VLAN
/// tags in the frame. Refusals are notes, not errors: a veth that cannot
/// change a feature still carries every frame.
void set_queue_offloads(const std::string& ifname, bool ids_side, bool gro, std::vector<std::string>* notes)
{
    auto rep = capture_offloads_off(ifname);
    std::map<std::string, bool> more;
    if (gro)
        more["rx-gro"] = true;
    if (ids_side)
        more["rx-vlan-hw-parse"] = false;
    auto rep2 = rep ? set_offloads(ifname, more) : rep;
    if (!notes)
        return;
    if (!rep2)
        notes->push_back(fmt::format("{}: offloads left as they were: {}", ifname, rep2.error().message()));
    else if (!rep->refused.empty() || !rep2->refused.empty())
        notes->push_back(fmt::format("{}: offloads not changed by the driver: {}{}{}", ifname,
                                     fmt::join(rep->refused, ", "),
                                     rep->refused.empty() || rep2->refused.empty() ? "" : ", ",
                                     fmt::join(rep2->refused, ", ")));
}

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

} // namespace

Result<std::optional<LinkInfo>> link_info(const std::string& ifname)
{
    if (auto r = check_name(ifname); !r)
        return r.error();
    return get_link(blank_ifinfo(), ifname, ifname);
}

Result<std::optional<LinkInfo>> link_info(uint32_t ifindex)
{
    if (ifindex == 0)
        return std::optional<LinkInfo>{};
    ifinfomsg ifi = blank_ifinfo();
    ifi.ifi_index = static_cast<int>(ifindex);
    return get_link(ifi, {}, fmt::format("ifindex {}", ifindex));
}

Result<void> create_veth(const std::string& name, const std::string& peer, uint32_t mtu)
{
    if (auto r = check_name(name); !r)
        return r;
    if (auto r = check_name(peer); !r)
        return r;
    if (mtu != 0 && (mtu < 68 || mtu > kMaxVethMtu))
        return invalid(fmt::format("{}: MTU {} outside 68..{}", name, mtu, kMaxVethMtu));
    detail::NlMessage msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    const ifinfomsg ifi = blank_ifinfo();
    msg.put(&ifi, sizeof ifi);
    msg.attr_str(IFLA_IFNAME, name);
    if (mtu)
        msg.attr_u32(IFLA_MTU, mtu);
    const size_t linkinfo = msg.nest_begin(IFLA_LINKINFO);
    msg.attr_str(IFLA_INFO_KIND, "veth");
    const size_t data = msg.nest_begin(IFLA_INFO_DATA);
    const size_t peer_at = msg.nest_begin(VETH_INFO_PEER);
    msg.put(&ifi, sizeof ifi); // the peer's own ifinfomsg, then its attributes
    msg.attr_str(IFLA_IFNAME, peer);
    if (mtu)
        msg.attr_u32(IFLA_MTU, mtu);
    msg.nest_end(peer_at);
    msg.nest_end(data);
    msg.nest_end(linkinfo);
    return change(msg, fmt::format("create veth {} <-> {}", name, peer));
}

Result<void> delete_link(const std::string& ifname)
{
    if (auto r = check_name(ifname); !r)
        return r;
    detail::NlMessage msg(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
    const ifinfomsg ifi = blank_ifinfo();
    msg.put(&ifi, sizeof ifi);
    msg.attr_str(IFLA_IFNAME, ifname);
    return change(msg, "delete " + ifname);
}

Result<void> set_link_up(const std::string& ifname, bool noarp)
{
    auto info = link_info(ifname);
    if (!info)
        return info.error();
    if (!*info)
        return from_errno(ENODEV, ifname + ": no such interface");
    detail::NlMessage msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
    ifinfomsg ifi = blank_ifinfo();
    ifi.ifi_index = static_cast<int>((*info)->ifindex);
    const unsigned flags = noarp ? unsigned{IFF_UP} | unsigned{IFF_NOARP} : unsigned{IFF_UP};
    ifi.ifi_flags = flags;
    ifi.ifi_change = flags;
    msg.put(&ifi, sizeof ifi);
    return change(msg, ifname + ": set up");
}

Result<std::vector<EgressQueueName>> egress_queue_names(const std::string& prefix, uint32_t count)
{
    if (count < 1 || count > kMaxEgressQueues)
        return invalid(fmt::format("egress queues: {} is not a queue count in 1..{}", count, kMaxEgressQueues));
    const size_t room = kMaxIfName - fmt::formatted_size("{}", count - 1) - 1;
    if (prefix.empty() || !std::isalpha(static_cast<unsigned char>(prefix[0])))
        return invalid(fmt::format("egress queue name '{}': must start with a letter", prefix));
    for (char c : prefix)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
            return invalid(fmt::format("egress queue name '{}': only letters, digits, '-' and '_' are allowed", prefix));
    if (is_digit(prefix.back()))
        return invalid(fmt::format("egress queue name '{}': must not end in a digit ({}0 would read as a queue number)",
                                   prefix, prefix));
    if (prefix.size() > room)
        return invalid(fmt::format("egress queue name '{}': at most {} characters with {} queues ({}{}p must fit in "
                                   "{} characters)",
                                   prefix, room, count, prefix, count - 1, kMaxIfName));
    std::vector<EgressQueueName> out;
    out.reserve(count);
    for (uint32_t i = 0; i < count; ++i)
        out.push_back({fmt::format("{}{}", prefix, i), fmt::format("{}{}p", prefix, i)});
    return out;
}

std::string ids_side_range(const std::vector<EgressQueueName>& names)
{
    if (names.empty())
        return {};
    if (names.size() == 1)
        return names.front().ids_side;
    return names.front().ids_side + ".." + names.back().ids_side;
}

Result<std::unique_ptr<EgressQueues>> EgressQueues::create(const EgressQueueOptions& opt,
                                                           std::vector<std::string>* notes)
{
    auto names = egress_queue_names(opt.prefix, opt.count);
    if (!names)
        return names.error();
    if (opt.mtu < 68 || opt.mtu > kMaxVethMtu)
        return invalid(fmt::format("egress queues: MTU {} outside 68..{}", opt.mtu, kMaxVethMtu));
    auto exists = [](const std::string& what, const std::string& detail) {
        return Error{std::make_error_code(std::errc::file_exists),
                     fmt::format("egress queue {}: {} (remove it, or choose other names with --egress-queue-name)",
                                 what, detail)};
    };
    auto kind_of = [](const LinkInfo& l) { return l.kind.empty() ? std::string("a device") : "a " + l.kind; };

    // Every name first: a clash must leave nothing behind.
    std::vector<bool> reuse(names->size(), false), ids_here(names->size(), true);
    std::vector<std::string> reuse_notes;
    for (size_t i = 0; i < names->size(); ++i) {
        const auto& q = (*names)[i];
        auto w = link_info(q.weir_side);
        if (!w)
            return w.error();
        auto p = link_info(q.ids_side);
        if (!p)
            return p.error();
        if (!*w) {
            if (*p)
                return exists(q.ids_side, fmt::format("exists ({}) without {}", kind_of(**p), q.weir_side));
            continue;
        }
        const LinkInfo& wl = **w;
        if (wl.kind != "veth")
            return exists(q.weir_side, fmt::format("exists and is {}, not a veth", kind_of(wl)));
        if (wl.link_elsewhere) {
            reuse_notes.push_back(fmt::format("{}: reused; its peer is in another namespace", q.weir_side));
            ids_here[i] = false;
        } else {
            auto peer = link_info(wl.link);
            if (!peer)
                return peer.error();
            if (!*peer || (*peer)->name != q.ids_side)
                return exists(q.weir_side, fmt::format("is a veth paired with {}, not {}",
                                                       *peer ? (*peer)->name : std::string("nothing"), q.ids_side));
        }
        if (wl.mtu < opt.mtu)
            reuse_notes.push_back(fmt::format("{}: reused with MTU {} (below {}): larger frames are refused and counted",
                                              q.weir_side, wl.mtu, opt.mtu));
        reuse[i] = true;
    }

    std::unique_ptr<EgressQueues> qs(new EgressQueues);
    qs->names_ = std::move(*names);
    qs->keep_ = opt.keep;
    std::vector<std::string> local_notes;
    for (size_t i = 0; i < qs->names_.size(); ++i) {
        const auto& q = qs->names_[i];
        if (!reuse[i]) {
            if (auto r = create_veth(q.weir_side, q.ids_side, opt.mtu); !r) {
                qs->keep_ = false; // the destructor removes what was made
                return r.error();
            }
            qs->created_.push_back(q.weir_side);
            ipv6_off(q.weir_side);
            ipv6_off(q.ids_side);
        }
        // The peer of a reused pair may be out of reach (another namespace).
        set_queue_offloads(q.weir_side, false, false, &local_notes);
        if (ids_here[i])
            set_queue_offloads(q.ids_side, true, opt.ids_side_gro, &local_notes);
        for (const std::string* end : {&q.weir_side, &q.ids_side}) {
            if (end == &q.ids_side && !ids_here[i])
                continue;
            if (auto r = set_link_up(*end, true); !r) {
                qs->keep_ = false;
                return r.error();
            }
        }
    }
    if (notes) {
        notes->insert(notes->end(), reuse_notes.begin(), reuse_notes.end());
        notes->insert(notes->end(), local_notes.begin(), local_notes.end());
    }
    return qs;
}

EgressQueues::~EgressQueues()
{
    if (keep_)
        return;
    // Deleting one end of a veth removes both; a pair someone else already
    // removed is not an error.
    for (const auto& name : created_)
        (void)delete_link(name);
}

std::vector<std::string> EgressQueues::weir_sides() const
{
    std::vector<std::string> out;
    out.reserve(names_.size());
    for (const auto& q : names_)
        out.push_back(q.weir_side);
    return out;
}

} // namespace weir::nics
