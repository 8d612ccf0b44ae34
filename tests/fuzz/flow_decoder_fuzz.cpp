// libFuzzer target for the NetFlow v5 / v9 / IPFIX decoder (FlowDecoder):
// one input is a conversation, so templates from one message meet data of
// the next. Layout: byte 0 picks the options (small source/template caps,
// template timeout), then messages, each a 2-byte big-endian length, one
// byte (exporter address low bits, TCP session bit) and the message bytes.
// Checked: no sanitizer report, and every delivered FlowRecord is sane
// (IP version 4 or 6, canonical key, one-way records without reverse
// counters coming out of nowhere).
#include <weir/exporters/flow_decoder.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

using namespace weir;
using namespace weir::exporters;

struct Check final : FlowRecordSink {
    uint64_t n = 0;
    void on_flow(const FlowRecord& r, const FlowOrigin& o) noexcept override
    {
        ++n;
        if (r.key.ip_version != 4 && r.key.ip_version != 6)
            std::abort();
        const int c = std::memcmp(r.key.addr_a.data(), r.key.addr_b.data(), 16);
        if (c > 0 || (c == 0 && r.key.port_a > r.key.port_b))
            std::abort(); // not canonical
        if (o.exporter == nullptr || (o.version != 5 && o.version != 9 && o.version != 10))
            std::abort();
        if (r.dir[1].packets == 0 && r.dir[1].bytes == 0 && (r.dir[1].first_ns || r.dir[1].tcp_flags))
            std::abort(); // reverse fields without reverse counters
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1)
        return 0;
    DecoderOptions o;
    o.max_sources = 1u + (data[0] & 3);
    o.max_templates = 1u + ((data[0] >> 2) & 7);
    o.template_timeout_ns = (data[0] & 0x20) ? 1000000000ULL : 0;
    auto dec = FlowDecoder::create(o);
    if (!dec)
        std::abort();
    Check sink;
    uint64_t now = 1700000000ULL * 1000000000ULL;
    std::size_t off = 1;
    while (size - off >= 3) {
        const std::size_t len = static_cast<std::size_t>(data[off] << 8 | data[off + 1]);
        const uint8_t who = data[off + 2];
        off += 3;
        const std::size_t n = len < size - off ? len : size - off;
        ExporterAddress a;
        a.family = (who & 0x40) ? 6 : 4;
        a.addr = {127, 0, 0, static_cast<uint8_t>(who & 3)};
        a.session = (who & 0x80) ? 1u + ((who >> 2) & 3) : 0;
        // A heap copy of exactly n bytes, so ASan sees any over-read.
        std::unique_ptr<uint8_t[]> msg(new uint8_t[n ? n : 1]);
        if (n)
            std::memcpy(msg.get(), data + off, n);
        dec.value()->decode(a, {msg.get(), n}, now, sink);
        if (who & 0x20)
            dec.value()->end_session(a);
        now += (who & 0x10) ? 2000000000ULL : 1000000ULL;
        off += n;
    }
    if (dec.value()->totals().flows != sink.n)
        std::abort();
    return 0;
}
