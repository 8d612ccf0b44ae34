// NIC inspection and set-up (see nic.hpp).
//
// Driver facts come from the ethtool ioctl (SIOCETHTOOL on an AF_INET
// datagram socket, as ethtool(8) falls back to): it works on every kernel
// and every driver, and "operation not supported" comes back as EOPNOTSUPP
// per command, which is what lets query() mark each part separately.
// Link state, MTU, MAC and the attached XDP program come from one
// RTM_GETLINK; XDP features from the generic netlink family "netdev"
// (NETDEV_CMD_DEV_GET, kernel 6.3+; older kernels lack the family and the
// features are reported as unknown).
#include <weir/nics/nic.hpp>
#include <weir/nics/rss.hpp>

#include "netlink.hpp"

#include <fmt/format.h>

#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

namespace weir::nics {

namespace {

// linux/netdev.h is newer than the UAPI headers Debian 12 ships.
constexpr uint8_t kNetdevCmdDevGet = 1;
constexpr uint16_t kNetdevADevIfindex = 1;
constexpr uint16_t kNetdevADevXdpFeatures = 3;
constexpr uint16_t kNetdevADevXdpZcMaxSegs = 4;

// ETH_RSS_HASH_* and RXH_XFRM_* (the latter is kernel 6.8+).
constexpr uint8_t kRssHashNoChange = 0;
constexpr uint8_t kRssHashToeplitz = 1u << 0;
constexpr uint8_t kRssHashXor = 1u << 1;
constexpr uint8_t kRssHashCrc32 = 1u << 2;
constexpr uint8_t kRxhXfrmSymXor = 1u << 0;
constexpr uint8_t kRxhXfrmSymOrXor = 1u << 1;

// IFF_LOWER_UP lives in <linux/if.h>, which clashes with <net/if.h>.
constexpr unsigned kIffLowerUp = 1u << 16;

constexpr uint64_t kRxhDiscard = uint64_t{1} << 31; // RXH_DISCARD is a negative int
constexpr uint64_t kFourTuple = RXH_IP_SRC | RXH_IP_DST | RXH_L4_B_0_1 | RXH_L4_B_2_3;

struct FlowType {
    const char* name;
    uint32_t type;
};
constexpr FlowType kHashFlows[] = {
    {"tcp4", TCP_V4_FLOW}, {"udp4", UDP_V4_FLOW}, {"tcp6", TCP_V6_FLOW}, {"udp6", UDP_V6_FLOW}};

/// An AF_INET datagram socket for SIOCETHTOOL and SIOC[GS]IFFLAGS.
class IoctlSocket {
public:
    IoctlSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), err_(fd_ < 0 ? errno : 0) {}
    ~IoctlSocket()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    IoctlSocket(const IoctlSocket&) = delete;
    IoctlSocket& operator=(const IoctlSocket&) = delete;
    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] int open_error() const { return err_; }

private:
    int fd_;
    int err_;
};

/// Context for an ethtool error: "eth1: ETHTOOL_GCHANNELS".
std::string ctx(const std::string& ifname, const char* what)
{
    return ifname + ": " + what;
}

/// One ethtool command. Returns 0 or the positive errno. Positive ioctl
/// results (ETHTOOL_SFEATURES flags) are stored in *ret when asked for.
int ethtool(const IoctlSocket& s, const std::string& ifname, void* cmd, int* ret = nullptr)
{
    if (s.fd() < 0)
        return s.open_error();
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = static_cast<char*>(cmd);
    const int rc = ::ioctl(s.fd(), SIOCETHTOOL, &ifr);
    if (rc < 0)
        return errno;
    if (ret)
        *ret = rc;
    return 0;
}

bool is_not_supported(int err)
{
    return err == EOPNOTSUPP;
}

/// Checks the name and that the interface exists; returns its index.
Result<uint32_t> resolve(const std::string& ifname)
{
    if (ifname.empty() || ifname.size() >= IFNAMSIZ || ifname.find('/') != std::string::npos)
        return invalid("'" + ifname + "': not a valid interface name");
    const unsigned idx = ::if_nametoindex(ifname.c_str());
    if (idx == 0)
        return from_errno(ENODEV, ifname + ": no such interface");
    return static_cast<uint32_t>(idx);
}

