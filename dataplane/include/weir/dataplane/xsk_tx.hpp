// XskTxSocket: one AF_XDP socket that only transmits, on one queue of one
// interface, with a UMEM of its own. The building block of AF_XDP egress
// (egress.hpp, --egress-tx afxdp) and of weir-gen's AF_XDP mode.
//
// The caller writes each frame into a UMEM frame it claims (claim(): a free
// frame on the next TX descriptor), publishes the claimed descriptors with
// submit(), wakes the kernel with kick() and gets the frames back with
// reap() once the kernel has completed them. No XDP program is loaded:
// transmit needs none.
//
// Copy mode (veth, generic devices) transmits inside kick(): each call
// sends at most the kernel's per-call budget (32 frames by default) and
// returns EAGAIN while more are waiting; a frame the device refused makes
// it return EBUSY (that frame is completed, not sent). Zero-copy drivers
// transmit on their own and need a kick only when they ask for one
// (XDP_USE_NEED_WAKEUP).
//
// Built with the AF_XDP back-end (WEIR_HAVE_AFXDP). One thread uses a
// socket; nothing here allocates or logs after open().
#pragma once

#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace weir::dataplane {

enum class XskZeroCopy : uint8_t {
    Auto,  ///< zero-copy, and copy mode where the driver refuses it (EOPNOTSUPP)
    On,    ///< zero-copy or an error
    Off,   ///< copy mode
};

struct XskTxConfig {
    uint32_t queue = 0;         ///< TX queue the socket binds to
    uint32_t frames = 2048;     ///< UMEM frames (64..65536)
    uint32_t frame_size = 2048; ///< bytes per UMEM frame: 2048 or 4096 (the largest frame)
    uint32_t ring_size = 1024;  ///< TX ring entries, a power of two (64..frames)
    XskZeroCopy zero_copy = XskZeroCopy::Auto;
};

class XskTxSocket {
public:
    /// Makes the UMEM and binds the socket (a queue still held by a socket
    /// just closed is retried for a second).
    /// Errors: ENODEV (no such interface), EINVAL (queue out of range,
    /// naming the interface's TX queue count; bad sizes), EOPNOTSUPP
    /// (zero-copy demanded and not available, or no AF_XDP support), EBUSY
    /// (another AF_XDP socket holds the queue), EPERM, ENOMEM; each names
    /// the interface and queue.
    static Result<std::unique_ptr<XskTxSocket>> open(const std::string& ifname, const XskTxConfig& c = {});
    ~XskTxSocket();
    XskTxSocket(const XskTxSocket&) = delete;
    XskTxSocket& operator=(const XskTxSocket&) = delete;

    [[nodiscard]] bool zero_copy() const noexcept;
    /// Why zero-copy was not used when XskZeroCopy::Auto fell back to copy
    /// mode (the bind error); empty otherwise.
    [[nodiscard]] const std::string& copy_reason() const noexcept;
    [[nodiscard]] int fd() const noexcept;
    [[nodiscard]] uint32_t frame_size() const noexcept;
    [[nodiscard]] uint32_t frame_count() const noexcept;
    [[nodiscard]] uint32_t ring_size() const noexcept;
    /// Any UMEM frame by its address (k * frame_size()), e.g. to write a
    /// template into every frame before sending.
    [[nodiscard]] uint8_t* frame(uint64_t addr) const noexcept;

    /// A free frame on the next TX descriptor, its length set to `len`
    /// (at most frame_size()); the caller writes the frame there before
    /// submit(). nullptr when no frame is free (reap()) or the TX ring is
    /// full (kick()).
    uint8_t* claim(uint32_t len) noexcept;
    /// Publishes every descriptor claimed since the last submit().
    void submit() noexcept;
    /// Descriptors submitted that the kernel has not taken off the ring.
    [[nodiscard]] uint32_t tx_pending() noexcept;
    /// Wakes the kernel's transmit: one sendto() in copy mode, in zero-copy
    /// mode only when the driver asked for it. 0, or the errno: EAGAIN
    /// (more waiting, or no room to complete), EBUSY (the device refused a
    /// frame), ENOBUFS, EINTR, or ENETDOWN / ENXIO and the like.
    int kick() noexcept;
    /// Takes the frames the kernel has completed back; returns how many.
    uint32_t reap() noexcept;
    /// Frames not claimed (free for claim()).
    [[nodiscard]] uint32_t free_frames() const noexcept;
    /// The kernel's count of TX descriptors it found invalid (XDP_STATISTICS).
    [[nodiscard]] uint64_t invalid_descriptors() const noexcept;

private:
    struct Impl;
    explicit XskTxSocket(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::dataplane
