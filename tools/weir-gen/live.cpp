// Live mode: weir_gen_xdp driven by BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES. Each call hands the kernel the template and a
// `repeat` count; the kernel runs the program on that many recycled copies
// in batches of `batch_size` and transmits what it redirects, all inside the
// calling thread. One loop per thread, each pinned to its own CPU among
// those the process may run on (so `taskset -c 1 weir-gen` generates on
// CPU 1; the program's flow cursor is per CPU, and on veth a redirected
// frame lands on the receive queue of the sending CPU).
//
// Pacing is a token bucket per thread, sized around the fixed cost of a
// BPF_PROG_RUN call: a paced call sends the tokens earned by the time it is
// expected to finish; a full-speed call sends ~50 ms worth of frames, never
// more than fits before the deadline.
//
// Counting: the program's per-CPU count of XDP_REDIRECT verdicts is the
// number of frames handed to the device; two raw tracepoints count what the
// device refused at flush and redirects that failed before it. sent =
// redirected - failed.
#include "gen.hpp"

#include <weir/abi/gen.h>
#include <weir/bpf/weir_gen.skel.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace weir::gen {

namespace {

struct SkelDeleter {
    void operator()(weir_gen* s) const noexcept { weir_gen__destroy(s); }
};

struct LinkDeleter {
    void operator()(bpf_link* l) const noexcept { bpf_link__destroy(l); }
};

struct ThreadResult {
    int err = 0; // negative errno of a failed BPF_PROG_RUN
};

void pin_to_cpu(unsigned cpu) noexcept
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

Result<std::vector<unsigned>> allowed_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return from_errno(errno, "CPU affinity of the process");
    std::vector<unsigned> cpus;
    for (unsigned c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set))
            cpus.push_back(c);
    if (cpus.empty())
        return invalid("the process may run on no CPU");
    return cpus;
}

void run_thread(int prog_fd, const Template& t, unsigned batch, double rate, uint64_t count, double deadline,
                unsigned cpu, ThreadResult* out) noexcept
{
    pin_to_cpu(cpu);
    const double start = now_s();
    // Each BPF_PROG_RUN call has a fixed cost (page pool set-up and
    // teardown: tens of microseconds on an idle machine, tens of
    // milliseconds on a loaded one), so calls are sized by time: `call_s`
    // is the last call's duration and `call_pps` the rate it achieved.
    double call_s = 0;
    double call_pps = 0;
    uint64_t done = 0;
    while (!g_stop.load(std::memory_order_relaxed)) {
        const double now = now_s();
        if (now >= deadline)
            break;
        uint64_t want;
        if (rate > 0) {
            // Token bucket, with the tokens that will be earned while this
            // call runs: frames leave during the call, not after it.
            const double horizon = std::min(now + std::min(call_s, 0.1), deadline);
            const auto earned = static_cast<uint64_t>(std::floor((horizon - start) * rate)) + 1;
            if (earned <= done) {
                const double due = start + static_cast<double>(done) / rate;
                const double wait = std::min(due - now, 0.001);
                if (wait > 0)
                    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
                continue;
            }
            want = earned - done;
        } else {
            // Full speed: ~50 ms per call, never past the deadline.
            want = call_pps > 0 ? static_cast<uint64_t>(call_pps * 0.05) : 32768;
            if (deadline < 1e300 && call_pps > 0)
                want = std::min(want, static_cast<uint64_t>(call_pps * (deadline - now)) + 1);
            want = std::clamp<uint64_t>(want, 1024, 1u << 24);
        }
        if (count)
            want = std::min(want, count - done);
        want = std::min<uint64_t>(want, INT32_MAX);
        if (want == 0)
            break;
        LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = t.bytes.data(),
                    .data_size_in = static_cast<__u32>(t.bytes.size()), .repeat = static_cast<int>(want),
                    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = batch);
        const int rc = bpf_prog_test_run_opts(prog_fd, &ro);
        if (rc != 0) {
            const int e = errno;
            if (e == EINTR)
                break; // a signal: the program's own count says how far it got
            out->err = -e;
            return;
        }
        done += want;
        call_s = now_s() - now;
        call_pps = call_s > 0 ? static_cast<double>(want) / call_s : 0;
        if (count && done >= count)
            break;
    }
}

} // namespace

