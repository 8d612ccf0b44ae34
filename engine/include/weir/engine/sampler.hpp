// Packet sampling before the flow table (RFC 5475 packet selection).
//
// A PacketSampler decides, packet by packet, which of the packets a reader
// has keyed go on to the flow table; the others are only counted. One
// sampler belongs to one reader (one capture source, or one RX queue in
// per-queue mode): no shared state, no atomics, a few instructions per
// packet.
//
// Two selection schemes, both 1 in N:
// - systematic count-based (RFC 5475 s.5.1, the default): the 1st, the
//   N+1st, the 2N+1st ... packet; of `c` packets exactly ceil(c / N) are
//   taken;
// - random 1-out-of-N (RFC 5475 s.5.2.1, n-out-of-N with n = 1, Cisco's
//   "random sampled NetFlow"): one packet at a random position in every
//   window of N consecutive packets; of `c` packets floor(c / N) or
//   ceil(c / N) are taken. Unlike systematic sampling it cannot lock onto
//   a periodic traffic pattern.
//
// Flow counters then count the selected packets only: a collector that knows
// the interval (NetFlow v5 header, v9/IPFIX options records, docs/export.md)
// multiplies them by N.
#pragma once

#include <cstdint>

namespace weir::engine {

struct SamplingConfig {
    uint32_t interval = 1; ///< N: 1 in N packets; 0 and 1 = every packet
    bool random = false;   ///< random 1-out-of-N instead of systematic count-based
    uint64_t seed = 0;     ///< random mode: generator seed (0 = a fixed default)
};

class PacketSampler {
public:
    explicit PacketSampler(const SamplingConfig& c = {}) noexcept
        : n_(c.interval > 1 ? c.interval : 1), random_(c.random),
          state_(c.seed ? c.seed : 0x9e3779b97f4a7c15ULL)
    {
        if (random_ && n_ > 1)
            pick_ = next_pick();
    }

    /// True when sampling is on (N > 1).
    [[nodiscard]] bool active() const noexcept { return n_ > 1; }
    [[nodiscard]] uint32_t interval() const noexcept { return n_; }

    /// Called once per candidate packet, in order: true when it is taken.
    bool take() noexcept
    {
        if (n_ == 1)
            return true;
        const bool t = pos_ == pick_;
        if (++pos_ == n_) {
            pos_ = 0;
            if (random_)
                pick_ = next_pick();
        }
        return t;
    }

private:
    /// Uniform position in [0, N): splitmix64, scaled by multiply-shift.
    uint32_t next_pick() noexcept
    {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        return static_cast<uint32_t>(((z >> 32) * n_) >> 32);
    }

    uint32_t n_;
    bool random_;
    uint64_t state_;
    uint32_t pos_ = 0;  ///< position in the current window of N
    uint32_t pick_ = 0; ///< the window's selected position
};

} // namespace weir::engine
