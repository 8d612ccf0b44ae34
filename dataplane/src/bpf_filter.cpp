// Capture filters: tcpdump expressions compiled by libpcap into classic BPF
// (see bpf_filter.hpp for the VLAN rule and the kernel variant).
#include "bpf_filter.hpp"

#include <pcap/pcap.h>

#include <fmt/format.h>

#include <cstddef>
#include <memory>
#include <mutex>

namespace weir::dataplane {

static_assert(sizeof(sock_filter) == sizeof(bpf_insn));
static_assert(offsetof(sock_filter, k) == offsetof(bpf_insn, k));

namespace {

// pcap_compile keeps its parser state in globals before libpcap 1.8 and
// pcap_open_dead/pcap_compile share an error buffer per handle: one
// compilation at a time in the whole process.
std::mutex& compile_mutex()
{
    static std::mutex m;
    return m;
}

struct DeadHandleCloser {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};

constexpr uint32_t kMaxSnaplen = 262144;

} // namespace

uint32_t linktype_from_dlt(int dlt) noexcept
{
    switch (dlt) {
    case 11: return 100; // DLT_ATM_RFC1483
    case 12: return 101; // DLT_RAW
    case 15: return 102; // DLT_SLIP_BSDOS
    case 16: return 103; // DLT_PPP_BSDOS
    case 19: return 106; // DLT_ATM_CLIP
    default: return static_cast<uint32_t>(dlt);
    }
}

int dlt_from_linktype(uint32_t linktype) noexcept
{
    switch (linktype) {
    case 100: return 11;
    case 101: return 12;
    case 102: return 15;
    case 103: return 16;
    case 106: return 19;
    default: return static_cast<int>(linktype);
    }
}

Result<BpfProgram> compile_filter(const std::string& expression, uint32_t linktype, uint32_t snaplen)
{
    if (snaplen == 0 || snaplen > kMaxSnaplen)
        return invalid(fmt::format("bad snaplen {} for filter '{}' (1..{})", snaplen, expression, kMaxSnaplen));
    BpfProgram out;
    out.expression = expression;
    out.linktype = linktype;
    out.snaplen = snaplen;

    std::lock_guard<std::mutex> lock(compile_mutex());
    std::unique_ptr<pcap_t, DeadHandleCloser> dead(
        pcap_open_dead(dlt_from_linktype(linktype), static_cast<int>(snaplen)));
    if (!dead)
        return Error{std::make_error_code(std::errc::not_enough_memory), "pcap_open_dead"};
    bpf_program bp{};
    if (pcap_compile(dead.get(), &bp, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
        return invalid(fmt::format("bad filter '{}': {}", expression, pcap_geterr(dead.get())));
    const auto* insns = reinterpret_cast<const sock_filter*>(bp.bf_insns);
    out.insns.assign(insns, insns + bp.bf_len);
    pcap_freecode(&bp);
    if (out.insns.empty() || out.insns.size() > BPF_MAXINSNS)
        return invalid(fmt::format("filter '{}' compiles to {} instructions (1..{})", expression, out.insns.size(),
                                   BPF_MAXINSNS));
    return out;
}

bool matches(const BpfProgram& prog, const uint8_t* data, uint32_t caplen, uint32_t wire_len) noexcept
{
    if (prog.insns.empty())
        return true;
    return bpf_filter(reinterpret_cast<const bpf_insn*>(prog.insns.data()), data, wire_len, caplen) != 0;
}

bool matches(const BpfProgram& prog, const RawPacket& frame) noexcept
{
    return matches(prog, frame.data, frame.caplen, frame.wire_len);
}

BpfProgram kernel_program(const BpfProgram& prog)
{
    // A lone "ret #k" (empty expression, or one that can never match) looks
    // at no byte: the kernel can run it as it is on every frame.
    if (prog.insns.size() <= 1 || prog.insns.size() + 3 > BPF_MAXINSNS)
        return prog;
    BpfProgram k = prog;
    k.insns.clear();
    k.insns.reserve(prog.insns.size() + 3);
    // A = skb_vlan_tag_present(skb); jumps are relative, so the compiled
    // program can follow as it is. A byte load, as libpcap emits it: its
    // own interpreter (used for frames already queued when a filter is
    // installed) knows the ancillary load only in that form.
    k.insns.push_back(sock_filter{BPF_LD | BPF_B | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)});
    k.insns.push_back(sock_filter{BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0}); // no tag: run the expression
    k.insns.push_back(sock_filter{BPF_RET | BPF_K, 0, 0, prog.snaplen}); // tag stripped: user space decides
    k.insns.insert(k.insns.end(), prog.insns.begin(), prog.insns.end());
    return k;
}

Result<void> set_pcap_program(pcap* handle, const BpfProgram& prog, const std::string& where)
{
    // pcap_setfilter copies the instructions; it does not keep our pointer.
    bpf_program bp{};
    bp.bf_len = static_cast<u_int>(prog.insns.size());
    bp.bf_insns = const_cast<bpf_insn*>(reinterpret_cast<const bpf_insn*>(prog.insns.data()));
    if (pcap_setfilter(handle, &bp) != 0)
        return invalid(fmt::format("{}: cannot install filter '{}': {}", where, prog.expression, pcap_geterr(handle)));
    return {};
}

} // namespace weir::dataplane
