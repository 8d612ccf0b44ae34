// Test support: writes capture files for tests (classic pcap in either byte
// order and time stamp precision, and minimal pcapng), builds their bytes for
// tests that corrupt them on purpose, and hands out temporary paths that are
// removed at scope exit. Header-only; throws std::runtime_error on I/O errors,
// which GoogleTest reports as a failure of the test.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

namespace weir::test {

/// One frame to write. wire_len defaults to data.size().
struct PcapFrame {
    std::vector<uint8_t> data;
    uint64_t ts_ns = 0; ///< ns since the epoch; micro files keep whole microseconds
    std::optional<uint32_t> wire_len;
};

enum class ByteOrder { Little, Big };
enum class TsPrecision { Micro, Nano };

struct PcapOptions {
    ByteOrder byte_order = ByteOrder::Little;
    TsPrecision precision = TsPrecision::Micro;
    uint32_t linktype = 1;        ///< the whole header field: FCS bits may be set above bit 16
    uint32_t snaplen = 262144;    ///< frames longer than this are cut, as a capture would
    uint16_t version_major = 2;
    uint16_t version_minor = 4;
};

namespace detail {

inline void put16(std::vector<uint8_t>& out, uint16_t v, ByteOrder order)
{
    if (order == ByteOrder::Little) {
        out.push_back(static_cast<uint8_t>(v));
        out.push_back(static_cast<uint8_t>(v >> 8));
    } else {
        out.push_back(static_cast<uint8_t>(v >> 8));
        out.push_back(static_cast<uint8_t>(v));
    }
}

inline void put32(std::vector<uint8_t>& out, uint32_t v, ByteOrder order)
{
    if (order == ByteOrder::Little) {
        put16(out, static_cast<uint16_t>(v), order);
        put16(out, static_cast<uint16_t>(v >> 16), order);
    } else {
        put16(out, static_cast<uint16_t>(v >> 16), order);
        put16(out, static_cast<uint16_t>(v), order);
    }
}

inline void pad4(std::vector<uint8_t>& out)
{
    while (out.size() % 4 != 0)
        out.push_back(0);
}

} // namespace detail

/// Appends the 24-byte pcap file header.
inline void append_pcap_header(std::vector<uint8_t>& out, const PcapOptions& o = {})
{
    const uint32_t magic = o.precision == TsPrecision::Nano ? 0xa1b23c4d : 0xa1b2c3d4;
    detail::put32(out, magic, o.byte_order);
    detail::put16(out, o.version_major, o.byte_order);
    detail::put16(out, o.version_minor, o.byte_order);
    detail::put32(out, 0, o.byte_order); // thiszone
    detail::put32(out, 0, o.byte_order); // sigfigs
    detail::put32(out, o.snaplen, o.byte_order);
    detail::put32(out, o.linktype, o.byte_order);
}

/// Appends a raw 16-byte record header with exactly these fields, however
/// inconsistent: for tests of corrupt files.
inline void append_record_header(std::vector<uint8_t>& out, const PcapOptions& o, uint32_t ts_sec, uint32_t ts_frac,
                                 uint32_t caplen, uint32_t wire_len)
{
    detail::put32(out, ts_sec, o.byte_order);
    detail::put32(out, ts_frac, o.byte_order);
    detail::put32(out, caplen, o.byte_order);
    detail::put32(out, wire_len, o.byte_order);
}

/// Appends one record, the frame cut to the snaplen.
inline void append_pcap_record(std::vector<uint8_t>& out, const PcapOptions& o, const PcapFrame& f)
{
    const auto caplen = static_cast<uint32_t>(std::min<size_t>(f.data.size(), o.snaplen));
    const uint32_t wire_len = f.wire_len.value_or(static_cast<uint32_t>(f.data.size()));
    const auto sec = static_cast<uint32_t>(f.ts_ns / 1'000'000'000);
    const uint64_t ns = f.ts_ns % 1'000'000'000;
    const auto frac = static_cast<uint32_t>(o.precision == TsPrecision::Nano ? ns : ns / 1000);
    append_record_header(out, o, sec, frac, caplen, wire_len);
    out.insert(out.end(), f.data.begin(), f.data.begin() + caplen);
}

/// The bytes of a whole classic pcap file.
inline std::vector<uint8_t> pcap_bytes(const std::vector<PcapFrame>& frames, const PcapOptions& o = {})
{
    std::vector<uint8_t> out;
    append_pcap_header(out, o);
    for (const auto& f : frames)
        append_pcap_record(out, o, f);
    return out;
}

/// The bytes of a pcapng file: one section, one interface with nanosecond
/// stamps, one Enhanced Packet Block per frame.
inline std::vector<uint8_t> pcapng_bytes(const std::vector<PcapFrame>& frames, uint16_t linktype = 1,
                                         ByteOrder order = ByteOrder::Little, uint32_t snaplen = 262144)
{
    using detail::put16;
    using detail::put32;
    std::vector<uint8_t> out;
    // Section Header Block
    put32(out, 0x0a0d0d0a, order);
    put32(out, 28, order);
    put32(out, 0x1a2b3c4d, order);
    put16(out, 1, order);
    put16(out, 0, order);
    put32(out, 0xffffffff, order); // section length unknown (-1)
    put32(out, 0xffffffff, order);
    put32(out, 28, order);
    // Interface Description Block with if_tsresol = 9 (ns)
    put32(out, 1, order);
    put32(out, 32, order);
    put16(out, linktype, order);
    put16(out, 0, order);
    put32(out, snaplen, order);
    put16(out, 9, order);
    put16(out, 1, order);
    out.push_back(9);
    detail::pad4(out);
    put32(out, 0, order); // opt_endofopt
    put32(out, 32, order);
    for (const auto& f : frames) {
        const auto caplen = static_cast<uint32_t>(std::min<size_t>(f.data.size(), snaplen));
        const uint32_t total = 32 + ((caplen + 3) & ~3u);
        put32(out, 6, order);
        put32(out, total, order);
        put32(out, 0, order); // interface id
        put32(out, static_cast<uint32_t>(f.ts_ns >> 32), order);
        put32(out, static_cast<uint32_t>(f.ts_ns), order);
        put32(out, caplen, order);
        put32(out, f.wire_len.value_or(static_cast<uint32_t>(f.data.size())), order);
        out.insert(out.end(), f.data.begin(), f.data.begin() + caplen);
        detail::pad4(out);
        put32(out, total, order);
    }
    return out;
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes)
{
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr)
        throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
    const size_t n = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
    const bool ok = n == bytes.size() && std::fclose(f) == 0;
    if (!ok)
        throw std::runtime_error("cannot write " + path);
}

inline void write_pcap(const std::string& path, const std::vector<PcapFrame>& frames, const PcapOptions& o = {})
{
    write_file(path, pcap_bytes(frames, o));
}

inline void write_pcapng(const std::string& path, const std::vector<PcapFrame>& frames, uint16_t linktype = 1)
{
    write_file(path, pcapng_bytes(frames, linktype));
}

/// A unique path under $TMPDIR (or /tmp), created empty and removed, with
/// whatever was written to it, when the object goes out of scope.
class TempPath {
public:
    explicit TempPath(std::string_view suffix = ".pcap")
    {
        const char* dir = std::getenv("TMPDIR");
        std::string tmpl = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/weir-test-XXXXXX";
        tmpl += suffix;
        const int fd = ::mkstemps(tmpl.data(), static_cast<int>(suffix.size()));
        if (fd < 0)
            throw std::runtime_error("mkstemps " + tmpl + ": " + std::strerror(errno));
        ::close(fd);
        path_ = std::move(tmpl);
    }
    TempPath(const TempPath&) = delete;
    TempPath& operator=(const TempPath&) = delete;
    ~TempPath() { ::unlink(path_.c_str()); }

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    operator const std::string&() const noexcept { return path_; }

private:
    std::string path_;
};

} // namespace weir::test
