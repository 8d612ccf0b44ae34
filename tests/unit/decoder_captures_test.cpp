// The decoder over every real capture in the shared directory (nDPI's test
// captures and misc/): no crash, every link type handled, and on Ethernet
// captures every frame is either a flow packet or a non-IP frame, except for
// the captures listed below with the reason their other drops are expected.
#include <weir/engine/decoder.hpp>

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace weir::engine {
namespace {

namespace fs = std::filesystem;

// Link types present in the shared captures that the decoder does not
// handle, with the reason. Empty today: every one found is supported.
const std::map<int, std::string> kUnsupportedLinktypes = {};

// Ethernet captures whose frames are not all "decoded or non-IP", and why.
// Each was inspected with tshark; the counts are checked to be non-zero so a
// stale entry is noticed.
const std::map<std::string, std::string> kEthernetExceptions = {
    {"fuzz-2006-06-26-2594.pcap",
     "fuzzed capture: IPv4 ethertype frames whose headers have a bad version, IHL or total length, "
     "and a UDP header cut by the IP total length (tshark: malformed)"},
    {"fuzz-2006-09-29-28586.pcap",
     "fuzzed capture: IPv4 ethertype frames with invalid headers and a TCP header cut by the IP total length"},
    {"fuzz-2020-02-16-11740.pcap",
     "fuzzed capture: 'Bogus IPv4 version' and IHL values (tshark), so bad_ip_header"},
    {"ip_fragmented_garbage.pcap",
     "tiny-fragment attack (RFC 1858): first fragments hold 16 bytes of TCP, less than a TCP header, so "
     "they are truncated_l4 and their later fragments are port-less frag_no_first"},
};

struct FileResult {
    std::string name;
    int linktype = -1;
    DecoderStats stats;
    std::string error;
};

FileResult decode_file(const fs::path& path)
{
    FileResult r;
    r.name = path.filename().string();
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* pc = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    if (!pc) {
        r.error = err;
        return r;
    }
    r.linktype = pcap_datalink(pc);
    Decoder dec;
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
        RawPacket p;
        p.data = data;
        p.caplen = h->caplen;
        p.wire_len = h->len;
        p.ts_ns = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(h->ts.tv_usec);
        p.linktype = static_cast<uint32_t>(r.linktype);
        PacketMeta m;
        if (dec.decode(p, m)) {
            // Cheap consistency checks on every decoded packet.
            EXPECT_EQ(m.hash, flow_hash(m.key)) << r.name;
            EXPECT_TRUE(m.key.ip_version == 4 || m.key.ip_version == 6) << r.name;
            EXPECT_LE(uint32_t{m.l4_payload_offset} + m.l4_payload_len, p.caplen) << r.name;
        }
    }
    if (rc == -1)
        r.error = pcap_geterr(pc);
    r.stats = dec.stats();
    pcap_close(pc);
    return r;
}

uint64_t drops_except(const DecoderStats& s, std::initializer_list<DropReason> skip)
{
    uint64_t n = 0;
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        const auto r = static_cast<DropReason>(i);
        if (std::find(skip.begin(), skip.end(), r) == skip.end())
            n += s.drops.n[i];
    }
    return n;
}

std::vector<fs::path> captures(const fs::path& dir)
{
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap"))
            out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(DecoderCaptures, EveryCaptureDecodes)
{
    const fs::path shared = WEIR_SHARED_DIR;
    const fs::path ndpi = shared / "pcaps/ndpi/pcap";
    const fs::path misc = shared / "pcaps/misc";
    if (!fs::is_directory(ndpi) && !fs::is_directory(misc))
        GTEST_SKIP() << "no captures: " << ndpi << " and " << misc << " are missing";

    std::vector<fs::path> files = captures(ndpi);
    const std::vector<fs::path> more = captures(misc);
    files.insert(files.end(), more.begin(), more.end());
    ASSERT_FALSE(files.empty());

    DecoderStats all;
    DecoderStats ether;  // Ethernet captures not listed as exceptions
    std::set<std::string> exceptions_hit;
    std::map<int, int> linktypes;
    int unreadable = 0;
    for (const fs::path& f : files) {
        const FileResult r = decode_file(f);
        if (r.linktype < 0) {
            ADD_FAILURE() << r.name << ": cannot open: " << r.error;
            continue;
        }
        // A truncated last record is common in these captures; the frames
        // before it were decoded and are counted.
        if (!r.error.empty()) {
            ++unreadable;
            std::printf("  note: %s: read stopped: %s\n", r.name.c_str(), r.error.c_str());
        }
        ++linktypes[r.linktype];
        if (!Decoder::linktype_supported(static_cast<uint32_t>(r.linktype))) {
            EXPECT_TRUE(kUnsupportedLinktypes.count(r.linktype))
                << r.name << ": link type " << r.linktype << " is not supported and not listed";
        }

        const DecoderStats& s = r.stats;
        EXPECT_EQ(s.decoded + drops_except(s, {DropReason::FragNoFirst}), s.packets) << r.name;
        all.packets += s.packets;
        all.decoded += s.decoded;
        all.fragments += s.fragments;
        all.tunneled += s.tunneled;
        all.drops += s.drops;

        if (r.linktype != DLT_EN10MB)
            continue;
        const uint64_t other = drops_except(s, {DropReason::NonIp, DropReason::FragNoFirst});
        if (auto it = kEthernetExceptions.find(r.name); it != kEthernetExceptions.end()) {
            exceptions_hit.insert(r.name);
            EXPECT_GT(other, 0u) << r.name << " is listed as an exception but decodes cleanly";
            std::printf("  exception: %s: %lu of %lu frames dropped (%s)\n", r.name.c_str(),
                        static_cast<unsigned long>(other), static_cast<unsigned long>(s.packets), it->second.c_str());
            continue;
        }
        if (other) {
            std::string why;
            for (size_t i = 0; i < kDropReasonCount; ++i)
                if (s.drops.n[i] && i != static_cast<size_t>(DropReason::NonIp))
                    why += std::string(" ") + std::string(drop_reason_name(static_cast<DropReason>(i))) + "=" +
                           std::to_string(s.drops.n[i]);
            ADD_FAILURE() << r.name << ": " << other << " frames neither decoded nor non-IP:" << why;
        }
        ether.packets += s.packets;
        ether.decoded += s.decoded;
        ether.drops += s.drops;
    }
    for (const auto& [name, why] : kEthernetExceptions)
        EXPECT_TRUE(exceptions_hit.count(name)) << "listed exception " << name << " not found";

    EXPECT_EQ(ether.drops.get(DropReason::NonIp) + ether.decoded, ether.packets);

    std::printf("decoder over %zu captures (%d with a damaged tail): %lu frames, %lu decoded, %lu fragments, "
                "%lu tunneled\n",
                files.size(), unreadable, static_cast<unsigned long>(all.packets),
                static_cast<unsigned long>(all.decoded), static_cast<unsigned long>(all.fragments),
                static_cast<unsigned long>(all.tunneled));
    for (const auto& [lt, n] : linktypes)
        std::printf("  linktype %d: %d captures\n", lt, n);
    for (size_t i = 1; i < kDropReasonCount; ++i)
        if (all.drops.n[i])
            std::printf("  drop %-16s %lu\n", std::string(drop_reason_name(static_cast<DropReason>(i))).c_str(),
                        static_cast<unsigned long>(all.drops.n[i]));
    EXPECT_GT(all.decoded, all.packets / 2);
}

} // namespace
} // namespace weir::engine
