// VerdictMap: the kernel maps of per-flow and per-subnet IDS verdicts
// (layout and rules in weir/abi/verdict.h), owned by user space.
//
// create() makes the two maps with bpf_map_create(), or, with a pin
// directory, opens <dir>/weir_verdicts and <dir>/weir_subnet_verdicts when
// they exist (checking type and sizes) and creates and pins them when they
// do not. The XDP program gets the descriptors through fd()/subnet_fd()
// (bpf_map__reuse_fd before load) or through the pins.
//
// Capacity: the flow map is an LRU hash so that the kernel never fails a
// lookup path, but a verdict silently evicted would be a DROP forgotten.
// VerdictMap therefore counts its entries (only user space inserts and
// deletes) and refuses a new flow with ENOSPC ("table full") once
// max_flows are installed; the kernel map gets headroom beyond max_flows
// (256 per possible CPU) because the LRU may start evicting before it is
// completely full (per-CPU free lists). One VerdictMap per map: two
// processes writing the same pinned map would each count only their own.
//
// Not thread-safe: one thread (the verdict server's) owns it; the XDP
// program only updates counters in place.
#pragma once

#include <weir/abi/verdict.h>
#include <weir/core/flow_key.hpp>
#include <weir/core/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace weir::dataplane {

using Verdict = weir_verdict;
static_assert(sizeof(Verdict) == 104, "weir_verdict layout");
static_assert(offsetof(Verdict, last_ns) == 56 && offsetof(Verdict, undelivered) == 64 &&
                  offsetof(Verdict, ba_undelivered_bytes) == 88 && offsetof(Verdict, undelivered_tcp_flags) == 96,
              "weir_verdict: append only");
static_assert(sizeof(weir_subnet_key) == 24, "weir_subnet_key layout");

/// True when this build has libbpf and the verdict maps (WEIR_HAVE_VERDICTS).
[[nodiscard]] bool verdicts_supported() noexcept;

/// An IPv4 or IPv6 prefix; addr as in FlowKey (IPv4 in the first 4 bytes),
/// bits past the prefix zero.
struct Subnet {
    std::array<uint8_t, 16> addr{};
    uint8_t ip_version = 4;
    uint8_t prefix_len = 32;

    friend bool operator==(const Subnet&, const Subnet&) = default;
};

/// Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a host: /32,
/// /128). Errors (EINVAL) on a bad address, a prefix out of range or host
/// bits set past the prefix.
Result<Subnet> parse_subnet(std::string_view text);
/// "10.0.0.0/8".
std::string format_subnet(const Subnet& s);
/// Text form of a 16-byte address of the given IP version.
std::string format_address(const std::array<uint8_t, 16>& addr, uint8_t ip_version);

weir_subnet_key to_subnet_key(const Subnet& s) noexcept;
Subnet from_subnet_key(const weir_subnet_key& k) noexcept;

struct VerdictMapOptions {
    uint32_t max_flows = WEIR_VERDICT_DEFAULT_MAX;          ///< flow verdicts accepted at most
    uint32_t max_subnets = WEIR_SUBNET_VERDICT_DEFAULT_MAX;  ///< subnet verdicts at most
    std::string pin_dir;  ///< bpffs directory: reuse or create pins there; empty = no pins
};

struct FlowVerdict {
    FlowKey key;
    Verdict verdict;
};

struct SubnetVerdict {
    Subnet subnet;
    Verdict verdict;
};

struct VerdictCounts {
    size_t flows = 0;
    size_t subnets = 0;
    uint32_t max_flows = 0;
    uint32_t max_subnets = 0;
};

class VerdictMap {
public:
    static Result<VerdictMap> create(const VerdictMapOptions& opts);

    VerdictMap(VerdictMap&& o) noexcept;
    VerdictMap& operator=(VerdictMap&& o) noexcept;
    VerdictMap(const VerdictMap&) = delete;
    VerdictMap& operator=(const VerdictMap&) = delete;
    ~VerdictMap();

