// AF_XDP ring and UMEM sizes (see weir/dataplane/xdp_sizing.hpp).
#include <weir/dataplane/xdp_sizing.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <system_error>

namespace weir::dataplane {

namespace {

Error invalid(std::string what)
{
    return Error{std::make_error_code(std::errc::invalid_argument), std::move(what)};
}

std::string mib(uint64_t bytes)
{
    return bytes % (1u << 20) == 0 ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{:.1f} MiB", double(bytes) / (1u << 20));
}

} // namespace

std::string XdpSizing::describe() const
{
    return fmt::format("rings of {} entries, UMEM {} x {} B = {} per queue ({} queue{}, {} in all)", ring_size,
                       umem_frames, frame_size, mib(umem_bytes()), queues, queues == 1 ? "" : "s",
                       mib(umem_bytes() * queues));
}

Result<XdpSizing> xdp_sizing(const std::string& ifname, const LiveOptions& opt, uint32_t queues, uint64_t ram_bytes)
{
    const uint32_t fs = opt.xdp_frame_size;
    if (fs != 2048 && fs != 4096)
        return invalid(fmt::format("xdp:{}: frame size {} (2048 or 4096)", ifname, fs));
    const uint32_t r = opt.xdp_ring_size;
    if (r != 0 && (!std::has_single_bit(r) || r < kXdpRingMin || r > kXdpRingMax))
        return invalid(fmt::format("xdp:{}: ring size {} (a power of two from {} to {}; 0 or unset: sized by "
                                   "weir for the queue count)",
                                   ifname, r, kXdpRingMin, kXdpRingMax));
    const uint32_t u = opt.xdp_umem_frames;
    if (u != 0 && (u < 64 || uint64_t(u) * fs > (uint64_t(1) << 32)))
        return invalid(fmt::format("xdp:{}: {} UMEM frames (at least 64, at most 4 GiB per queue: {} frames of {} "
                                   "bytes; 0 or unset: sized by weir)",
                                   ifname, u, (uint64_t(1) << 32) / fs, fs));

    XdpSizing s;
    s.frame_size = fs;
    s.queues = std::max<uint32_t>(queues, 1);
    s.ring_default = r == 0;
    s.umem_default = u == 0;
    s.ring_size = r;
    s.umem_frames = u;
    const auto default_umem = [](uint32_t ring) { return std::max(ring, kXdpUmemAutoMin); };
    if (s.ring_default) {
        uint32_t ring = std::max(kXdpRingAutoMin, std::bit_floor(kXdpRingOneQueue / s.queues));
        if (!s.umem_default)
            ring = std::min(ring, std::max(kXdpRingMin, std::bit_floor(u)));
        const uint64_t budget = ram_bytes / kXdpRamShare;
        const auto total = [&](uint32_t rg) {
            return uint64_t(s.queues) * (s.umem_default ? default_umem(rg) : u) * fs;
        };
        while (s.umem_default && ram_bytes != 0 && ring > kXdpRingAutoMin && total(ring) > budget)
            ring /= 2;
        s.ring_size = ring;
    }
    if (s.umem_default)
        s.umem_frames = default_umem(s.ring_size);
    return s;
}

uint64_t physical_ram_bytes() noexcept
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

} // namespace weir::dataplane
