// Sink mode: weir_gen_sink attached in native (driver) mode on IFACE counts
// every frame and byte per CPU and drops it; optionally it counts packets
// per distinct IPv4/IPv6 5-tuple and it keeps a few frames per CPU (the
// first ones, or every Nth).
// It is the reference counter of the generator's tests and benchmarks: XDP
// sees frames before anything else in the stack can drop them.
//
// On stop (duration or SIGINT/SIGTERM) the counters are read until they stop
// moving (frames still queued on the device are counted), then the program
// is detached.
#include "gen.hpp"

#include <weir/abi/gen.h>
#include <weir/bpf/weir_gen.skel.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

namespace weir::gen {

namespace {

struct SkelDeleter {
    void operator()(weir_gen* s) const noexcept { weir_gen__destroy(s); }
};

/// Detaches the sink program at scope exit (also on error paths).
class Attachment {
public:
    Attachment(int ifindex, int prog_fd) : ifindex_(ifindex), prog_fd_(prog_fd) {}
    ~Attachment()
    {
        LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd_);
        bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &o);
    }
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;

private:
    int ifindex_;
    int prog_fd_;
};

Result<weir_gen_sink_stats> read_stats(int fd, int ncpus)
{
    std::vector<weir_gen_sink_stats> per(static_cast<size_t>(ncpus));
    const __u32 key = 0;
    if (bpf_map_lookup_elem(fd, &key, per.data()) != 0)
        return from_errno(errno, "read sink_stats");
    weir_gen_sink_stats sum{};
    for (const auto& s : per) {
        sum.packets += s.packets;
        sum.bytes += s.bytes;
        sum.flow_table_full += s.flow_table_full;
        sum.unparsed += s.unparsed;
        sum.sampled += s.sampled;
    }
    return sum;
}

void put_le32(std::FILE* f, uint32_t v)
{
    const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
                          static_cast<uint8_t>(v >> 24)};
    std::fwrite(b, 1, 4, f);
}

/// Writes the sampled frames as a classic pcap (Ethernet, microseconds,
/// zero timestamps: the sink does not time-stamp them).
Result<uint64_t> write_samples(int fd, int ncpus, const std::string& path)
{
    std::FILE* f = path.empty() ? nullptr : std::fopen(path.c_str(), "wb");
    if (!path.empty() && !f)
        return from_errno(errno, "open " + path);
    if (f) {
        put_le32(f, 0xa1b2c3d4);
        put_le32(f, 2 | (4u << 16)); // version 2.4
        put_le32(f, 0);
        put_le32(f, 0);
        put_le32(f, 65535);
        put_le32(f, 1); // LINKTYPE_ETHERNET
    }
    uint64_t n = 0;
    std::vector<weir_gen_sample> per(static_cast<size_t>(ncpus));
    for (int cpu = 0; cpu < ncpus; ++cpu) {
        for (__u32 i = 0; i < WEIR_GEN_SAMPLES; ++i) {
            if (bpf_map_lookup_elem(fd, &i, per.data()) != 0) {
                if (f)
                    std::fclose(f);
                return from_errno(errno, "read sink_samples");
            }
            const weir_gen_sample& s = per[static_cast<size_t>(cpu)];
            if (s.caplen == 0)
                continue;
            ++n;
            if (f) {
                put_le32(f, 0);
                put_le32(f, 0);
                put_le32(f, s.caplen);
                put_le32(f, s.len);
                std::fwrite(s.data, 1, s.caplen, f);
            }
        }
    }
    if (f && std::fclose(f) != 0)
        return from_errno(errno, "write " + path);
    return n;
}

} // namespace

Result<SinkReport> run_sink(const SinkOptions& opt)
{
    const int ifindex = static_cast<int>(if_nametoindex(opt.iface.c_str()));
    if (ifindex == 0)
        return from_errno(errno, "interface '" + opt.iface + "'");

    std::unique_ptr<weir_gen, SkelDeleter> skel(weir_gen__open());
    if (!skel)
        return from_errno(errno, "open BPF object weir_gen");
    skel->rodata->sink_count_flows = opt.count_flows ? 1 : 0;
    skel->rodata->sink_sample_every = std::max(1u, opt.sample_every);
    bpf_map__set_max_entries(skel->maps.sink_flows, opt.count_flows ? std::max(1u, opt.max_flows) : 1);
    bpf_program__set_autoload(skel->progs.weir_gen_xdp, false);
    bpf_program__set_autoload(skel->progs.weir_gen_xmit, false);
    bpf_program__set_autoload(skel->progs.weir_gen_redirect_err, false);
    if (int rc = weir_gen__load(skel.get()); rc != 0)
        return from_errno(rc, "load BPF program weir_gen_sink (libbpf's messages above)");

    const int prog_fd = bpf_program__fd(skel->progs.weir_gen_sink);
    if (int rc = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
        rc != 0)
        return from_errno(rc, "attach XDP sink on " + opt.iface +
                                  " in native mode (EBUSY: another XDP program is attached)");
    Attachment attached(ifindex, prog_fd);
    if (!opt.ready_file.empty()) {
        std::FILE* f = std::fopen(opt.ready_file.c_str(), "w");
        if (!f)
            return from_errno(errno, "create " + opt.ready_file);
        std::fclose(f);
    }

    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0)
        return from_errno(ncpus, "number of possible CPUs");
    const int stats_fd = bpf_map__fd(skel->maps.sink_stats);
    const double start = now_s();
    const double deadline = opt.duration > 0 ? start + opt.duration : std::numeric_limits<double>::infinity();
    while (!g_stop.load(std::memory_order_relaxed) && now_s() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));

    // Settle: frames already queued on the device are still counted.
    auto last = read_stats(stats_fd, ncpus);
    if (!last)
        return last.error();
    for (int i = 0; i < 50; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        auto cur = read_stats(stats_fd, ncpus);
        if (!cur)
            return cur.error();
        const bool still = cur->packets == last->packets;
        last = cur;
        if (still)
            break;
    }
    const double seconds = now_s() - start;

    SinkReport rep;
    rep.packets = last->packets;
    rep.bytes = last->bytes;
    rep.seconds = seconds;
    rep.unparsed = last->unparsed;
    rep.flow_table_full = last->flow_table_full;

    if (opt.count_flows) {
        const int fd = bpf_map__fd(skel->maps.sink_flows);
        weir_gen_flow key{}, next{};
        weir_gen_flow* prev = nullptr;
        uint64_t n = 0, mn = std::numeric_limits<uint64_t>::max(), mx = 0;
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
            uint64_t v = 0;
            if (bpf_map_lookup_elem(fd, &next, &v) == 0) {
                ++n;
                mn = std::min(mn, v);
                mx = std::max(mx, v);
            }
            key = next;
            prev = &key;
        }
        rep.flows = n;
        rep.flow_min_packets = n ? mn : 0;
        rep.flow_max_packets = mx;
    }
    auto samples = write_samples(bpf_map__fd(skel->maps.sink_samples), ncpus, opt.sample_pcap);
    if (!samples)
        return samples.error();
    rep.samples = *samples;
    return rep;
}

} // namespace weir::gen
