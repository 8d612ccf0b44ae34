// XskUmem: one AF_XDP UMEM (an anonymous mapping of equal frames registered
// with the kernel, with its fill and completion rings) and the EBUSY retry
// of a socket bind. Shared by the capture sockets (afxdp.cpp) and the
// transmit sockets (xsk_tx.cpp); private to weir::dataplane.
#pragma once

#include <weir/core/result.hpp>

#include <xdp/xsk.h>

#include <sys/mman.h>

#include <cstdint>
#include <ctime>
#include <string>

namespace weir::dataplane::detail {

struct XskUmemConfig {
    uint32_t frames = 0;       ///< frames in the UMEM
    uint32_t frame_size = 0;   ///< bytes per frame (2048 or 4096)
    uint32_t fill_size = 64;   ///< fill ring entries (a power of two)
    uint32_t comp_size = 64;   ///< completion ring entries (a power of two)
    bool huge_pages = false;   ///< advise transparent huge pages for the area
};

class XskUmem {
public:
    XskUmem() = default;
    XskUmem(const XskUmem&) = delete;
    XskUmem& operator=(const XskUmem&) = delete;
    ~XskUmem();

    /// Maps the area and registers it. `what` names the owner in errors
    /// ("xdp:eth0@3", "egress eth1").
    /// Errors: ENOMEM (the mapping), the kernel's registration errors
    /// (ENOMEM, EPERM, EINVAL for sizes it refuses).
    Result<void> create(const XskUmemConfig& c, const std::string& what);

    [[nodiscard]] uint8_t* data(uint64_t addr) const noexcept { return static_cast<uint8_t*>(area) + addr; }

    void* area = MAP_FAILED;
    size_t size = 0;
    uint32_t frames = 0;
    uint32_t frame_size = 0;
    xsk_umem* umem = nullptr;
    xsk_ring_prod fill{};
    xsk_ring_cons comp{};
};

/// Calls `build` (returning Result<void>) again while it fails with EBUSY,
/// every 20 ms for up to a second: the kernel frees a queue's buffer pool
/// only after the teardown of the socket that last used it, so a quick
/// restart finds the queue busy for a moment. A queue still busy after that
/// is an error that says another AF_XDP socket holds it.
template <class F>
Result<void> retry_while_busy(F&& build)
{
    constexpr uint32_t kRetries = 50;
    constexpr long kRetryNs = 20'000'000;
    auto r = build();
    for (uint32_t i = 0; !r && r.error().code.value() == EBUSY && i < kRetries; ++i) {
        const timespec ts{0, kRetryNs};
        nanosleep(&ts, nullptr);
        r = build();
    }
    if (!r && r.error().code.value() == EBUSY)
        return Error{r.error().code, r.error().context + " (another AF_XDP socket is bound to this queue)"};
    return r;
}

} // namespace weir::dataplane::detail