std::string cstr(const char* p, size_t n)
{
    return std::string(p, strnlen(p, n));
}

void query_drvinfo(const IoctlSocket& s, NicInfo& nic)
{
    ethtool_drvinfo d{};
    d.cmd = ETHTOOL_GDRVINFO;
    const int err = ethtool(s, nic.name, &d);
    if (err) {
        nic.drvinfo_support = is_not_supported(err) ? Support::NotSupported : Support::Unknown;
        return;
    }
    nic.drvinfo_support = Support::Supported;
    nic.driver = cstr(d.driver, sizeof d.driver);
    nic.version = cstr(d.version, sizeof d.version);
    nic.firmware = cstr(d.fw_version, sizeof d.fw_version);
    nic.bus = cstr(d.bus_info, sizeof d.bus_info);
}

void query_channels(const IoctlSocket& s, NicInfo& nic)
{
    ethtool_channels c{};
    c.cmd = ETHTOOL_GCHANNELS;
    const int err = ethtool(s, nic.name, &c);
    Channels& ch = nic.channels;
    if (err) {
        ch.support = is_not_supported(err) ? Support::NotSupported : Support::Unknown;
        ch.note = from_errno(err, ctx(nic.name, "ETHTOOL_GCHANNELS")).message();
        return;
    }
    ch.support = Support::Supported;
    ch.max_rx = c.max_rx;
    ch.max_tx = c.max_tx;
    ch.max_other = c.max_other;
    ch.max_combined = c.max_combined;
    ch.rx = c.rx_count;
    ch.tx = c.tx_count;
    ch.other = c.other_count;
    ch.combined = c.combined_count;
}

/// ETHTOOL_GRSSH twice: sizes first, then table and key.
int get_rxfh(const IoctlSocket& s, const std::string& ifname, ethtool_rxfh& head, std::vector<uint32_t>& indir,
             std::vector<uint8_t>& key)
{
    ethtool_rxfh sizes{};
    sizes.cmd = ETHTOOL_GRSSH;
    if (int err = ethtool(s, ifname, &sizes))
        return err;
    const size_t indir_bytes = size_t{sizes.indir_size} * sizeof(uint32_t);
    std::vector<uint8_t> buf(sizeof(ethtool_rxfh) + indir_bytes + sizes.key_size);
    auto* full = reinterpret_cast<ethtool_rxfh*>(buf.data());
    full->cmd = ETHTOOL_GRSSH;
    full->indir_size = sizes.indir_size;
    full->key_size = sizes.key_size;
    if (int err = ethtool(s, ifname, full))
        return err;
    head = *full;
    indir.resize(full->indir_size);
    std::memcpy(indir.data(), buf.data() + sizeof(ethtool_rxfh), indir.size() * sizeof(uint32_t));
    const uint8_t* k = buf.data() + sizeof(ethtool_rxfh) + indir_bytes;
    key.assign(k, k + full->key_size);
    return 0;
}

void query_rss(const IoctlSocket& s, NicInfo& nic)
{
    Rss& rss = nic.rss;
    ethtool_rxfh head{};
    const int err = get_rxfh(s, nic.name, head, rss.indir, rss.key);
    if (err) {
        rss.support = is_not_supported(err) ? Support::NotSupported : Support::Unknown;
        rss.note = from_errno(err, ctx(nic.name, "ETHTOOL_GRSSH")).message();
    } else {
        rss.support = Support::Supported;
        rss.indir_size = head.indir_size;
        rss.hfunc = head.hfunc;
        rss.input_xfrm = head.rsvd8[0]; // input_xfrm in kernel 6.8+ headers
        rss.hash_function = (head.hfunc & kRssHashToeplitz) ? "toeplitz"
                            : (head.hfunc & kRssHashXor)    ? "xor"
                            : (head.hfunc & kRssHashCrc32)  ? "crc32"
                                                            : "unknown";
        rss.key_symmetric = is_symmetric_key(rss.key);
    }
    for (const FlowType& f : kHashFlows) {
        ethtool_rxnfc n{};
        n.cmd = ETHTOOL_GRXFH;
        n.flow_type = f.type;
        HashFields h;
        h.flow = f.name;
        const int e = ethtool(s, nic.name, &n);
        if (e) {
            h.support = is_not_supported(e) ? Support::NotSupported : Support::Unknown;
        } else {
            h.support = Support::Supported;
            h.fields = n.data;
        }
        rss.hash_fields.push_back(std::move(h));
    }
}

