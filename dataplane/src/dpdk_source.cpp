// DPDK capture back-end: one ethdev port polled on N RX queues by the
// calling thread.
//
// EAL. rte_eal_init() runs once per process (DPDK refuses a second call),
// so its state is process-wide: the first source (or dpdk_init()) brings it
// up with LiveOptions::eal_args verbatim, or with defaults built here:
//   -l <cpu we run on> --file-prefix weir-<pid> --log-level=*:warning
// plus --no-huge -m 512 when /proc/meminfo shows no free hugepage. Later
// sources reuse the EAL and ignore their eal_args. What DPDK 22.11 does with
// bad arguments (checked on this platform): an unknown option, a bad lcore
// list or a missing value makes rte_eal_init() print its usage and return -1
// with rte_errno = EINVAL, and a later call may try again; "-h"/"--help"
// calls exit(0) inside DPDK, so weir refuses them before calling DPDK. Some
// bad combinations (--in-memory with --no-huge) leave EAL's internal
// configuration half-set, so a retry in the same process can fail again:
// the first error is the one to read. EAL logs go to stderr (never stdout,
// where weir may write records). rte_eal_init() pins the calling thread to
// the main lcore; weir restores the thread's previous CPU set afterwards so
// threads started later (workers, exporter) are not all stuck on one CPU.
// weir launches nothing on EAL lcores: capture runs on weir's own threads.
//
// Device. devargs naming an existing port is used as it is; anything else
// is hot-plugged with rte_dev_probe() and removed again when the source is
// destroyed. The port is claimed with an ethdev owner, so two sources on one
// port get EBUSY. Closing the source stops and closes the port (ethdev then
// releases it: a port probed by the EAL arguments is gone afterwards).
//
// Port. N RX queues (the queue list, which must be 0..N-1, or
// opt.dpdk_rx_queues), RSS with a symmetric Toeplitz key (0x6d5a repeated,
// so both directions of a flow land on one queue) over IP/TCP/UDP as far
// as the driver hashes them, one TX queue (some drivers insist), one mbuf
// pool on the port's socket sized for every ring plus one burst per queue.
//
// Fast path. rx_burst() polls the queues round-robin into an array of mbufs
// it keeps until the next call, and hands out pointers into them: no copy,
// except for frames that arrive chained over several mbufs (jumbo frames
// larger than one mbuf), which are linearised into a per-burst arena and
// counted (describe()). When a whole round finds nothing, rx_burst() polls
// again with short sleeps (10 us doubling to 200 us) until
// opt.poll_timeout_ms has passed, so an idle port costs a few thousand
// wake-ups per second rather than a core; poll_timeout_ms = 0 returns at
// once and the caller busy-polls. Timestamps are wall clock, one per burst.
//
// Statistics come from rte_eth_stats_get() (safe from any thread), relative
// to the moment the source started: packets/bytes = ipackets/ibytes,
// drops = imissed + ierrors + rx_nombuf; per queue q_ipackets, q_ibytes and
// q_errors.
//
// Per-queue views (open_dpdk_queues, weir --per-queue): one source per RX
// queue of one port, each read by its own thread (rte_eth_rx_burst on
// distinct queues needs no lock; threads that are not EAL lcores use the
// mbuf pool without a per-lcore cache). A view owns its burst's mbufs and
// arena and counts what it delivers; the port-wide drops are reported by the
// view of the first queue only, so sums over the views stay right. The views
// share the port, which is closed when the last one goes.
#include <weir/dataplane/dpdk.hpp>
#include <weir/dataplane/live.hpp>

// DPDK's headers use volatile compound assignments, deprecated in C++20.
// They come in as system headers (no warnings) through the build; this
// keeps them quiet when they do not.
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wdeprecated-volatile"
#else
#pragma GCC diagnostic ignored "-Wvolatile"
#endif
#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#pragma GCC diagnostic pop

#include <fmt/format.h>

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <vector>

