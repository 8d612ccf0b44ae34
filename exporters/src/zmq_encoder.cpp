// ZMQ v3 header and the flow encoder, TLV or JSON (see zmq_encoder.hpp).
//
// One field list (put_fields) feeds both formats through two writers with
// the same put_uint/put_string calls: tlv::Writer, and JsonWriter below,
// so a flow carries exactly the same keys and values in either form.
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include "l7_fields.hpp"

#include <weir/core/ndpi_vocab.hpp>

#include <zlib.h>

#include <arpa/inet.h>

#include <algorithm>
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

std::string_view zmq_payload_format_name(ZmqPayloadFormat f) noexcept
{
    switch (f) {
    case ZmqPayloadFormat::Tlv: return "tlv";
    case ZmqPayloadFormat::Json: return "json";
    case ZmqPayloadFormat::JsonLabels: return "json-labels";
    }
    return "unknown";
}

Result<std::unique_ptr<ZmqFlowEncoder>> ZmqFlowEncoder::create(const ZmqEncoderOptions& opts)
{
    if (opts.max_payload < 1024 || opts.max_payload > kZmqMaxPayload)
        return invalid("ZMQ max payload " + std::to_string(opts.max_payload) + " outside 1024..131072");
    if (opts.zlib_level < 0 || opts.zlib_level > 9)
        return invalid("zlib level " + std::to_string(opts.zlib_level) + " outside 0..9");
    std::unique_ptr<ZmqFlowEncoder> e(new ZmqFlowEncoder(opts));
    e->payload_.assign(opts.max_payload, 0);
    if (e->json()) {
        e->payload_[0] = '[';
        e->used_ = 1;
    } else {
        tlv::Writer w(e->payload_.data(), e->payload_.size());
        w.preamble();
        e->used_ = w.size();
    }
    e->preamble_ = e->used_;
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

namespace {

/// JSON counterpart of tlv::Writer: one flat object, numeric string keys
/// ("8") or labels ("IPV4_SRC_ADDR"), integers as numbers, strings escaped.
class JsonWriter {
public:
    JsonWriter(uint8_t* buf, std::size_t cap, bool labels) noexcept : buf_(buf), cap_(cap), labels_(labels) {}

    bool put_uint(uint32_t key, uint64_t v) noexcept
    {
        if (!put_key(key))
            return false;
        char tmp[20];
        int n = 0;
        do {
            tmp[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v);
        if (!room(static_cast<std::size_t>(n)))
            return fail();
        while (n)
            buf_[pos_++] = static_cast<uint8_t>(tmp[--n]);
        return true;
    }

    bool put_string(uint32_t key, std::string_view v) noexcept
    {
        if (!put_key(key) || !room(1))
            return fail();
        buf_[pos_++] = '"';
        if (!escape(v) || !room(1))
            return fail();
        buf_[pos_++] = '"';
        return true;
    }

    /// Microseconds as milliseconds with three decimals ("12.345").
    bool put_ms(uint32_t key, uint32_t us) noexcept
    {
        if (!put_uint(key, us / 1000) || !room(4))
            return fail();
        const uint32_t frac = us % 1000;
        buf_[pos_++] = '.';
        buf_[pos_++] = static_cast<uint8_t>('0' + frac / 100);
        buf_[pos_++] = static_cast<uint8_t>('0' + frac / 10 % 10);
        buf_[pos_++] = static_cast<uint8_t>('0' + frac % 10);
        return true;
    }

    bool end_record() noexcept
    {
        if (ok_ && pos_ == 0 && room(1))
            buf_[pos_++] = '{';
        if (!ok_ || !room(1))
            return fail();
        buf_[pos_++] = '}';
        return true;
    }

    [[nodiscard]] std::size_t size() const noexcept { return pos_; }

private:
    bool room(std::size_t n) const noexcept { return ok_ && cap_ - pos_ >= n; }
    bool fail() noexcept
    {
        ok_ = false;
        return false;
    }
    void raw(std::string_view s) noexcept
    {
        std::memcpy(buf_ + pos_, s.data(), s.size());
        pos_ += s.size();
    }

    bool put_key(uint32_t key) noexcept
    {
        // '{' or ',', quotes, colon, and at most 10 digits or a label.
        const std::string_view label = labels_ ? tlv::key_name(key) : std::string_view{};
        if (!room(4 + (label.empty() ? 10 : label.size())))
            return fail();
        const uint8_t open = pos_ == 0 ? '{' : ',';
        buf_[pos_++] = open;
        buf_[pos_++] = '"';
        if (!label.empty()) {
            raw(label);
        } else {
            char tmp[10];
            int n = 0;
            do {
                tmp[n++] = static_cast<char>('0' + key % 10);
                key /= 10;
            } while (key);
            while (n)
                buf_[pos_++] = static_cast<uint8_t>(tmp[--n]);
        }
        buf_[pos_++] = '"';
        buf_[pos_++] = ':';
        return true;
    }

    /// Length of the valid UTF-8 sequence at s[i] (RFC 3629 ranges), 0 if invalid.
    static std::size_t utf8_len(std::string_view s, std::size_t i) noexcept
    {
        const auto b = [&](std::size_t k) { return static_cast<uint8_t>(s[i + k]); };
        const uint8_t c = b(0);
        std::size_t n;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return 0;
        }
        if (s.size() - i < n || b(1) < lo || b(1) > hi)
            return 0;
        for (std::size_t k = 2; k < n; ++k)
            if (b(k) < 0x80 || b(k) > 0xbf)
                return 0;
        return n;
    }

    bool escape(std::string_view s) noexcept
    {
        static constexpr char kHex[] = "0123456789abcdef";
        for (std::size_t i = 0; i < s.size();) {
            // Runs of plain ASCII (addresses, MACs, most names) in one copy.
            std::size_t j = i;
            while (j < s.size()) {
                const auto b = static_cast<uint8_t>(s[j]);
                if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\')
                    break;
                ++j;
            }
            if (j > i) {
                if (!room(j - i))
                    return false;
                raw(s.substr(i, j - i));
                i = j;
                continue;
            }
            const auto c = static_cast<uint8_t>(s[i]);
            if (c == '"' || c == '\\') {
                if (!room(2))
                    return false;
                buf_[pos_++] = '\\';
                buf_[pos_++] = c;
                ++i;
            } else if (c < 0x20) {
                if (!room(6))
                    return false;
                raw("\\u00");
                buf_[pos_++] = static_cast<uint8_t>(kHex[c >> 4]);
                buf_[pos_++] = static_cast<uint8_t>(kHex[c & 15]);
                ++i;
            } else if (const std::size_t n = utf8_len(s, i); n) {
                if (!room(n))
                    return false;
                raw(s.substr(i, n));
                i += n;
            } else {
                if (!room(3)) // U+FFFD, as weir's --json writes a bad byte
                    return false;
                raw("\xef\xbf\xbd");
                ++i;
            }
        }
        return true;
    }

    uint8_t* buf_;
    std::size_t cap_;
    bool labels_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

/// A latency in ms: TLV float (as nProbe sends it), JSON number.
bool put_ms(tlv::Writer& w, uint32_t key, uint32_t us) noexcept
{
    return w.put_float(key, static_cast<float>(us) / 1000.0f);
}
bool put_ms(JsonWriter& w, uint32_t key, uint32_t us) noexcept { return w.put_ms(key, us); }

/// The fields of one flow, in the same order and with the same values for
/// every writer. Returns the writer's size, 0 when something did not fit.
template <class W>
std::size_t put_fields(const FlowRecord& r, W& w) noexcept
{
    namespace k = tlv::key;
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
        if (const std::string_view cat = ndpi_vocab::category_name(l7.category); l7.category && !cat.empty())
            ok &= w.put_string(k::kL7ProtoCategory, cat);
        if (l7.confidence)
            ok &= w.put_uint(k::kL7Confidence, l7.confidence);
        const std::string_view server(l7.server_name);
        const detail::ServerNameField sf = detail::server_name_field(l7);
        if (sf == detail::ServerNameField::DnsQuery) {
            if (!server.empty()) {
                ok &= w.put_string(k::kDnsQuery, server);
                ok &= w.put_uint(k::kDnsQueryType, l7.dns_qtype);
                ok &= w.put_uint(k::kDnsRetCode, l7.dns_rcode);
            }
        } else if (sf == detail::ServerNameField::TlsServerName) {
            if (!server.empty())
                ok &= w.put_string(k::kTlsServerName, server);
        } else if (!server.empty()) {
            ok &= w.put_string(k::kHttpSite, server);
        }
        if (l7.url[0])
            ok &= w.put_string(k::kHttpUrl, std::string_view(l7.url));
        if (const std::string_view m = ndpi_vocab::http_method_name(l7.http_method); !m.empty())
            ok &= w.put_string(k::kHttpMethod, m);
        if (l7.http_status)
            ok &= w.put_uint(k::kHttpRetCode, l7.http_status);
        if (l7.user_agent[0])
            ok &= w.put_string(k::kHttpUserAgent, std::string_view(l7.user_agent));
        if (l7.ja4[0])
            ok &= w.put_string(k::kJa4cHash, std::string_view(l7.ja4));
    }
    // nDPI's flow risks, detected protocol or not. The bitmap only: ntopng
    // names the risks itself, and their names (up to 1 KB) would not fit the
    // bound every record keeps (kMaxRecord).
    if (l7.risk) {
        ok &= w.put_uint(k::kL7ProtoRisk, l7.risk);
        ok &= w.put_uint(k::kL7RiskScore, l7.risk_score);
    }
    // Handshake and response times (ntopng: tcp.nw_latency, appl_latency),
    // only when measured.
    if (l7.client_nw_latency_us)
        ok &= put_ms(w, k::kClientNwLatencyMs, l7.client_nw_latency_us);
    if (l7.server_nw_latency_us)
        ok &= put_ms(w, k::kServerNwLatencyMs, l7.server_nw_latency_us);
    if (l7.appl_latency_us)
        ok &= put_ms(w, k::kApplLatencyMs, l7.appl_latency_us);
    ok &= w.end_record();
    return ok ? w.size() : 0;
}

} // namespace

std::size_t ZmqFlowEncoder::encode_record(const FlowRecord& r, uint8_t* buf, std::size_t cap) noexcept
{
    tlv::Writer w(buf, cap);
    return put_fields(r, w);
}

std::size_t ZmqFlowEncoder::encode_json_record(const FlowRecord& r, bool labels, uint8_t* buf,
                                               std::size_t cap) noexcept
{
    JsonWriter w(buf, cap, labels);
    return put_fields(r, w);
}

void ZmqFlowEncoder::add(const FlowRecord& r, ZmqMessageSink& out) noexcept
{
    ++stats_.flows_in;
    if (r.dir[0].packets == 0 && r.dir[1].packets == 0) {
        ++stats_.skipped_empty;
        return;
    }
    std::size_t n = 0;
    if (json()) {
        // Escaping makes a JSON record's size unknown in advance: write it
        // where it goes, and start a new message when it did not fit. One
        // byte stays free for the ',' before it and one for the closing ']'.
        if (opts_.max_flows && pending_flows_ >= opts_.max_flows)
            flush(out);
        const bool labels = opts_.format == ZmqPayloadFormat::JsonLabels;
        for (int attempt = 0; attempt < 2 && n == 0; ++attempt) {
            const std::size_t sep = pending_flows_ ? 1 : 0;
            const std::size_t room = payload_.size() - used_; // >= 1: the ']' is always kept
            n = room > sep + 1 ? encode_json_record(r, labels, payload_.data() + used_ + sep, room - sep - 1) : 0;
            if (n) {
                if (sep)
                    payload_[used_] = ',';
                n += sep;
            } else if (pending_flows_) {
                flush(out);
            } else {
                break;
            }
        }
    } else {
        if (payload_.size() - used_ < kMaxRecord || (opts_.max_flows && pending_flows_ >= opts_.max_flows))
            flush(out);
        n = encode_record(r, payload_.data() + used_, payload_.size() - used_);
    }
    if (n == 0) { // TLV: cannot happen with kMaxRecord of room; never send a partial record
        ++stats_.too_big;
        return;
    }
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
    if (json()) {
        payload_[used_++] = ']'; // room kept by add()
        finish("flow", 0, opts_.compress, {payload_.data(), used_}, pending_flows_, out);
    } else {
        finish("flow", kZmqFlagTlv, opts_.compress, {payload_.data(), used_}, pending_flows_, out);
    }
    ++stats_.flow_messages;
    used_ = preamble_; // keep the preamble
    pending_flows_ = 0;
}

void ZmqFlowEncoder::send_event(std::string_view json, ZmqMessageSink& out) noexcept
{
    finish("event", 0, false, {reinterpret_cast<const uint8_t*>(json.data()), json.size()}, 0, out);
    ++stats_.event_messages;
}

void ZmqFlowEncoder::finish(std::string_view topic, uint8_t flags, bool compress,
                            std::span<const uint8_t> payload, uint32_t flows, ZmqMessageSink& out) noexcept
{
    ZmqHeader h;
    std::memcpy(h.topic.data(), topic.data(), std::min(topic.size(), h.topic.size()));
    h.flags = flags;
    h.uncompressed_size = static_cast<uint32_t>(payload.size());
    h.size_field = h.uncompressed_size;
    h.msg_id = msg_id_++;
    h.source_id = opts_.source_id;
    std::span<const uint8_t> body = payload;
    if (z_ && compress) {
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
