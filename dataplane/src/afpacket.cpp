// AF_PACKET capture through TPACKET_V3 memory-mapped RX rings.
//
// Each socket owns a ring of afp_block_count blocks of afp_block_size bytes
// that the kernel fills frame by frame and hands to user space a block at a
// time (TP_STATUS_USER), when the block is full or after the retire timeout
// (kRetireTovMs), so a quiet link still delivers within a few ms. With
// afp_sockets > 1 the sockets join one PACKET_FANOUT group (flow hash,
// IP fragments reassembled for hashing) and rx_burst() walks them
// round-robin. The group id is opt.afp_fanout_group when given (a single
// socket then joins it too, so several processes can split one interface),
// else the process id plus a per-process sequence number, so that two
// sources of one process never share a group.
//
// No copy: RawPacket::data points into the ring. A block the burst read to
// its end is handed back to the kernel (TP_STATUS_KERNEL) only at the start
// of the next rx_burst(), which is when the PacketSource contract lets its
// frames go. A partly read block stays with us and is continued next time.
//
// VLAN: the kernel moves the outer 802.1Q/802.1ad tag of a received frame
// out of the data into tp_vlan_tci/tp_vlan_tpid. We put it back (copying
// the frame into a per-burst arena) so the decoder and the filter see the
// bytes that were on the wire; caplen and wire_len grow by the 4 tag bytes
// (tp_len is the frame length without the tag, tp_snaplen what the ring
// holds of it). Filters: the kernel runs kernel_program() (bpf_filter.hpp),
// which lets tagged frames through; they are checked here once re-tagged.
//
// Socket set-up order keeps unfiltered frames out: the socket is created
// with protocol 0 (receives nothing), the filter is attached, the ring is
// mapped, and only then is it bound to the interface with ETH_P_ALL.
// Outgoing frames are ignored (PACKET_IGNORE_OUTGOING), promiscuous mode is
// a socket membership the kernel drops when the socket closes.
//
// Link down: the kernel flags the socket with ENETDOWN (POLLERR) and keeps
// it; it starts delivering again when the link comes back. We clear the
// error, say so once on stderr and keep polling at the normal timeout. An
// interface that is deleted (ENODEV) ends the source with an error.
//
// Statistics: PACKET_STATISTICS resets the kernel's counters when read, so
// every read is added to atomics, from whichever thread asked.
#include <weir/dataplane/afpacket.hpp>

#include "bpf_filter.hpp"

#include <fmt/format.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

namespace weir::dataplane {

namespace {

constexpr uint32_t kRetireTovMs = 4;      ///< a partly filled block is handed over after this
constexpr uint32_t kFrameSize = 2048;     ///< TPACKET_V3 only uses it to size tp_frame_nr
constexpr uint32_t kMaxSnaplen = 262144;
constexpr uint32_t kMaxSockets = 256;
constexpr uint32_t kVlanTagLen = 4;
constexpr uint32_t kMacAddrsLen = 12;     ///< destination + source MAC, before a tag
constexpr uint32_t kLinktypeEthernet = 1;
constexpr uint32_t kLinktypeRaw = 101;
constexpr uint32_t kLinktypeRadiotap = 127;

std::atomic<uint32_t> g_fanout_seq{0};

/// The pcap link type of what an AF_PACKET SOCK_RAW socket returns for an
/// interface of this ARPHRD_* type; 0 when we do not handle it.
uint32_t linktype_for_arphrd(int arphrd) noexcept
{
    switch (arphrd) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:
        return kLinktypeEthernet;
    case ARPHRD_NONE:   // tun, wireguard: the frame starts at the IP header
    case ARPHRD_RAWIP:
    case ARPHRD_PPP:
        return kLinktypeRaw;
    case ARPHRD_IEEE80211_RADIOTAP:
        return kLinktypeRadiotap;
    default:
        return 0;
    }
}

struct Ring {
    int fd = -1;
    uint8_t* map = nullptr;
    size_t map_len = 0;
    uint32_t block_size = 0;
    uint32_t block_count = 0;
    uint32_t cur = 0;          ///< block being read
    uint32_t release = 0;      ///< oldest block read to its end, not yet handed back
    uint32_t to_release = 0;   ///< blocks read to their end since the last rx_burst()
    uint32_t left = 0;         ///< frames of block `cur` not yet read (0: block not opened)
    const uint8_t* next = nullptr;

    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> drops{0};        ///< tpacket_stats_v3::tp_drops, accumulated
    std::atomic<uint64_t> freezes{0};      ///< tp_freeze_q_cnt: times the ring was full

    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring()
    {
        if (map)
            ::munmap(map, map_len);
        if (fd >= 0)
            ::close(fd);
    }

