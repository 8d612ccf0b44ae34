// Capture-file sources (weir::dataplane::open_pcap_file, open_capture_files,
// merge_sources): round trips through tests/support/pcap_writer.hpp in every
// classic pcap variant, the same frames as libpcap's pcap_next_ex() for every
// capture of the shared corpus, bad input of every kind, and merging by
// timestamp across files read directly and through libpcap; read buffers far
// smaller than the records, so that records straddle refills.
#include <weir/dataplane/packet_source.hpp>

#include "pcap_writer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

namespace {

namespace fs = std::filesystem;
using weir::PacketSource;
using weir::RawPacket;
using weir::dataplane::merge_sources;
using weir::dataplane::open_capture_files;
using weir::dataplane::open_pcap_file;
using weir::dataplane::PcapReadOptions;
using weir::test::ByteOrder;
using weir::test::PcapFrame;
using weir::test::PcapOptions;
using weir::test::TempPath;
using weir::test::TsPrecision;
using ::testing::HasSubstr;

struct Pkt {
    std::vector<uint8_t> data;
    uint32_t caplen = 0;
    uint32_t wire_len = 0;
    uint64_t ts_ns = 0;
    uint32_t linktype = 0;
    bool operator==(const Pkt&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Pkt& p)
{
    return os << "{caplen " << p.caplen << ", wire_len " << p.wire_len << ", ts_ns " << p.ts_ns << ", linktype "
              << p.linktype << ", " << p.data.size() << " data bytes}";
}

// Reads a source to its end, `burst` frames per call. Frames are copied only
// once the burst has returned, so a frame that its source invalidated within
// the same burst shows up as wrong bytes. A file source returns at least one
// frame per call until it is finished.
std::vector<Pkt> drain(PacketSource& src, uint32_t burst)
{
    std::vector<RawPacket> buf(burst);
    std::vector<Pkt> out;
    while (!src.finished()) {
        const uint32_t n = src.rx_burst(buf.data(), burst);
        if (n > burst) {
            ADD_FAILURE() << "rx_burst returned " << n << " > " << burst;
            break;
        }
        if (n == 0 && !src.finished()) {
            ADD_FAILURE() << "file source returns nothing but is not finished: " << src.describe();
            break;
        }
        for (uint32_t i = 0; i < n; ++i) {
            const RawPacket& r = buf[i];
            out.push_back(Pkt{std::vector<uint8_t>(r.data, r.data + r.caplen), r.caplen, r.wire_len, r.ts_ns,
                              r.linktype});
        }
    }
    EXPECT_EQ(src.rx_burst(buf.data(), burst), 0u) << "frames after finished()";
    return out;
}

// What libpcap itself delivers, read the way a user of libpcap would.
struct Reference {
    bool opened = false;
    std::string open_error;
    std::vector<Pkt> pkts;
    bool read_error = false;
    std::string error;
};

uint32_t first_word(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    std::array<unsigned char, 4> b{};
    f.read(reinterpret_cast<char*>(b.data()), 4);
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

// libpcap reports DLT_ values; files and RawPacket carry LINKTYPE_ values.
// On Linux they differ only for these (libpcap's dlt_to_linktype()).
uint32_t linktype_of_dlt(int dlt)
{
    switch (dlt) {
    case 11: return 100;
    case 12: return 101;
    case 15: return 102;
    case 16: return 103;
    case 19: return 106;
    default: return static_cast<uint32_t>(dlt);
    }
}

Reference read_with_libpcap(const std::string& path)
{
    Reference ref;
    std::array<char, PCAP_ERRBUF_SIZE> errbuf{};
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf.data());
    if (p == nullptr) {
        ref.open_error = errbuf.data();
        return ref;
    }
    ref.opened = true;
    const uint32_t magic = first_word(path);
    const bool micro_file = magic == 0xa1b2c3d4 || magic == 0xd4c3b2a1 || magic == 0xa1b2cd34 || magic == 0x34cdb2a1;
    const uint32_t linktype = linktype_of_dlt(pcap_datalink(p));
    while (true) {
        pcap_pkthdr* h = nullptr;
        const u_char* data = nullptr;
        const int rc = pcap_next_ex(p, &h, &data);
        if (rc == PCAP_ERROR_BREAK)
            break;
        if (rc != 1) {
            ref.read_error = true;
            ref.error = pcap_geterr(p);
            break;
        }
        // Classic pcap stores unsigned 32-bit seconds and fractions, which
        // libpcap sign-extends; undo that to get the values of the file.
        const uint64_t sec = h->ts.tv_sec < 0 ? uint64_t{static_cast<uint32_t>(h->ts.tv_sec)}
                                              : static_cast<uint64_t>(h->ts.tv_sec);
        uint64_t frac = static_cast<uint64_t>(h->ts.tv_usec);
        if (h->ts.tv_usec < 0)
            frac = micro_file ? uint64_t{static_cast<uint32_t>(h->ts.tv_usec / 1000)} * 1000
                              : uint64_t{static_cast<uint32_t>(h->ts.tv_usec)};
        ref.pkts.push_back(
            Pkt{std::vector<uint8_t>(data, data + h->caplen), h->caplen, h->len, sec * 1'000'000'000 + frac, linktype});
    }
    pcap_close(p);
    return ref;
}

struct Outcome {
    bool opened = false;
    bool direct = false; ///< read by our pcap reader, not libpcap
    size_t packets = 0;
    bool error = false;
};

// Opens `path` with open_pcap_file() and with libpcap and expects the same
// frames, the same point of failure, and consistent stats.
Outcome expect_same_as_libpcap(const std::string& path, uint32_t burst)
{
    SCOPED_TRACE(path);
    Outcome outcome;
    const Reference ref = read_with_libpcap(path);
    auto src = open_pcap_file(path);
    if (!ref.opened) {
        EXPECT_FALSE(src.ok()) << "libpcap cannot open it (" << ref.open_error << ") but we did: "
                               << (*src)->describe();
        if (!src.ok()) {
            EXPECT_THAT(src.error().message(), HasSubstr(path));
        }
        return outcome;
    }
    if (!src.ok()) {
        ADD_FAILURE() << "libpcap opens it but we fail: " << src.error().message();
        return outcome;
    }
    PacketSource& s = **src;
    outcome.opened = true;
    outcome.direct = s.describe().find(", read)") != std::string::npos;
    const std::vector<Pkt> got = drain(s, burst);
    outcome.packets = got.size();
    EXPECT_EQ(got.size(), ref.pkts.size());
    for (size_t i = 0; i < std::min(got.size(), ref.pkts.size()); ++i) {
        if (!(got[i] == ref.pkts[i])) {
            ADD_FAILURE() << "packet " << i << ": got " << got[i] << ", libpcap " << ref.pkts[i]
                          << (got[i].data == ref.pkts[i].data ? "" : " (data differ)");
            break;
        }
    }
    const auto err = s.error();
    outcome.error = err.has_value();
    EXPECT_EQ(err.has_value(), ref.read_error)
        << "ours: " << (err ? err->message() : "no error") << "; libpcap: " << (ref.read_error ? ref.error : "none");
    if (err) {
        EXPECT_THAT(err->message(), HasSubstr(path + ": record " + std::to_string(ref.pkts.size() + 1) + " at offset "));
    }
    const weir::SourceStats st = s.stats();
    uint64_t bytes = 0;
    for (const auto& p : ref.pkts)
        bytes += p.wire_len;
    EXPECT_EQ(st.packets, ref.pkts.size());
    EXPECT_EQ(st.bytes, bytes);
    EXPECT_EQ(st.file_bytes, fs::file_size(path));
    if (!err) {
        EXPECT_EQ(st.file_offset, st.file_bytes);
    }
    EXPECT_LE(st.file_offset, st.file_bytes);
    if (!got.empty()) {
        EXPECT_EQ(s.linktypes(), std::vector<uint32_t>{got.front().linktype});
    }
    return outcome;
}

// Frames tagged with (file, index) in their first bytes so that a merge can
// be checked frame by frame. Sizes vary from 14 to ~1500 bytes.
std::vector<PcapFrame> sample_frames(size_t n, uint64_t t0_ns, uint64_t step_ns, uint8_t tag)
{
    std::vector<PcapFrame> frames;
    for (size_t i = 0; i < n; ++i) {
        PcapFrame f;
        f.data.resize(14 + (i * 193) % 1487);
        for (size_t b = 0; b < f.data.size(); ++b)
            f.data[b] = static_cast<uint8_t>(b * 7 + i + tag);
        f.data[0] = tag;
        f.data[1] = static_cast<uint8_t>(i);
        f.ts_ns = t0_ns + i * step_ns;
        frames.push_back(std::move(f));
    }
    return frames;
}

// What a reader must deliver for frames written with options o.
std::vector<Pkt> expected_pkts(const std::vector<PcapFrame>& frames, const PcapOptions& o, uint32_t linktype)
{
    std::vector<Pkt> out;
    for (const auto& f : frames) {
        const auto caplen = static_cast<uint32_t>(std::min<size_t>(f.data.size(), o.snaplen));
        const uint64_t ts = o.precision == TsPrecision::Micro ? f.ts_ns / 1000 * 1000 : f.ts_ns;
        out.push_back(Pkt{std::vector<uint8_t>(f.data.begin(), f.data.begin() + caplen), caplen,
                          f.wire_len.value_or(static_cast<uint32_t>(f.data.size())), ts, linktype});
    }
    return out;
}

std::unique_ptr<PacketSource> open_ok(const std::string& path, const PcapReadOptions& opts = {})
{
    auto src = open_pcap_file(path, opts);
    if (!src.ok()) {
        ADD_FAILURE() << src.error().message();
        return nullptr;
    }
    return std::move(src).value();
}

const std::string kShared = WEIR_SHARED_DIR;

std::vector<std::string> corpus_files()
{
    std::vector<std::string> files;
    for (const char* sub : {"/pcaps/ndpi/pcap", "/pcaps/misc"}) {
        const fs::path dir = kShared + sub;
        if (!fs::is_directory(dir))
            continue;
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file())
                files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Every pcap magic: both byte orders, micro- and nanosecond timestamps.
using Magic = std::tuple<ByteOrder, TsPrecision>;
const auto kAllMagics = ::testing::Combine(::testing::Values(ByteOrder::Little, ByteOrder::Big),
                                           ::testing::Values(TsPrecision::Micro, TsPrecision::Nano));

std::string magic_name(const ::testing::TestParamInfo<Magic>& info)
{
    return std::string(std::get<0>(info.param) == ByteOrder::Little ? "Little" : "Big") +
           (std::get<1>(info.param) == TsPrecision::Micro ? "Micro" : "Nano");
}

// ---------------------------------------------------------------------------
// Round trips

class RoundTrip : public ::testing::TestWithParam<Magic> {};

TEST_P(RoundTrip, DeliversWhatWasWritten)
{
    PcapOptions o;
    o.byte_order = std::get<0>(GetParam());
    o.precision = std::get<1>(GetParam());
    o.snaplen = 1000; // longer frames are cut: caplen < wire_len
    auto frames = sample_frames(300, 1'700'000'000'123'456'789ull, 987'654'321, 7);
    frames[5].wire_len = 9000;                 // caplen < wire_len
    frames[6].data.clear();                    // an empty frame is a valid record
    frames[7].ts_ns = 4'294'967'295'999'999'999ull; // last second a 32-bit field holds
    TempPath tmp;
    write_pcap(tmp, frames, o);
    const auto expected = expected_pkts(frames, o, 1);

    for (uint32_t burst : {1u, 7u, 32u, 1024u}) {
        SCOPED_TRACE(burst);
        auto src = open_ok(tmp);
        ASSERT_TRUE(src);
        EXPECT_EQ(src->describe(), tmp.path() + " (pcap, linktype 1, read)");
        const auto got = drain(*src, burst);
        ASSERT_EQ(got.size(), expected.size());
        for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], expected[i]) << "packet " << i;
        EXPECT_TRUE(src->finished());
        EXPECT_FALSE(src->error().has_value());
        const auto st = src->stats();
        EXPECT_EQ(st.packets, frames.size());
        uint64_t bytes = 0;
        for (const auto& p : expected)
            bytes += p.wire_len;
        EXPECT_EQ(st.bytes, bytes);
        EXPECT_EQ(st.file_bytes, fs::file_size(tmp.path()));
        EXPECT_EQ(st.file_offset, st.file_bytes);
    }
    expect_same_as_libpcap(tmp, 32);
}

INSTANTIATE_TEST_SUITE_P(AllMagics, RoundTrip, kAllMagics, magic_name);

TEST(PcapFile, HeaderOnlyIsAnEmptyCapture)
{
    TempPath tmp;
    write_pcap(tmp, {});
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    EXPECT_TRUE(drain(*src, 32).empty());
    EXPECT_TRUE(src->finished());
    EXPECT_FALSE(src->error().has_value());
    EXPECT_EQ(src->stats().file_offset, 24u);
}

TEST(PcapFile, LinktypeIgnoresFcsBits)
{
    PcapOptions o;
    o.linktype = 0x50000000 | 101; // F bit set, 4 bytes of FCS, LINKTYPE_RAW
    TempPath tmp;
    write_pcap(tmp, sample_frames(3, 1'000'000'000, 1000, 1), o);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    EXPECT_EQ(src->linktypes(), std::vector<uint32_t>{101});
    EXPECT_EQ(src->describe(), tmp.path() + " (pcap, linktype 101, read)");
    for (const auto& p : drain(*src, 32))
        EXPECT_EQ(p.linktype, 101u);
    expect_same_as_libpcap(tmp, 32);
}

TEST(PcapFile, PcapngGoesThroughLibpcapAndCopiesSafely)
{
    // Frames of 30 KB overflow the 64 KB arena within a burst: the one that
    // does not fit ends the burst uncopied. drain() checks the bytes after
    // the burst has returned.
    auto frames = sample_frames(50, 2'000'000'000, 1500, 3);
    for (size_t i = 0; i < frames.size(); i += 3)
        frames[i].data.resize(30000, static_cast<uint8_t>(i));
    TempPath tmp(".pcapng");
    weir::test::write_pcapng(tmp, frames, 101);
    const auto expected = expected_pkts(frames, PcapOptions{.precision = TsPrecision::Nano}, 101);
    for (uint32_t burst : {1u, 5u, 64u}) {
        SCOPED_TRACE(burst);
        auto src = open_ok(tmp);
        ASSERT_TRUE(src);
        EXPECT_EQ(src->describe(), tmp.path() + " (pcapng, linktype 101, libpcap)");
        EXPECT_EQ(drain(*src, burst), expected);
        EXPECT_FALSE(src->error().has_value());
        EXPECT_EQ(src->stats().file_offset, fs::file_size(tmp.path()));
    }
    expect_same_as_libpcap(tmp, 16);
}

TEST(PcapFile, OldVersionWithSwappedLengthsGoesThroughLibpcap)
{
    // Before version 2.3 the record header had len before caplen.
    PcapOptions o;
    o.version_minor = 2;
    std::vector<uint8_t> bytes;
    weir::test::append_pcap_header(bytes, o);
    const std::vector<uint8_t> frame(60, 0xab);
    weir::test::append_record_header(bytes, o, 100, 5, /*caplen field holds len*/ 1514, 60);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    TempPath tmp;
    weir::test::write_file(tmp, bytes);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    EXPECT_THAT(src->describe(), HasSubstr("libpcap"));
    const auto got = drain(*src, 8);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].caplen, 60u);
    EXPECT_EQ(got[0].wire_len, 1514u);
    EXPECT_EQ(got[0].ts_ns, 100'000'005'000u);
    expect_same_as_libpcap(tmp, 8);
}

// ---------------------------------------------------------------------------
// The shared corpus, against libpcap

TEST(PcapFileCorpus, EveryCaptureMatchesLibpcap)
{
    const auto files = corpus_files();
    if (files.empty())
        GTEST_SKIP() << "SKIPPED: no captures under " << kShared << "/pcaps/{ndpi/pcap,misc} (WEIR_SHARED_DIR)";
    size_t opened = 0;
    size_t direct = 0;
    size_t packets = 0;
    size_t errors = 0;
    const std::array<uint32_t, 4> bursts{32, 1, 7, 256};
    for (size_t i = 0; i < files.size(); ++i) {
        const Outcome o = expect_same_as_libpcap(files[i], bursts[i % bursts.size()]);
        opened += o.opened ? 1 : 0;
        direct += o.direct ? 1 : 0;
        packets += o.packets;
        errors += o.error ? 1 : 0;
    }
    std::cout << "[ corpus   ] " << files.size() << " files, " << opened << " readable (" << direct
              << " by the pcap reader), " << packets
              << " packets, " << errors << " ending in a read error\n";
    EXPECT_GT(direct, 0u);
    EXPECT_GT(packets, 0u);
}

// ---------------------------------------------------------------------------
// Bad input

TEST(PcapFileErrors, MissingFile)
{
    const std::string path = fs::temp_directory_path().string() + "/weir-no-such-file.pcap";
    auto src = open_pcap_file(path);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.error().code, std::errc::no_such_file_or_directory);
    EXPECT_THAT(src.error().message(), HasSubstr(path));
}

TEST(PcapFileErrors, Directory)
{
    const std::string path = fs::temp_directory_path().string();
    auto src = open_pcap_file(path);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.error().code, std::errc::is_a_directory);
    EXPECT_THAT(src.error().message(), HasSubstr(path));
}

TEST(PcapFileErrors, EmptyFile)
{
    TempPath tmp;
    auto src = open_pcap_file(tmp);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.error().code, std::errc::invalid_argument);
    EXPECT_THAT(src.error().message(), HasSubstr(tmp.path()));
    EXPECT_THAT(src.error().message(), HasSubstr("empty"));
}

TEST(PcapFileErrors, ShorterThanHeader)
{
    std::vector<uint8_t> bytes;
    weir::test::append_pcap_header(bytes);
    bytes.resize(10);
    TempPath tmp;
    weir::test::write_file(tmp, bytes);
    auto src = open_pcap_file(tmp);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.error().code, std::errc::invalid_argument);
    EXPECT_THAT(src.error().message(), HasSubstr(tmp.path()));
    EXPECT_THAT(src.error().message(), HasSubstr("10 bytes"));
}

TEST(PcapFileErrors, BadMagicSaysWhatWasFound)
{
    const std::string text = "this is not a capture file, only text\n";
    TempPath tmp;
    weir::test::write_file(tmp, std::vector<uint8_t>(text.begin(), text.end()));
    auto src = open_pcap_file(tmp);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.error().code, std::errc::invalid_argument);
    const std::string msg = src.error().message();
    EXPECT_THAT(msg, HasSubstr(tmp.path()));
    EXPECT_THAT(msg, HasSubstr("0x74686973")); // "this"
    EXPECT_THAT(msg, HasSubstr("libpcap"));
}

