#include "table_memory.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 // Linux 5.14
#endif

namespace weir::engine::detail {

TableMemory& TableMemory::operator=(TableMemory&& o) noexcept
{
    if (this != &o) {
        if (base_ != nullptr)
            ::munmap(base_, len_);
        base_ = o.base_;
        len_ = o.len_;
        region_ = o.region_;
        bytes_ = o.bytes_;
        o.base_ = nullptr;
        o.len_ = 0;
        o.region_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}

TableMemory::~TableMemory()
{
    if (base_ != nullptr)
        ::munmap(base_, len_);
}

Result<TableMemory> TableMemory::map(std::size_t bytes, const Options& opts, const char* what)
{
    const bool huge = opts.huge_pages && bytes >= kHugePage;
    const std::size_t len = huge ? bytes + kHugePage : bytes;
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (opts.no_reserve ? MAP_NORESERVE : 0);
    void* base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (base == MAP_FAILED)
        return from_errno(errno, std::string(what) + ": map " + std::to_string(bytes >> 20) + " MiB");
    TableMemory m;
    m.base_ = base;
    m.len_ = len;
    m.bytes_ = bytes;
    m.region_ = static_cast<uint8_t*>(base);
    if (huge) {
        const auto addr = reinterpret_cast<uintptr_t>(base);
        m.region_ += ((addr + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1)) - addr;
        (void)::madvise(m.region_, bytes, MADV_HUGEPAGE); // best effort
    }
    // Anonymous memory is already zero. Prefaulting makes capacity problems
    // show here and keeps first-touch faults off the packet path; the
    // kernel populates in one call where it can (no second pass of zeroes),
    // else every page is written once.
    if (opts.prefault && ::madvise(m.region_, bytes, MADV_POPULATE_WRITE) != 0) {
        if (errno == ENOMEM)
            return from_errno(ENOMEM, std::string(what) + ": " + std::to_string(bytes >> 20) + " MiB");
        std::memset(m.region_, 0, bytes);
    }
    return m;
}

} // namespace weir::engine::detail
