// merge_sources(): several PacketSources merged by timestamp, as the two
// halves of a tap. A k-way merge with a linear scan of the heads: k is the
// number of files on a command line, a handful at most.
//
// Frame lifetime is the subtle part: an input's frames are valid only until
// its next rx_burst(). Each input is read up to 32 frames ahead and its
// frames are handed out as they are, with no copy; so an input that has
// handed out frames in the current burst is not read again within it. When
// such an input runs dry, the burst ends there (the next call reads it
// again first), since merging past it would break the order.
#include <weir/dataplane/packet_source.hpp>

#include <algorithm>
#include <array>

namespace weir::dataplane {

namespace {

class MergeSource final : public PacketSource {
public:
    explicit MergeSource(std::vector<std::unique_ptr<PacketSource>> sources)
    {
        inputs_.reserve(sources.size());
        for (auto& src : sources) {
            Input in;
            in.src = std::move(src);
            inputs_.push_back(std::move(in));
        }
        finished_ = inputs_.empty();
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        if (finished_ || n == 0)
            return 0;
        ++burst_;
        uint64_t bytes = 0;
        uint32_t i = 0;
        while (i < n) {
            Input* best = nullptr;
            bool blocked = false;
            for (Input& in : inputs_) {
                // An input with nothing yet that may have more: merging past
                // it would break the order. Reading it now would invalidate
                // the frames it gave in this burst, so the burst ends.
                if (in.head == in.count && !in.done && (in.burst == burst_ || !refill(in))) {
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
            best->burst = burst_;
            out[i] = best->buf[best->head++];
            bytes += out[i].wire_len;
            ++i;
        }
        packets_ += i;
        bytes_ += bytes;
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

private:
    static constexpr uint32_t kLookahead = 32;

    struct Input {
        std::unique_ptr<PacketSource> src;
        bool done = false;
        uint64_t burst = 0; ///< the last of our bursts that handed out one of its frames
        uint32_t head = 0;
        uint32_t count = 0;
        std::array<RawPacket, kLookahead> buf{};
    };

    // False when the input is live and has nothing yet.
    static bool refill(Input& in) noexcept
    {
        in.head = 0;
        in.count = in.src->rx_burst(in.buf.data(), kLookahead);
        if (in.count == 0) {
            in.done = in.src->finished();
            return in.done;
        }
        return true;
    }

    std::vector<Input> inputs_;
    uint64_t burst_ = 0;
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
