// The generator's template frame (Ethernet, optional 802.1Q, IPv4 or IPv6,
// UDP or TCP) with full checksums, and the per-flow rewrite shared with the BPF
// program: source port and low byte of the source address, checksums fixed
// incrementally (RFC 1624) from the template's own values.
#include "gen.hpp"

#include <weir/abi/gen.h>

#include <algorithm>
#include <string>

namespace weir::gen {

namespace {

void put16(uint8_t* p, uint16_t v) noexcept
{
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

void put32(uint8_t* p, uint32_t v) noexcept
{
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) noexcept
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += static_cast<uint32_t>(p[i]) << 8 | p[i + 1];
    if (n & 1)
        s += static_cast<uint32_t>(p[n - 1]) << 8;
    return s;
}

uint16_t fold(uint32_t s) noexcept
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s & 0xffff);
}

// RFC 1624 eqn. 3 for one and for two replaced 16-bit words (the same
// arithmetic as weir_gen.bpf.c, so both modes produce identical bytes).
uint16_t csum_replace(uint16_t csum, uint16_t old1, uint16_t new1) noexcept
{
    uint32_t s = static_cast<uint16_t>(~csum);
    s += static_cast<uint16_t>(~old1);
    s += new1;
    return fold(s);
}

uint16_t csum_replace(uint16_t csum, uint16_t old1, uint16_t new1, uint16_t old2, uint16_t new2) noexcept
{
    uint32_t s = static_cast<uint16_t>(~csum);
    s += static_cast<uint16_t>(~old1);
    s += new1;
    s += static_cast<uint16_t>(~old2);
    s += new2;
    return fold(s);
}

} // namespace

