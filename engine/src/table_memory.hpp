// Anonymous memory for the engine's large hash tables (flow tables, the IDS
// egress policy state): zero, on transparent huge pages when big enough,
// and either mapped page by page as the table is used or prefaulted at
// creation. Included only by the engine's sources.
//
// Huge pages spare the TLB a miss per lookup in a table of hundreds of MB,
// but a 2 MiB page's first touch zeroes it (and may compact memory first,
// THP defrag=madvise): on this project's VM test bed about a second of
// capture stalled on those faults at the first thousand flows. Live capture
// therefore prefaults (every page mapped before the first packet); a
// capture file does not, so a large --max-flows costs only what is used.
#pragma once

#include <weir/core/result.hpp>

#include <cstddef>
#include <cstdint>

namespace weir::engine::detail {

inline constexpr std::size_t kHugePage = 2u << 20;

class TableMemory {
public:
    struct Options {
        bool huge_pages = true; ///< advise huge pages (tables of at least kHugePage)
        bool prefault = false;  ///< map every page now (live capture)
        bool no_reserve = false;///< MAP_NORESERVE: no overcommit check for a sparse table
    };

    TableMemory() = default;
    TableMemory(TableMemory&& o) noexcept { *this = static_cast<TableMemory&&>(o); }
    TableMemory& operator=(TableMemory&& o) noexcept;
    TableMemory(const TableMemory&) = delete;
    TableMemory& operator=(const TableMemory&) = delete;
    ~TableMemory();

    /// `bytes` of zeroed memory; with huge pages the region starts on a
    /// 2 MiB boundary (the mapping is a huge page longer, the slack never
    /// touched). `what` names the table in errors.
    static Result<TableMemory> map(std::size_t bytes, const Options& opts, const char* what);

    [[nodiscard]] uint8_t* data() const noexcept { return region_; }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_; }

private:
    void* base_ = nullptr;
    std::size_t len_ = 0;
    uint8_t* region_ = nullptr;
    std::size_t bytes_ = 0;
};

} // namespace weir::engine::detail
