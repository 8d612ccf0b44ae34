// NetFlow v9 encoder factory (the encoding is shared with IPFIX).
#include "template_encoder.hpp"

#include <weir/exporters/netflow.hpp>

namespace weir::exporters {

Result<std::unique_ptr<Encoder>> make_netflow_v9_encoder(const EncoderOptions& opts)
{
    return detail::make_template_encoder(detail::Dialect::V9, opts);
}

} // namespace weir::exporters
