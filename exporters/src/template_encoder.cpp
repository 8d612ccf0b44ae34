// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) encoding.
//
// Sequence numbers: v9 counts export packets sent before this one (RFC 3954
// s.5.1); IPFIX counts data records sent before this message, templates
// excluded (RFC 7011 s.3.1). Templates (one for IPv4, one for IPv6) open
// the first datagram and every datagram started after N datagrams or T
// seconds without them, so a collector that starts late or restarts gets
// them back quickly over UDP.
#include "template_encoder.hpp"

#include "encode_util.hpp"

#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include <string>
#include <vector>

namespace weir::exporters::detail {
namespace {

enum class F : uint8_t {
    Bytes, Packets, Proto, Tos, TcpFlags, SrcPort, DstPort, SrcAddr, DstAddr, InIf, OutIf, Vlan,
    SrcMac, DstMac, StartMs, EndMs, StartUptime, EndUptime, EndReason, BiflowDir, MinTtl, MaxTtl,
    Icmp, RevBytes, RevPackets, RevTcpFlags, RevTos, RevStartMs, RevEndMs, RevMinTtl, RevMaxTtl,
    OutBytes, OutPackets,
};

struct FieldSpec {
    F f;
    uint16_t id;
    uint16_t len;
    uint32_t pen; ///< 0 = IANA
};

struct Template {
    uint16_t id = 0;
    std::vector<FieldSpec> fields;
    uint32_t record_len = 0;
    uint32_t spec_len = 0; ///< bytes of this template record in a template set
};

/// What one export record is made of.
struct Rec {
    OneWay fwd;
    const DirCounters* rev; ///< nullptr in one-way mode
    uint64_t start_ns;
    uint64_t end_ns;
    uint8_t biflow_dir;     ///< IE 239: 1 initiator, 2 reverse initiator
    uint8_t tcp_flags;      ///< forward flags, or both ORed in InOut mode
};

Template build_template(Dialect d, BiflowMode mode, bool v6, uint16_t id)
{
    const bool ipfix = d == Dialect::Ipfix;
    Template t;
    t.id = id;
    auto add = [&](F f, uint16_t ie, uint16_t len, uint32_t pen = 0) { t.fields.push_back({f, ie, len, pen}); };
    add(F::Bytes, ipfix::kOctetDeltaCount, 8);
    add(F::Packets, ipfix::kPacketDeltaCount, 8);
    add(F::Proto, ipfix::kProtocolIdentifier, 1);
    add(F::Tos, ipfix::kIpClassOfService, 1);
    // tcpControlBits is unsigned16 in IPFIX (RFC 7125), one byte in v9.
    add(F::TcpFlags, ipfix::kTcpControlBits, ipfix ? 2 : 1);
    add(F::SrcPort, ipfix::kSourceTransportPort, 2);
    add(F::DstPort, ipfix::kDestinationTransportPort, 2);
    add(F::SrcAddr, v6 ? ipfix::kSourceIPv6Address : ipfix::kSourceIPv4Address, v6 ? 16 : 4);
    add(F::DstAddr, v6 ? ipfix::kDestinationIPv6Address : ipfix::kDestinationIPv4Address, v6 ? 16 : 4);
    add(F::InIf, ipfix::kIngressInterface, 4);
    add(F::OutIf, ipfix::kEgressInterface, 4);
    add(F::Vlan, ipfix::kVlanId, 2);
    add(F::SrcMac, ipfix::kSourceMacAddress, 6);
    add(F::DstMac, ipfix::kDestinationMacAddress, 6);
    if (ipfix) {
        add(F::StartMs, ipfix::kFlowStartMilliseconds, 8);
        add(F::EndMs, ipfix::kFlowEndMilliseconds, 8);
    } else {
        add(F::StartUptime, v9::kFirstSwitched, 4);
        add(F::EndUptime, v9::kLastSwitched, 4);
    }
    add(F::EndReason, ipfix::kFlowEndReason, 1);
    add(F::BiflowDir, ipfix::kBiflowDirection, 1);
    add(F::MinTtl, ipfix::kMinimumTTL, 1);
    add(F::MaxTtl, ipfix::kMaximumTTL, 1);
    // v9 has one ICMP_TYPE (32) for both families; icmpTypeCodeIPv6 (139) is
    // IPFIX-only and v9 collectors (nfdump) ignore it.
    add(F::Icmp, v6 && ipfix ? ipfix::kIcmpTypeCodeIPv6 : ipfix::kIcmpTypeCodeIPv4, 2);
    if (mode == BiflowMode::Rfc5103) {
        const uint32_t pen = ipfix::kReversePen;
        add(F::RevBytes, ipfix::kOctetDeltaCount, 8, pen);
        add(F::RevPackets, ipfix::kPacketDeltaCount, 8, pen);
        add(F::RevTos, ipfix::kIpClassOfService, 1, pen);
        add(F::RevTcpFlags, ipfix::kTcpControlBits, 2, pen);
        add(F::RevStartMs, ipfix::kFlowStartMilliseconds, 8, pen);
        add(F::RevEndMs, ipfix::kFlowEndMilliseconds, 8, pen);
        add(F::RevMinTtl, ipfix::kMinimumTTL, 1, pen);
        add(F::RevMaxTtl, ipfix::kMaximumTTL, 1, pen);
    } else if (mode == BiflowMode::InOut) {
        add(F::OutBytes, ipfix::kPostOctetDeltaCount, 8);
        add(F::OutPackets, ipfix::kPostPacketDeltaCount, 8);
    }
    t.spec_len = 4;
    for (const FieldSpec& f : t.fields) {
        t.record_len += f.len;
        t.spec_len += f.pen ? 8 : 4;
    }
    return t;
}

/// Reverse start/end in ms. A direction without packets repeats the flow's
/// own times: collectors such as nfdump take the earliest start of both
/// directions, and a 0 there would date the flow to 1970.
uint64_t reverse_ms(const DirCounters* c, uint64_t flow_ns, bool last) noexcept
{
    if (c == nullptr || c->packets == 0)
        return flow_ns / 1000000ULL;
    return (last ? c->last_ns : c->first_ns) / 1000000ULL;
}

class TemplateEncoder final : public Encoder {
public:
    TemplateEncoder(Dialect d, const EncoderOptions& o, BiflowMode mode, uint16_t base)
        : d_(d), opts_(o), mode_(mode),
          t4_(build_template(d, mode, false, base)),
          t6_(build_template(d, mode, true, static_cast<uint16_t>(base + 1))),
          header_len_(d == Dialect::Ipfix ? ipfix::kHeaderSize : v9::kHeaderSize),
          w_(o.mtu)
    {
    }

