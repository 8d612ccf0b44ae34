// AF_XDP transmit socket (see weir/dataplane/xsk_tx.hpp).
//
// Layout: one UMEM per socket (xsk_umem.hpp), its frames on a free list;
// the completion ring has room for every frame, so the kernel never finds
// it full; the fill ring is the smallest the kernel takes (nothing is
// received). claim() pops a free frame and reserves the next TX descriptor;
// reap() pushes completed frames back.
#include <weir/dataplane/xsk_tx.hpp>

#include "xsk_umem.hpp"

#include <xdp/xsk.h>

#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <cerrno>
#include <filesystem>
#include <vector>

namespace weir::dataplane {

namespace {

constexpr uint32_t kFillRing = 64;

bool power_of_two(uint32_t v) noexcept
{
    return v && !(v & (v - 1));
}

uint32_t round_up_pow2(uint32_t v) noexcept
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

// TX queues as the kernel exposes them (an interface without a queues
// directory has one).
uint32_t tx_queue_count(const std::string& ifname)
{
    std::error_code ec;
    uint32_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/sys/class/net/" + ifname + "/queues", ec))
        if (e.path().filename().string().rfind("tx-", 0) == 0)
            ++n;
    return n ? n : 1u;
}

} // namespace

struct XskTxSocket::Impl {
    detail::XskUmem umem;
    xsk_socket* xsk = nullptr;
    xsk_ring_prod tx{};
    int fd = -1;
    bool zero_copy = false;
    std::string copy_reason;
    std::vector<uint64_t> free;  // frames neither claimed nor on the rings
    uint32_t claimed = 0;        // descriptors reserved since the last submit()

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl()
    {
        // The socket before the UMEM it uses (the member's destructor).
        if (xsk)
            xsk_socket__delete(xsk);
    }
};

Result<std::unique_ptr<XskTxSocket>> XskTxSocket::open(const std::string& ifname, const XskTxConfig& c)
{
    if (ifname.empty() || ifname.size() >= IFNAMSIZ || if_nametoindex(ifname.c_str()) == 0)
        return Error{std::make_error_code(std::errc::no_such_device), fmt::format("interface '{}' does not exist", ifname)};
    if (c.frame_size != 2048 && c.frame_size != 4096)
        return invalid(fmt::format("AF_XDP TX on {}: frame size {} (2048 or 4096)", ifname, c.frame_size));
    if (c.frames < 64 || c.frames > 65536)
        return invalid(fmt::format("AF_XDP TX on {}: {} UMEM frames (64..65536)", ifname, c.frames));
    if (!power_of_two(c.ring_size) || c.ring_size < 64 || c.ring_size > c.frames)
        return invalid(fmt::format("AF_XDP TX on {}: TX ring of {} (a power of two, 64..{} frames)", ifname,
                                   c.ring_size, c.frames));
    const uint32_t nq = tx_queue_count(ifname);
    if (c.queue >= nq)
        return invalid(fmt::format("AF_XDP TX on {}: queue {} out of range: {} has {} TX queue{} (0-{})", ifname,
                                   c.queue, ifname, nq, nq == 1 ? "" : "s", nq - 1));

    auto build = [&](bool zc) -> Result<std::unique_ptr<Impl>> {
        std::unique_ptr<Impl> im;
        const auto r = detail::retry_while_busy([&]() -> Result<void> {
            im = std::make_unique<Impl>();
            detail::XskUmemConfig uc;
            uc.frames = c.frames;
            uc.frame_size = c.frame_size;
            uc.fill_size = kFillRing;
            uc.comp_size = round_up_pow2(c.frames);
            if (auto u = im->umem.create(uc, fmt::format("AF_XDP TX on {}@{}", ifname, c.queue)); !u)
                return u;
            xsk_socket_config sc{};
            sc.rx_size = 0;
            sc.tx_size = c.ring_size;
            sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
            sc.xdp_flags = 0;
            sc.bind_flags = static_cast<uint16_t>((zc ? XDP_ZEROCOPY : XDP_COPY) | XDP_USE_NEED_WAKEUP);
            if (const int rc = xsk_socket__create(&im->xsk, ifname.c_str(), c.queue, im->umem.umem, nullptr, &im->tx, &sc);
                rc != 0) {
                im->xsk = nullptr;
                return from_errno(rc, fmt::format("AF_XDP TX socket on {} queue {} ({} mode)", ifname, c.queue,
                                                  zc ? "zero-copy" : "copy"));
            }
            return {};
        });
        if (!r)
            return r.error();
        return im;
    };

    std::unique_ptr<Impl> im;
    std::string reason;
    if (c.zero_copy != XskZeroCopy::Off) {
        auto z = build(true);
        if (z)
            im = std::move(z.value());
        else if (c.zero_copy == XskZeroCopy::On || z.error().code.value() != EOPNOTSUPP)
            return z.error();
        else
            reason = z.error().code.message();
    }
    if (!im) {
        auto cp = build(false);
        if (!cp)
            return cp.error();
        im = std::move(cp.value());
    }
    im->zero_copy = c.zero_copy != XskZeroCopy::Off && reason.empty();
    im->copy_reason = std::move(reason);
    im->fd = xsk_socket__fd(im->xsk);
    im->free.reserve(c.frames);
    // Lowest addresses on top: the first frames used are the first pages.
    for (uint32_t f = c.frames; f-- > 0;)
        im->free.push_back(uint64_t(f) * c.frame_size);
    return std::unique_ptr<XskTxSocket>(new XskTxSocket(std::move(im)));
}

XskTxSocket::XskTxSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

XskTxSocket::~XskTxSocket() = default;

bool XskTxSocket::zero_copy() const noexcept
{
    return impl_->zero_copy;
}

const std::string& XskTxSocket::copy_reason() const noexcept
{
    return impl_->copy_reason;
}

int XskTxSocket::fd() const noexcept
{
    return impl_->fd;
}

uint32_t XskTxSocket::frame_size() const noexcept
{
    return impl_->umem.frame_size;
}

uint32_t XskTxSocket::frame_count() const noexcept
{
    return impl_->umem.frames;
}

uint32_t XskTxSocket::ring_size() const noexcept
{
    return impl_->tx.size;
}

uint8_t* XskTxSocket::frame(uint64_t addr) const noexcept
{
    return impl_->umem.data(addr);
}

uint8_t* XskTxSocket::claim(uint32_t len) noexcept
{
    Impl& m = *impl_;
    uint32_t idx = 0;
    if (m.free.empty() || len > m.umem.frame_size || xsk_ring_prod__reserve(&m.tx, 1, &idx) != 1)
        return nullptr;
    const uint64_t addr = m.free.back();
    m.free.pop_back();
    xdp_desc* d = xsk_ring_prod__tx_desc(&m.tx, idx);
    d->addr = addr;
    d->len = len;
    d->options = 0;
    ++m.claimed;
    return m.umem.data(addr);
}

void XskTxSocket::submit() noexcept
{
    Impl& m = *impl_;
    if (m.claimed == 0)
        return;
    xsk_ring_prod__submit(&m.tx, m.claimed);
    m.claimed = 0;
}

uint32_t XskTxSocket::tx_pending() noexcept
{
    Impl& m = *impl_;
    // Free entries seen by the producer count the claimed ones as used.
    const uint32_t used = m.tx.size - xsk_prod_nb_free(&m.tx, m.tx.size);
    return used - m.claimed;
}

int XskTxSocket::kick() noexcept
{
    Impl& m = *impl_;
    if (m.zero_copy && !xsk_ring_prod__needs_wakeup(&m.tx))
        return 0;
    if (::sendto(m.fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0)
        return 0;
    return errno;
}

uint32_t XskTxSocket::reap() noexcept
{
    Impl& m = *impl_;
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_cons__peek(&m.umem.comp, m.umem.frames, &idx);
    for (uint32_t i = 0; i < n; ++i)
        m.free.push_back(*xsk_ring_cons__comp_addr(&m.umem.comp, idx + i));  // capacity reserved: no allocation
    if (n)
        xsk_ring_cons__release(&m.umem.comp, n);
    return n;
}

uint32_t XskTxSocket::free_frames() const noexcept
{
    return static_cast<uint32_t>(impl_->free.size());
}

uint64_t XskTxSocket::invalid_descriptors() const noexcept
{
    xdp_statistics st{};
    socklen_t len = sizeof(st);
    if (getsockopt(impl_->fd, SOL_XDP, XDP_STATISTICS, &st, &len) != 0)
        return 0;
    return st.tx_invalid_descs;
}

} // namespace weir::dataplane
