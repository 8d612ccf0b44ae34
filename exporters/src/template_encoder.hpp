// Private: the template-based encoder behind NetFlow v9 and IPFIX. Both
// dialects share the field list and record writer; they differ in header,
// set ids, field widths, time encoding and sequence-number semantics.
#pragma once

#include <weir/exporters/encoder.hpp>

#include <memory>

namespace weir::exporters::detail {

enum class Dialect : uint8_t { V9, Ipfix };

Result<std::unique_ptr<Encoder>> make_template_encoder(Dialect dialect, const EncoderOptions& opts);

} // namespace weir::exporters::detail
