// ZMQ v3 header and the TLV flow encoder (see zmq_encoder.hpp).
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include <zlib.h>

#include <arpa/inet.h>

#include <cstring>

namespace weir::exporters {

std::string_view ZmqHeader::topic_view() const noexcept
{
    std::size_t n = 0;
    while (n < topic.size() && topic[n] != '\0')
        ++n;
    return {topic.data(), n};
}

void write_zmq_header(const ZmqHeader& h, std::span<uint8_t, kZmqHeaderSize> out) noexcept
{
    std::memset(out.data(), 0, kZmqHeaderSize);
    std::memcpy(out.data(), h.topic.data(), h.topic.size());
    out[16] = h.version;
    out[17] = h.flags;
    // ntopng reads offsets 20/24/32 as host-order u32 (little-endian on
    // x86-64, where it runs) and only msg_id through ntohl().
    auto le32 = [&](std::size_t at, uint32_t v) {
        for (int k = 0; k < 4; ++k)
            out[at + k] = static_cast<uint8_t>(v >> (8 * k));
    };
    le32(20, h.uncompressed_size);
    le32(24, h.size_field);
    const uint32_t be = htonl(h.msg_id);
    std::memcpy(out.data() + 28, &be, 4);
    le32(32, h.source_id);
}

struct ZmqFlowEncoder::Zlib {
    z_stream s{};
    bool ok = false;
    ~Zlib()
    {
        if (ok)
            deflateEnd(&s);
    }
};

ZmqFlowEncoder::ZmqFlowEncoder(const ZmqEncoderOptions& opts) : opts_(opts) {}
ZmqFlowEncoder::~ZmqFlowEncoder() = default;

Result<std::unique_ptr<ZmqFlowEncoder>> ZmqFlowEncoder::create(const ZmqEncoderOptions& opts)
{
    if (opts.max_payload < 1024 || opts.max_payload > kZmqMaxPayload)
        return invalid("ZMQ max payload " + std::to_string(opts.max_payload) + " outside 1024..131072");
    if (opts.zlib_level < 0 || opts.zlib_level > 9)
        return invalid("zlib level " + std::to_string(opts.zlib_level) + " outside 0..9");
    std::unique_ptr<ZmqFlowEncoder> e(new ZmqFlowEncoder(opts));
    e->payload_.assign(opts.max_payload, 0);
    tlv::Writer w(e->payload_.data(), e->payload_.size());
    w.preamble();
    e->used_ = w.size();
    if (opts.compress) {
        e->z_ = std::make_unique<Zlib>();
        // deflateInit (zlib wrapper, RFC 1950) is what compress() writes and
        // what ntopng's uncompress() expects. Its state is allocated once here.
        if (deflateInit(&e->z_->s, opts.zlib_level) != Z_OK)
            return Error{std::make_error_code(std::errc::not_enough_memory), "zlib deflateInit"};
        e->z_->ok = true;
        e->zbuf_.assign(compressBound(opts.max_payload), 0);
    }
    return e;
}

namespace {

char* put_dec_u8(char* p, uint8_t v) noexcept
{
    if (v >= 100) {
        *p++ = static_cast<char>('0' + v / 100);
        v %= 100;
        *p++ = static_cast<char>('0' + v / 10);
        *p++ = static_cast<char>('0' + v % 10);
    } else if (v >= 10) {
        *p++ = static_cast<char>('0' + v / 10);
        *p++ = static_cast<char>('0' + v % 10);
    } else {
        *p++ = static_cast<char>('0' + v);
    }
    return p;
}

char* fmt_u32(char* p, uint32_t v) noexcept
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char* put_dotted(char* p, const uint8_t* a) noexcept
{
    for (int k = 0; k < 4; ++k) {
        if (k)
            *p++ = '.';
        p = put_dec_u8(p, a[k]);
    }
    return p;
}

/// IPv6 text exactly as glibc's inet_ntop() writes it (RFC 5952 plus the
/// embedded IPv4 forms), which weir's JSON writer uses: the flows must read
/// the same on both outputs. inet_ntop itself goes through sprintf and
/// costs more than the rest of the record.
char* put_ipv6(char* p, const std::array<uint8_t, 16>& a) noexcept
{
    static constexpr char kHex[] = "0123456789abcdef";
    uint16_t w[8];
    for (int k = 0; k < 8; ++k)
        w[k] = static_cast<uint16_t>(a[2 * k] << 8 | a[2 * k + 1]);
    // Longest run of zero words (first one on ties), if at least 2 long.
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int k = 0; k < 8; ++k) {
        if (w[k] == 0) {
            if (cur < 0)
                cur = k, cur_len = 0;
            if (++cur_len > best_len)
                best = cur, best_len = cur_len;
        } else {
            cur = -1;
        }
    }
    if (best_len < 2)
        best = -1;
    for (int k = 0; k < 8; ++k) {
        if (best >= 0 && k >= best && k < best + best_len) {
            if (k == best)
                *p++ = ':';
            continue;
        }
        if (k)
            *p++ = ':';
        if (k == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
            return put_dotted(p, a.data() + 12);
        const uint16_t v = w[k];
        bool lead = true;
        for (int sh = 12; sh >= 0; sh -= 4) {
            const unsigned d = (v >> sh) & 15;
            if (lead && d == 0 && sh)
                continue;
            lead = false;
            *p++ = kHex[d];
        }
    }
    if (best >= 0 && best + best_len == 8)
        *p++ = ':';
    return p;
}

/// Dotted IPv4 or IPv6 text; returns the length.
std::size_t ip_text(const std::array<uint8_t, 16>& a, uint8_t version, char* out) noexcept
{
    char* end = version == 6 ? put_ipv6(out, a) : put_dotted(out, a.data());
    return static_cast<std::size_t>(end - out);
}

std::size_t mac_text(const std::array<uint8_t, 6>& m, char* out) noexcept
{
    static constexpr char kHex[] = "0123456789abcdef";
    char* p = out;
    for (int k = 0; k < 6; ++k) {
        if (k)
            *p++ = ':';
        *p++ = kHex[m[k] >> 4];
        *p++ = kHex[m[k] & 15];
    }
    return 17;
}

bool zero_mac(const std::array<uint8_t, 6>& m) noexcept
{
    for (uint8_t b : m)
        if (b)
            return false;
    return true;
}

} // namespace

std::size_t ZmqFlowEncoder::encode_record(const FlowRecord& r, uint8_t* buf, std::size_t cap) noexcept
{
    namespace k = tlv::key;
    tlv::Writer w(buf, cap);
    const FlowKey& key = r.key;
    const bool v6 = key.ip_version == 6;
    const bool icmp = key.proto == 1 || key.proto == 58;
    const DirCounters& c = r.dir[0];
    const DirCounters& s = r.dir[1];
    char text[64];
    bool ok = true;
    // Addresses as strings: the one form ntopng takes for both families.
    ok &= w.put_string(v6 ? k::kIpv6SrcAddr : k::kIpv4SrcAddr,
                       std::string_view(text, ip_text(r.client_addr(), key.ip_version, text)));
    ok &= w.put_string(v6 ? k::kIpv6DstAddr : k::kIpv4DstAddr,
                       std::string_view(text, ip_text(r.server_addr(), key.ip_version, text)));
    // ntopng zeroes ICMP ports itself; weir's key holds the type/code there.
    ok &= w.put_uint(k::kL4SrcPort, icmp ? 0 : r.client_port());
    ok &= w.put_uint(k::kL4DstPort, icmp ? 0 : r.server_port());
    ok &= w.put_uint(k::kProtocol, key.proto);
    ok &= w.put_uint(k::kIpProtocolVersion, v6 ? 6 : 4);
    // Deltas since the previous export of this flow: weir exports a flow
    // once per end (idle, active timeout...), with the counters of that span.
    ok &= w.put_uint(k::kInBytes, c.bytes);
    ok &= w.put_uint(k::kInPkts, c.packets);
    ok &= w.put_uint(k::kOutBytes, s.bytes);
    ok &= w.put_uint(k::kOutPkts, s.packets);
    ok &= w.put_uint(k::kFirstSwitched, r.first_ns() / 1000000000ULL);
    ok &= w.put_uint(k::kLastSwitched, r.last_ns() / 1000000000ULL);
    if (key.proto == 6) {
        // Per-side flags keep weir's client/server: ntopng otherwise swaps
        // TCP endpoints when the source port is the lower one.
        ok &= w.put_uint(k::kTcpFlags, c.tcp_flags | s.tcp_flags);
        ok &= w.put_uint(k::kClientTcpFlags, c.tcp_flags);
        ok &= w.put_uint(k::kServerTcpFlags, s.tcp_flags);
    }
    ok &= w.put_uint(k::kSrcTos, c.tos);
    ok &= w.put_uint(k::kDstTos, s.tos);
    if (!zero_mac(r.client_mac) || !zero_mac(r.server_mac)) {
        ok &= w.put_string(k::kInSrcMac, std::string_view(text, mac_text(r.client_mac, text)));
        ok &= w.put_string(k::kOutDstMac, std::string_view(text, mac_text(r.server_mac, text)));
    }
    if (key.vlan)
        ok &= w.put_uint(k::kSrcVlan, key.vlan);
    // L7_PROTO only for a detected protocol: ntopng guesses by port itself,
    // and 0 would stop that guess.
    const L7Info& l7 = r.l7;
    if (l7.app && !l7.guessed) {
        char* p = text;
        if (l7.master && l7.master != l7.app) {
            p = fmt_u32(p, l7.master);
            *p++ = '.';
        }
        p = fmt_u32(p, l7.app);
        ok &= w.put_string(k::kL7Proto, std::string_view(text, static_cast<std::size_t>(p - text)));
        ok &= w.put_string(k::kL7ProtoName, std::string_view(l7.name));
        const std::string_view server(l7.server_name);
        auto is = [&l7](uint16_t id) { return l7.master == id || l7.app == id; };
        if (is(5) || is(8) || is(154)) { // DNS, MDNS, LLMNR
            if (!server.empty()) {
                ok &= w.put_string(k::kDnsQuery, server);
                ok &= w.put_uint(k::kDnsQueryType, l7.dns_qtype);
                ok &= w.put_uint(k::kDnsRetCode, l7.dns_rcode);
            }
        } else if (is(91)) { // TLS
            if (!server.empty())
                ok &= w.put_string(k::kTlsServerName, server);
        } else if (!server.empty()) {
            ok &= w.put_string(k::kHttpSite, server);
        }
        if (l7.url[0])
            ok &= w.put_string(k::kHttpUrl, std::string_view(l7.url));
        if (l7.user_agent[0])
            ok &= w.put_string(k::kHttpUserAgent, std::string_view(l7.user_agent));
        if (l7.ja4[0])
            ok &= w.put_string(k::kJa4cHash, std::string_view(l7.ja4));
    }
    ok &= w.end_record();
    return ok ? w.size() : 0;
}

void ZmqFlowEncoder::add(const FlowRecord& r, ZmqMessageSink& out) noexcept
{
    ++stats_.flows_in;
    if (r.dir[0].packets == 0 && r.dir[1].packets == 0) {
        ++stats_.skipped_empty;
        return;
    }
    if (payload_.size() - used_ < kMaxRecord || (opts_.max_flows && pending_flows_ >= opts_.max_flows))
        flush(out);
    const std::size_t n = encode_record(r, payload_.data() + used_, payload_.size() - used_);
    if (n == 0) // cannot happen with kMaxRecord of room; never send a partial record
        return;
    used_ += n;
    ++pending_flows_;
    ++stats_.records;
    stats_.packets_total += r.dir[0].packets + r.dir[1].packets;
    stats_.bytes_total += r.dir[0].bytes + r.dir[1].bytes;
}

void ZmqFlowEncoder::flush(ZmqMessageSink& out) noexcept
{
    if (pending_flows_ == 0)
        return;
    finish("flow", kZmqFlagTlv, {payload_.data(), used_}, pending_flows_, out);
    ++stats_.flow_messages;
    used_ = 2; // keep the preamble
    pending_flows_ = 0;
}

void ZmqFlowEncoder::send_event(std::string_view json, ZmqMessageSink& out) noexcept
{
    finish("event", 0, {reinterpret_cast<const uint8_t*>(json.data()), json.size()}, 0, out);
    ++stats_.event_messages;
}

void ZmqFlowEncoder::finish(std::string_view topic, uint8_t flags, std::span<const uint8_t> payload,
                            uint32_t flows, ZmqMessageSink& out) noexcept
{
    ZmqHeader h;
    std::memcpy(h.topic.data(), topic.data(), std::min(topic.size(), h.topic.size()));
    h.flags = flags;
    h.uncompressed_size = static_cast<uint32_t>(payload.size());
    h.size_field = h.uncompressed_size;
    h.msg_id = msg_id_++;
    h.source_id = opts_.source_id;
    std::span<const uint8_t> body = payload;
    if (z_ && flags != 0) {
        z_stream& s = z_->s;
        deflateReset(&s);
        s.next_in = const_cast<Bytef*>(payload.data());
        s.avail_in = static_cast<uInt>(payload.size());
        s.next_out = zbuf_.data();
        s.avail_out = static_cast<uInt>(zbuf_.size());
        const int rc = deflate(&s, Z_FINISH);
        // Incompressible data can grow past ntopng's frame limit: send it plain.
        if (rc == Z_STREAM_END && s.total_out <= kZmqMaxPayload) {
            body = {zbuf_.data(), static_cast<std::size_t>(s.total_out)};
            h.flags |= kZmqFlagCompressed;
        } else {
            ++stats_.compress_errors;
        }
    }
    std::array<uint8_t, kZmqHeaderSize> hb;
    write_zmq_header(h, hb);
    ++stats_.messages;
    stats_.raw_bytes += payload.size();
    stats_.payload_bytes += body.size();
    out.on_message(hb, body, flows);
}

} // namespace weir::exporters