    /// Flow map and subnet trie descriptors, for the XDP program.
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] int subnet_fd() const noexcept { return subnet_fd_; }

    /// Installs or replaces one flow verdict (a replacement zeroes the
    /// counters). ENOSPC "table full" when max_flows are installed.
    Result<void> install(const FlowKey& key, const Verdict& v);
    /// Installs keys[i] -> values[i] with bpf_map_update_batch. Returns how
    /// many were installed; on "table full" the ones before the failing
    /// element are installed (and reported in the error text).
    Result<size_t> install_batch(std::span<const FlowKey> keys, std::span<const Verdict> values);
    /// Removes a flow verdict and returns its final value (counters
    /// included); nullopt when there was none.
    Result<std::optional<Verdict>> remove(const FlowKey& key);
    Result<std::optional<Verdict>> lookup(const FlowKey& key) const;
    /// Every flow verdict (batch dump).
    Result<std::vector<FlowVerdict>> list() const;
    /// Removes every flow and subnet verdict with 0 < expires_ns <= now and
    /// returns their final values. Cheap when nothing can have expired yet
    /// (the earliest expiry installed is remembered); otherwise one batch
    /// dump of the flow map.
    Result<std::vector<FlowVerdict>> expire(uint64_t now_ns, std::vector<SubnetVerdict>* subnets = nullptr);

    Result<void> add_subnet(const Subnet& s, const Verdict& v);
    Result<std::optional<Verdict>> del_subnet(const Subnet& s);
    Result<std::optional<Verdict>> lookup_subnet(const Subnet& s) const;  ///< exact prefix
    Result<std::vector<SubnetVerdict>> list_subnets() const;

    [[nodiscard]] VerdictCounts counts() const noexcept;

    /// CLOCK_MONOTONIC in ns: the clock of expires_ns (bpf_ktime_get_ns()).
    static uint64_t now_ns() noexcept;

private:
    VerdictMap() = default;
    void close_fds() noexcept;
    Result<size_t> count_entries(int fd, size_t key_size) const;

    int fd_ = -1;
    int subnet_fd_ = -1;
    uint32_t max_flows_ = 0;
    uint32_t max_subnets_ = 0;
    size_t flows_ = 0;
    size_t subnets_ = 0;
    bool exact_ = true;  ///< flows_ is the exact count (else an upper bound)
    uint64_t next_expiry_ = UINT64_MAX;  ///< no entry expires before this
};

/// Packets of one flow that the XDP program kept from weir's capture
/// (DROP, SHUNT past its threshold, DIVERT) since the previous report.
struct UndeliveredDelta {
    FlowKey key;
    std::array<uint64_t, 2> packets{}; ///< [0] sent by side A of the key, [1] by side B
    std::array<uint64_t, 2> bytes{};   ///< wire bytes, same directions
    std::array<uint8_t, 2> tcp_flags{}; ///< TCP flags of undelivered packets not reported before, same directions
    uint64_t last_ns = 0;              ///< CLOCK_MONOTONIC of the entry's last matched packet (0 = none)
};

/// Turns the undelivered counters of flow verdict entries into deltas for
/// the flow engine (Pipeline::account): it remembers, per key, what it
/// has already reported. Subnet and host verdicts have no flow key and are
/// not reported (their counters stay in the entry).
///
/// poll() (a timer thread) and removed() (the verdict server's thread, on
/// "del" and on the expiry sweep) may run concurrently: poll() dumps the
/// map under the lock, so an entry is reported by exactly one of them for
/// every packet. A reinstall (installed_ns changed) restarts the counters
/// from zero: what the old entry counted after the last poll is lost. TCP
/// flags are reported once per entry and direction: a bit goes with the
/// first delta that finds it set, so a flow record never gets a flag its
/// interval did not see (a later record after an active timeout does not
/// get it again). A
/// key missing from three polls in a row (removed by someone who did not
/// report it) is forgotten.
class VerdictAccounting {
public:
    /// Every flow entry of `map` (one batch dump) compared with what was
    /// reported before; returns the flows that grew.
    Result<std::vector<UndeliveredDelta>> poll(const VerdictMap& map);
    /// The same for a list of entries read elsewhere (tests, poll()).
    std::vector<UndeliveredDelta> update(std::span<const FlowVerdict> entries);
    /// Entries removed from the map, with their final values: what they
    /// gained since the last report; the keys are then forgotten.
    std::vector<UndeliveredDelta> removed(std::span<const FlowVerdict> entries);
    /// Keys remembered.
    [[nodiscard]] size_t tracked() const;

    /// A CLOCK_MONOTONIC time (bpf_ktime_get_ns) as wall-clock ns since the
    /// epoch (the packet time of a live capture), by the current offset
    /// between the two clocks; 0 maps to now.
    static uint64_t wall_ns(uint64_t mono_ns) noexcept;

private:
    struct Seen {
        uint64_t installed_ns = 0;
        std::array<uint64_t, 2> packets{}; ///< reported so far, per direction
        std::array<uint64_t, 2> bytes{};
        std::array<uint8_t, 2> tcp_flags{}; ///< reported so far, per direction
        uint32_t missing = 0;              ///< polls in a row without the key
    };
    struct KeyHash {
        size_t operator()(const FlowKey& k) const noexcept { return flow_hash(k); }
    };
    bool diff(const FlowVerdict& fv, Seen& s, UndeliveredDelta& out) const noexcept;
    std::vector<UndeliveredDelta> update_locked(std::span<const FlowVerdict> entries);

    mutable std::mutex mu_;
    std::unordered_map<FlowKey, Seen, KeyHash> seen_;
};

} // namespace weir::dataplane