/// Feature names (ETH_SS_FEATURES) and their states.
struct FeatureTable {
    std::vector<std::string> names;
    std::vector<ethtool_get_features_block> blocks;
    [[nodiscard]] bool bit(const std::vector<ethtool_get_features_block>& b, size_t i,
                           uint32_t ethtool_get_features_block::*field) const
    {
        return (b[i / 32].*field >> (i % 32)) & 1u;
    }
};

Result<FeatureTable> read_features(const IoctlSocket& s, const std::string& ifname)
{
    FeatureTable t;
    std::vector<uint8_t> info_buf(sizeof(ethtool_sset_info) + sizeof(uint32_t));
    auto* info = reinterpret_cast<ethtool_sset_info*>(info_buf.data());
    info->cmd = ETHTOOL_GSSET_INFO;
    info->sset_mask = 1ull << ETH_SS_FEATURES;
    if (int err = ethtool(s, ifname, info))
        return from_errno(err, ctx(ifname, "ETHTOOL_GSSET_INFO(ETH_SS_FEATURES)"));
    if (!(info->sset_mask & (1ull << ETH_SS_FEATURES)))
        return from_errno(EOPNOTSUPP, ctx(ifname, "ETHTOOL_GSSET_INFO(ETH_SS_FEATURES)"));
    uint32_t count = 0;
    std::memcpy(&count, info_buf.data() + sizeof(ethtool_sset_info), sizeof count);

    std::vector<uint8_t> str_buf(sizeof(ethtool_gstrings) + size_t{count} * ETH_GSTRING_LEN);
    auto* strs = reinterpret_cast<ethtool_gstrings*>(str_buf.data());
    strs->cmd = ETHTOOL_GSTRINGS;
    strs->string_set = ETH_SS_FEATURES;
    strs->len = count;
    if (int err = ethtool(s, ifname, strs))
        return from_errno(err, ctx(ifname, "ETHTOOL_GSTRINGS(ETH_SS_FEATURES)"));
    count = std::min(count, strs->len);
    for (uint32_t i = 0; i < count; ++i)
        t.names.push_back(cstr(reinterpret_cast<const char*>(str_buf.data() + sizeof(ethtool_gstrings)) +
                                   size_t{i} * ETH_GSTRING_LEN,
                               ETH_GSTRING_LEN));

    const uint32_t nblocks = (count + 31) / 32;
    std::vector<uint8_t> feat_buf(sizeof(ethtool_gfeatures) + nblocks * sizeof(ethtool_get_features_block));
    auto* gf = reinterpret_cast<ethtool_gfeatures*>(feat_buf.data());
    gf->cmd = ETHTOOL_GFEATURES;
    gf->size = nblocks;
    if (int err = ethtool(s, ifname, gf))
        return from_errno(err, ctx(ifname, "ETHTOOL_GFEATURES"));
    t.blocks.resize(nblocks);
    std::memcpy(t.blocks.data(), feat_buf.data() + sizeof(ethtool_gfeatures),
                nblocks * sizeof(ethtool_get_features_block));
    return t;
}