    [[nodiscard]] tpacket_block_desc* block(uint32_t i) const noexcept
    {
        return reinterpret_cast<tpacket_block_desc*>(map + size_t(i) * block_size);
    }

    /// Adds what the kernel counted since the last read (the read resets it).
    void read_kernel_stats() noexcept
    {
        tpacket_stats_v3 st{};
        socklen_t len = sizeof(st);
        if (::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
            drops.fetch_add(st.tp_drops, std::memory_order_relaxed);
            freezes.fetch_add(st.tp_freeze_q_cnt, std::memory_order_relaxed);
        }
    }
};

class AfPacketSource final : public PacketSource {
public:
    AfPacketSource(std::string ifname, int ifindex, const LiveOptions& opt, uint32_t linktype,
                   std::optional<BpfProgram> filter, uint32_t fanout_id)
        : ifname_(std::move(ifname)), ifindex_(ifindex), linktype_(linktype), snaplen_(opt.snaplen),
          poll_timeout_ms_(static_cast<int>(std::min<uint32_t>(opt.poll_timeout_ms, 60000))),
          filter_(std::move(filter)), fanout_id_(fanout_id), block_size_(opt.afp_block_size),
          block_count_(opt.afp_block_count)
    {
        // One frame (the largest the ring holds, plus its tag) always fits:
        // a burst never stalls on the arena.
        const uint32_t max_frame = std::min(snaplen_, block_size_) + kVlanTagLen;
        arena_size_ = size_t(std::max<uint32_t>(opt.burst, 1)) * max_frame;
        arena_.reset(new uint8_t[arena_size_]); // not touched until a tagged frame comes
    }

    ~AfPacketSource() override = default;

    std::vector<std::unique_ptr<Ring>>& rings() noexcept { return rings_; }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        // The previous burst's frames are released now, not before.
        for (auto& r : rings_)
            hand_back(*r);
        arena_used_ = 0;
        if (finished_.load(std::memory_order_relaxed) || n == 0)
            return 0;
        uint32_t got = collect(out, n);
        if (got == 0 && wait())
            got = collect(out, n);
        return got;
    }

    [[nodiscard]] bool finished() const noexcept override { return finished_.load(std::memory_order_acquire); }

    [[nodiscard]] std::optional<Error> error() const override
    {
        if (!finished_.load(std::memory_order_acquire))
            return std::nullopt;
        return err_;
    }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats s;
        for (const auto& r : rings_) {
            r->read_kernel_stats();
            s.packets += r->packets.load(std::memory_order_relaxed);
            s.bytes += r->bytes.load(std::memory_order_relaxed);
            s.drops += r->drops.load(std::memory_order_relaxed);
        }
        return s;
    }

    [[nodiscard]] bool live() const noexcept override { return true; }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return wall_clock_ns(); }

    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        std::vector<QueueStats> q;
        for (size_t i = 0; i < rings_.size(); ++i) {
            Ring& r = *rings_[i];
            r.read_kernel_stats();
            QueueStats s;
            s.name = fmt::format("{}#{}", ifname_, i);
            s.packets = r.packets.load(std::memory_order_relaxed);
            s.bytes = r.bytes.load(std::memory_order_relaxed);
            s.drops = r.drops.load(std::memory_order_relaxed);
            q.push_back(std::move(s));
        }
        return q;
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {linktype_}; }

    [[nodiscard]] std::string describe() const override
    {
        std::string d = fmt::format("afpacket:{} (TPACKET_V3, {} x {} KiB blocks", ifname_, block_count_,
                                    block_size_ / 1024);
        if (rings_.size() > 1)
            d += fmt::format(", {} sockets in fanout group {} by flow hash", rings_.size(), fanout_id_);
        if (filter_)
            d += fmt::format(", filter '{}'", filter_->expression);
        return d + ")";
    }

