// Capture files as PacketSources: classic pcap read() into one reused buffer
// and parsed in place (the fast path: frames are handed out as pointers into
// the buffer), and pcapng or anything else libpcap reads through libpcap, with
// frames copied into a reused arena. Also open_capture_files(), which splits a
// comma list and merges the files with merge_sources() (merge_source.cpp).
//
// Why read() and not a memory map of the file: on a paravirtualised VM every
// page-table update is expensive, and touching a 1.85 GB file through a map
// took 0.80 s against 0.14 s for pread() into a reused 4 MiB buffer
// (docs/performance.md, "Capture file reading").
//
// The pcap reader accepts exactly what libpcap 1.10 accepts for version 2.4
// files and delivers the same frames (tests/unit/pcap_file_test.cpp checks
// that against every capture in the shared corpus); older versions, with
// their swapped length fields, and link types whose pseudo-headers libpcap
// rewrites are left to libpcap.
#include <weir/dataplane/packet_source.hpp>

#include <pcap/pcap.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace weir::dataplane {

namespace {

constexpr uint32_t kMagicMicro = 0xa1b2c3d4;
constexpr uint32_t kMagicNano = 0xa1b23c4d;
constexpr uint32_t kMagicMicroSwapped = 0xd4c3b2a1;
constexpr uint32_t kMagicNanoSwapped = 0x4d3cb2a1;
constexpr uint32_t kMagicKuznetzov = 0xa1b2cd34;
constexpr uint32_t kMagicKuznetzovSwapped = 0x34cdb2a1;
constexpr uint32_t kMagicPcapng = 0x0a0d0d0a;

constexpr size_t kFileHeaderSize = 24;
constexpr size_t kRecordHeaderSize = 16;
constexpr uint64_t kNsPerSec = 1'000'000'000;

// libpcap's MAXIMUM_SNAPLEN and its per-link-type exceptions
// (max_snaplen_for_dlt): a larger caplen means a corrupt record.
constexpr uint32_t kMaxSnaplen = 262144;
constexpr uint32_t kLinktypeUsbLinux = 189;
constexpr uint32_t kLinktypeUsbLinuxMmapped = 220;
constexpr uint32_t kLinktypeDbus = 231;
constexpr uint32_t kLinktypeNflog = 239;
constexpr uint32_t kLinktypeUsbpcap = 249;
constexpr uint32_t kLinktypeEbhscr = 279;

constexpr uint32_t max_caplen_for(uint32_t linktype) noexcept
{
    switch (linktype) {
    case kLinktypeDbus: return 128u * 1024 * 1024;
    case kLinktypeEbhscr: return 8u * 1024 * 1024;
    case kLinktypeUsbpcap: return 1024u * 1024;
    default: return kMaxSnaplen;
    }
}

// libpcap's dlt_to_linktype() for Linux, where only these DLT_ values differ
// from the LINKTYPE_ written in files.
constexpr uint32_t linktype_from_dlt(int dlt) noexcept
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

constexpr uint32_t bswap32(uint32_t v) noexcept { return __builtin_bswap32(v); }

std::string hex32(uint32_t v)
{
    std::array<char, 16> buf{};
    std::snprintf(buf.data(), buf.size(), "0x%08x", v);
    return buf.data();
}

std::string printable(const uint8_t* p, size_t n)
{
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '.';
    return s;
}

class Fd {
public:
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&&) = delete;
    ~Fd()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    [[nodiscard]] int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

// Why a file ended early. Kept as plain values so that the fast path can
// record it without allocating; error() formats it.
struct Problem {
    enum class Kind : uint8_t { None, TruncatedHeader, TruncatedData, CaplenTooBig, Read, Libpcap };
    Kind kind = Kind::None;
    uint64_t record = 0;  ///< 1-based number of the bad record
    uint64_t offset = 0;  ///< file offset of its record header
    uint64_t have = 0;    ///< bytes that were left in the file
    uint32_t caplen = 0;
    uint32_t limit = 0;
    int err = 0;          ///< errno of a failed read
};

std::string record_prefix(const std::string& path, const Problem& p)
{
    return path + ": record " + std::to_string(p.record) + " at offset " + std::to_string(p.offset) + ": ";
}

// ---------------------------------------------------------------------------
// Classic pcap through read().

struct PcapHeader {
    bool swapped = false;
    bool nano = false;
    uint16_t version_major = 0;
    uint16_t version_minor = 0;
    uint32_t snaplen = 0;
    uint32_t linktype_field = 0;
};

PcapHeader parse_header(const uint8_t* p) noexcept
{
    PcapHeader h;
    uint32_t magic = 0;
    std::memcpy(&magic, p, 4);
    h.swapped = magic == kMagicMicroSwapped || magic == kMagicNanoSwapped;
    h.nano = magic == kMagicNano || magic == kMagicNanoSwapped;
    uint16_t major = 0;
    uint16_t minor = 0;
    std::memcpy(&major, p + 4, 2);
    std::memcpy(&minor, p + 6, 2);
    std::memcpy(&h.snaplen, p + 16, 4);
    std::memcpy(&h.linktype_field, p + 20, 4);
    if (h.swapped) {
        major = __builtin_bswap16(major);
        minor = __builtin_bswap16(minor);
        h.snaplen = bswap32(h.snaplen);
        h.linktype_field = bswap32(h.linktype_field);
    }
    h.version_major = major;
    h.version_minor = minor;
    return h;
}

// The read buffer: anonymous memory asked for in transparent huge pages
// (best effort), so that parsing a few MiB does not walk thousands of 4 KiB
// TLB entries. Its pages are mapped once, by the first read into them.
class ReadBuffer {
public:
    ReadBuffer() noexcept = default;
    ReadBuffer(ReadBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
    {
    }
    ReadBuffer& operator=(ReadBuffer&& other) noexcept
    {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    ReadBuffer(const ReadBuffer&) = delete;
    ReadBuffer& operator=(const ReadBuffer&) = delete;
    ~ReadBuffer() { release(); }

    /// Empty (data() null) when the memory is not there.
    static ReadBuffer allocate(size_t size) noexcept
    {
        ReadBuffer b;
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return b;
        ::madvise(p, size, MADV_HUGEPAGE);
        b.data_ = static_cast<uint8_t*>(p);
        b.size_ = size;
        return b;
    }

    [[nodiscard]] uint8_t* data() const noexcept { return data_; }
    [[nodiscard]] size_t size() const noexcept { return size_; }

private:
    void release() noexcept
    {
        if (data_ != nullptr)
            ::munmap(data_, size_);
    }

    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// Classic pcap read() into one reused buffer and parsed in place: frames are
// pointers into the buffer, valid until the next rx_burst(). A burst ends
// early at a record that is not whole in the buffer; the next rx_burst()
// moves that tail to the front and refills the rest before it hands out
// anything. A record larger than the buffer grows it (up to the link type's
// largest caplen, which bounds a record).
class ReadPcapSource final : public PacketSource {
public:
    ReadPcapSource(std::string path, Fd fd, uint64_t file_bytes, const PcapHeader& h, ReadBuffer buf) noexcept
        : path_(std::move(path)), fd_(std::move(fd)), buf_(std::move(buf)), file_bytes_(file_bytes),
          // The header was read already: the file position is past it.
          read_pos_(kFileHeaderSize),
          // Link type in the low 16 bits; the bits above carry the FCS length
          // and flags, which a decoder of these frames does not need.
          linktype_(h.linktype_field & 0xffff), max_caplen_(max_caplen_for(linktype_)),
          snaplen_((h.snaplen == 0 || h.snaplen > max_caplen_) ? max_caplen_ : h.snaplen), nano_(h.nano),
          swapped_(h.swapped)
    {
        offset_.store(kFileHeaderSize, std::memory_order_relaxed);
        finished_ = file_bytes_ <= kFileHeaderSize;
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        if (finished_ || n == 0)
            return 0;
        if (refill_wanted_) {
            refill();
            if (finished_)
                return 0;
        }
        uint32_t got = parse(out, n);
        // The first record was not whole in the buffer (only its header was
        // missing, or it is larger than the whole buffer): each refill reads
        // more or grows the buffer to the record's size, so this ends.
        while (got == 0 && refill_wanted_ && !finished_) [[unlikely]] {
            refill();
            if (!finished_)
                got = parse(out, n);
        }
        return got;
    }

    [[nodiscard]] bool finished() const noexcept override { return finished_; }

    [[nodiscard]] std::optional<Error> error() const override
    {
        const std::string prefix = record_prefix(path_, problem_);
        switch (problem_.kind) {
        case Problem::Kind::None:
        case Problem::Kind::Libpcap:
            return std::nullopt;
        case Problem::Kind::TruncatedHeader:
            return invalid(prefix + "record header cut short at end of file (" + std::to_string(problem_.have) +
                           " of 16 bytes)");
        case Problem::Kind::TruncatedData:
            return invalid(prefix + "caplen " + std::to_string(problem_.caplen) + " is larger than the " +
                           std::to_string(problem_.have) + " bytes left in the file (truncated)");
        case Problem::Kind::CaplenTooBig:
            return invalid(prefix + "caplen " + std::to_string(problem_.caplen) + " exceeds the maximum of " +
                           std::to_string(problem_.limit) + " (snaplen " + std::to_string(snaplen_) +
                           "; corrupt file)");
        case Problem::Kind::Read:
            return from_errno(problem_.err, prefix + "read");
        }
        return std::nullopt;
    }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        return SourceStats{packets_.load(std::memory_order_relaxed), bytes_.load(std::memory_order_relaxed),
                           file_bytes_, offset_.load(std::memory_order_relaxed)};
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {linktype_}; }

    [[nodiscard]] std::string describe() const override
    {
        return path_ + " (pcap, linktype " + std::to_string(linktype_) + ", read)";
    }

private:
    static constexpr uint64_t kPrefetchAhead = 768;

    // Moves the unparsed tail to the front of the buffer, growing it first
    // when the record there is larger than the whole buffer, and reads until
    // the buffer is full or the file ends.
    void refill() noexcept
    {
        refill_wanted_ = false;
        const size_t tail = end_ - pos_;
        if (need_ > buf_.size()) {
            ReadBuffer bigger = ReadBuffer::allocate(need_);
            if (bigger.data() == nullptr) {
                read_failed(ENOMEM);
                return;
            }
            std::memcpy(bigger.data(), buf_.data() + pos_, tail);
            buf_ = std::move(bigger);
        } else if (pos_ != 0 && tail != 0) {
            std::memmove(buf_.data(), buf_.data() + pos_, tail);
        }
        pos_ = 0;
        end_ = tail;
        need_ = 0;
        while (end_ < buf_.size()) {
            const ssize_t r = ::pread(fd_.get(), buf_.data() + end_, buf_.size() - end_, static_cast<off_t>(read_pos_));
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                read_failed(errno);
                return;
            }
            if (r == 0) {
                eof_ = true;
                break;
            }
            end_ += static_cast<size_t>(r);
            read_pos_ += static_cast<uint64_t>(r);
        }
        if (eof_ && end_ == 0)
            finished_ = true;
    }

    void read_failed(int err) noexcept
    {
        problem_.kind = Problem::Kind::Read;
        problem_.record = packets_.load(std::memory_order_relaxed) + 1;
        problem_.offset = read_pos_ - (end_ - pos_);
        problem_.err = err;
        finished_ = true;
    }

    uint32_t parse(RawPacket* out, uint32_t n) noexcept
    {
        if (swapped_)
            return nano_ ? burst<true, true>(out, n) : burst<true, false>(out, n);
        return nano_ ? burst<false, true>(out, n) : burst<false, false>(out, n);
    }

    template <bool kSwapped, bool kNano>
    uint32_t burst(RawPacket* out, uint32_t n) noexcept
    {
        const uint8_t* const base = buf_.data();
        const size_t end = end_;
        const uint32_t snaplen = snaplen_;
        const uint32_t linktype = linktype_;
        size_t pos = pos_;
        uint64_t bytes = 0;
        uint32_t i = 0;
        for (; i < n; ++i) {
            const size_t left = end - pos;
            if (left < kRecordHeaderSize) [[unlikely]] {
                if (!eof_) {
                    wait_for(kRecordHeaderSize);
                    break;
                }
                if (left != 0)
                    fail(Problem::Kind::TruncatedHeader, i, pos, left, 0);
                finished_ = true;
                break;
            }
            // Each record's offset depends on the previous caplen, a serial
            // chain of loads; fetching a few records ahead keeps it in L1.
            __builtin_prefetch(base + pos + kPrefetchAhead);
            std::array<uint32_t, 4> h; // ts_sec, ts_frac, caplen, wire_len
            std::memcpy(h.data(), base + pos, kRecordHeaderSize);
            if constexpr (kSwapped) {
                for (auto& v : h)
                    v = bswap32(v);
            }
            uint32_t caplen = h[2];
            if (caplen > snaplen) [[unlikely]] {
                if (caplen > max_caplen_) {
                    fail(Problem::Kind::CaplenTooBig, i, pos, left, caplen);
                    finished_ = true;
                    break;
                }
                // As libpcap does: a record a little over the snaplen is cut
                // to the snaplen, the rest skipped.
                caplen = snaplen;
            }
            if (h[2] > left - kRecordHeaderSize) [[unlikely]] {
                if (!eof_) {
                    wait_for(kRecordHeaderSize + size_t{h[2]});
                    break;
                }
                fail(Problem::Kind::TruncatedData, i, pos, left - kRecordHeaderSize, h[2]);
                finished_ = true;
                break;
            }
            RawPacket& p = out[i];
            p.data = base + pos + kRecordHeaderSize;
            p.caplen = caplen;
            p.wire_len = h[3];
            p.ts_ns = uint64_t{h[0]} * kNsPerSec + (kNano ? uint64_t{h[1]} : uint64_t{h[1]} * 1000);
            p.linktype = linktype;
            bytes += h[3];
            pos += kRecordHeaderSize + h[2];
        }
        if (pos == end && eof_)
            finished_ = true;
        else if (pos == end)
            refill_wanted_ = true;
        pos_ = pos;
        offset_.store(read_pos_ - (end - pos), std::memory_order_relaxed);
        packets_.store(packets_.load(std::memory_order_relaxed) + i, std::memory_order_relaxed);
        bytes_.store(bytes_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
        return i;
    }

    // The record at pos_ needs `record` bytes in the buffer: the next
    // rx_burst() refills (and grows the buffer if it is smaller than that).
    void wait_for(size_t record) noexcept
    {
        refill_wanted_ = true;
        need_ = record;
    }

    void fail(Problem::Kind kind, uint32_t in_burst, size_t pos, uint64_t have, uint32_t caplen) noexcept
    {
        problem_.kind = kind;
        problem_.record = packets_.load(std::memory_order_relaxed) + in_burst + 1;
        problem_.offset = read_pos_ - (end_ - pos);
        problem_.have = have;
        problem_.caplen = caplen;
        problem_.limit = max_caplen_;
    }

    std::string path_;
    Fd fd_;
    ReadBuffer buf_;
    size_t pos_ = 0;  ///< next record in buf_
    size_t end_ = 0;  ///< end of the bytes read into buf_
    size_t need_ = 0; ///< bytes the record at pos_ needs (when it did not fit)
    uint64_t file_bytes_;
    uint64_t read_pos_; ///< file offset of buf_[end_]
    uint32_t linktype_;
    uint32_t max_caplen_;
    uint32_t snaplen_;
    bool nano_;
    bool swapped_;
    bool eof_ = false;
    bool refill_wanted_ = true;
    bool finished_ = false;
    // Read by stats() from other threads.
    std::atomic<uint64_t> offset_{0};
    std::atomic<uint64_t> packets_{0};
    std::atomic<uint64_t> bytes_{0};
    Problem problem_;
};

// ---------------------------------------------------------------------------
// Anything else through libpcap.

struct PcapCloser {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};

class LibpcapSource final : public PacketSource {
public:
    LibpcapSource(std::string path, std::string format, pcap_t* pcap, uint64_t file_bytes, bool classic_micro,
                  std::unique_ptr<uint8_t[]> arena, size_t arena_size) noexcept
        : path_(std::move(path)), format_(std::move(format)), pcap_(pcap), file_(pcap_file(pcap)),
          linktype_(linktype_from_dlt(pcap_datalink(pcap))), file_bytes_(file_bytes), classic_micro_(classic_micro),
          arena_(std::move(arena)), arena_size_(arena_size)
    {
        offset_ = tell();
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        if (finished_ || n == 0)
            return 0;
        if (grow_wanted_) [[unlikely]]
            grow_arena();
        size_t used = 0;
        uint32_t i = 0;
        while (i < n) {
            pcap_pkthdr* hdr = nullptr;
            const u_char* data = nullptr;
            const int rc = pcap_next_ex(pcap_.get(), &hdr, &data);
            if (rc != 1) {
                finished_ = true;
                if (rc == PCAP_ERROR) {
                    problem_.kind = Problem::Kind::Libpcap;
                    problem_.record = packets_ + i + 1;
                    problem_.offset = offset_;
                    std::snprintf(pcap_error_.data(), pcap_error_.size(), "%s", pcap_geterr(pcap_.get()));
                }
                offset_ = tell();
                break;
            }
            offset_ = tell();
            RawPacket& p = out[i++];
            p.caplen = hdr->caplen;
            p.wire_len = hdr->len;
            p.ts_ns = timestamp_ns(hdr->ts);
            p.linktype = linktype_;
            bytes_ += hdr->len;
            // libpcap's buffer holds the frame until our next pcap_next_ex(),
            // so the last frame of a burst needs no copy; neither does one
            // that does not fit the arena, which then ends the burst.
            if (i == n || used + hdr->caplen > arena_size_) {
                grow_wanted_ = i < n;
                p.data = data;
                break;
            }
            std::memcpy(arena_.get() + used, data, hdr->caplen);
            p.data = arena_.get() + used;
            used += hdr->caplen;
        }
        packets_ += i;
        return i;
    }

    [[nodiscard]] bool finished() const noexcept override { return finished_; }

    [[nodiscard]] std::optional<Error> error() const override
    {
        if (problem_.kind != Problem::Kind::Libpcap)
            return std::nullopt;
        return invalid(record_prefix(path_, problem_) + pcap_error_.data());
    }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        return SourceStats{packets_, bytes_, file_bytes_, offset_};
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {linktype_}; }

    [[nodiscard]] std::string describe() const override
    {
        return path_ + " (" + format_ + ", linktype " + std::to_string(linktype_) + ", libpcap)";
    }

private:
    static constexpr size_t kMaxArena = 4u << 20;

    uint64_t tell() const noexcept
    {
        const long pos = file_ != nullptr ? std::ftell(file_) : -1;
        return pos < 0 ? offset_ : static_cast<uint64_t>(pos);
    }

    // libpcap sign-extends the 32-bit seconds and fraction of classic pcap
    // records; the format defines them as unsigned, as the pcap reader reads
    // them.
    uint64_t timestamp_ns(const timeval& ts) const noexcept
    {
        const uint64_t sec = ts.tv_sec < 0 ? uint64_t{static_cast<uint32_t>(ts.tv_sec)} : static_cast<uint64_t>(ts.tv_sec);
        uint64_t frac = static_cast<uint64_t>(ts.tv_usec);
        if (ts.tv_usec < 0)
            frac = classic_micro_ ? uint64_t{static_cast<uint32_t>(ts.tv_usec / 1000)} * 1000
                                  : uint64_t{static_cast<uint32_t>(ts.tv_usec)};
        return sec * kNsPerSec + frac;
    }

    void grow_arena() noexcept
    {
        grow_wanted_ = false;
        if (arena_size_ >= kMaxArena)
            return;
        const size_t size = arena_size_ * 2;
        // Only between bursts, where no frame of ours is outstanding; if
        // memory is short we keep the old arena and shorter bursts.
        auto bigger = std::unique_ptr<uint8_t[]>(new (std::nothrow) uint8_t[size]);
        if (bigger) {
            arena_ = std::move(bigger);
            arena_size_ = size;
        }
    }

    std::string path_;
    std::string format_;
    std::unique_ptr<pcap_t, PcapCloser> pcap_;
    FILE* file_;
    uint32_t linktype_;
    uint64_t file_bytes_;
    bool classic_micro_;
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_size_;
    bool grow_wanted_ = false;
    bool finished_ = false;
    uint64_t offset_ = 0;
    uint64_t packets_ = 0;
    uint64_t bytes_ = 0;
    Problem problem_;
    std::array<char, PCAP_ERRBUF_SIZE> pcap_error_{};
};

std::string format_name(uint32_t magic)
{
    return magic == kMagicPcapng ? "pcapng" : "pcap";
}

bool is_classic_magic(uint32_t magic) noexcept
{
    return magic == kMagicMicro || magic == kMagicNano || magic == kMagicMicroSwapped ||
           magic == kMagicNanoSwapped || magic == kMagicKuznetzov || magic == kMagicKuznetzovSwapped;
}

// Opens through libpcap, which takes over fd. A regular file is read from
// its start again; a pipe or device (seekable false) has not been read yet.
// what_found describes the first bytes for the error message when libpcap
// cannot read the file either.
Result<std::unique_ptr<PacketSource>> open_with_libpcap(const std::string& path, Fd fd, bool seekable, uint32_t magic,
                                                        uint64_t file_bytes, const std::string& what_found)
{
    std::array<char, PCAP_ERRBUF_SIZE> errbuf{};
    if (seekable && ::lseek(fd.get(), 0, SEEK_SET) < 0)
        return from_errno(errno, path + ": seek");
    FILE* f = ::fdopen(fd.get(), "rb");
    if (f == nullptr)
        return from_errno(errno, path + ": fdopen");
    fd.release();
    // Larger stdio reads than the default 4 KiB: fewer syscalls per packet.
    std::setvbuf(f, nullptr, _IOFBF, 256u << 10);
    pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf.data());
    if (p == nullptr) {
        std::fclose(f);
        if (what_found.empty())
            return invalid(path + ": libpcap cannot read it: " + errbuf.data());
        return invalid(path + ": not a capture file (" + what_found + "; libpcap: " + errbuf.data() + ")");
    }
    constexpr size_t kArena = 64u << 10;
    auto arena = std::make_unique<uint8_t[]>(kArena);
    const bool classic_micro = magic == kMagicMicro || magic == kMagicMicroSwapped || magic == kMagicKuznetzov ||
                               magic == kMagicKuznetzovSwapped;
    return std::unique_ptr<PacketSource>(std::make_unique<LibpcapSource>(
        path, format_name(magic), p, file_bytes, classic_micro, std::move(arena), kArena));
}

} // namespace