Offloads to_offloads(const FeatureTable& t)
{
    Offloads o;
    o.support = Support::Supported;
    for (size_t i = 0; i < t.names.size(); ++i) {
        if (t.names[i].empty())
            continue; // unnamed bits
        Offload f;
        f.name = t.names[i];
        f.active = t.bit(t.blocks, i, &ethtool_get_features_block::active);
        f.requested = t.bit(t.blocks, i, &ethtool_get_features_block::requested);
        // As ethtool(8) decides "[fixed]".
        f.fixed = !t.bit(t.blocks, i, &ethtool_get_features_block::available) ||
                  t.bit(t.blocks, i, &ethtool_get_features_block::never_changed);
        o.features.push_back(std::move(f));
    }
    return o;
}

/// Parses RTM_NEWLINK: flags, MTU, operstate, MAC, IFLA_XDP.
void parse_link(const nlmsghdr* h, NicInfo& nic)
{
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg)))
        return;
    ifinfomsg ifi;
    std::memcpy(&ifi, NLMSG_DATA(h), sizeof ifi);
    nic.admin_up = ifi.ifi_flags & IFF_UP;
    nic.lower_up = ifi.ifi_flags & kIffLowerUp;
    nic.promisc = ifi.ifi_flags & IFF_PROMISC;
    const auto* attrs = static_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(ifinfomsg));
    const size_t len = h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg));
    detail::for_each_attr(attrs, len, [&](uint16_t type, const uint8_t* v, size_t l) {
        switch (type) {
        case IFLA_MTU:
            nic.mtu = detail::attr_get<uint32_t>(v, l);
            break;
        case IFLA_OPERSTATE: {
            static const char* const kStates[] = {"unknown", "notpresent", "down",   "lowerlayerdown",
                                                  "testing", "dormant",    "up"};
            const auto st = detail::attr_get<uint8_t>(v, l);
            nic.operstate = st < std::size(kStates) ? kStates[st] : fmt::format("state{}", st);
            break;
        }
        case IFLA_ADDRESS: {
            std::string mac;
            for (size_t i = 0; i < l; ++i)
                mac += fmt::format("{}{:02x}", i ? ":" : "", v[i]);
            nic.mac = mac;
            break;
        }
        case IFLA_XDP:
            detail::for_each_attr(v, l, [&](uint16_t xt, const uint8_t* xv, size_t xl) {
                const auto u32 = detail::attr_get<uint32_t>(xv, xl);
                switch (xt) {
                case IFLA_XDP_ATTACHED: {
                    const auto a = detail::attr_get<uint8_t>(xv, xl);
                    nic.xdp.attached = a == XDP_ATTACHED_DRV     ? XdpAttach::Driver
                                       : a == XDP_ATTACHED_SKB   ? XdpAttach::Generic
                                       : a == XDP_ATTACHED_HW    ? XdpAttach::Offload
                                       : a == XDP_ATTACHED_MULTI ? XdpAttach::Multi
                                                                 : XdpAttach::None;
                    break;
                }
                case IFLA_XDP_PROG_ID: nic.xdp.prog_id = u32; break;
                case IFLA_XDP_DRV_PROG_ID: nic.xdp.drv_prog_id = u32; break;
                case IFLA_XDP_SKB_PROG_ID: nic.xdp.skb_prog_id = u32; break;
                case IFLA_XDP_HW_PROG_ID: nic.xdp.hw_prog_id = u32; break;
                default: break;
                }
            });
            break;
        default:
            break;
        }
    });
}

Result<void> query_link(NicInfo& nic)
{
    auto sock = detail::NlSocket::open(NETLINK_ROUTE, nic.name);
    if (!sock)
        return sock.error();
    detail::NlMessage msg(RTM_GETLINK, NLM_F_REQUEST);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = static_cast<int>(nic.ifindex);
    msg.put(&ifi, sizeof ifi);
    return sock->request(msg, [&](const nlmsghdr* h) { parse_link(h, nic); }, ctx(nic.name, "RTM_GETLINK"));
}