Result<Template> build_template(const FrameSpec& spec)
{
    if (spec.size < WEIR_GEN_MIN_FRAME || spec.size > WEIR_GEN_MAX_FRAME)
        return invalid("frame size " + std::to_string(spec.size) + " outside " +
                       std::to_string(WEIR_GEN_MIN_FRAME) + ".." + std::to_string(WEIR_GEN_MAX_FRAME) +
                       " (Ethernet frame without FCS)");
    if (spec.proto != 17 && spec.proto != 6)
        return invalid("protocol must be UDP (17) or TCP (6)");
    if (spec.flows == 0 || spec.flows > WEIR_GEN_MAX_FLOWS)
        return invalid("flows must be 1.." + std::to_string(WEIR_GEN_MAX_FLOWS));
    const uint32_t port_span = spec.flows < WEIR_GEN_PORTS_PER_IP ? spec.flows : WEIR_GEN_PORTS_PER_IP;
    if (spec.sport_base == 0 || spec.sport_base + port_span - 1 > 0xffff)
        return invalid("source ports " + std::to_string(spec.sport_base) + ".." +
                       std::to_string(spec.sport_base + port_span - 1) + " do not fit in 1..65535");
    if (spec.vlan > 4094)
        return invalid("VLAN id must be 0..4094");

    Template t;
    t.ipv4 = !spec.ipv6;
    const uint32_t l3_hdr = t.ipv4 ? 20 : 40;
    t.l3_off = spec.vlan >= 0 ? 18 : 14;
    t.l4_off = t.l3_off + l3_hdr;
    const uint32_t l4_hdr = spec.proto == 17 ? 8 : 20;
    if (t.l4_off + l4_hdr > spec.size)
        return invalid("frame size " + std::to_string(spec.size) + " too small for the headers (at least " +
                       std::to_string(t.l4_off + l4_hdr) + ")");
    t.l4_csum_off = spec.proto == 17 ? 6 : 16;
    const uint16_t ethertype = t.ipv4 ? 0x0800 : 0x86dd;

    std::vector<uint8_t>& f = t.bytes;
    f.assign(spec.size, 0);
    for (int i = 0; i < 6; ++i) {
        f[i] = spec.dst_mac[i];
        f[6 + i] = spec.src_mac[i];
    }
    if (spec.vlan >= 0) {
        put16(&f[12], 0x8100);
        put16(&f[14], static_cast<uint16_t>(spec.vlan));
        put16(&f[16], ethertype);
    } else {
        put16(&f[12], ethertype);
    }

    uint8_t* ip = &f[t.l3_off];
    const uint32_t ip_len = spec.size - t.l3_off;
    const uint32_t l4_len = ip_len - l3_hdr;
    const uint8_t* saddr;
    size_t addr_len;
    if (t.ipv4) {
        ip[0] = 0x45;
        put16(ip + 2, static_cast<uint16_t>(ip_len));
        put16(ip + 6, 0x4000); // DF
        ip[8] = 64;
        ip[9] = spec.proto;
        put32(ip + 12, spec.src_ip);
        put32(ip + 16, spec.dst_ip);
        t.ip_csum = fold(sum16(ip, 20));
        put16(ip + 10, t.ip_csum);
        saddr = ip + 12;
        addr_len = 4;
    } else {
        ip[0] = 0x60;
        put16(ip + 4, static_cast<uint16_t>(l4_len));
        ip[6] = spec.proto;
        ip[7] = 64;
        std::copy(spec.src_ip6.begin(), spec.src_ip6.end(), ip + 8);
        std::copy(spec.dst_ip6.begin(), spec.dst_ip6.end(), ip + 24);
        saddr = ip + 8;
        addr_len = 16;
    }
    t.saddr_lo_off = static_cast<uint32_t>(saddr - f.data()) + static_cast<uint32_t>(addr_len) - 1;
    t.saddr_w1 = static_cast<uint16_t>(saddr[addr_len - 2] << 8 | saddr[addr_len - 1]);

    uint8_t* l4 = &f[t.l4_off];
    for (uint32_t i = l4_hdr; i < l4_len; ++i)
        l4[i] = static_cast<uint8_t>(i);
    put16(l4, spec.sport_base);
    put16(l4 + 2, spec.dport);
    if (spec.proto == 17) {
        put16(l4 + 4, static_cast<uint16_t>(l4_len));
    } else {
        put32(l4 + 4, 1);    // seq
        put32(l4 + 8, 1);    // ack
        l4[12] = 5 << 4;     // data offset
        l4[13] = 0x18;       // PSH|ACK
        put16(l4 + 14, 65535);
    }
    // Pseudo header: both addresses, protocol, L4 length.
    uint32_t s = sum16(saddr, 2 * addr_len);
    s += spec.proto;
    s += l4_len;
    uint16_t c = fold(sum16(l4, l4_len, s));
    if (spec.proto == 17 && c == 0)
        c = 0xffff;
    t.l4_csum = c;
    put16(l4 + t.l4_csum_off, c);
    return t;
}

void apply_flow(uint8_t* frame, const Template& t, const FrameSpec& spec, uint32_t flow) noexcept
{
    const uint32_t hi = flow / WEIR_GEN_PORTS_PER_IP;
    const auto sport = static_cast<uint16_t>(spec.sport_base + (flow - hi * WEIR_GEN_PORTS_PER_IP));
    const auto w1 = static_cast<uint16_t>((t.saddr_w1 & 0xff00) | ((t.saddr_w1 + hi) & 0xff));
    uint8_t* l4 = frame + t.l4_off;
    put16(l4, sport);
    frame[t.saddr_lo_off] = static_cast<uint8_t>(w1);
    if (t.ipv4)
        put16(frame + t.l3_off + 10, csum_replace(t.ip_csum, t.saddr_w1, w1));
    uint16_t c = csum_replace(t.l4_csum, t.saddr_w1, w1, spec.sport_base, sport);
    if (spec.proto == 17 && c == 0)
        c = 0xffff;
    put16(l4 + t.l4_csum_off, c);
}

} // namespace weir::gen