private:
    void hand_back(Ring& r) noexcept
    {
        for (; r.to_release > 0; --r.to_release) {
            __atomic_store_n(&r.block(r.release)->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
            r.release = (r.release + 1) % r.block_count;
        }
    }

    uint32_t collect(RawPacket* out, uint32_t n) noexcept
    {
        uint32_t got = 0;
        const size_t k = rings_.size();
        for (size_t j = 0; j < k && got < n; ++j)
            got += read_ring(*rings_[(rr_ + j) % k], out + got, n - got);
        rr_ = (rr_ + 1) % k;
        if (got != 0 && link_down_) {
            link_down_ = false;
            std::fprintf(stderr, "weir: %s: link up, capturing again\n", ifname_.c_str());
        }
        return got;
    }

    static void next_block(Ring& r) noexcept
    {
        ++r.to_release;
        r.cur = (r.cur + 1) % r.block_count;
        r.left = 0;
    }

    uint32_t read_ring(Ring& r, RawPacket* out, uint32_t n) noexcept
    {
        uint32_t got = 0;
        uint64_t bytes = 0;
        while (got < n) {
            if (r.left == 0) {
                tpacket_block_desc* bd = r.block(r.cur);
                if ((__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0)
                    break;
                r.left = bd->hdr.bh1.num_pkts;
                r.next = reinterpret_cast<const uint8_t*>(bd) + bd->hdr.bh1.offset_to_first_pkt;
                if (r.left == 0) {
                    next_block(r);
                    continue;
                }
            }
            const auto* h = reinterpret_cast<const tpacket3_hdr*>(r.next);
            RawPacket& p = out[got];
            const uint8_t* data = r.next + h->tp_mac;
            uint32_t caplen = h->tp_snaplen;
            uint32_t wire_len = h->tp_len;
            const bool tagged = (h->tp_status & TP_STATUS_VLAN_VALID) != 0 && linktype_ == kLinktypeEthernet &&
                                caplen >= kMacAddrsLen;
            uint32_t written = 0;
            if (tagged) {
                written = caplen + kVlanTagLen;
                if (arena_used_ + written > arena_size_)
                    break; // the rest comes with the next burst
                uint8_t* f = arena_.get() + arena_used_;
                const uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) != 0 && h->hv1.tp_vlan_tpid != 0
                                          ? h->hv1.tp_vlan_tpid
                                          : uint16_t(ETH_P_8021Q);
                const uint16_t tci = static_cast<uint16_t>(h->hv1.tp_vlan_tci);
                std::memcpy(f, data, kMacAddrsLen);
                f[12] = uint8_t(tpid >> 8);
                f[13] = uint8_t(tpid);
                f[14] = uint8_t(tci >> 8);
                f[15] = uint8_t(tci);
                std::memcpy(f + kMacAddrsLen + kVlanTagLen, data + kMacAddrsLen, caplen - kMacAddrsLen);
                data = f;
                caplen = std::min(caplen + kVlanTagLen, snaplen_);
                wire_len += kVlanTagLen;
            }
            const uint64_t ts = uint64_t(h->tp_sec) * 1000000000ULL + h->tp_nsec;
            // Consume the frame.
            r.next += h->tp_next_offset;
            if (--r.left == 0)
                next_block(r);
            if (tagged && filter_ && !matches(*filter_, data, caplen, wire_len))
                continue; // passed the kernel only because its tag was stripped there
            arena_used_ += written;
            p.data = data;
            p.caplen = caplen;
            p.wire_len = wire_len;
            p.ts_ns = ts;
            p.linktype = linktype_;
            bytes += wire_len;
            ++got;
        }
        if (got != 0) {
            r.packets.fetch_add(got, std::memory_order_relaxed);
            r.bytes.fetch_add(bytes, std::memory_order_relaxed);
        }
        return got;
    }

    /// Waits up to the poll timeout; true when a ring may have frames.
    bool wait() noexcept
    {
        pollfd pfd[kMaxSockets];
        const size_t k = rings_.size();
        for (size_t i = 0; i < k; ++i)
            pfd[i] = pollfd{rings_[i]->fd, POLLIN, 0};
        const int rc = ::poll(pfd, k, poll_timeout_ms_);
        if (rc <= 0) {
            if (link_down_)
                check_still_there(); // deleted while down: no further socket error comes
            return false;
        }
        bool readable = false;
        bool errored = false;
        for (size_t i = 0; i < k; ++i) {
            if (pfd[i].revents & POLLERR) {
                int err = 0;
                socklen_t len = sizeof(err);
                ::getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &len); // reading clears it
                socket_error(err);
                errored = true;
            }
            if (pfd[i].revents & POLLIN)
                readable = true;
        }
        if (errored && !readable)
            wait_quietly(); // an error never turns the loop into a spin
        return readable;
    }

    /// The kernel says ENETDOWN both when the link goes down and when the
    /// interface is deleted; a deleted one never comes back to this socket
    /// (a new interface of the same name has another index).
    bool check_still_there() noexcept
    {
        if (if_nametoindex(ifname_.c_str()) == unsigned(ifindex_))
            return true;
        err_ = from_errno(ENODEV, fmt::format("afpacket:{}: the interface went away", ifname_));
        finished_.store(true, std::memory_order_release);
        return false;
    }

    void socket_error(int err) noexcept
    {
        if (err == ENETDOWN) {
            if (!check_still_there())
                return;
            if (!link_down_)
                std::fprintf(stderr, "weir: %s: link down, waiting\n", ifname_.c_str());
            link_down_ = true;
        } else if (err == ENODEV || err == ENXIO) {
            err_ = from_errno(err, fmt::format("afpacket:{}: the interface went away", ifname_));
            finished_.store(true, std::memory_order_release);
        } else if (err != 0) {
            std::fprintf(stderr, "weir: %s: socket error: %s\n", ifname_.c_str(), std::strerror(err));
        }
    }

    /// One poll timeout on the first socket: frames arriving meanwhile end it.
    void wait_quietly() noexcept
    {
        pollfd pfd{rings_.front()->fd, POLLIN, 0};
        ::poll(&pfd, 1, poll_timeout_ms_);
    }

    std::string ifname_;
    int ifindex_;
    uint32_t linktype_;
    uint32_t snaplen_;
    int poll_timeout_ms_;
    std::optional<BpfProgram> filter_;  ///< user-space check of re-tagged frames
    uint32_t fanout_id_;
    uint32_t block_size_;
    uint32_t block_count_;
    std::vector<std::unique_ptr<Ring>> rings_;
    size_t rr_ = 0;
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_size_ = 0;
    size_t arena_used_ = 0;
    bool link_down_ = false;
    std::atomic<bool> finished_{false};
    std::optional<Error> err_;
};