    [[nodiscard]] uint32_t min_datagram() const noexcept
    {
        const uint32_t rec = std::max(t4_.record_len, t6_.record_len);
        return header_len_ + templates_len() + 4 + rec + 3;
    }

    void add(const FlowRecord& r, const ExportClock& clk, DatagramSink& out) noexcept override
    {
        ++stats_.flows_in;
        if (r.dir[0].packets == 0 && r.dir[1].packets == 0) {
            ++stats_.skipped_empty;
            return;
        }
        const Template& t = r.key.ip_version == 6 ? t6_ : t4_;
        if (mode_ == BiflowMode::OneWay) {
            for (int d = 0; d < 2; ++d) {
                if (r.dir[d].packets == 0)
                    continue;
                const DirCounters& c = r.dir[d];
                Rec rec{one_way(r, d), nullptr, c.first_ns, c.last_ns, static_cast<uint8_t>(d + 1), c.tcp_flags};
                put(r, t, rec, clk, out);
            }
            return;
        }
        const uint8_t flags = mode_ == BiflowMode::InOut
            ? static_cast<uint8_t>(r.dir[0].tcp_flags | r.dir[1].tcp_flags) : r.dir[0].tcp_flags;
        Rec rec{one_way(r, 0), &r.dir[1], r.first_ns(), r.last_ns(), 1, flags};
        put(r, t, rec, clk, out);
    }

    void flush(const ExportClock& clk, DatagramSink& out) noexcept override
    {
        if (!open_)
            return;
        close_set();
        const uint32_t secs = static_cast<uint32_t>(clk.now_ns / 1000000000ULL);
        if (d_ == Dialect::Ipfix) {
            w_.put_u16_at(0, ipfix::kVersion);
            w_.put_u16_at(2, static_cast<uint16_t>(w_.size()));
            w_.put_u32_at(4, secs);
            w_.put_u32_at(8, static_cast<uint32_t>(records_sent_));
            w_.put_u32_at(12, opts_.domain_id);
        } else {
            uint64_t ignored = 0;
            w_.put_u16_at(0, v9::kVersion);
            w_.put_u16_at(2, static_cast<uint16_t>(count_records_));
            w_.put_u32_at(4, uptime_ms(clk.now_ns, clk.boot_ns, ignored));
            w_.put_u32_at(8, secs);
            w_.put_u32_at(12, static_cast<uint32_t>(stats_.datagrams));
            w_.put_u32_at(16, opts_.domain_id);
        }
        out.on_datagram({w_.data(), w_.size()});
        ++stats_.datagrams;
        stats_.bytes += w_.size();
        records_sent_ += data_records_;
        ++since_templates_;
        data_records_ = 0;
        count_records_ = 0;
        open_ = false;
        w_.reset();
    }