// A test over every magic, with the writer options of its parameter.
class MagicTest : public ::testing::TestWithParam<Magic> {
protected:
    PcapOptions opts() const
    {
        PcapOptions o;
        o.byte_order = std::get<0>(GetParam());
        o.precision = std::get<1>(GetParam());
        return o;
    }
};

class RecordErrors : public MagicTest {
protected:

    // Writes `bytes`, reads it with burst 4, expects `good` packets then an
    // error naming record good+1 at `offset` and containing `what`.
    void expect_failure(const std::vector<uint8_t>& bytes, size_t good, size_t offset, const std::string& what)
    {
        TempPath tmp;
        weir::test::write_file(tmp, bytes);
        auto src = open_ok(tmp);
        ASSERT_TRUE(src);
        EXPECT_EQ(drain(*src, 4).size(), good);
        EXPECT_TRUE(src->finished());
        const auto err = src->error();
        ASSERT_TRUE(err.has_value());
        EXPECT_THAT(err->message(), HasSubstr(tmp.path() + ": record " + std::to_string(good + 1) + " at offset " +
                                              std::to_string(offset) + ": "));
        EXPECT_THAT(err->message(), HasSubstr(what));
        EXPECT_EQ(src->stats().packets, good);
        EXPECT_EQ(src->stats().file_offset, offset);
        expect_same_as_libpcap(tmp, 32);
    }
};