void query_xdp_features(NicInfo& nic)
{
    Xdp& x = nic.xdp;
    auto sock = detail::NlSocket::open(NETLINK_GENERIC, nic.name);
    if (!sock) {
        x.note = sock.error().message();
        return;
    }
    auto family = detail::genl_family_id(*sock, "netdev");
    if (!family) {
        // No "netdev" family: a kernel before 6.3 that cannot say.
        x.features_support = Support::Unknown;
        x.note = family.error().message();
        return;
    }
    detail::NlMessage msg(*family, NLM_F_REQUEST);
    genlmsghdr g{};
    g.cmd = kNetdevCmdDevGet;
    g.version = 1;
    msg.put(&g, sizeof g);
    msg.attr_u32(kNetdevADevIfindex, nic.ifindex);
    bool seen = false;
    auto r = sock->request(
        msg,
        [&](const nlmsghdr* h) {
            if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
                return;
            const auto* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + GENL_HDRLEN;
            detail::for_each_attr(p, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                                  [&](uint16_t type, const uint8_t* v, size_t l) {
                                      if (type == kNetdevADevXdpFeatures) {
                                          x.features = detail::attr_get<uint64_t>(v, l);
                                          seen = true;
                                      } else if (type == kNetdevADevXdpZcMaxSegs) {
                                          x.zc_max_segs = detail::attr_get<uint32_t>(v, l);
                                      }
                                  });
        },
        ctx(nic.name, "NETDEV_CMD_DEV_GET"));
    if (!r) {
        x.features_support = Support::Unknown;
        x.note = r.error().message();
        return;
    }
    x.features_support = seen ? Support::Supported : Support::Unknown;
    if (!seen)
        x.note = ctx(nic.name, "NETDEV_CMD_DEV_GET: no XDP features in reply");
}

uint32_t count_sysfs_queues(const std::string& ifname, const char* prefix)
{
    std::error_code ec;
    uint32_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/sys/class/net/" + ifname + "/queues", ec))
        if (e.path().filename().string().rfind(prefix, 0) == 0)
            ++n;
    return n;
}

/// Expands ethtool's long names and aliases into kernel feature names.
Result<std::vector<std::string>> expand_feature(const std::string& name, const FeatureTable& t)
{
    static const std::pair<const char*, const char*> kAliases[] = {
        {"generic-receive-offload", "rx-gro"},
        {"gro", "rx-gro"},
        {"large-receive-offload", "rx-lro"},
        {"lro", "rx-lro"},
        {"generic-segmentation-offload", "tx-generic-segmentation"},
        {"gso", "tx-generic-segmentation"},
        {"rx-vlan-offload", "rx-vlan-hw-parse"},
        {"tx-vlan-offload", "tx-vlan-hw-insert"},
        {"rx-checksumming", "rx-checksum"},
        {"receive-hashing", "rx-hashing"},
    };
    if (name == "tcp-segmentation-offload" || name == "tso") {
        std::vector<std::string> out;
        for (const auto& n : t.names)
            if (n.rfind("tx-tcp", 0) == 0 && n.size() > 13 && n.ends_with("-segmentation"))
                out.push_back(n);
        if (out.empty())
            return invalid(name + ": no tx-tcp*-segmentation features known to this kernel");
        return out;
    }
    std::string k = name;
    for (const auto& [alias, kernel] : kAliases)
        if (name == alias)
            k = kernel;
    if (std::find(t.names.begin(), t.names.end(), k) == t.names.end())
        return invalid("'" + name + "': not a network device feature this kernel knows");
    return std::vector<std::string>{k};
}

} // namespace

const char* support_name(Support s) noexcept
{
    switch (s) {
    case Support::Supported: return "supported";
    case Support::NotSupported: return "not supported";
    case Support::Unknown: return "unknown";
    }
    return "unknown";
}

const char* xdp_attach_name(XdpAttach a) noexcept
{
    switch (a) {
    case XdpAttach::None: return "none";
    case XdpAttach::Driver: return "driver";
    case XdpAttach::Generic: return "generic";
    case XdpAttach::Offload: return "offload";
    case XdpAttach::Multi: return "multi";
    }
    return "none";
}

