// AF_XDP ring and UMEM sizes: the ones weir picks when --xdp-ring-size and
// --xdp-umem-frames are not given, and the checks of given ones.
//
// A reader that is off its CPU for a while (a shared or loaded machine: tens
// of ms behind other runnable tasks) loses whatever its queue receives beyond
// what the fill ring and the RX ring can hold. With 4096-entry rings that was
// 1-4 ms of a few Mpps and the losses showed (docs/performance.md, "Live
// capture"); rings of 65536 lost nothing. So one captured queue gets rings of
// 65536 entries and as many UMEM frames (the fill ring holds every frame not
// on the RX ring or in the reader's burst, so more frames than ring entries
// would only sit unused): 256 MiB with 4096-byte frames, the size of the
// AF_PACKET ring and the libpcap buffer. Several queues share that traffic
// and that budget: the ring is divided by the queue count (rounded down to a
// power of two, never below 4096 entries, and the UMEM never below 8192
// frames, the former defaults), and halved further while all the queues'
// UMEMs together would take more than an eighth of the machine's RAM.
#pragma once

#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <cstdint>
#include <string>

namespace weir::dataplane {

inline constexpr uint32_t kXdpRingOneQueue = 65536;  ///< default ring for one captured queue
inline constexpr uint32_t kXdpRingAutoMin = 4096;    ///< default ring never below this
inline constexpr uint32_t kXdpUmemAutoMin = 8192;    ///< default UMEM frames never below this
inline constexpr uint32_t kXdpRingMin = 64;          ///< smallest ring accepted
inline constexpr uint32_t kXdpRingMax = 1u << 20;    ///< largest ring accepted
inline constexpr uint32_t kXdpRamShare = 8;          ///< default UMEMs take at most RAM / this

/// Ring and UMEM sizes for each captured queue of one interface.
struct XdpSizing {
    uint32_t ring_size = 0;    ///< RX ring of each socket and the queue's fill ring, entries
    uint32_t umem_frames = 0;  ///< UMEM frames per queue
    uint32_t frame_size = 0;   ///< bytes per frame
    uint32_t queues = 0;       ///< queues captured on the interface
    bool ring_default = false; ///< ring_size chosen by weir (not given)
    bool umem_default = false; ///< umem_frames chosen by weir (not given)

    uint64_t umem_bytes() const noexcept { return uint64_t(umem_frames) * frame_size; }  ///< per queue
    /// "rings of 65536 entries, UMEM 65536 x 4096 B = 256 MiB per queue (1 queue, 256 MiB in all)"
    std::string describe() const;
};

/// The sizes `opt` asks for on `queues` captured queues of `ifname`:
/// xdp_ring_size and xdp_umem_frames as given, or chosen as the header says
/// where they are 0; ram_bytes is the machine's memory (physical_ram_bytes()).
/// A default ring is never larger than a given UMEM's frame count (rounded
/// down to a power of two); a default UMEM never has fewer frames than a
/// given ring has entries.
/// Errors (EINVAL, naming the interface and the accepted range): a frame size
/// other than 2048 or 4096; a ring size that is not a power of two (the
/// kernel's rule) or outside 64..1048576; fewer than 64 UMEM frames or a UMEM
/// above 4 GiB per queue (UMEM offsets are 32-bit).
Result<XdpSizing> xdp_sizing(const std::string& ifname, const LiveOptions& opt, uint32_t queues, uint64_t ram_bytes);

/// Physical memory (sysconf); 0 if unknown (no RAM bound then).
uint64_t physical_ram_bytes() noexcept;

} // namespace weir::dataplane