Error sys_error(const std::string& ifname, const char* what)
{
    const int e = errno;
    return from_errno(e, fmt::format("afpacket:{}: {}", ifname, what));
}

Result<std::unique_ptr<Ring>> open_ring(const std::string& ifname, int ifindex, const LiveOptions& opt,
                                        const BpfProgram* kprog, bool promisc, std::optional<uint32_t> fanout_arg)
{
    auto r = std::make_unique<Ring>();
    // Protocol 0: nothing is queued on the socket until bind() below.
    r->fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return sys_error(ifname, errno == EPERM ? "socket(AF_PACKET) needs CAP_NET_RAW" : "socket(AF_PACKET)");
    if (kprog) {
        BpfProgram copy = *kprog;
        sock_fprog fp = copy.fprog();
        if (::setsockopt(r->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) != 0)
            return sys_error(ifname, "SO_ATTACH_FILTER");
    }
    int v = TPACKET_V3;
    if (::setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) != 0)
        return sys_error(ifname, "PACKET_VERSION TPACKET_V3");
    tpacket_req3 req{};
    req.tp_block_size = opt.afp_block_size;
    req.tp_block_nr = opt.afp_block_count;
    req.tp_frame_size = kFrameSize;
    req.tp_frame_nr = (opt.afp_block_size / kFrameSize) * opt.afp_block_count;
    req.tp_retire_blk_tov = kRetireTovMs;
    req.tp_sizeof_priv = 0;
    req.tp_feature_req_word = 0;
    if (::setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0)
        return sys_error(ifname, fmt::format("PACKET_RX_RING {} x {} byte blocks", opt.afp_block_count,
                                             opt.afp_block_size).c_str());
    r->block_size = opt.afp_block_size;
    r->block_count = opt.afp_block_count;
    r->map_len = size_t(opt.afp_block_size) * opt.afp_block_count;
    void* m = ::mmap(nullptr, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, 0);
    if (m == MAP_FAILED)
        return sys_error(ifname, "mmap of the RX ring");
    r->map = static_cast<uint8_t*>(m);
    int one = 1;
    if (::setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0)
        return sys_error(ifname, "PACKET_IGNORE_OUTGOING");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (::bind(r->fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0)
        return sys_error(ifname, "bind");
    if (promisc) {
        packet_mreq mr{};
        mr.mr_ifindex = ifindex;
        mr.mr_type = PACKET_MR_PROMISC;
        if (::setsockopt(r->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0)
            return sys_error(ifname, "PACKET_ADD_MEMBERSHIP promiscuous");
    }
    if (fanout_arg) {
        const uint32_t arg = *fanout_arg;
        if (::setsockopt(r->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0)
            return sys_error(ifname, fmt::format("PACKET_FANOUT group {}", arg & 0xffff).c_str());
    }
    return r;
}

} // namespace

Result<std::unique_ptr<PacketSource>> open_afpacket(const std::string& ifname, const LiveOptions& opt)
{
    if (ifname.empty() || ifname.size() >= IFNAMSIZ)
        return invalid(fmt::format("afpacket: bad interface name '{}'", ifname));
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (ifindex == 0)
        return Error{std::make_error_code(std::errc::no_such_device),
                     fmt::format("afpacket:{}: interface does not exist", ifname)};
    const long page = ::sysconf(_SC_PAGESIZE);
    if (opt.afp_block_size < uint32_t(page) || opt.afp_block_size % uint32_t(page) != 0 ||
        opt.afp_block_size % kFrameSize != 0)
        return invalid(fmt::format("afpacket:{}: block size {} must be a multiple of the page size ({})", ifname,
                                   opt.afp_block_size, page));
    if (opt.afp_block_count == 0 || uint64_t(opt.afp_block_size) * opt.afp_block_count > (1ULL << 34))
        return invalid(fmt::format("afpacket:{}: bad block count {} (1.., at most 16 GiB per ring)", ifname,
                                   opt.afp_block_count));
    if (opt.afp_sockets == 0 || opt.afp_sockets > kMaxSockets)
        return invalid(fmt::format("afpacket:{}: bad socket count {} (1..{})", ifname, opt.afp_sockets, kMaxSockets));
    if (opt.snaplen == 0 || opt.snaplen > kMaxSnaplen)
        return invalid(fmt::format("afpacket:{}: bad snaplen {} (1..{})", ifname, opt.snaplen, kMaxSnaplen));
    if (opt.afp_fanout_group > 0xffff)
        return invalid(fmt::format("afpacket:{}: fanout group {} out of range (0..65535)", ifname, opt.afp_fanout_group));

    // The link type decides how the filter is compiled: ask the interface.
    uint32_t linktype = 0;
    {
        const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return sys_error(ifname, errno == EPERM ? "socket(AF_PACKET) needs CAP_NET_RAW" : "socket(AF_PACKET)");
        ifreq ifr{};
        std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
        const int rc = ::ioctl(fd, SIOCGIFHWADDR, &ifr);
        const int e = errno;
        ::close(fd);
        if (rc != 0)
            return from_errno(e, fmt::format("afpacket:{}: SIOCGIFHWADDR", ifname));
        linktype = linktype_for_arphrd(ifr.ifr_hwaddr.sa_family);
        if (linktype == 0)
            return invalid(fmt::format("afpacket:{}: link type ARPHRD {} not supported (try pcap:{})", ifname,
                                       ifr.ifr_hwaddr.sa_family, ifname));
    }

    std::optional<BpfProgram> filter;
    std::optional<BpfProgram> kprog;
    if (!opt.bpf_filter.empty()) {
        auto f = compile_filter(opt.bpf_filter, linktype, opt.snaplen);
        if (!f)
            return Error{f.error().code, fmt::format("afpacket:{}: {}", ifname, f.error().context)};
        kprog = linktype == kLinktypeEthernet ? kernel_program(f.value()) : f.value();
        if (linktype == kLinktypeEthernet)
            filter = std::move(f.value());
    } else if (opt.snaplen < kMaxSnaplen) {
        // No expression: a one-instruction program still cuts frames at snaplen in the kernel.
        BpfProgram cut;
        cut.snaplen = opt.snaplen;
        cut.insns.push_back(sock_filter{BPF_RET | BPF_K, 0, 0, opt.snaplen});
        kprog = std::move(cut);
    }

    const bool fanout = opt.afp_sockets > 1 || opt.afp_fanout_group != 0;
    uint32_t group = opt.afp_fanout_group;
    if (fanout && group == 0)
        group = (uint32_t(::getpid()) + 4099u * g_fanout_seq.fetch_add(1, std::memory_order_relaxed)) & 0xffffu;
    if (fanout && group == 0)
        group = 1;
    std::optional<uint32_t> fanout_arg;
    if (fanout)
        fanout_arg = group | (uint32_t(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);

    auto src = std::make_unique<AfPacketSource>(ifname, ifindex, opt, linktype, std::move(filter), fanout ? group : 0);
    for (uint32_t i = 0; i < opt.afp_sockets; ++i) {
        auto r = open_ring(ifname, ifindex, opt, kprog ? &*kprog : nullptr, opt.promisc && i == 0, fanout_arg);
        if (!r)
            return r.error();
        src->rings().push_back(std::move(r.value()));
    }
    return std::unique_ptr<PacketSource>(std::move(src));
}

} // namespace weir::dataplane