namespace weir::dataplane {

namespace {

constexpr uint16_t kRxDescriptors = 4096; ///< wanted per queue, clamped by the driver's limits
constexpr uint16_t kTxDescriptors = 512;
constexpr uint32_t kPoolCache = 256;
constexpr uint32_t kMaxBurst = 512;       ///< rx_burst(n) is cut to this
constexpr uint64_t kMinSleepNs = 10'000;
constexpr uint64_t kMaxSleepNs = 200'000;

// ---------------------------------------------------------------- EAL

struct EalState {
    std::mutex mu;                  ///< EAL init, port setup and teardown
    bool up = false;
    std::optional<Error> failed;    ///< the first failure, reported again when DPDK cannot retry
    std::vector<std::string> args;  ///< kept for the process lifetime (EAL may point into argv)
    std::vector<char*> argv;
    double init_seconds = 0;
    int open_sources = 0;
    uint32_t pools_made = 0;
    bool atexit_registered = false;
};

EalState& eal()
{
    static EalState* s = new EalState; // never destroyed: sources may outlive static destructors
    return *s;
}

std::string join(const std::vector<std::string>& v)
{
    std::string s;
    for (const auto& a : v)
        s += (s.empty() ? "" : " ") + a;
    return s;
}

/// HugePages_Free from /proc/meminfo (0 when unreadable).
uint64_t free_hugepages()
{
    std::ifstream f("/proc/meminfo");
    std::string key;
    uint64_t v = 0;
    while (f >> key) {
        if (key == "HugePages_Free:") {
            f >> v;
            return v;
        }
        f.ignore(1 << 12, '\n');
    }
    return 0;
}

std::vector<std::string> default_eal_args()
{
    int cpu = sched_getcpu();
    if (cpu < 0)
        cpu = 0;
    std::vector<std::string> a = {"-l", std::to_string(cpu), "--file-prefix", fmt::format("weir-{}", getpid()),
                                  "--log-level=*:warning"};
    if (free_hugepages() == 0) {
        a.insert(a.end(), {"--no-huge", "-m", "512"});
        std::fprintf(stderr, "weir: dpdk: no free hugepages, running the EAL with --no-huge -m 512 "
                             "(set vm.nr_hugepages for faster mbuf memory)\n");
    }
    return a;
}

/// At exit, when no source is open any more: release the EAL and remove the
/// runtime directory it made under /var/run/dpdk (a primary owns it).
void eal_cleanup_at_exit()
{
    EalState& s = eal();
    std::lock_guard lk(s.mu);
    if (!s.up || s.open_sources != 0)
        return;
    const bool primary = rte_eal_process_type() == RTE_PROC_PRIMARY;
    const std::string dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    s.up = false;
    if (primary && !dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
}

Result<void> eal_init_locked(EalState& s, const LiveOptions& opt)
{
    if (s.up)
        return {};
    if (s.failed && s.failed->code != std::errc::invalid_argument)
        return *s.failed; // only bad arguments (EINVAL) are worth another attempt
    std::vector<std::string> args = opt.eal_args.empty() ? default_eal_args() : opt.eal_args;
    for (const auto& a : args)
        if (a == "-h" || a == "--help")
            return invalid(fmt::format("dpdk: EAL argument '{}' is not accepted (DPDK would exit the process)", a));
    s.args.clear();
    s.args.push_back("weir");
    s.args.insert(s.args.end(), args.begin(), args.end());
    s.argv.clear();
    for (auto& a : s.args)
        s.argv.push_back(a.data());
    s.argv.push_back(nullptr);

    // Logs to stderr: EAL's default console stream is stdout.
    rte_openlog_stream(stderr);
    cpu_set_t saved;
    CPU_ZERO(&saved);
    const bool have_affinity = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = rte_eal_init(static_cast<int>(s.argv.size() - 1), s.argv.data());
    const int err = rte_errno;
    s.init_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (have_affinity)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    if (rc < 0) {
        Error e = from_errno(err ? err : EINVAL,
                             fmt::format("dpdk: EAL initialisation failed with arguments '{}' ({})", join(args),
                                         rte_strerror(err)));
        if (!s.failed || s.failed->code == std::errc::invalid_argument)
            s.failed = e;
        return e;
    }
    s.up = true;
    s.failed.reset();
    if (!s.atexit_registered) {
        std::atexit(eal_cleanup_at_exit);
        s.atexit_registered = true;
    }
    std::fprintf(stderr, "weir: dpdk: EAL up in %.0f ms (%s), %u ethdev port(s) probed\n", s.init_seconds * 1e3,
                 join(args).c_str(), unsigned(rte_eth_dev_count_avail()));
    return {};
}

// ------------------------------------------------------------- source

/// rss_key_len bytes of 0x6d 0x5a repeated: Toeplitz with this key hashes
/// (a, b) and (b, a) alike, so both directions of a flow meet on one queue.
std::vector<uint8_t> symmetric_rss_key(size_t len)
{
    std::vector<uint8_t> k(len);
    for (size_t i = 0; i < len; ++i)
        k[i] = (i % 2 == 0) ? 0x6d : 0x5a;
    return k;
}

Error dpdk_error(int err, const std::string& devargs, const std::string& what)
{
    if (err < 0)
        err = -err;
    return from_errno(err ? err : EIO, fmt::format("dpdk:{}: {}", devargs, what));
}

class DpdkSource final : public PacketSource {
public:
    DpdkSource(std::string devargs, const LiveOptions& opt) : devargs_(std::move(devargs)), opt_(opt)
    {
        ++eal().open_sources;
    }
    /// A view of RX queue `q` of `port` (already open): reads that queue
    /// only and keeps the port open while it lives.
    DpdkSource(std::shared_ptr<DpdkSource> port, uint16_t q, bool port_drops)
        : devargs_(port->devargs_), opt_(port->opt_), port_(port->port_), port_name_(port->port_name_),
          driver_(port->driver_), queues_{q}, nb_rxd_(port->nb_rxd_), rss_hf_(port->rss_hf_),
          rss_key_(port->rss_key_), base_(port->base_), parent_(std::move(port)), port_drops_(port_drops)
    {
    }
    DpdkSource(const DpdkSource&) = delete;
    DpdkSource& operator=(const DpdkSource&) = delete;

    /// The RX queues this source reads.
    [[nodiscard]] const std::vector<uint16_t>& rx_queues() const noexcept { return queues_; }

    ~DpdkSource() override
    {
        if (parent_) { // a view: the port is the parent's
            free_held();
            delete[] arena_;
            return;
        }
        std::lock_guard lk(eal().mu);
        free_held();
        if (started_)
            rte_eth_dev_stop(port_);
        if (configured_)
            rte_eth_dev_close(port_); // releases the port
        else if (owned_)
            rte_eth_dev_owner_unset(port_, owner_id_);
        if (hotplugged_) {
            const int rc = rte_eal_hotplug_remove(bus_.c_str(), dev_name_.c_str());
            if (rc < 0)
                std::fprintf(stderr, "weir: dpdk:%s: removing device %s failed: %s\n", devargs_.c_str(),
                             dev_name_.c_str(), rte_strerror(-rc));
        }
        if (pool_)
            rte_mempool_free(pool_);
        delete[] arena_;
        --eal().open_sources;
    }

    /// Called with eal().mu held.
    Result<void> open(const std::vector<uint32_t>& queues)
    {
        if (auto r = find_or_probe(); !r)
            return r;
        if (auto r = claim(); !r)
            return r;
        return configure(queues);
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        if (parent_ && rte_lcore_id() == LCORE_ID_ANY)
            register_thread();
        free_held();
        n = std::min(n, kMaxBurst);
        if (n == 0)
            return 0;
        uint32_t got = poll_round(n);
        if (got == 0 && opt_.poll_timeout_ms > 0) {
            timespec start{};
            clock_gettime(CLOCK_MONOTONIC, &start);
            const uint64_t t0 = uint64_t(start.tv_sec) * 1000000000ULL + uint64_t(start.tv_nsec);
            const uint64_t deadline = t0 + uint64_t(opt_.poll_timeout_ms) * 1000000ULL;
            uint64_t sleep_ns = kMinSleepNs;
            for (;;) {
                timespec ts{0, long(sleep_ns)};
                nanosleep(&ts, nullptr);
                got = poll_round(n);
                if (got != 0)
                    break;
                timespec now{};
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (uint64_t(now.tv_sec) * 1000000000ULL + uint64_t(now.tv_nsec) >= deadline)
                    break;
                sleep_ns = std::min(sleep_ns * 2, kMaxSleepNs);
            }
        }
        held_n_ = got;
        if (got == 0)
            return 0;
        const uint32_t n_out = fill(out, got);
        if (parent_) {
            uint64_t b = 0;
            for (uint32_t i = 0; i < n_out; ++i)
                b += out[i].wire_len;
            view_packets_.store(view_packets_.load(std::memory_order_relaxed) + n_out, std::memory_order_relaxed);
            view_bytes_.store(view_bytes_.load(std::memory_order_relaxed) + b, std::memory_order_relaxed);
        }
        return n_out;
    }

    [[nodiscard]] bool finished() const noexcept override { return false; }
    [[nodiscard]] std::optional<Error> error() const override { return std::nullopt; }
    [[nodiscard]] bool live() const noexcept override { return true; }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return wall_clock_ns(); }
    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {1}; }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats out;
        if (parent_) {
            out.packets = view_packets_.load(std::memory_order_relaxed);
            out.bytes = view_bytes_.load(std::memory_order_relaxed);
        }
        rte_eth_stats s{};
        if (rte_eth_stats_get(port_, &s) != 0)
            return out;
        if (parent_) {
            if (port_drops_)
                out.drops = since(s.imissed, base_.imissed) + since(s.ierrors, base_.ierrors) +
                            since(s.rx_nombuf, base_.rx_nombuf);
            return out;
        }
        out.packets = since(s.ipackets, base_.ipackets);
        out.bytes = since(s.ibytes, base_.ibytes);
        out.drops = since(s.imissed, base_.imissed) + since(s.ierrors, base_.ierrors) +
                    since(s.rx_nombuf, base_.rx_nombuf);
        return out;
    }

    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        std::vector<QueueStats> out;
        rte_eth_stats s{};
        const bool ok = rte_eth_stats_get(port_, &s) == 0;
        for (uint16_t q : queues_) {
            QueueStats x;
            x.name = fmt::format("dpdk:{}@{}", port_name_, q);
            if (ok && q < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
                x.packets = since(s.q_ipackets[q], base_.q_ipackets[q]);
                x.bytes = since(s.q_ibytes[q], base_.q_ibytes[q]);
                x.drops = since(s.q_errors[q], base_.q_errors[q]);
            }
            if (parent_) { // what this view delivered; the port's drops on the first view
                x.packets = view_packets_.load(std::memory_order_relaxed);
                x.bytes = view_bytes_.load(std::memory_order_relaxed);
                x.drops = stats().drops;
            }
            out.push_back(std::move(x));
        }
        return out;
    }

    [[nodiscard]] std::string describe() const override
    {
        if (parent_)
            return fmt::format("dpdk:{}@{} (driver {}, port {}, RX queue {} of {}{})", port_name_, queues_.front(),
                               driver_, port_, queues_.front(), parent_->queues_.size(),
                               rss_hf_ != 0 ? ", RSS symmetric Toeplitz" : "");
        std::string d = fmt::format("dpdk:{} (driver {}, port {}, {} RX queue{}, {} RX descriptors each, ", port_name_,
                                    driver_, port_, queues_.size(), queues_.size() == 1 ? "" : "s", nb_rxd_);
        if (rss_hf_ != 0)
            d += fmt::format("RSS symmetric Toeplitz {}-byte key, hash functions {:#x}", rss_key_.size(), rss_hf_);
        else if (queues_.size() > 1)
            d += "no RSS in the driver: it spreads frames itself";
        else
            d += "RSS off";
        d += opt_.promisc ? ", promiscuous" : "";
        d += hotplugged_ ? ", hot-plugged" : ", probed by the EAL";
        const uint64_t lin = linearised_.load(std::memory_order_relaxed);
        const uint64_t lost = linearise_failed_.load(std::memory_order_relaxed);
        if (lin != 0 || lost != 0)
            d += fmt::format(", {} chained frames copied, {} dropped for want of memory", lin, lost);
        return d + ")";
    }

