// merge_sources(): several PacketSources merged by timestamp, as the two
// halves of a tap. A k-way merge with a linear scan of the heads: k is the
// number of files on a command line, a handful at most.
//
// Frame lifetime is the subtle part. The merger must be able to advance an
// input while frames it handed out in the same burst are still in use, but a
// libpcap-backed input reuses its buffer on every rx_burst(). So inputs are
// handled two ways:
//  - inputs whose frames outlive the burst (memory-mapped pcap) are read 32
//    at a time and their frames handed out as they are, with no copy;
//  - any other input is read one frame at a time (so it never has to copy
//    itself), and the merger copies that frame into its own arena when it
//    hands it out, before it advances the input again. A frame that does not
//    fit the arena is handed out uncopied as the last one of the burst: the
//    input is not advanced before the next call, so it stays valid.
// The arena is reused across bursts and only grows, between bursts.
#include <weir/dataplane/packet_source.hpp>

#include "file_source.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

namespace weir::dataplane {

namespace {

class MergeSource final : public detail::FileSource {
public:
    explicit MergeSource(std::vector<std::unique_ptr<PacketSource>> sources)
        : arena_(std::make_unique<uint8_t[]>(kInitialArena)), arena_size_(kInitialArena)
    {
        inputs_.reserve(sources.size());
        for (auto& src : sources) {
            Input in;
            in.stable = detail::data_outlives_burst(*src);
            in.src = std::move(src);
            inputs_.push_back(std::move(in));
        }
        finished_ = inputs_.empty();
        all_stable_ = std::all_of(inputs_.begin(), inputs_.end(), [](const Input& in) { return in.stable; });
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
            Input* best = nullptr;
            bool blocked = false;
            for (Input& in : inputs_) {
                // A live input with nothing yet: merging past it would break the order.
                if (in.head == in.count && !in.done && !refill(in)) {
                    blocked = true;
                    break;
                }
                if (in.head == in.count)
                    continue;
                if (best == nullptr || in.buf[in.head].ts_ns < best->buf[best->head].ts_ns)
                    best = &in;
            }
            if (blocked)
                break;
            if (best == nullptr) {
                finished_ = true;
                break;
            }
            RawPacket& p = out[i++];
            p = best->buf[best->head++];
            bytes_ += p.wire_len;
            if (!best->stable) {
                if (used + p.caplen > arena_size_) {
                    grow_wanted_ = true;
                    break;
                }
                if (p.caplen != 0)
                    std::memcpy(arena_.get() + used, p.data, p.caplen);
                p.data = arena_.get() + used;
                used += p.caplen;
            }
        }
        packets_ += i;
        return i;
    }

    [[nodiscard]] bool finished() const noexcept override { return finished_; }

    [[nodiscard]] std::optional<Error> error() const override
    {
        std::optional<Error> merged;
        for (const Input& in : inputs_) {
            auto err = in.src->error();
            if (!err)
                continue;
            if (!merged)
                merged = std::move(err);
            else
                merged->context += "; " + err->message();
        }
        return merged;
    }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats s{packets_, bytes_, 0, 0};
        for (const Input& in : inputs_) {
            const SourceStats is = in.src->stats();
            s.file_bytes += is.file_bytes;
            s.file_offset += is.file_offset;
        }
        return s;
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override
    {
        std::vector<uint32_t> all;
        for (const Input& in : inputs_)
            for (uint32_t lt : in.src->linktypes())
                if (std::find(all.begin(), all.end(), lt) == all.end())
                    all.push_back(lt);
        return all;
    }

    [[nodiscard]] std::string describe() const override
    {
        std::string d;
        for (const Input& in : inputs_)
            d += (d.empty() ? "" : " + ") + in.src->describe();
        return "merge of " + d;
    }

    [[nodiscard]] bool data_outlives_burst() const noexcept override { return all_stable_; }

private:
    static constexpr uint32_t kLookahead = 32;
    static constexpr size_t kInitialArena = 64u << 10;
    static constexpr size_t kMaxArena = 4u << 20;

    struct Input {
        std::unique_ptr<PacketSource> src;
        bool stable = false;
        bool done = false;
        uint32_t head = 0;
        uint32_t count = 0;
        std::array<RawPacket, kLookahead> buf{};
    };

    // False when the input is live and has nothing yet.
    static bool refill(Input& in) noexcept
    {
        in.head = 0;
        in.count = in.src->rx_burst(in.buf.data(), in.stable ? kLookahead : 1);
        if (in.count == 0) {
            in.done = in.src->finished();
            return in.done;
        }
        return true;
    }

    void grow_arena() noexcept
    {
        grow_wanted_ = false;
        if (arena_size_ >= kMaxArena)
            return;
        const size_t size = arena_size_ * 2;
        auto bigger = std::unique_ptr<uint8_t[]>(new (std::nothrow) uint8_t[size]);
        if (bigger) {
            arena_ = std::move(bigger);
            arena_size_ = size;
        }
    }

    std::vector<Input> inputs_;
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_size_;
    bool all_stable_ = true;
    bool grow_wanted_ = false;
    bool finished_ = false;
    uint64_t packets_ = 0;
    uint64_t bytes_ = 0;
};

} // namespace

std::unique_ptr<PacketSource> merge_sources(std::vector<std::unique_ptr<PacketSource>> sources)
{
    if (sources.size() == 1)
        return std::move(sources.front());
    return std::make_unique<MergeSource>(std::move(sources));
}

} // namespace weir::dataplane
