// weir-gen: shared declarations of the generator's modes (live.cpp,
// afxdp.cpp, sink.cpp) and of the frame template (frame.cpp).
//
// The flow set is defined once in weir/abi/gen.h; frame.cpp builds the
// template and applies flow i to a copy of it exactly as weir_gen.bpf.c
// does, so both transmit modes send the same frames in the same order.
#pragma once

#include <weir/core/result.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace weir::gen {

enum class Mode { Live, AfXdp };

struct FrameSpec {
    uint32_t size = 60;  // Ethernet frame without FCS
    uint8_t proto = 17;  // IPPROTO_UDP or IPPROTO_TCP
    bool ipv6 = false;
    uint32_t src_ip = 0x0a000001; // IPv4, host order
    uint32_t dst_ip = 0x0a000002;
    std::array<uint8_t, 16> src_ip6{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::array<uint8_t, 16> dst_ip6{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    std::array<uint8_t, 6> src_mac{0x02, 0, 0, 0, 0, 0x01};
    std::array<uint8_t, 6> dst_mac{0x02, 0, 0, 0, 0, 0x02};
    int vlan = -1;              // 802.1Q id, -1 = untagged
    uint16_t sport_base = 1024; // flow i's source port: sport_base + i % 60000
                                // (and source address last byte + i / 60000)
    uint16_t dport = 9;
    uint32_t flows = 1;
};

/// The template frame and what the flow rewrite needs to know about it.
struct Template {
    std::vector<uint8_t> bytes;
    uint32_t l3_off = 0;
    uint32_t l4_off = 0;
    uint32_t l4_csum_off = 0; // from the L4 header (UDP 6, TCP 16)
    uint32_t saddr_lo_off = 0; // last byte of the source address, in the frame
    bool ipv4 = true;         // IPv6 has no header checksum
    uint16_t saddr_w1 = 0;    // last two source address bytes, host order
    uint16_t ip_csum = 0;     // IPv4 header checksum, host order
    uint16_t l4_csum = 0;     // host order
};

/// Builds the template for `spec`. Errors: EINVAL for a size outside
/// 60..1514, a size too small for the headers, more flows than the flow
/// set holds, or a source port range that would wrap.
Result<Template> build_template(const FrameSpec& spec);

/// Writes flow `flow` of the flow set into `frame` (a copy of t.bytes),
/// fixing the checksums incrementally from the template's values.
void apply_flow(uint8_t* frame, const Template& t, const FrameSpec& spec, uint32_t flow) noexcept;

struct GenOptions {
    std::string iface;
    Mode mode = Mode::Live;
    FrameSpec frame;
    uint64_t rate = 0;      // packets per second, 0 = as fast as possible
    uint64_t count = 0;     // 0 = until duration
    double duration = 0;    // seconds, 0 = until count
    unsigned threads = 1;   // live mode: one BPF_PROG_RUN loop per thread
    unsigned batch = 64;    // live mode: frames per kernel batch; afxdp: TX ring batch
    unsigned queue = 0;     // afxdp: TX queue
};

struct GenReport {
    uint64_t sent = 0;
    uint64_t failed = 0;
    bool failed_known = true; // live mode: false when the tracepoints could not attach
    uint64_t redirected = 0;  // live mode: XDP_REDIRECT verdicts
    double seconds = 0;
    std::string mode;         // "live", "afxdp-copy", "afxdp-zerocopy"
};

struct SinkOptions {
    std::string iface;
    double duration = 0;  // 0 = until SIGINT/SIGTERM
    bool count_flows = false;
    uint32_t max_flows = 1u << 20;
    std::string sample_pcap; // write the sampled frames here
    uint32_t sample_every = 1; // sample frames 0, N, 2N... of each CPU
    std::string ready_file;  // touched once the program is attached
};

struct SinkReport {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    double seconds = 0;
    uint64_t unparsed = 0;
    uint64_t flow_table_full = 0;
    std::optional<uint64_t> flows;
    uint64_t flow_min_packets = 0;
    uint64_t flow_max_packets = 0;
    uint64_t samples = 0;
};

/// Set by SIGINT/SIGTERM: every loop stops at its next check.
extern std::atomic<bool> g_stop;

/// Errors: libbpf load/attach errors with the kernel's code, EINTR is not
/// an error (a signal stops the run and the report says what was sent).
Result<GenReport> run_live(const GenOptions& opt, const Template& t);
Result<GenReport> run_afxdp(const GenOptions& opt, const Template& t);
Result<SinkReport> run_sink(const SinkOptions& opt);

/// Monotonic clock in seconds.
double now_s() noexcept;

} // namespace weir::gen