Result<std::unique_ptr<PacketSource>> open_pcap_file(const std::string& path, const PcapReadOptions& opts)
{
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        return from_errno(errno, path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return from_errno(errno, path);
    if (S_ISDIR(st.st_mode))
        return from_errno(EISDIR, path);
    if (!S_ISREG(st.st_mode)) {
        // A pipe or device cannot be mapped, nor probed without consuming it.
        return open_with_libpcap(path, std::move(fd), false, 0, 0, {});
    }
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size == 0)
        return invalid(path + ": empty file, not a capture file");

    std::array<uint8_t, kFileHeaderSize> head{};
    const ssize_t got = ::pread(fd.get(), head.data(), head.size(), 0);
    if (got < 0)
        return from_errno(errno, path + ": read");
    if (static_cast<uint64_t>(got) < std::min<uint64_t>(size, kFileHeaderSize))
        return Error{std::make_error_code(std::errc::io_error), path + ": short read of the file header"};
    uint32_t magic = 0;
    std::memcpy(&magic, head.data(), 4);
    const std::string found = "found " + std::to_string(size) + " bytes starting with " +
                              hex32(size >= 4 ? bswap32(magic) : 0) + " \"" +
                              printable(head.data(), std::min<size_t>(size, 8)) + "\"";
    if (size < kFileHeaderSize)
        return invalid(path + ": file too short: " + std::to_string(size) + " bytes, a pcap file header needs " +
                       std::to_string(kFileHeaderSize) + " (" + found + ")");

    if (magic == kMagicMicro || magic == kMagicNano || magic == kMagicMicroSwapped || magic == kMagicNanoSwapped) {
        const PcapHeader h = parse_header(head.data());
        const uint32_t linktype = h.linktype_field & 0xffff;
        // Versions before 2.4 may have caplen and len swapped, and libpcap
        // rewrites the pseudo-headers of these link types; it handles both.
        const bool libpcap_only = h.version_major != 2 || h.version_minor != 4 || linktype == kLinktypeUsbLinux ||
                                  linktype == kLinktypeUsbLinuxMmapped || linktype == kLinktypeNflog;
        if (!libpcap_only) {
            ReadBuffer buf = ReadBuffer::allocate(std::max(opts.buffer_bytes, kRecordHeaderSize));
            if (buf.data() == nullptr)
                return from_errno(ENOMEM, path + ": read buffer of " + std::to_string(opts.buffer_bytes) + " bytes");
            // Twice the default readahead; a hint, so its failure does not matter.
            (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
            return std::unique_ptr<PacketSource>(
                std::make_unique<ReadPcapSource>(path, std::move(fd), size, h, std::move(buf)));
        }
        return open_with_libpcap(path, std::move(fd), true, magic, size, found);
    }
    if (is_classic_magic(magic) || magic == kMagicPcapng)
        return open_with_libpcap(path, std::move(fd), true, magic, size, found);
    // Not a format we know by its magic: libpcap may still know it.
    return open_with_libpcap(path, std::move(fd), true, magic, size, "bad magic: " + found);
}

Result<std::unique_ptr<PacketSource>> open_capture_files(const std::string& comma_list)
{
    std::vector<std::string> paths;
    std::string_view rest = comma_list;
    while (true) {
        const size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
            item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
            item.remove_suffix(1);
        if (item.empty())
            return invalid("capture file list \"" + comma_list + "\": empty file name");
        paths.emplace_back(item);
        if (comma == std::string_view::npos)
            break;
        rest.remove_prefix(comma + 1);
    }
    if (paths.size() == 1)
        return open_pcap_file(paths.front());
    std::vector<std::unique_ptr<PacketSource>> sources;
    sources.reserve(paths.size());
    for (const auto& path : paths) {
        auto src = open_pcap_file(path);
        if (!src)
            return src.error();
        sources.push_back(std::move(src).value());
    }
    return merge_sources(std::move(sources));
}

} // namespace weir::dataplane