std::vector<std::string> xdp_feature_names(uint64_t features)
{
    static const char* const kNames[] = {"basic", "redirect", "ndo-xmit", "xsk-zerocopy",
                                         "hw-offload", "rx-sg", "ndo-xmit-sg"};
    std::vector<std::string> out;
    for (unsigned b = 0; b < 64; ++b)
        if (features & (uint64_t{1} << b))
            out.push_back(b < std::size(kNames) ? kNames[b] : fmt::format("bit{}", b));
    return out;
}

bool HashFields::four_tuple() const noexcept
{
    return support == Support::Supported && (fields & ~kRxhDiscard) == kFourTuple;
}

std::string hash_fields_name(uint64_t fields)
{
    static const std::pair<uint64_t, const char*> kBits[] = {
        {RXH_L2DA, "l2-da"},     {RXH_VLAN, "vlan"},      {RXH_L3_PROTO, "l3-proto"},
        {RXH_IP_SRC, "ip-src"},  {RXH_IP_DST, "ip-dst"},  {RXH_L4_B_0_1, "l4-0-1"},
        {RXH_L4_B_2_3, "l4-2-3"}, {kRxhDiscard, "discard"},
    };
    std::string out;
    for (const auto& [bit, name] : kBits)
        if (fields & bit) {
            if (!out.empty())
                out += ' ';
            out += name;
        }
    return out.empty() ? "none" : out;
}

bool Rss::symmetric() const noexcept
{
    if (support != Support::Supported)
        return false;
    if (input_xfrm & (kRxhXfrmSymXor | kRxhXfrmSymOrXor))
        return true;
    return (hfunc & kRssHashToeplitz) && key_symmetric;
}

uint32_t Rss::table_queues() const
{
    std::vector<uint32_t> q(indir);
    std::sort(q.begin(), q.end());
    return static_cast<uint32_t>(std::unique(q.begin(), q.end()) - q.begin());
}

const Offload* Offloads::find(const std::string& name) const noexcept
{
    for (const auto& f : features)
        if (f.name == name)
            return &f;
    return nullptr;
}

bool not_supported(const Error& err) noexcept
{
    return err.code == std::errc::operation_not_supported;
}

Result<NicInfo> query(const std::string& ifname)
{
    auto idx = resolve(ifname);
    if (!idx)
        return idx.error();
    NicInfo nic;
    nic.name = ifname;
    nic.ifindex = *idx;
    if (auto r = query_link(nic); !r)
        return r.error();

    IoctlSocket s;
    if (s.fd() < 0)
        return from_errno(s.open_error(), ctx(ifname, "ethtool socket"));
    query_drvinfo(s, nic);
    query_channels(s, nic);
    query_rss(s, nic);
    if (auto t = read_features(s, ifname)) {
        nic.offloads = to_offloads(*t);
    } else {
        nic.offloads.support = not_supported(t.error()) ? Support::NotSupported : Support::Unknown;
        nic.offloads.note = t.error().message();
    }
    query_xdp_features(nic);
    nic.rx_queues = count_sysfs_queues(ifname, "rx-");
    nic.tx_queues = count_sysfs_queues(ifname, "tx-");
    return nic;
}

Result<void> set_channels(const std::string& ifname, uint32_t count)
{
    if (auto idx = resolve(ifname); !idx)
        return idx.error();
    if (count == 0)
        return invalid(ctx(ifname, "ETHTOOL_SCHANNELS: queue count must be at least 1"));
    IoctlSocket s;
    ethtool_channels c{};
    c.cmd = ETHTOOL_GCHANNELS;
    if (int err = ethtool(s, ifname, &c))
        return from_errno(err, ctx(ifname, "ETHTOOL_GCHANNELS"));
    // Combined channels (one IRQ for an RX and a TX ring) are what
    // multi-queue NICs expose; RX-only channels are the fallback (veth).
    const char* kind;
    uint32_t max;
    if (c.max_combined > 0) {
        kind = "combined";
        max = c.max_combined;
        c.combined_count = count;
    } else if (c.max_rx > 0) {
        kind = "rx";
        max = c.max_rx;
        c.rx_count = count;
    } else {
        return from_errno(EOPNOTSUPP, ctx(ifname, "ETHTOOL_SCHANNELS: driver has no combined or RX channels"));
    }
    if (count > max)
        return invalid(fmt::format("{}: ETHTOOL_SCHANNELS: {} {} channels requested, the device has at most {}",
                                   ifname, count, kind, max));
    c.cmd = ETHTOOL_SCHANNELS;
    if (int err = ethtool(s, ifname, &c))
        return from_errno(err, fmt::format("{}: ETHTOOL_SCHANNELS {} {}", ifname, kind, count));
    return {};
}