Result<GenReport> run_live(const GenOptions& opt, const Template& t)
{
    const unsigned ifindex = if_nametoindex(opt.iface.c_str());
    if (ifindex == 0)
        return from_errno(errno, "interface '" + opt.iface + "'");

    // The CPUs this process may run on (taskset, cgroup cpuset): thread i
    // is pinned to the i-th of them. Pinning to CPU i of the machine instead
    // would override `taskset -c 1 weir-gen` and put the generator on the
    // receiver's CPU.
    auto allowed = allowed_cpus();
    if (!allowed)
        return allowed.error();
    const std::vector<unsigned>& cpus = *allowed;
    const unsigned nthreads = std::max(1u, opt.threads);
    // One thread per CPU: the program's flow cursor and counters are per CPU.
    if (nthreads > cpus.size())
        return invalid("--threads " + std::to_string(nthreads) + " exceeds the " + std::to_string(cpus.size()) +
                       " CPUs this process may run on");

    std::unique_ptr<weir_gen, SkelDeleter> skel(weir_gen__open());
    if (!skel)
        return from_errno(errno, "open BPF object weir_gen");
    auto* ro = skel->rodata;
    ro->gen_ifindex = ifindex;
    ro->gen_nflows = opt.frame.flows;
    ro->gen_sport_base = opt.frame.sport_base;
    ro->gen_l3_off = t.l3_off;
    ro->gen_ipv4 = t.ipv4 ? 1 : 0;
    ro->gen_l4_off = t.l4_off;
    ro->gen_l4_csum_off = t.l4_csum_off;
    ro->gen_saddr_lo_off = t.saddr_lo_off;
    ro->gen_saddr_w1 = t.saddr_w1;
    ro->gen_ip_csum = t.ip_csum;
    ro->gen_l4_csum = t.l4_csum;
    ro->gen_udp = opt.frame.proto == 17;
    ro->gen_tgid = static_cast<__u32>(getpid());
    bpf_program__set_autoload(skel->progs.weir_gen_sink, false);
    bpf_map__set_max_entries(skel->maps.sink_flows, 1);
    if (int rc = weir_gen__load(skel.get()); rc != 0)
        return from_errno(rc, "load BPF program weir_gen_xdp (libbpf's messages above)");

    // The device-side counters are best effort: without them failed is unknown.
    std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links;
    bool failed_known = true;
    for (bpf_program* p : {skel->progs.weir_gen_xmit, skel->progs.weir_gen_redirect_err}) {
        bpf_link* l = bpf_program__attach(p);
        if (!l) {
            std::fprintf(stderr, "weir-gen: warning: raw tracepoint %s: %s; failed frames not counted\n",
                         bpf_program__name(p), std::strerror(errno));
            failed_known = false;
            continue;
        }
        links.emplace_back(l);
    }

    const int prog_fd = bpf_program__fd(skel->progs.weir_gen_xdp);
    const double rate_per = opt.rate ? static_cast<double>(opt.rate) / nthreads : 0;
    const double start = now_s();
    const double deadline = opt.duration > 0 ? start + opt.duration : 1e300;

    std::vector<ThreadResult> results(nthreads);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < nthreads; ++i) {
        uint64_t share = 0;
        if (opt.count)
            share = opt.count / nthreads + (i < opt.count % nthreads ? 1 : 0);
        if (opt.count && share == 0)
            continue;
        threads.emplace_back(run_thread, prog_fd, std::cref(t), opt.batch, rate_per, share, deadline,
                             cpus[i], &results[i]);
    }
    for (auto& th : threads)
        th.join();
    const double seconds = now_s() - start;
    for (const auto& r : results)
        if (r.err)
            return from_errno(r.err, "BPF_PROG_RUN live frames on " + opt.iface +
                                         (r.err == -EPERM ? " (refused by this kernel even to root; --mode afxdp sends "
                                                           "without them)"
                                                         : ""));

    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0)
        return from_errno(ncpus, "number of possible CPUs");
    std::vector<weir_gen_stats> per(static_cast<size_t>(ncpus));
    const __u32 key = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.gen_stats), &key, per.data()) != 0)
        return from_errno(errno, "read gen_stats");
    weir_gen_stats sum{};
    for (const auto& s : per) {
        sum.redirected += s.redirected;
        sum.short_frame += s.short_frame;
        sum.xmit_sent += s.xmit_sent;
        sum.xmit_drops += s.xmit_drops;
        sum.redirect_err += s.redirect_err;
    }
    if (sum.short_frame)
        return invalid("template shorter than its headers (" + std::to_string(sum.short_frame) + " frames)");

    GenReport rep;
    rep.mode = "live";
    rep.seconds = seconds;
    rep.redirected = sum.redirected;
    rep.failed_known = failed_known;
    rep.failed = failed_known ? sum.xmit_drops + sum.redirect_err : 0;
    rep.sent = rep.redirected >= rep.failed ? rep.redirected - rep.failed : 0;
    return rep;
}

} // namespace weir::gen