    [[nodiscard]] bool pending() const noexcept override { return open_; }
    [[nodiscard]] ExportFormat format() const noexcept override
    {
        return d_ == Dialect::Ipfix ? ExportFormat::Ipfix : ExportFormat::NetflowV9;
    }

private:
    [[nodiscard]] uint32_t templates_len() const noexcept { return 4 + t4_.spec_len + t6_.spec_len; }
    [[nodiscard]] uint32_t pad_of(std::size_t len) const noexcept
    {
        // v9 SHOULD pad flowsets to 32-bit boundaries; IPFIX padding is
        // optional and left out (records are fixed-size, nothing to align).
        return d_ == Dialect::V9 ? static_cast<uint32_t>((4 - len % 4) % 4) : 0;
    }

    void begin(const ExportClock& clk) noexcept
    {
        w_.zeros(header_len_);
        open_ = true;
        set_id_ = 0;
        const bool due = !templates_ever_
            || (opts_.template_refresh_packets && since_templates_ >= opts_.template_refresh_packets)
            || (opts_.template_refresh_s && clk.now_ns >= last_templates_ns_
                && clk.now_ns - last_templates_ns_ >= uint64_t{opts_.template_refresh_s} * 1000000000ULL);
        if (!due)
            return;
        w_.u16(d_ == Dialect::Ipfix ? ipfix::kTemplateSetId : v9::kTemplateFlowSetId);
        w_.u16(static_cast<uint16_t>(templates_len()));
        write_template(t4_);
        write_template(t6_);
        count_records_ += 2;
        templates_ever_ = true;
        since_templates_ = 0;
        last_templates_ns_ = clk.now_ns;
        ++stats_.template_sends;
    }

    void write_template(const Template& t) noexcept
    {
        w_.u16(t.id);
        w_.u16(static_cast<uint16_t>(t.fields.size()));
        for (const FieldSpec& f : t.fields) {
            w_.u16(f.pen ? static_cast<uint16_t>(f.id | ipfix::kEnterpriseBit) : f.id);
            w_.u16(f.len);
            if (f.pen)
                w_.u32(f.pen);
        }
    }

    void close_set() noexcept
    {
        if (set_id_ == 0)
            return;
        const std::size_t len = w_.size() - set_at_;
        const uint32_t pad = pad_of(len);
        w_.zeros(pad);
        w_.put_u16_at(set_at_ + 2, static_cast<uint16_t>(len + pad));
        set_id_ = 0;
    }

    void put(const FlowRecord& r, const Template& t, const Rec& rec, const ExportClock& clk,
             DatagramSink& out) noexcept
    {
        if (open_) {
            std::size_t need = t.record_len + 3;
            if (set_id_ != t.id)
                need += 4 + (set_id_ ? 3 : 0);
            if (w_.size() + need > opts_.mtu)
                flush(clk, out);
        }
        if (!open_)
            begin(clk);
        if (set_id_ != t.id) {
            close_set();
            set_at_ = w_.size();
            set_id_ = t.id;
            w_.u16(t.id);
            w_.u16(0);
        }
        write_record(r, t, rec, clk);
        ++data_records_;
        ++count_records_;
        ++stats_.records;
        stats_.packets_total += rec.fwd.c->packets + (rec.rev ? rec.rev->packets : 0);
        stats_.bytes_total += rec.fwd.c->bytes + (rec.rev ? rec.rev->bytes : 0);
    }

