// IPFIX encoder factory (the encoding is shared with NetFlow v9).
#include "template_encoder.hpp"

#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

namespace weir::exporters {

Result<std::unique_ptr<Encoder>> make_ipfix_encoder(const EncoderOptions& opts)
{
    return detail::make_template_encoder(detail::Dialect::Ipfix, opts);
}

Result<std::unique_ptr<Encoder>> make_encoder(ExportFormat format, const EncoderOptions& opts)
{
    switch (format) {
    case ExportFormat::NetflowV5: return make_netflow_v5_encoder(opts);
    case ExportFormat::NetflowV9: return make_netflow_v9_encoder(opts);
    case ExportFormat::Ipfix: return make_ipfix_encoder(opts);
    }
    return invalid("unknown export format");
}

} // namespace weir::exporters