private:
    static uint64_t since(uint64_t now, uint64_t base) noexcept { return now >= base ? now - base : 0; }

    Result<void> find_or_probe()
    {
        if (rte_eth_dev_get_port_by_name(devargs_.c_str(), &port_) == 0)
            return {};
        // A virtual device's name is what precedes its first argument.
        const std::string name = devargs_.substr(0, devargs_.find(','));
        if (rte_eth_dev_get_port_by_name(name.c_str(), &port_) == 0) {
            std::fprintf(stderr, "weir: dpdk:%s: port %s already exists: using it with the device arguments it "
                         "was probed with\n", devargs_.c_str(), name.c_str());
            return {};
        }
        std::vector<bool> before(RTE_MAX_ETHPORTS, false);
        for (uint16_t p = rte_eth_find_next(0); p < RTE_MAX_ETHPORTS; p = rte_eth_find_next(p + 1))
            before[p] = true;
        const int rc = rte_dev_probe(devargs_.c_str());
        if (rc < 0)
            return dpdk_error(rc, devargs_,
                              fmt::format("probing the device failed ({}): unknown driver, bad device arguments, or "
                                          "a PCI device the EAL does not scan (--no-pci) or that is not bound to "
                                          "vfio-pci/uio; see the EAL log above",
                                          rte_strerror(-rc)));
        // The port is named after the device for virtual devices; PCI
        // addresses are normalised, and some drivers add ports of their own:
        // take the first port the probe created.
        bool found = rte_eth_dev_get_port_by_name(name.c_str(), &port_) == 0;
        for (uint16_t p = rte_eth_find_next(0); !found && p < RTE_MAX_ETHPORTS; p = rte_eth_find_next(p + 1))
            if (!before[p]) {
                port_ = p;
                found = true;
            }
        rte_eth_dev_info info{};
        if (found && rte_eth_dev_info_get(port_, &info) == 0 && info.device != nullptr) {
            dev_name_ = rte_dev_name(info.device);
            bus_ = rte_bus_name(rte_dev_bus(info.device));
            hotplugged_ = true;
            return {};
        }
        // Probed, but no ethdev port came of it: undo the probe.
        if (rte_eal_hotplug_remove("vdev", name.c_str()) != 0)
            rte_eal_hotplug_remove("pci", name.c_str());
        return dpdk_error(ENODEV, devargs_, fmt::format("device {} was probed but did not become an ethdev port", name));
    }

    Result<void> claim()
    {
        char name[RTE_ETH_NAME_MAX_LEN] = {};
        if (rte_eth_dev_get_name_by_port(port_, name) == 0)
            port_name_ = name;
        else
            port_name_ = devargs_;
        int rc = rte_eth_dev_owner_new(&owner_id_);
        if (rc < 0)
            return dpdk_error(rc, devargs_, "cannot allocate an ethdev owner");
        rte_eth_dev_owner owner{};
        owner.id = owner_id_;
        std::snprintf(owner.name, sizeof owner.name, "weir-%d", int(getpid()));
        rc = rte_eth_dev_owner_set(port_, &owner);
        if (rc < 0) {
            rte_eth_dev_owner cur{};
            rte_eth_dev_owner_get(port_, &cur);
            return dpdk_error(rc == -EPERM ? EBUSY : rc, devargs_,
                              fmt::format("port {} ({}) is already in use (owner '{}')", port_, port_name_, cur.name));
        }
        owned_ = true;
        return {};
    }

    Result<void> configure(const std::vector<uint32_t>& wanted)
    {
        rte_eth_dev_info info{};
        int rc = rte_eth_dev_info_get(port_, &info);
        if (rc < 0)
            return dpdk_error(rc, devargs_, "rte_eth_dev_info_get failed");
        driver_ = info.driver_name != nullptr ? info.driver_name : "?";

        const size_t nq = wanted.empty() ? size_t(opt_.dpdk_rx_queues) : wanted.size();
        if (nq == 0)
            return invalid(fmt::format("dpdk:{}: zero RX queues requested", devargs_));
        if (nq > info.max_rx_queues)
            return invalid(fmt::format("dpdk:{}: {} RX queues requested but port {} ({}) has at most {}", devargs_, nq,
                                       port_name_, driver_, info.max_rx_queues));
        std::vector<bool> seen(nq, false);
        for (uint32_t q : wanted) {
            if (q >= nq || seen[q])
                return invalid(fmt::format("dpdk:{}: RX queue {} out of range: weir configures port {} with {} "
                                           "queue(s), so the queue list must be 0..{} (driver maximum {})",
                                           devargs_, q, port_name_, nq, nq - 1, info.max_rx_queues));
            seen[q] = true;
        }
        for (size_t q = 0; q < nq; ++q)
            queues_.push_back(uint16_t(q));

        rte_eth_conf conf{};
        if (nq > 1) {
            rss_hf_ = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
            if (rss_hf_ != 0) {
                conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf_;
                rss_key_ = symmetric_rss_key(info.hash_key_size != 0 ? info.hash_key_size : 40);
                conf.rx_adv_conf.rss_conf.rss_key = rss_key_.data();
                conf.rx_adv_conf.rss_conf.rss_key_len = uint8_t(rss_key_.size());
            }
        }
        const uint16_t ntx = info.max_tx_queues > 0 ? 1 : 0;
        rc = rte_eth_dev_configure(port_, uint16_t(nq), ntx, &conf);
        if (rc < 0)
            return dpdk_error(rc, devargs_, fmt::format("rte_eth_dev_configure({} RX, {} TX queues) failed", nq, ntx));
        configured_ = true;

        nb_rxd_ = kRxDescriptors;
        uint16_t nb_txd = kTxDescriptors;
        rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_, &nb_rxd_, &nb_txd);
        if (rc < 0)
            return dpdk_error(rc, devargs_, "rte_eth_dev_adjust_nb_rx_tx_desc failed");

        int socket = rte_eth_dev_socket_id(port_);
        if (socket < 0)
            socket = SOCKET_ID_ANY;
        const uint64_t need = uint64_t(nq) * (nb_rxd_ + kMaxBurst) + uint64_t(ntx) * nb_txd + 2ULL * kPoolCache;
        const uint32_t n_mbufs = uint32_t(std::max<uint64_t>(opt_.dpdk_mbufs, need));
        const std::string pool_name = fmt::format("weir{}_{}", port_, eal().pools_made++);
        pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), n_mbufs, kPoolCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
        if (pool_ == nullptr)
            return dpdk_error(rte_errno ? rte_errno : ENOMEM, devargs_,
                              fmt::format("cannot create a pool of {} mbufs on socket {} ({}; raise -m or add "
                                          "hugepages, or lower dpdk_mbufs)",
                                          n_mbufs, socket, rte_strerror(rte_errno)));
        for (uint16_t q : queues_) {
            rc = rte_eth_rx_queue_setup(port_, q, nb_rxd_, unsigned(socket), nullptr, pool_);
            if (rc < 0)
                return dpdk_error(rc, devargs_, fmt::format("RX queue {} setup ({} descriptors) failed", q, nb_rxd_));
        }
        for (uint16_t q = 0; q < ntx; ++q) {
            rc = rte_eth_tx_queue_setup(port_, q, nb_txd, unsigned(socket), nullptr);
            if (rc < 0)
                return dpdk_error(rc, devargs_, "TX queue setup failed");
        }
        if (opt_.promisc) {
            rc = rte_eth_promiscuous_enable(port_);
            if (rc < 0 && rc != -ENOTSUP)
                std::fprintf(stderr, "weir: dpdk:%s: cannot enable promiscuous mode: %s\n", devargs_.c_str(),
                             rte_strerror(-rc));
        }
        rc = rte_eth_dev_start(port_);
        if (rc < 0)
            return dpdk_error(rc, devargs_, "rte_eth_dev_start failed");
        started_ = true;
        rte_eth_stats_reset(port_); // not every driver can: the baseline covers the rest
        rte_eth_stats_get(port_, &base_);
        return {};
    }

    void free_held() noexcept
    {
        if (held_n_ != 0)
            rte_pktmbuf_free_bulk(held_, held_n_);
        held_n_ = 0;
    }

    uint32_t poll_round(uint32_t n) noexcept
    {
        uint32_t got = 0;
        const size_t k = queues_.size();
        for (size_t j = 0; j < k && got < n; ++j)
            got += rte_eth_rx_burst(port_, queues_[(next_q_ + j) % k], held_ + got, uint16_t(n - got));
        next_q_ = (next_q_ + 1) % k;
        return got;
    }

    /// A view's reader thread, seen for the first time: registered with the
    /// EAL (an lcore id of its own), so that the mbuf pool gives it a
    /// per-lcore cache instead of taking every mbuf from the shared ring,
    /// which the queue threads would otherwise contend on. Without a free
    /// lcore id it runs uncached, which only costs speed.
    void register_thread() noexcept
    {
        // The lcore id goes back to the EAL when the thread ends.
        struct Registration {
            bool tried = false, registered = false;
            ~Registration()
            {
                if (registered)
                    rte_thread_unregister();
            }
        };
        thread_local Registration reg;
        if (reg.tried)
            return;
        reg.tried = true;
        reg.registered = rte_thread_register() == 0;
        if (!reg.registered)
            std::fprintf(stderr, "weir: dpdk:%s@%u: reader thread not registered with the EAL (%s): mbufs uncached\n",
                         port_name_.c_str(), unsigned(queues_.front()), rte_strerror(rte_errno));
    }

    /// Makes room for `bytes` of chained frames in this burst's arena.
    bool arena_reserve(size_t bytes) noexcept
    {
        if (bytes <= arena_cap_)
            return true;
        auto* p = new (std::nothrow) uint8_t[bytes];
        if (p == nullptr)
            return false;
        delete[] arena_;
        arena_ = p;
        arena_cap_ = bytes;
        return true;
    }

    uint32_t fill(RawPacket* out, uint32_t got) noexcept
    {
        const uint64_t ts = wall_clock_ns();
        const uint32_t snap = opt_.snaplen != 0 ? opt_.snaplen : UINT32_MAX;
        size_t chained = 0;
        for (uint32_t i = 0; i < got; ++i)
            if (held_[i]->nb_segs > 1)
                chained += std::min(rte_pktmbuf_pkt_len(held_[i]), snap);
        const bool arena_ok = chained == 0 || arena_reserve(chained);
        size_t used = 0;
        uint32_t n = 0;
        for (uint32_t i = 0; i < got; ++i) {
            rte_mbuf* m = held_[i];
            const uint32_t len = rte_pktmbuf_pkt_len(m);
            const uint32_t cap = std::min(len, snap);
            const uint8_t* data;
            if (m->nb_segs == 1) {
                data = rte_pktmbuf_mtod(m, const uint8_t*);
            } else if (arena_ok) {
                uint8_t* dst = arena_ + used;
                uint32_t left = cap;
                for (const rte_mbuf* seg = m; seg != nullptr && left != 0; seg = seg->next) {
                    const uint32_t c = std::min<uint32_t>(seg->data_len, left);
                    std::memcpy(dst, rte_pktmbuf_mtod(seg, const uint8_t*), c);
                    dst += c;
                    left -= c;
                }
                data = arena_ + used;
                used += cap;
                linearised_.fetch_add(1, std::memory_order_relaxed);
            } else {
                linearise_failed_.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            out[n++] = RawPacket{data, cap, len, ts, 1};
        }
        return n;
    }

    std::string devargs_;
    LiveOptions opt_;
    uint16_t port_ = RTE_MAX_ETHPORTS;
    std::string port_name_, dev_name_, bus_, driver_;
    uint64_t owner_id_ = 0;
    bool hotplugged_ = false, owned_ = false, configured_ = false, started_ = false;
    rte_mempool* pool_ = nullptr;
    std::vector<uint16_t> queues_;
    uint16_t nb_rxd_ = 0;
    uint64_t rss_hf_ = 0;
    std::vector<uint8_t> rss_key_;
    rte_eth_stats base_{};

    // Fast path (reader thread only).
    rte_mbuf* held_[kMaxBurst] = {};
    uint32_t held_n_ = 0;
    size_t next_q_ = 0;
    uint8_t* arena_ = nullptr;
    size_t arena_cap_ = 0;
    std::atomic<uint64_t> linearised_{0};
    std::atomic<uint64_t> linearise_failed_{0};

    // Per-queue view: the port's owner, and what this view delivered.
    std::shared_ptr<DpdkSource> parent_;
    bool port_drops_ = false;
    std::atomic<uint64_t> view_packets_{0};
    std::atomic<uint64_t> view_bytes_{0};

};

} // namespace

