// nDPI-compatible protocol names for micro-DPI's results (see types.hpp).
#include <weir/engine/dpi/types.hpp>

namespace weir::engine::dpi {

namespace {

constexpr std::pair<AppProtocol, std::string_view> kNames[] = {
    {AppProtocol::Dns, "DNS"},   {AppProtocol::Http, "HTTP"},         {AppProtocol::Mdns, "MDNS"},
    {AppProtocol::Dtls, "DTLS"}, {AppProtocol::Tls, "TLS"},           {AppProtocol::Ssh, "SSH"},
    {AppProtocol::HttpConnect, "HTTP_Connect"}, {AppProtocol::HttpProxy, "HTTP_Proxy"},
    {AppProtocol::Llmnr, "LLMNR"}, {AppProtocol::Quic, "QUIC"},
    {AppProtocol::Stun, "STUN"}, {AppProtocol::SkypeCall, "SkypeCall"}, {AppProtocol::WhatsAppCall, "WhatsAppCall"},
    {AppProtocol::Zoom, "Zoom"}, {AppProtocol::GoogleHangoutDuo, "GoogleHangoutDuo"},
    {AppProtocol::FacebookVoip, "FacebookVoip"}, {AppProtocol::SignalVoip, "SignalVoip"},
};

} // namespace

std::string_view app_protocol_name(AppProtocol p) noexcept
{
    for (const auto& [id, name] : kNames)
        if (id == p)
            return name;
    return "Unknown";
}

AppProtocol app_protocol_from_name(std::string_view name) noexcept
{
    for (const auto& [id, n] : kNames)
        if (n == name)
            return id;
    return AppProtocol::Unknown;
}

} // namespace weir::engine::dpi
