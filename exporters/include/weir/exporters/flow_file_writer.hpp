// FlowFileWriter: buffered JSON-lines or text output of flow records to a
// file or to standard output ("-"). Used on the export thread only.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace weir::exporters {

class FlowFileWriter {
public:
    enum class Format : uint8_t { Json, Text };

    /// Errors: whatever fopen() says for `path`, with the path in the message.
    static Result<std::unique_ptr<FlowFileWriter>> open(const std::string& path, Format format);
    ~FlowFileWriter();

    /// Formats and buffers one record; the buffer is written out every 64 KiB.
    void write(const FlowRecord& r);

    /// Flushes, and closes the file unless it is stdout. Errors: EIO/ENOSPC.
    Result<void> close();

    [[nodiscard]] uint64_t records() const noexcept { return records_; }

private:
    FlowFileWriter(std::FILE* f, bool owned, Format format, std::string path);
    Result<void> drain();

    std::FILE* f_;
    bool owned_;
    Format format_;
    std::string path_;
    std::string buf_;
    uint64_t records_ = 0;
    bool failed_ = false;
};

} // namespace weir::exporters