TEST_P(RecordErrors, RecordHeaderCutAtEof)
{
    const auto o = opts();
    auto bytes = weir::test::pcap_bytes(sample_frames(5, 1'000'000'000, 1000, 2), o);
    const size_t offset = bytes.size();
    bytes.resize(bytes.size() + 7, 0x11);
    expect_failure(bytes, 5, offset, "7 of 16 bytes");
}

TEST_P(RecordErrors, CaplenLargerThanTheRestOfTheFile)
{
    const auto o = opts();
    auto bytes = weir::test::pcap_bytes(sample_frames(2, 1'000'000'000, 1000, 2), o);
    const size_t offset = bytes.size();
    weir::test::append_record_header(bytes, o, 1, 0, 100, 100);
    bytes.resize(bytes.size() + 50, 0x22);
    expect_failure(bytes, 2, offset, "caplen 100 is larger than the 50 bytes left");
}

TEST_P(RecordErrors, CaplenBeyondAnySnaplenIsCorrupt)
{
    const auto o = opts();
    auto bytes = weir::test::pcap_bytes(sample_frames(1, 1'000'000'000, 1000, 2), o);
    const size_t offset = bytes.size();
    weir::test::append_record_header(bytes, o, 1, 0, 300000, 300000);
    bytes.resize(bytes.size() + 300000, 0x33); // the bytes are there: only the length is wrong
    expect_failure(bytes, 1, offset, "caplen 300000 exceeds the maximum of 262144");
}

TEST_P(RecordErrors, CaplenSomewhatOverSnaplenIsCutLikeLibpcap)
{
    auto o = opts();
    o.snaplen = 100;
    std::vector<uint8_t> bytes;
    weir::test::append_pcap_header(bytes, o);
    std::vector<uint8_t> frame(150);
    for (size_t i = 0; i < frame.size(); ++i)
        frame[i] = static_cast<uint8_t>(i);
    weir::test::append_record_header(bytes, o, 10, 0, 150, 150);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    weir::test::append_pcap_record(bytes, o, PcapFrame{{1, 2, 3}, 11'000'000'000, {}});
    TempPath tmp;
    weir::test::write_file(tmp, bytes);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    const auto got = drain(*src, 32);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].caplen, 100u);
    EXPECT_EQ(got[0].wire_len, 150u);
    EXPECT_EQ(got[0].data, std::vector<uint8_t>(frame.begin(), frame.begin() + 100));
    EXPECT_EQ(got[1].data, (std::vector<uint8_t>{1, 2, 3}));
    EXPECT_FALSE(src->error().has_value());
    expect_same_as_libpcap(tmp, 32);
}

TEST_P(RecordErrors, OddButReadableRecordsAreDelivered)
{
    const auto o = opts();
    std::vector<uint8_t> bytes;
    weir::test::append_pcap_header(bytes, o);
    const std::vector<uint8_t> frame(64, 0x5a);
    // caplen > wire_len: delivered as it is, the decoder counts it.
    weir::test::append_record_header(bytes, o, 20, 0, 64, 40);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    // A fraction of 1.5 s: delivered, the overflow carried into the seconds.
    const uint32_t frac = o.precision == TsPrecision::Nano ? 1'500'000'000u : 1'500'000u;
    weir::test::append_record_header(bytes, o, 21, frac, 64, 64);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    TempPath tmp;
    weir::test::write_file(tmp, bytes);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    const auto got = drain(*src, 32);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].caplen, 64u);
    EXPECT_EQ(got[0].wire_len, 40u);
    EXPECT_EQ(got[1].ts_ns, 22'500'000'000u);
    EXPECT_FALSE(src->error().has_value());
    expect_same_as_libpcap(tmp, 32);
}

INSTANTIATE_TEST_SUITE_P(AllMagics, RecordErrors, kAllMagics, magic_name);

// ---------------------------------------------------------------------------
// The read buffer: records straddling refills, larger than the buffer, cut
// short at a refill

// Buffer sizes around the record sizes of sample_frames() (14 to ~1500
// bytes of data after a 16-byte header) and the 20,000-byte frame below.
const std::vector<size_t> kBufferSizes{1, 16, 17, 30, 31, 100, 333, 1024, 1514, 1530, 1531, 4096, 20015, 20016, 65536};

class ReadBuffer : public MagicTest {};

TEST_P(ReadBuffer, RecordsStraddleRefillsAndOutgrowTheBuffer)
{
    const auto o = opts();
    auto frames = sample_frames(80, 1'700'000'000'000'000'000ull, 1'234'567, 9);
    frames[10].data.resize(20000, 0x10); // larger than most buffers below
    frames[11].data.clear();
    TempPath tmp;
    write_pcap(tmp, frames, o);
    const auto expected = expected_pkts(frames, o, 1);
    for (size_t size : kBufferSizes) {
        for (uint32_t burst : {1u, 5u, 32u}) {
            SCOPED_TRACE("buffer " + std::to_string(size) + ", burst " + std::to_string(burst));
            auto src = open_ok(tmp, PcapReadOptions{size});
            ASSERT_TRUE(src);
            const auto got = drain(*src, burst);
            ASSERT_EQ(got.size(), expected.size());
            for (size_t i = 0; i < got.size(); ++i)
                ASSERT_EQ(got[i], expected[i]) << "packet " << i;
            EXPECT_FALSE(src->error().has_value());
            EXPECT_EQ(src->stats().packets, frames.size());
            EXPECT_EQ(src->stats().file_offset, fs::file_size(tmp.path()));
        }
    }
}

TEST_P(ReadBuffer, TruncatedRecordAtEveryRefillBoundary)
{
    const auto o = opts();
    const auto good = weir::test::pcap_bytes(sample_frames(6, 1'000'000'000, 1000, 5), o);
    const size_t offset = good.size();
    auto header_cut = good;
    header_cut.resize(header_cut.size() + 9, 0x44);
    auto data_cut = good;
    weir::test::append_record_header(data_cut, o, 1, 0, 700, 700);
    data_cut.resize(data_cut.size() + 300, 0x55);
    const std::vector<std::pair<std::vector<uint8_t>, std::string>> cases{
        {header_cut, "record header cut short at end of file (9 of 16 bytes)"},
        {data_cut, "caplen 700 is larger than the 300 bytes left in the file (truncated)"}};
    for (const auto& [bytes, what] : cases) {
        TempPath tmp;
        weir::test::write_file(tmp, bytes);
        // Every buffer size up to the whole file: the cut record starts,
        // ends or straddles a refill at one of them.
        for (size_t size = 16; size <= bytes.size() + 16; ++size) {
            SCOPED_TRACE("buffer " + std::to_string(size));
            auto src = open_ok(tmp, PcapReadOptions{size});
            ASSERT_TRUE(src);
            const auto got = drain(*src, 4);
            ASSERT_EQ(got.size(), 6u);
            EXPECT_EQ(got.back().data.size(), 14u + 5 * 193);
            const auto err = src->error();
            ASSERT_TRUE(err.has_value());
            EXPECT_THAT(err->message(), HasSubstr(tmp.path() + ": record 7 at offset " + std::to_string(offset) + ": " + what));
            EXPECT_EQ(src->stats().file_offset, offset);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllMagics, ReadBuffer, kAllMagics, magic_name);

TEST(PcapFile, RecordLargerThanTheDefaultBuffer)
{
    // D-Bus captures allow 128 MiB records: a 5 MB one outgrows the default
    // buffer, between ordinary records.
    PcapOptions o;
    o.linktype = 231;
    o.snaplen = 128u << 20;
    auto frames = sample_frames(20, 1'000'000'000, 1000, 6);
    frames[7].data.resize(5'000'000, 0x77);
    TempPath tmp;
    write_pcap(tmp, frames, o);
    ASSERT_GT(fs::file_size(tmp.path()), PcapReadOptions{}.buffer_bytes);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    EXPECT_EQ(drain(*src, 32), expected_pkts(frames, o, 231));
    EXPECT_FALSE(src->error().has_value());
    expect_same_as_libpcap(tmp, 32);
}

TEST(PcapFileErrors, TruncatedPcapngReportsTheRecord)
{
    auto bytes = weir::test::pcapng_bytes(sample_frames(4, 1'000'000'000, 1000, 4));
    bytes.resize(bytes.size() - 10);
    TempPath tmp(".pcapng");
    weir::test::write_file(tmp, bytes);
    auto src = open_ok(tmp);
    ASSERT_TRUE(src);
    EXPECT_EQ(drain(*src, 32).size(), 3u);
    const auto err = src->error();
    ASSERT_TRUE(err.has_value());
    EXPECT_THAT(err->message(), HasSubstr(tmp.path() + ": record 4 at offset "));
    expect_same_as_libpcap(tmp, 32);
}

// ---------------------------------------------------------------------------
// Merging

// Reference k-way merge: the earliest head wins, the lowest index on ties.
std::vector<Pkt> merge_reference(std::vector<std::vector<Pkt>> lists)
{
    std::vector<Pkt> out;
    std::vector<size_t> pos(lists.size(), 0);
    while (true) {
        int best = -1;
        for (size_t k = 0; k < lists.size(); ++k)
            if (pos[k] < lists[k].size() &&
                (best < 0 || lists[k][pos[k]].ts_ns < lists[static_cast<size_t>(best)][pos[static_cast<size_t>(best)]].ts_ns))
                best = static_cast<int>(k);
        if (best < 0)
            return out;
        out.push_back(lists[static_cast<size_t>(best)][pos[static_cast<size_t>(best)]++]);
    }
}

std::vector<PcapFrame> frames_at(const std::vector<uint64_t>& ts_us, uint8_t tag)
{
    auto frames = sample_frames(ts_us.size(), 0, 0, tag);
    for (size_t i = 0; i < frames.size(); ++i)
        frames[i].ts_ns = ts_us[i] * 1000;
    return frames;
}

TEST(MergeSources, InterleavesByTimestampStably)
{
    TempPath a;
    TempPath b;
    write_pcap(a, frames_at({0, 10, 20, 20, 30}, 0xa));
    write_pcap(b, frames_at({5, 20, 20, 25, 40}, 0xb));
    // (tag, index) in the order a stable merge must give.
    const std::vector<std::pair<uint8_t, uint8_t>> order{{0xa, 0}, {0xb, 0}, {0xa, 1}, {0xa, 2}, {0xa, 3},
                                                         {0xb, 1}, {0xb, 2}, {0xb, 3}, {0xa, 4}, {0xb, 4}};
    for (uint32_t burst : {1u, 3u, 32u}) {
        SCOPED_TRACE(burst);
        auto src = open_capture_files(a.path() + "," + b.path());
        ASSERT_TRUE(src.ok()) << src.error().message();
        EXPECT_EQ((*src)->describe(), "merge of " + a.path() + " (pcap, linktype 1, read) + " + b.path() +
                                          " (pcap, linktype 1, read)");
        const auto got = drain(**src, burst);
        ASSERT_EQ(got.size(), order.size());
        for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].data[0], order[i].first) << "packet " << i;
            EXPECT_EQ(got[i].data[1], order[i].second) << "packet " << i;
        }
        EXPECT_FALSE((*src)->error().has_value());
        const auto st = (*src)->stats();
        EXPECT_EQ(st.packets, 10u);
        EXPECT_EQ(st.file_bytes, fs::file_size(a.path()) + fs::file_size(b.path()));
        EXPECT_EQ(st.file_offset, st.file_bytes);
    }
}

TEST(MergeSources, InputsWithSmallReadBuffers)
{
    // Each input refills every few frames: a burst must not read an input
    // again after handing out its frames (drain() reads them afterwards).
    auto fa = sample_frames(300, 1'000'000'000, 3'000, 0xa);
    auto fb = sample_frames(200, 1'000'001'000, 4'500, 0xb);
    fb[50].data.resize(9000, 0xbb);
    TempPath a;
    TempPath b;
    write_pcap(a, fa);
    write_pcap(b, fb);
    const auto expected = merge_reference({expected_pkts(fa, {}, 1), expected_pkts(fb, {}, 1)});
    for (size_t size : {100u, 2000u, 8192u}) {
        for (uint32_t burst : {1u, 3u, 32u, 256u}) {
            SCOPED_TRACE("buffer " + std::to_string(size) + ", burst " + std::to_string(burst));
            std::vector<std::unique_ptr<PacketSource>> inputs;
            inputs.push_back(open_ok(a, PcapReadOptions{size}));
            inputs.push_back(open_ok(b, PcapReadOptions{size}));
            ASSERT_TRUE(inputs[0] && inputs[1]);
            auto src = merge_sources(std::move(inputs));
            const auto got = drain(*src, burst);
            ASSERT_EQ(got.size(), expected.size());
            for (size_t i = 0; i < got.size(); ++i)
                ASSERT_EQ(got[i], expected[i]) << "packet " << i;
            EXPECT_FALSE(src->error().has_value());
        }
    }
}

TEST(MergeSources, PcapngAndPcapOfDifferentLinktypes)
{
    // The pcapng side has 30 KB frames, so the merger's copies overflow its
    // arena mid-burst.
    auto ng_frames = sample_frames(40, 1'000'000'000, 7'000, 0x1);
    for (size_t i = 0; i < ng_frames.size(); i += 2)
        ng_frames[i].data.resize(30000, 0xee);
    const auto pcap_frames = sample_frames(60, 1'000'000'000, 5'000, 0x2);
    TempPath ng(".pcapng");
    TempPath pc;
    weir::test::write_pcapng(ng, ng_frames, 101);
    PcapOptions o;
    o.precision = TsPrecision::Nano;
    write_pcap(pc, pcap_frames, o);
    const auto expected = merge_reference({expected_pkts(ng_frames, o, 101), expected_pkts(pcap_frames, o, 1)});
    for (uint32_t burst : {1u, 4u, 32u, 256u}) {
        SCOPED_TRACE(burst);
        auto src = open_capture_files(ng.path() + ", " + pc.path());
        ASSERT_TRUE(src.ok()) << src.error().message();
        EXPECT_EQ((*src)->linktypes(), (std::vector<uint32_t>{101, 1}));
        const auto got = drain(**src, burst);
        ASSERT_EQ(got.size(), expected.size());
        for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], expected[i]) << "packet " << i;
        EXPECT_FALSE((*src)->error().has_value());
    }
}

TEST(MergeSources, KeepsGoingPastATruncatedFileAndReportsIt)
{
    TempPath good;
    TempPath empty;
    TempPath cut;
    write_pcap(good, sample_frames(10, 1'000'000'000, 1'000'000, 0x1));
    write_pcap(empty, {});
    auto bytes = weir::test::pcap_bytes(sample_frames(10, 1'000'500'000, 1'000'000, 0x2));
    bytes.resize(bytes.size() - 5); // cuts the last record's data
    weir::test::write_file(cut, bytes);
    auto src = open_capture_files(cut.path() + "," + empty.path() + "," + good.path());
    ASSERT_TRUE(src.ok()) << src.error().message();
    const auto got = drain(**src, 8);
    EXPECT_EQ(got.size(), 19u);
    EXPECT_TRUE(std::is_sorted(got.begin(), got.end(), [](const Pkt& x, const Pkt& y) { return x.ts_ns < y.ts_ns; }));
    const auto err = (*src)->error();
    ASSERT_TRUE(err.has_value());
    EXPECT_THAT(err->message(), HasSubstr(cut.path() + ": record 10 at offset "));
}

TEST(MergeSources, CorpusPcapngWithPcap)
{
    std::string ng_path;
    std::string pcap_path;
    for (const auto& f : corpus_files()) {
        if (ng_path.empty() && f.ends_with(".pcapng") && first_word(f) == 0x0a0d0d0a && fs::file_size(f) > 10000)
            ng_path = f;
        if (pcap_path.empty() && f.ends_with(".pcap") && first_word(f) == 0xd4c3b2a1 && fs::file_size(f) > 10000)
            pcap_path = f;
    }
    if (ng_path.empty() || pcap_path.empty())
        GTEST_SKIP() << "SKIPPED: no pcapng and pcap pair in " << kShared << "/pcaps/ndpi/pcap (WEIR_SHARED_DIR)";
    const Reference ng = read_with_libpcap(ng_path);
    const Reference pc = read_with_libpcap(pcap_path);
    ASSERT_TRUE(ng.opened && pc.opened);
    const auto expected = merge_reference({pc.pkts, ng.pkts});
    auto src = open_capture_files(pcap_path + "," + ng_path);
    ASSERT_TRUE(src.ok()) << src.error().message();
    const auto got = drain(**src, 32);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], expected[i]) << "packet " << i;
}

TEST(OpenCaptureFiles, OneFileIsNotMerged)
{
    TempPath a;
    write_pcap(a, sample_frames(3, 1'000'000'000, 1000, 1));
    auto src = open_capture_files(a.path());
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->describe(), a.path() + " (pcap, linktype 1, read)");
}

TEST(OpenCaptureFiles, BadListsFail)
{
    TempPath a;
    write_pcap(a, sample_frames(3, 1'000'000'000, 1000, 1));
    auto empty_item = open_capture_files(a.path() + ",," + a.path());
    ASSERT_FALSE(empty_item.ok());
    EXPECT_EQ(empty_item.error().code, std::errc::invalid_argument);

    const std::string missing = fs::temp_directory_path().string() + "/weir-missing-half.pcap";
    auto with_missing = open_capture_files(a.path() + "," + missing);
    ASSERT_FALSE(with_missing.ok());
    EXPECT_EQ(with_missing.error().code, std::errc::no_such_file_or_directory);
    EXPECT_THAT(with_missing.error().message(), HasSubstr(missing));
}

} // namespace
