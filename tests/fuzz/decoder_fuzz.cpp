// libFuzzer target for weir::engine::Decoder. Input: one byte choosing the
// link type (see fuzz_linktypes.hpp), then the frame. The frame is copied to a
// buffer of exactly its size so AddressSanitizer reports any read past caplen.
// Besides memory errors it traps on broken decoder invariants.
#include <weir/engine/decoder.hpp>

#include "fuzz_linktypes.hpp"

#include <cstdint>
#include <cstring>
#include <memory>

namespace {

void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

void run(weir::engine::Decoder& dec, const weir::RawPacket& pkt)
{
    weir::PacketMeta m;
    const uint64_t before = dec.stats().packets;
    if (dec.decode(pkt, m)) {
        check(m.hash == weir::flow_hash(m.key));
        check(m.key.ip_version == 4 || m.key.ip_version == 6);
        check(uint32_t{m.l4_payload_offset} + m.l4_payload_len <= pkt.caplen);
        check(m.key.pad_[0] == 0 && m.key.pad_[1] == 0 && m.key.pad_[2] == 0);
        check(m.key.vlan <= 0x0fff);
        check(m.wire_len == pkt.wire_len);
    }
    check(dec.stats().packets == before + 1);
    const weir::engine::DecoderStats& s = dec.stats();
    uint64_t drops = 0;
    for (size_t i = 0; i < weir::kDropReasonCount; ++i)
        if (i != static_cast<size_t>(weir::DropReason::FragNoFirst))
            drops += s.drops.n[i];
    check(s.decoded + drops == s.packets);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1)
        return 0;
    const uint32_t lt = weir::fuzz::kLinktypes[data[0] % weir::fuzz::kLinktypeCount];
    const size_t n = size - 1;
    auto frame = std::make_unique<uint8_t[]>(n ? n : 1);
    if (n)
        std::memcpy(frame.get(), data + 1, n);

    weir::RawPacket pkt;
    pkt.data = frame.get();
    pkt.caplen = static_cast<uint32_t>(n);
    pkt.wire_len = static_cast<uint32_t>(n + (data[0] & 0x80 ? 100 : 0));  // also a snaplen-cut view
    pkt.linktype = lt;

    // A small fragment cache keeps each input cheap; decoding the frame
    // twice lets a first fragment be followed by a lookup.
    weir::engine::Decoder dec(weir::engine::DecoderConfig{.decap_tunnels = true, .frag_cache_entries = 16});
    run(dec, pkt);
    run(dec, pkt);
    weir::engine::Decoder flat(weir::engine::DecoderConfig{.decap_tunnels = false, .frag_cache_entries = 16});
    run(flat, pkt);
    return 0;
}
