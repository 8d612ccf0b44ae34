// NetFlow v5 encoder: 24-byte header + up to 30 48-byte records, IPv4 only,
// one record per direction that saw packets, counters split below 2^32.
#include "encode_util.hpp"

#include <weir/exporters/netflow.hpp>

#include <algorithm>

namespace weir::exporters {
namespace {

class NetflowV5Encoder final : public Encoder {
public:
    explicit NetflowV5Encoder(const EncoderOptions& o)
        : opts_(o),
          max_records_(std::min<uint32_t>(v5::kMaxRecords, (o.mtu - v5::kHeaderSize) / v5::kRecordSize)),
          w_(v5::kHeaderSize + v5::kMaxRecords * v5::kRecordSize)
    {
    }

    void add(const FlowRecord& r, const ExportClock& clk, DatagramSink& out) noexcept override
    {
        ++stats_.flows_in;
        if (r.key.ip_version != 4) {
            ++stats_.skipped_ipv6;
            return;
        }
        if (r.dir[0].packets == 0 && r.dir[1].packets == 0) {
            ++stats_.skipped_empty;
            return;
        }
        for (int d = 0; d < 2; ++d) {
            if (r.dir[d].packets == 0)
                continue;
            add_direction(r, detail::one_way(r, d), clk, out);
        }
    }

    void flush(const ExportClock& clk, DatagramSink& out) noexcept override
    {
        if (count_ == 0)
            return;
        // Header last, so its times are those of the moment the datagram leaves.
        w_.put_u16_at(0, v5::kVersion);
        w_.put_u16_at(2, static_cast<uint16_t>(count_));
        uint64_t ignored = 0;
        w_.put_u32_at(4, detail::uptime_ms(clk.now_ns, clk.boot_ns, ignored));
        w_.put_u32_at(8, static_cast<uint32_t>(clk.now_ns / 1000000000ULL));
        w_.put_u32_at(12, static_cast<uint32_t>(clk.now_ns % 1000000000ULL));
        w_.put_u32_at(16, static_cast<uint32_t>(flows_sent_));
        w_.put_u8_at(20, opts_.engine_type);
        w_.put_u8_at(21, opts_.engine_id);
        // sampling_interval: 2-bit mode (1 deterministic, 2 random) and
        // 14-bit interval; 0 = not sampled.
        uint16_t sampling = 0;
        if (opts_.sampling_interval > 1)
            sampling = static_cast<uint16_t>(
                ((opts_.sampling_random ? v5::kSamplingRandom : v5::kSamplingDeterministic) << 14)
                | opts_.sampling_interval);
        w_.put_u16_at(22, sampling);
        out.on_datagram({w_.data(), w_.size()});
        ++stats_.datagrams;
        stats_.bytes += w_.size();
        flows_sent_ += count_;
        count_ = 0;
        w_.reset();
    }

    [[nodiscard]] bool pending() const noexcept override { return count_ != 0; }
    [[nodiscard]] ExportFormat format() const noexcept override { return ExportFormat::NetflowV5; }

private:
    void add_direction(const FlowRecord& r, const detail::OneWay& w, const ExportClock& clk,
                       DatagramSink& out) noexcept
    {
        constexpr uint64_t kMax = 0xffffffffULL;
        const uint64_t pkts = w.c->packets;
        const uint64_t bytes = w.c->bytes;
        // v5 counters are 32-bit: a bigger direction becomes n records whose
        // counters add up exactly to the totals.
        const uint64_t n = std::max<uint64_t>({1, (pkts + kMax - 1) / kMax, (bytes + kMax - 1) / kMax});
        stats_.split_records += n - 1;
        const uint32_t first = detail::uptime_ms(w.c->first_ns, clk.boot_ns, stats_.clamped_times);
        const uint32_t last = detail::uptime_ms(w.c->last_ns, clk.boot_ns, stats_.clamped_times);
        for (uint64_t i = 0; i < n; ++i) {
            const uint64_t p = pkts / n + (i < pkts % n ? 1 : 0);
            const uint64_t b = bytes / n + (i < bytes % n ? 1 : 0);
            if (count_ == max_records_)
                flush(clk, out);
            if (count_ == 0)
                w_.zeros(v5::kHeaderSize);
            w_.bytes(w.src->data(), 4);
            w_.bytes(w.dst->data(), 4);
            w_.u32(0);              // nexthop
            w_.u16(0);              // input ifIndex
            w_.u16(0);              // output ifIndex
            w_.u32(static_cast<uint32_t>(p));
            w_.u32(static_cast<uint32_t>(b));
            w_.u32(first);
            w_.u32(last);
            w_.u16(w.sport);
            // Cisco convention: ICMP type/code in the destination port.
            w_.u16(detail::is_icmp(r.key) ? w.icmp : w.dport);
            w_.u8(0);               // pad1
            w_.u8(w.c->tcp_flags);
            w_.u8(r.key.proto);
            w_.u8(w.c->tos);
            w_.u16(0);              // src_as
            w_.u16(0);              // dst_as
            w_.u8(0);               // src_mask
            w_.u8(0);               // dst_mask
            w_.u16(0);              // pad2
            ++count_;
            ++stats_.records;
            stats_.packets_total += p;
            stats_.bytes_total += b;
        }
    }

    EncoderOptions opts_;
    uint32_t max_records_;
    detail::ByteWriter w_;
    uint32_t count_ = 0;
    uint64_t flows_sent_ = 0;
};

} // namespace

Result<std::unique_ptr<Encoder>> make_netflow_v5_encoder(const EncoderOptions& opts)
{
    if (opts.mtu < v5::kHeaderSize + v5::kRecordSize || opts.mtu > 65535)
        return invalid("netflow v5: MTU " + std::to_string(opts.mtu) + " must be in 72..65535");
    if (opts.sampling_interval > v5::kMaxSamplingInterval)
        return invalid("netflow v5: sampling interval " + std::to_string(opts.sampling_interval)
                       + " above 16383 (the header's 14-bit field)");
    return std::unique_ptr<Encoder>(new NetflowV5Encoder(opts));
}

} // namespace weir::exporters
