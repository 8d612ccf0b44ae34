// Egress policy: what to do with a flow's packets on the way to an IDS,
// from a Cento-style INI file (full syntax and semantics in docs/ids.md).
//
//   [global]                 ; aliases: [egress.balanced] [egress.aggregated] [bridge]
//   default = forward        ; forward | discard | shunt[:K] | slice[:l3|l4|N] | egress:X
//   slice = l4               ; what a bare "slice" keeps: l3 | l4 | N bytes
//   [shunt]                  ; K for a bare "shunt": L7 name > tcp/udp > default (10)
//   default = 10
//   tcp = 12
//   udp = 2
//   HTTP = 40
//   [subnet]                 ; aliases: [egress.balanced.subnet] ...
//   192.168.2/24 = discard   ; either endpoint inside; longest prefix wins
//   [protocol]               ; aliases: [egress.balanced.protocol] ...
//   TLS = shunt:5            ; nDPI names as weir exports them
//   DNS = egress:1
//
// Precedence: a protocol rule (once the L7 protocol is known) beats a
// subnet rule, which beats the default. A Policy is immutable once parsed;
// PolicyStore swaps whole policies so a failed reload leaves the running
// one in place. decide() does not allocate and is safe from any thread.
#pragma once

#include <weir/core/flow_key.hpp>
#include <weir/core/result.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace weir::engine {

enum class PolicyAction : uint8_t {
    Forward = 0,  ///< deliver every packet to the egress as usual
    Discard = 1,  ///< deliver nothing (the flow is still accounted and exported)
    Shunt = 2,    ///< deliver the first K packets of the flow, then nothing
    Slice = 3,    ///< deliver every packet truncated (after L3, after L4, or N bytes)
    Egress = 4,   ///< deliver every packet to another egress (index or interface)
};

[[nodiscard]] std::string_view policy_action_name(PolicyAction a) noexcept;

enum class SliceMode : uint8_t {
    L3 = 0,     ///< keep the headers up to and including the (inner) IP header
    L4 = 1,     ///< keep the headers up to and including the L4 header
    Bytes = 2,  ///< keep the first `bytes` bytes of the frame
};

struct Slice {
    SliceMode mode = SliceMode::L4;
    uint16_t bytes = 0;  ///< SliceMode::Bytes only
    friend bool operator==(const Slice&, const Slice&) = default;
};

/// Which level of the policy produced a decision.
enum class PolicyLevel : uint8_t { Default = 0, Subnet = 1, Protocol = 2 };

/// One action as written in the file.
struct PolicyRule {
    PolicyAction action = PolicyAction::Forward;
    int64_t shunt_after = -1;  ///< Shunt: explicit K, -1 = from [shunt]
    bool slice_explicit = false;
    Slice slice;               ///< Slice: when slice_explicit
    std::string egress;        ///< Egress: interface name ("" when numeric)
    int32_t egress_index = -1; ///< Egress: index, -1 when a name
    uint32_t line = 0;         ///< 0 = built-in default
};

/// What decide() returns: the rule that applied, with K and the slice
/// resolved. Valid while the Policy that made it lives.
struct Decision {
    PolicyAction action = PolicyAction::Forward;
    uint32_t shunt_after = 0;          ///< Shunt: packets delivered before bypass
    Slice slice;                       ///< Slice
    std::string_view egress;           ///< Egress by name
    int32_t egress_index = -1;         ///< Egress by index
    PolicyLevel level = PolicyLevel::Default;
    uint32_t line = 0;                 ///< rule's line in the file, 0 = built-in default
};

struct PolicyCidr {
    std::array<uint8_t, 16> addr{};  ///< as in FlowKey: IPv4 in the first 4 bytes
    uint8_t ip_version = 4;
    uint8_t prefix_len = 0;
};

/// Parses "10.0.0.0/8", Cento's short form "10.10.10/24", "2001:db8::/32" or
/// a bare address (a host). Host bits past the prefix are an error.
Result<PolicyCidr> parse_policy_cidr(std::string_view text);

class Policy {
public:
    /// Built-in policy: forward everything, K = 10, slice l4.
    Policy();

    /// Parses INI text. `origin` names it in errors ("<origin>:<line>: ...").
    static Result<Policy> parse(std::string_view text, std::string_view origin = "policy");
    /// Reads and parses a file.
    static Result<Policy> load(const std::string& path);

    /// Decision for a flow. l7: the nDPI protocol name ("TLS", "HTTP",
    /// "TLS.YouTube"); empty or "Unknown" while undetected, in which case
    /// protocol rules do not apply yet.
    [[nodiscard]] Decision decide(const FlowKey& key, std::string_view l7 = {}) const noexcept;

    /// K for a bare "shunt": [shunt] entry for l7, else tcp/udp, else default.
    [[nodiscard]] uint32_t shunt_threshold(uint8_t ip_proto, std::string_view l7) const noexcept;

    [[nodiscard]] const PolicyRule& default_rule() const noexcept { return default_; }
    [[nodiscard]] size_t subnet_rules() const noexcept { return subnets_.size(); }
    [[nodiscard]] size_t protocol_rules() const noexcept { return protocols_.size(); }
    [[nodiscard]] const std::string& origin() const noexcept { return origin_; }

private:
    struct SubnetRule {
        PolicyCidr cidr;
        PolicyRule rule;
    };
    struct NamedRule {
        std::string name;  ///< upper case
        PolicyRule rule;
    };
    struct NamedCount {
        std::string name;  ///< upper case
        uint32_t packets;
    };

    const SubnetRule* match_subnet(const FlowKey& key) const noexcept;
    const PolicyRule* match_protocol(std::string_view l7) const noexcept;
    Decision resolve(const PolicyRule& r, PolicyLevel level, uint8_t ip_proto, std::string_view l7) const noexcept;

    std::string origin_ = "built-in";
    PolicyRule default_;
    Slice slice_default_;
    uint32_t shunt_default_ = 10;
    int64_t shunt_tcp_ = -1;
    int64_t shunt_udp_ = -1;
    std::vector<NamedCount> shunt_l7_;
    std::vector<SubnetRule> subnets_;  ///< longest prefix first, then file order
    std::vector<NamedRule> protocols_;

    friend class PolicyParser;
};

/// The running policy, replaced whole on reload. current() is cheap and
/// thread-safe; a Policy obtained from it stays valid while held.
class PolicyStore {
public:
    explicit PolicyStore(Policy initial = Policy());

    [[nodiscard]] std::shared_ptr<const Policy> current() const;
    /// Loads and installs the file; on error the running policy stays.
    Result<void> reload(const std::string& path);
    Result<void> reload_text(std::string_view text, std::string_view origin = "policy");
    /// Number of successful installs (the initial one is 0). Lock-free, so
    /// a packet path can poll it and call current() only when it moved.
    [[nodiscard]] uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Policy> cur_;
    std::atomic<uint64_t> generation_{0}; ///< bumped after cur_ is replaced
};

} // namespace weir::engine
