// EgressStage: weir's IDS mode. On the reader thread, every frame goes
// whole to one of N egress outputs (interfaces an IDS listens on), chosen
// per flow by a symmetric hash, and an optional egress policy (policy.hpp)
// decides per flow whether its packets are forwarded, discarded, shunted
// after K packets, sliced, or steered to a named egress. Semantics and
// numbers in docs/ids.md ("IDS mode").
//
// Balancing: egress = hash * N >> 32 over the decoder's canonical key, so
// both directions of a flow land on the same egress. hash_tuple 5 (the
// default) uses the flow hash of the whole key (addresses, ports,
// protocol, VLAN, tunnel id: the inner 5-tuple for tunnels, since the
// decoder keys on it); hash_tuple 2 uses the two addresses only, so every
// flow between two hosts (and every fragment, even one whose first fragment
// was never seen) goes to one egress. Frames the decoder cannot key (non-IP,
// malformed) go to egress 0 and are counted.
//
// Policy state: a bounded open-addressing table of flows (linear probing
// in a window of kProbe slots, never deleted, reused once idle past the
// idle timeout in packet time). A flow with no free slot in its window is
// counted in table_full and forwarded statelessly (balanced, whole). A
// flow's decision is made on its first packet and made again when the
// policy store's generation moves (reload); its packet count survives a
// reload, so a shunt limit counts every packet the flow had.
//
// Only subnet and default rules apply: the reader does not learn the L7
// protocol the workers detect, so [protocol] rules never match here.
#pragma once

#include <weir/core/egress.hpp>
#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/policy.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::engine {

struct EgressStageConfig {
    uint8_t hash_tuple = 5;              ///< 5: whole flow key; 2: the two addresses only
    std::vector<std::string> names;      ///< egress i's interface name (for egress:NAME rules)
    uint32_t max_flows = 1u << 20;       ///< flows with policy state at most (with a policy)
    uint64_t idle_timeout_ns = 180ULL * 1000000000ULL; ///< a slot idle this long is reused
};

/// Counters of one run; read from any thread (relaxed).
struct EgressStageStats {
    uint64_t packets = 0;        ///< frames seen
    uint64_t delivered = 0;      ///< frames handed to an egress
    uint64_t unkeyed = 0;        ///< frames the decoder could not key (sent to egress 0)
    uint64_t not_ethernet = 0;   ///< frames of a non-Ethernet link type: not sent
    uint64_t discarded = 0;      ///< packets a discard decision kept from the egress
    uint64_t shunted = 0;        ///< packets past a flow's shunt limit, not delivered
    uint64_t sliced = 0;         ///< packets delivered truncated
    uint64_t steered = 0;        ///< packets delivered to an egress:X instead of the balanced one
    uint64_t bad_egress = 0;     ///< flows whose egress:X names no egress (balanced instead)
    uint64_t flows = 0;          ///< flows given policy state
    uint64_t table_full = 0;     ///< packets of flows with no state slot (forwarded statelessly)
    uint64_t redecided = 0;      ///< flow decisions made again after a policy reload
    uint64_t policy_generation = 0; ///< generation the stage applies
    std::vector<uint64_t> egress_packets; ///< per egress: frames handed to it
    std::vector<uint64_t> egress_bytes;   ///< per egress: bytes handed to it (after slicing)
};

class EgressStage final : public ReaderTap {
public:
    /// outputs: egress 0..N-1 (not owned, must outlive the stage; 1..256).
    /// policy: null = forward everything, balanced, with no per-flow state.
    /// Errors: EINVAL (no outputs, hash_tuple not 2 or 5, max_flows 0), ENOMEM.
    static Result<std::unique_ptr<EgressStage>> create(const EgressStageConfig& cfg, std::vector<EgressOutput*> outputs,
                                                       const PolicyStore* policy = nullptr);
    ~EgressStage() override;

    void packet(const RawPacket& raw, const PacketMeta* meta) noexcept override;
    void burst_end() noexcept override;

    /// Balanced egress of a decoded packet (no policy).
    [[nodiscard]] uint32_t balance(const PacketMeta& m) const noexcept;

    [[nodiscard]] EgressStageStats stats() const;
    [[nodiscard]] size_t egress_count() const noexcept { return outputs_.size(); }

private:
    struct Entry;
    struct Counters;
    EgressStage(const EgressStageConfig& cfg, std::vector<EgressOutput*> outputs, const PolicyStore* policy);
    Entry* find_or_add(const PacketMeta& m) noexcept;
    void decide(Entry& e, const PacketMeta& m) noexcept;
    void refresh_policy() noexcept;
    void deliver(uint32_t egress, const uint8_t* data, uint32_t len) noexcept;

    EgressStageConfig cfg_;
    std::vector<EgressOutput*> outputs_;
    const PolicyStore* store_ = nullptr;
    std::shared_ptr<const Policy> policy_;
    uint64_t generation_ = 0;
    Entry* table_ = nullptr;       ///< anonymous mapping (huge pages advised), table_bytes_ long
    size_t table_bytes_ = 0;
    uint64_t mask_ = 0;
    std::unique_ptr<Counters> c_;
};

/// Bytes a slice keeps of a decoded frame (at least the Ethernet header,
/// at most caplen). Exposed for tests.
uint32_t egress_slice_length(const Slice& s, const RawPacket& raw, const PacketMeta& m) noexcept;

} // namespace weir::engine