Result<void> dpdk_init(const LiveOptions& opt)
{
    EalState& s = eal();
    std::lock_guard lk(s.mu);
    return eal_init_locked(s, opt);
}

Result<std::unique_ptr<PacketSource>> open_dpdk(const std::string& devargs, const std::vector<uint32_t>& queues,
                                                const LiveOptions& opt)
{
    if (devargs.empty())
        return invalid("dpdk: empty device (expected dpdk:<vdev string | PCI address | port name>)");
    EalState& s = eal();
    std::unique_ptr<DpdkSource> src;
    Result<void> r;
    {
        std::lock_guard lk(s.mu);
        r = eal_init_locked(s, opt);
        if (!r)
            return r.error();
        src = std::make_unique<DpdkSource>(devargs, opt);
        r = src->open(queues);
    }
    if (!r)
        return r.error(); // src's destructor (under the lock) undoes what open() did
    return std::unique_ptr<PacketSource>(std::move(src));
}

Result<std::vector<std::unique_ptr<PacketSource>>> open_dpdk_queues(const std::string& devargs,
                                                                    const std::vector<uint32_t>& queues,
                                                                    const LiveOptions& opt)
{
    auto port = open_dpdk(devargs, queues, opt);
    if (!port)
        return port.error();
    // The port's owner lives on as the views' parent; it is never read itself.
    std::shared_ptr<DpdkSource> owner(static_cast<DpdkSource*>(port.value().release()));
    std::vector<std::unique_ptr<PacketSource>> out;
    const std::vector<uint16_t>& qs = owner->rx_queues();
    for (size_t i = 0; i < qs.size(); ++i)
        out.push_back(std::make_unique<DpdkSource>(owner, qs[i], i == 0));
    return out;
}

std::vector<std::string> dpdk_port_names()
{
    EalState& s = eal();
    std::lock_guard lk(s.mu);
    std::vector<std::string> out;
    if (!s.up)
        return out;
    for (uint16_t p = rte_eth_find_next(0); p < RTE_MAX_ETHPORTS; p = rte_eth_find_next(p + 1)) {
        char name[RTE_ETH_NAME_MAX_LEN] = {};
        if (rte_eth_dev_get_name_by_port(p, name) == 0)
            out.emplace_back(name);
    }
    return out;
}

} // namespace weir::dataplane