Result<SymmetricRssReport> set_symmetric_rss(const std::string& ifname)
{
    if (auto idx = resolve(ifname); !idx)
        return idx.error();
    IoctlSocket s;
    ethtool_rxfh head{};
    std::vector<uint32_t> indir;
    std::vector<uint8_t> key;
    if (int err = get_rxfh(s, ifname, head, indir, key))
        return from_errno(err, ctx(ifname, "ETHTOOL_GRSSH"));
    if (head.key_size == 0)
        return from_errno(EOPNOTSUPP, ctx(ifname, "ETHTOOL_SRSSH: the device has no RSS key"));

    const std::vector<uint8_t> want = symmetric_key(head.key_size);
    std::vector<uint8_t> buf(sizeof(ethtool_rxfh) + want.size());
    auto* set = reinterpret_cast<ethtool_rxfh*>(buf.data());
    set->cmd = ETHTOOL_SRSSH;
    set->indir_size = ETH_RXFH_INDIR_NO_CHANGE; // keep the spread over queues
    set->key_size = head.key_size;
    // The key is only symmetric under Toeplitz.
    set->hfunc = (head.hfunc & kRssHashToeplitz) ? kRssHashNoChange : kRssHashToeplitz;
    std::memcpy(buf.data() + sizeof(ethtool_rxfh), want.data(), want.size());
    if (int err = ethtool(s, ifname, set))
        return from_errno(err, ctx(ifname, "ETHTOOL_SRSSH (symmetric 0x6d5a key)"));
    if (int err = get_rxfh(s, ifname, head, indir, key))
        return from_errno(err, ctx(ifname, "ETHTOOL_GRSSH (read back)"));
    if (key != want)
        return from_errno(EIO, ctx(ifname, "ETHTOOL_SRSSH: the key read back differs from the key written"));

    SymmetricRssReport rep;
    for (const FlowType& f : kHashFlows) {
        ethtool_rxnfc n{};
        n.cmd = ETHTOOL_SRXFH;
        n.flow_type = f.type;
        n.data = kFourTuple;
        if (int err = ethtool(s, ifname, &n))
            rep.fields_refused.push_back(std::string(f.name) + ": " +
                                         from_errno(err, "ETHTOOL_SRXFH").message());
        else
            rep.fields_set.push_back(f.name);
    }
    return rep;
}

