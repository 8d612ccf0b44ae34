// AF_XDP mode: one TX-only socket on IFACE's queue --queue
// (weir::dataplane::XskTxSocket, the one IDS egress uses), zero-copy tried
// first, copy mode otherwise (veth, most virtual devices). The UMEM holds
// copies of the template; a claimed frame gets the next flow written into
// it (ports and checksums only) and goes on the TX ring; completions
// return it to the free list. No XDP program is loaded: TX needs none.
//
// Counting: a completion means the kernel is done with the frame, not that
// the device took it. In copy mode a frame the device dropped makes sendto()
// fail with EBUSY (one frame each time), which is counted as failed; sent =
// completions - failed. Pacing is the same token bucket as live mode.
#include "gen.hpp"

#include <weir/dataplane/xsk_tx.hpp>

#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

namespace weir::gen {

namespace {

constexpr uint32_t kFrames = 4096;
constexpr uint32_t kFrameSize = 2048;
constexpr uint32_t kRing = 2048;
constexpr double kStallSeconds = 2.0;

} // namespace

Result<GenReport> run_afxdp(const GenOptions& opt, const Template& t)
{
    if (if_nametoindex(opt.iface.c_str()) == 0)
        return from_errno(errno, "interface '" + opt.iface + "'");

    dataplane::XskTxConfig c;
    c.queue = opt.queue;
    c.frames = kFrames;
    c.frame_size = kFrameSize;
    c.ring_size = kRing;
    auto so = dataplane::XskTxSocket::open(opt.iface, c);
    if (!so)
        return so.error();
    dataplane::XskTxSocket& s = *so.value();
    const bool zerocopy = s.zero_copy();
    for (uint32_t i = 0; i < kFrames; ++i)
        std::memcpy(s.frame(uint64_t(i) * kFrameSize), t.bytes.data(), t.bytes.size());

    const uint32_t len = static_cast<uint32_t>(t.bytes.size());
    const uint32_t batch = std::clamp(opt.batch, 1u, kRing / 2);
    const double rate = static_cast<double>(opt.rate);
    const double start = now_s();
    const double deadline = opt.duration > 0 ? start + opt.duration : 1e300;
    uint64_t submitted = 0, completed = 0, failed = 0;
    uint32_t flow = 0;
    double last_progress = start;

    auto reap = [&]() {
        const uint32_t n = s.reap();
        completed += n;
        return n;
    };
    // Copy mode transmits inside sendto(); zero-copy only needs a wakeup
    // when the driver asks for one (kick() knows).
    auto kick = [&]() -> Result<void> {
        switch (const int e = s.kick()) {
        case 0:
            return {};
        case EBUSY: // the device dropped one frame (it is completed anyway)
            ++failed;
            return {};
        case EAGAIN:
        case ENOBUFS:
        case EINTR:
            return {};
        default:
            return from_errno(e, "AF_XDP transmit on " + opt.iface);
        }
    };

    while (!g_stop.load(std::memory_order_relaxed)) {
        const double now = now_s();
        if (now >= deadline)
            break;
        if (reap())
            last_progress = now;
        if (opt.count && submitted >= opt.count)
            break;
        uint64_t want = batch;
        if (opt.count)
            want = std::min(want, opt.count - submitted);
        if (rate > 0) {
            const auto earned = static_cast<uint64_t>(std::floor((now - start) * rate)) + 1;
            const uint64_t allowed = earned > submitted ? earned - submitted : 0;
            want = std::min(want, allowed);
            if (want == 0 && submitted == completed) {
                const double due = start + static_cast<double>(submitted) / rate;
                std::this_thread::sleep_for(std::chrono::duration<double>(std::clamp(due - now, 0.0, 0.001)));
                continue;
            }
        }
        uint32_t got = 0;
        for (; got < want; ++got) {
            uint8_t* f = s.claim(len);
            if (!f)
                break;
            apply_flow(f, t, opt.frame, flow);
            flow = flow + 1 >= opt.frame.flows ? 0 : flow + 1;
        }
        if (got) {
            s.submit();
            submitted += got;
        }
        if (submitted != completed) {
            if (auto r = kick(); !r)
                return r.error();
            if (now - last_progress > kStallSeconds)
                return Error{std::make_error_code(std::errc::timed_out),
                             "AF_XDP transmit on " + opt.iface + " stalled: no completion for 2 s"};
        }
    }
    // Let what is on the ring go out and complete (bounded).
    const double drain_until = now_s() + 1.0;
    while (completed < submitted && now_s() < drain_until) {
        if (auto r = kick(); !r)
            return r.error();
        if (!reap())
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    const double seconds = now_s() - start;

    GenReport rep;
    rep.mode = zerocopy ? "afxdp-zerocopy" : "afxdp-copy";
    rep.seconds = seconds;
    rep.failed = failed;
    rep.sent = completed >= failed ? completed - failed : 0;
    if (completed < submitted)
        std::fprintf(stderr, "weir-gen: warning: %llu frames still on the TX ring at exit\n",
                     static_cast<unsigned long long>(submitted - completed));
    return rep;
}

} // namespace weir::gen