    void write_record(const FlowRecord& r, const Template& t, const Rec& x, const ExportClock& clk) noexcept
    {
        const DirCounters& c = *x.fwd.c;
        static const DirCounters kNone{};
        const DirCounters& rv = x.rev ? *x.rev : kNone;
        const uint32_t addr_len = r.key.ip_version == 6 ? 16 : 4;
        for (const FieldSpec& f : t.fields) {
            switch (f.f) {
            case F::Bytes: w_.u64(c.bytes); break;
            case F::Packets: w_.u64(c.packets); break;
            case F::Proto: w_.u8(r.key.proto); break;
            case F::Tos: w_.u8(c.tos); break;
            case F::TcpFlags:
                if (f.len == 2) w_.u16(x.tcp_flags); else w_.u8(x.tcp_flags);
                break;
            case F::SrcPort: w_.u16(x.fwd.sport); break;
            case F::DstPort: w_.u16(x.fwd.dport); break;
            case F::SrcAddr: w_.bytes(x.fwd.src->data(), addr_len); break;
            case F::DstAddr: w_.bytes(x.fwd.dst->data(), addr_len); break;
            case F::InIf: w_.u32(0); break;
            case F::OutIf: w_.u32(0); break;
            case F::Vlan: w_.u16(r.key.vlan); break;
            case F::SrcMac: w_.bytes(x.fwd.src_mac->data(), 6); break;
            case F::DstMac: w_.bytes(x.fwd.dst_mac->data(), 6); break;
            case F::StartMs: w_.u64(x.start_ns / 1000000ULL); break;
            case F::EndMs: w_.u64(x.end_ns / 1000000ULL); break;
            case F::StartUptime: w_.u32(uptime_ms(x.start_ns, clk.boot_ns, stats_.clamped_times)); break;
            case F::EndUptime: w_.u32(uptime_ms(x.end_ns, clk.boot_ns, stats_.clamped_times)); break;
            case F::EndReason: w_.u8(static_cast<uint8_t>(r.end_reason)); break;
            case F::BiflowDir: w_.u8(x.biflow_dir); break;
            case F::MinTtl: w_.u8(c.min_ttl); break;
            case F::MaxTtl: w_.u8(c.max_ttl); break;
            case F::Icmp: w_.u16(x.fwd.icmp); break;
            case F::RevBytes: w_.u64(rv.bytes); break;
            case F::RevPackets: w_.u64(rv.packets); break;
            case F::RevTcpFlags: w_.u16(rv.tcp_flags); break;
            case F::RevTos: w_.u8(rv.tos); break;
            case F::RevStartMs: w_.u64(reverse_ms(x.rev, x.start_ns, false)); break;
            case F::RevEndMs: w_.u64(reverse_ms(x.rev, x.end_ns, true)); break;
            case F::RevMinTtl: w_.u8(rv.min_ttl); break;
            case F::RevMaxTtl: w_.u8(rv.max_ttl); break;
            case F::OutBytes: w_.u64(rv.bytes); break;
            case F::OutPackets: w_.u64(rv.packets); break;
            }
        }
    }

    Dialect d_;
    EncoderOptions opts_;
    BiflowMode mode_;
    Template t4_;
    Template t6_;
    uint32_t header_len_;
    ByteWriter w_;
    bool open_ = false;
    uint16_t set_id_ = 0;      ///< data set being filled, 0 = none
    std::size_t set_at_ = 0;
    uint32_t data_records_ = 0;  ///< in the current datagram
    uint32_t count_records_ = 0; ///< v9 header count: template + data records
    uint64_t records_sent_ = 0;  ///< data records in finished datagrams
    bool templates_ever_ = false;
    uint32_t since_templates_ = 0;
    uint64_t last_templates_ns_ = 0;
};

} // namespace

Result<std::unique_ptr<Encoder>> make_template_encoder(Dialect d, const EncoderOptions& opts)
{
    const char* name = d == Dialect::Ipfix ? "ipfix" : "netflow v9";
    // v9 cannot carry enterprise elements: RFC 5103 biflow falls back to IN/OUT pairs.
    BiflowMode mode = opts.biflow;
    if (d == Dialect::V9 && mode == BiflowMode::Rfc5103)
        mode = BiflowMode::InOut;
    uint16_t base = opts.template_id_base;
    if (base == 0)
        base = static_cast<uint16_t>(256 + 2 * static_cast<int>(mode));
    if (base < 256 || base == 65535)
        return invalid(std::string(name) + ": template id base " + std::to_string(base) + " must be in 256..65534");
    if (opts.mtu > 65535)
        return invalid(std::string(name) + ": MTU " + std::to_string(opts.mtu) + " above 65535");
    auto enc = std::make_unique<TemplateEncoder>(d, opts, mode, base);
    if (opts.mtu < enc->min_datagram())
        return invalid(std::string(name) + ": MTU " + std::to_string(opts.mtu) + " below "
                       + std::to_string(enc->min_datagram()) + " (header, templates and one record)");
    return std::unique_ptr<Encoder>(std::move(enc));
}

} // namespace weir::exporters::detail
