// Bridge: the inline bridge of `weir --bridge ifA:ifB` (XDP program
// ebpf/src/weir_bridge.bpf.c, ABI weir/abi/bridge.h).
//
// The program is attached to both ports with netlink (bpf_xdp_attach, not a
// bpf_link), so the attachment belongs to the interface, not to this
// process: when weir stops or dies the bridge keeps forwarding (fail open)
// with the verdict maps it was loaded with, until `weirctl bridge detach`
// or the next weir replaces it. Fail closed: stop() replaces the program by
// weir_br_drop on both ports, and a watchdog in the program drops every
// frame once weir's heartbeat (heartbeat(), about every second) is older
// than Config::watchdog_ns, which covers a weir that was killed.
//
// Verdicts: the flow and subnet verdict maps of weir/abi/verdict.h
// (VerdictMap), reused by fd before load as XdpProgram does: DROP and SHUNT
// past its threshold drop, DIVERT sends to Config::egress_ifaces[egress],
// FORWARD and misses are bridged. docs/ids.md "Inline bridge".
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::dataplane {

/// One direction of the bridge (frames that entered on one port), all CPUs summed.
struct BridgeCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t forwarded = 0;        ///< redirected to the other port
    uint64_t diverted = 0;         ///< DIVERT: redirected to an egress port
    uint64_t divert_failed = 0;    ///< DIVERT to an empty egress slot: bridged instead (in forwarded too)
    uint64_t dropped = 0;          ///< verdict_drop + verdict_shunt + watchdog_drop
    uint64_t redirect_errors = 0;  ///< redirect refused: dropped
    uint64_t unparsed = 0;         ///< verdicts on, no flow key: bridged without a lookup
    uint64_t verdict_drop = 0;
    uint64_t verdict_shunt = 0;
    uint64_t watchdog_drop = 0;    ///< fail closed, weir's heartbeat stale
};

enum class BridgeFail : uint8_t { Open, Closed };

class Bridge {
public:
    struct Config {
        std::string if_a, if_b;
        BridgeFail fail = BridgeFail::Open;
        LiveOptions::XdpMode mode = LiveOptions::XdpMode::Auto;
        uint64_t watchdog_ns = 3'000'000'000ULL;  ///< fail closed: heartbeat age that stops forwarding
        int verdict_map_fd = -1;                  ///< VerdictMap::fd(); >= 0 turns verdicts on
        int subnet_verdict_map_fd = -1;           ///< VerdictMap::subnet_fd(); needed with verdict_map_fd
        std::vector<std::string> egress_ifaces{}; ///< DIVERT egress i = egress_ifaces[i]
        uint32_t max_flows = 0;                   ///< > 0: per-flow accounting in a kernel LRU of this size
    };

    /// Loads the programs (verifier) for cfg; nothing is attached yet.
    /// Errors: EINVAL (same interface twice, only one verdict map, a wrong
    /// map descriptor, egress without verdicts or too many), ENODEV (an
    /// interface does not exist), EPERM, and what libbpf reports.
    static Result<std::unique_ptr<Bridge>> load(const Config& cfg);

    /// Leaves the attachments alone (see stop()).
    ~Bridge();
    Bridge(const Bridge&) = delete;
    Bridge& operator=(const Bridge&) = delete;

    /// Attaches weir_bridge to both ports. A weir bridge program left on a
    /// port by an earlier run (forwarding or fail-closed) is replaced
    /// atomically, in the mode it had; any other XDP program is EBUSY and
    /// left in place. On a native veth port whose peer is in this
    /// namespace and has no XDP program, weir_br_pass is attached to the
    /// peer (the kernel drops frames redirected into a veth whose peer has
    /// neither an XDP program nor GRO). Messages about the set-up (the mode
    /// used, a veth peer in another namespace) are appended to notes.
    Result<void> attach(std::vector<std::string>* notes = nullptr);

    /// Fail closed: records that weir is alive (the watchdog's clock).
    void heartbeat() noexcept;

    /// What weir does when it stops: fail open leaves the bridge attached
    /// and forwarding; fail closed replaces it by weir_br_drop on both ports.
    Result<void> stop();

    /// Detaches every weir bridge program from both ports (and weir_br_pass
    /// from their veth peers in this namespace); a no-op where none is.
    Result<void> detach();

    /// Flow accounting (Config::max_flows > 0): appends to out a record for
    /// every flow in the kernel map idle for idle_ns, whose first packet is
    /// active_ns old, or every flow with all, and deletes those entries (a
    /// packet landing between the read and the delete is lost to the
    /// records). Times are converted to CLOCK_REALTIME; end_reason says
    /// which rule ended the flow (ForcedEnd with all). Returns how many.
    Result<size_t> collect_flows(uint64_t idle_ns, uint64_t active_ns, bool all, std::vector<FlowRecord>& out);

    /// Counters of the frames that entered on port 0 (ifA) or 1 (ifB).
    [[nodiscard]] BridgeCounters counters(uint32_t port) const noexcept;

    [[nodiscard]] int prog_fd() const noexcept;
    [[nodiscard]] uint32_t ifindex(uint32_t port) const noexcept;
    [[nodiscard]] const Config& config() const noexcept;

    /// Removes weir's bridge programs from ifA and ifB whoever loaded them
    /// (`weirctl bridge detach`). Errors: ENODEV, EBUSY (a program that is
    /// not weir's is attached: left alone), ENOENT (no weir bridge on either).
    static Result<void> detach_ports(const std::string& if_a, const std::string& if_b);

    /// The ports and counters of the bridge program attached to ifname, read
    /// through the program's maps (works after the weir that attached it is
    /// gone).
    /// Errors: ENODEV, ENOENT (no weir bridge attached; the text says when
    /// the fail-closed drop program is there instead).
    struct Attached {
        std::array<uint32_t, 2> ifindex{};         ///< the program's ports 0 and 1 (its DEVMAP)
        std::array<BridgeCounters, 2> counters{};  ///< by ingress port
    };
    static Result<Attached> attached(const std::string& ifname);

private:
    struct Impl;
    explicit Bridge(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// "packets 12 bytes 1200 forwarded 10 diverted 0 ..." (every field, this order).
std::string bridge_counters_text(const BridgeCounters& c);
/// {"packets":12,"bytes":1200,...} (the same fields).
std::string bridge_counters_json(const BridgeCounters& c);

/// "ifA:ifB" into its two names. Errors: EINVAL.
Result<std::array<std::string, 2>> parse_bridge_ports(const std::string& spec);

} // namespace weir::dataplane