Result<OffloadReport> set_offloads(const std::string& ifname, const std::map<std::string, bool>& wanted)
{
    if (auto idx = resolve(ifname); !idx)
        return idx.error();
    IoctlSocket s;
    auto table = read_features(s, ifname);
    if (!table)
        return table.error();
    const FeatureTable& t = *table;

    // Kernel name -> wanted state; later entries win for names given twice.
    std::map<std::string, bool> target;
    for (const auto& [name, on] : wanted) {
        auto names = expand_feature(name, t);
        if (!names)
            return Error{names.error().code, ctx(ifname, "ETHTOOL_SFEATURES") + ": " + names.error().context};
        for (const auto& n : *names)
            target[n] = on;
    }

    OffloadReport rep;
    const Offloads before = to_offloads(t);
    std::vector<ethtool_set_features_block> blocks(t.blocks.size());
    bool any = false;
    for (const auto& [name, on] : target) {
        const Offload* f = before.find(name);
        if (!f)
            continue;
        const std::string label = name + (on ? " on" : " off");
        if (f->active == on) {
            rep.unchanged.push_back(label);
            continue;
        }
        if (f->fixed) {
            rep.refused.push_back(label + " (fixed)");
            continue;
        }
        const size_t i = static_cast<size_t>(std::find(t.names.begin(), t.names.end(), name) - t.names.begin());
        blocks[i / 32].valid |= 1u << (i % 32);
        if (on)
            blocks[i / 32].requested |= 1u << (i % 32);
        any = true;
    }
    if (any) {
        std::vector<uint8_t> buf(sizeof(ethtool_sfeatures) + blocks.size() * sizeof(ethtool_set_features_block));
        auto* sf = reinterpret_cast<ethtool_sfeatures*>(buf.data());
        sf->cmd = ETHTOOL_SFEATURES;
        sf->size = static_cast<uint32_t>(blocks.size());
        std::memcpy(buf.data() + sizeof(ethtool_sfeatures), blocks.data(),
                    blocks.size() * sizeof(ethtool_set_features_block));
        if (int err = ethtool(s, ifname, sf))
            return from_errno(err, ctx(ifname, "ETHTOOL_SFEATURES"));
        // The driver may keep a feature on that depends on another, or
        // refuse one it claimed to allow: believe only what reads back.
        auto after_t = read_features(s, ifname);
        if (!after_t)
            return after_t.error();
        const Offloads after = to_offloads(*after_t);
        for (const auto& [name, on] : target) {
            const Offload* b = before.find(name);
            const Offload* a = after.find(name);
            if (!b || !a || b->active == on || b->fixed)
                continue;
            const std::string label = name + (on ? " on" : " off");
            if (a->active == on)
                rep.changed.push_back(label);
            else
                rep.refused.push_back(label + " (not applied by the driver)");
        }
    }
    for (const auto& [name, on] : target)
        if (!before.find(name))
            rep.absent.push_back(name);
    return rep;
}

const std::vector<std::string>& capture_offload_names()
{
    static const std::vector<std::string> kNames = {
        "rx-gro",
        "rx-gro-hw",
        "rx-lro",
        "tx-generic-segmentation",
        "tx-tcp-segmentation",
        "tx-tcp-ecn-segmentation",
        "tx-tcp-mangleid-segmentation",
        "tx-tcp6-segmentation",
        "tx-tcp-accecn-segmentation",
    };
    return kNames;
}

Result<OffloadReport> capture_offloads_off(const std::string& ifname)
{
    if (auto idx = resolve(ifname); !idx)
        return idx.error();
    IoctlSocket s;
    auto table = read_features(s, ifname);
    if (!table)
        return table.error();
    // Only names this kernel knows: rx-gro-hw and the AccECN TSO bit are newer.
    std::map<std::string, bool> wanted;
    std::vector<std::string> unknown;
    for (const auto& n : capture_offload_names()) {
        if (std::find(table->names.begin(), table->names.end(), n) != table->names.end())
            wanted[n] = false;
        else
            unknown.push_back(n);
    }
    auto rep = set_offloads(ifname, wanted);
    if (!rep)
        return rep.error();
    for (auto& n : unknown)
        rep->absent.push_back(std::move(n));
    return rep;
}

Result<void> set_promisc(const std::string& ifname, bool on)
{
    if (auto idx = resolve(ifname); !idx)
        return idx.error();
    IoctlSocket s;
    if (s.fd() < 0)
        return from_errno(s.open_error(), ctx(ifname, "socket"));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (::ioctl(s.fd(), SIOCGIFFLAGS, &ifr) < 0)
        return from_errno(errno, ctx(ifname, "SIOCGIFFLAGS"));
    const bool is_on = ifr.ifr_flags & IFF_PROMISC;
    if (is_on == on)
        return {};
    if (on)
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_PROMISC);
    else
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_PROMISC);
    if (::ioctl(s.fd(), SIOCSIFFLAGS, &ifr) < 0)
        return from_errno(errno, ctx(ifname, on ? "SIOCSIFFLAGS promisc on" : "SIOCSIFFLAGS promisc off"));
    return {};
}

} // namespace weir::nics
