// XskUmem (see xsk_umem.hpp).
#include "xsk_umem.hpp"

#include <fmt/format.h>

#include <cerrno>

namespace weir::dataplane::detail {

XskUmem::~XskUmem()
{
    if (umem)
        xsk_umem__delete(umem);
    if (area != MAP_FAILED)
        munmap(area, size);
}

Result<void> XskUmem::create(const XskUmemConfig& c, const std::string& what)
{
    frames = c.frames;
    frame_size = c.frame_size;
    size = size_t(c.frames) * c.frame_size;
    area = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        return from_errno(errno, fmt::format("{}: UMEM of {} bytes", what, size));
    // Huge pages where transparent huge pages are allowed: every frame
    // handed out is in a page of its own otherwise, and the TLB misses show
    // in the first read of each frame. Best effort: registration pins
    // whatever pages back the area.
    if (c.huge_pages)
        (void)madvise(area, size, MADV_HUGEPAGE);
    xsk_umem_config uc{};
    uc.fill_size = c.fill_size;
    uc.comp_size = c.comp_size;
    uc.frame_size = c.frame_size;
    uc.frame_headroom = 0;
    uc.flags = 0;
    if (const int rc = xsk_umem__create(&umem, area, size, &fill, &comp, &uc); rc != 0) {
        umem = nullptr;
        return from_errno(rc, fmt::format("{}: register UMEM ({} frames of {} bytes)", what, c.frames, c.frame_size));
    }
    return {};
}

} // namespace weir::dataplane::detail
