// Capture filters (-B "tcpdump expression") compiled to classic BPF.
//
// One compiler for every back-end: the expression is compiled with libpcap
// (pcap_open_dead + pcap_compile, under a process-wide mutex because
// pcap_compile is not re-entrant in older libpcap) for a link type and a
// snaplen, and kept as the sock_filter array the kernel takes in a
// sock_fprog. matches() runs the same program in user space (libpcap's
// interpreter) on a frame, for files and for unit tests.
//
// The program sees the frame as it was on the wire: a VLAN tag is part of
// the bytes ("udp" does not match 802.1Q-tagged UDP, "vlan and udp" does),
// as tcpdump reads a capture file. The Linux kernel strips the outer tag
// before socket filters run, so kernel_program() builds the variant an
// AF_PACKET socket attaches: frames whose tag the kernel took out
// (SKF_AD_VLAN_TAG_PRESENT) are all accepted and re-checked in user space
// by matches() once the tag is back in the frame; every other frame is
// filtered in the kernel.
#pragma once

#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

struct pcap;

namespace weir::dataplane {

struct BpfProgram {
    std::string expression;         ///< as given (empty: accept everything)
    uint32_t linktype = 1;          ///< pcap LINKTYPE_* it was compiled for
    uint32_t snaplen = 65535;       ///< accepted frames are cut to this by the kernel
    std::vector<sock_filter> insns; ///< cBPF, same layout as libpcap's bpf_insn

    /// View for setsockopt(SO_ATTACH_FILTER); valid while this object lives.
    [[nodiscard]] sock_fprog fprog() noexcept
    {
        return sock_fprog{static_cast<unsigned short>(insns.size()), insns.data()};
    }
};

/// Compiles `expression` for frames of `linktype` cut at `snaplen`.
/// An empty expression gives a one-instruction program accepting all.
/// Errors: EINVAL "bad filter 'EXPR': <libpcap's message>", or for a link
/// type libpcap cannot filter.
Result<BpfProgram> compile_filter(const std::string& expression, uint32_t linktype, uint32_t snaplen);

/// True when `prog` accepts the frame (libpcap's bpf_filter interpreter).
[[nodiscard]] bool matches(const BpfProgram& prog, const RawPacket& frame) noexcept;
[[nodiscard]] bool matches(const BpfProgram& prog, const uint8_t* data, uint32_t caplen, uint32_t wire_len) noexcept;

/// The program to attach to an AF_PACKET socket: `prog` behind a check that
/// accepts every frame whose VLAN tag the kernel stripped (those must be
/// re-checked with matches() after the tag is put back). Without VLAN
/// handling in the kernel path this is `prog` itself.
[[nodiscard]] BpfProgram kernel_program(const BpfProgram& prog);

/// Installs a compiled program (typically kernel_program()) on a live
/// libpcap handle with pcap_setfilter; libpcap hands it to the kernel, or
/// runs it itself with the frame's VLAN state. Errors: EINVAL with
/// libpcap's message.
Result<void> set_pcap_program(pcap* handle, const BpfProgram& prog, const std::string& where);

/// True when an Ethernet frame starts with an 802.1Q or 802.1ad tag: the
/// frames kernel_program() lets through unchecked once a capture library
/// has put the tag back.
[[nodiscard]] inline bool starts_with_vlan_tag(const uint8_t* data, uint32_t caplen) noexcept
{
    if (caplen < 14)
        return false;
    const uint16_t type = uint16_t(data[12] << 8 | data[13]);
    return type == 0x8100 || type == 0x88a8;
}

/// pcap LINKTYPE_* <-> libpcap's DLT_* on this platform.
[[nodiscard]] uint32_t linktype_from_dlt(int dlt) noexcept;
[[nodiscard]] int dlt_from_linktype(uint32_t linktype) noexcept;

} // namespace weir::dataplane
