// XdpProgram: weir's own XDP program (ebpf/src/weir_xdp.bpf.c) loaded from
// its embedded skeleton, sized and configured before load, attached to one
// interface with libbpf and detached again by the destructor.
//
// The program counts every frame per RX queue and redirects it into the
// AF_XDP socket registered for its queue (and flow-hash slot, with several
// sockets per queue); frames of queues without a socket go to the stack.
// Attaching never replaces an XDP program someone else attached
// (XDP_FLAGS_UPDATE_IF_NOEXIST), and detaching names our program, so a
// program attached in the meantime by someone else stays.
#pragma once

#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace weir::dataplane {

/// What the program counted on one RX queue (all CPUs summed).
struct XdpQueueCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t redirected = 0;       ///< handed to a socket
    uint64_t passed = 0;           ///< no socket at the slot: XDP_PASS
    uint64_t redirect_failed = 0;  ///< bpf_redirect_map refused
    uint64_t unparsed = 0;         ///< fan-out without a flow key (hashed to slot 0)
};

enum class XdpAttachMode : uint8_t { None, Native, Generic };

class XdpProgram {
public:
    struct Config {
        uint32_t rx_queues = 1;          ///< the interface's RX queues (map sizes)
        uint32_t sockets_per_queue = 1;  ///< >1: sockets of one queue fanned out by flow hash
    };

    /// Loads the program (verifier) with maps sized for cfg.
    /// Errors: EINVAL (rx_queues 0 or above WEIR_XDP_MAX_QUEUES, sockets_per_queue
    /// 0 or above WEIR_XDP_MAX_SOCKETS_PER_QUEUE), EPERM (no CAP_BPF), and
    /// whatever libbpf reports (ENOMEM, E2BIG...).
    static Result<std::unique_ptr<XdpProgram>> load(const Config& cfg);

    /// Detaches (if attached) and unloads.
    ~XdpProgram();
    XdpProgram(const XdpProgram&) = delete;
    XdpProgram& operator=(const XdpProgram&) = delete;

    /// Attaches to ifindex. XdpMode::Auto tries driver (native) mode first and
    /// falls back to generic (SKB) mode with a line on stderr.
    /// Errors: EBUSY (another XDP program is attached: it is left alone),
    /// EEXIST (already attached by this object), EOPNOTSUPP (native mode
    /// asked for and not supported), others from the kernel, with ifname.
    Result<void> attach(uint32_t ifindex, const std::string& ifname, LiveOptions::XdpMode mode);

    /// Detaches our program only (by id); a no-op when not attached.
    void detach() noexcept;

    /// Puts an AF_XDP socket at slot index of the XSKMAP
    /// (queue * sockets_per_queue + fan-out slot). Errors: EINVAL, from the kernel.
    Result<void> set_socket(uint32_t index, int xsk_fd);

    /// The per-queue counters; zeros for a queue outside the map.
    /// Safe to call from any thread.
    [[nodiscard]] XdpQueueCounters counters(uint32_t queue) const noexcept;

    [[nodiscard]] int prog_fd() const noexcept;
    [[nodiscard]] uint32_t prog_id() const noexcept;
    [[nodiscard]] XdpAttachMode mode() const noexcept;
    [[nodiscard]] const Config& config() const noexcept;

private:
    struct Impl;
    explicit XdpProgram(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

[[nodiscard]] const char* xdp_attach_mode_name(XdpAttachMode m) noexcept;

} // namespace weir::dataplane
