// nDPI-compatible protocol names for micro-DPI's results (see types.hpp).
#include <weir/engine/dpi/types.hpp>

#include <vector>

namespace weir::engine::dpi {

namespace {

struct Named {
    AppProtocol id;
    std::string_view name;
    uint16_t category; ///< nDPI 4.2's default category of the protocol
};

// Categories: 5 Web, 10 VoIP, 12 RemoteAccess, 14 Network, 26 Video
// (weir/core/ndpi_vocab.hpp; tests/unit/ndpi_vocab_test.cpp asks libndpi).
constexpr Named kNames[] = {
    {AppProtocol::Dns, "DNS", 14},   {AppProtocol::Http, "HTTP", 5},         {AppProtocol::Mdns, "MDNS", 14},
    {AppProtocol::Dtls, "DTLS", 5},  {AppProtocol::Tls, "TLS", 5},           {AppProtocol::Ssh, "SSH", 12},
    {AppProtocol::HttpConnect, "HTTP_Connect", 5}, {AppProtocol::HttpProxy, "HTTP_Proxy", 5},
    {AppProtocol::Llmnr, "LLMNR", 14}, {AppProtocol::Quic, "QUIC", 5},
    {AppProtocol::Stun, "STUN", 14}, {AppProtocol::SkypeCall, "SkypeCall", 10},
    {AppProtocol::WhatsAppCall, "WhatsAppCall", 10}, {AppProtocol::Zoom, "Zoom", 26},
    {AppProtocol::GoogleHangoutDuo, "GoogleHangoutDuo", 10}, {AppProtocol::FacebookVoip, "FacebookVoip", 10},
    {AppProtocol::SignalVoip, "SignalVoip", 10},
};

} // namespace

std::string_view app_protocol_name(AppProtocol p) noexcept
{
    for (const auto& n : kNames)
        if (n.id == p)
            return n.name;
    return "Unknown";
}

uint16_t app_protocol_category(AppProtocol p) noexcept
{
    for (const auto& n : kNames)
        if (n.id == p)
            return n.category;
    return 0;
}

AppProtocol app_protocol_from_name(std::string_view name) noexcept
{
    for (const auto& n : kNames)
        if (n.name == name)
            return n.id;
    return AppProtocol::Unknown;
}

std::vector<AppProtocol> app_protocols()
{
    std::vector<AppProtocol> out;
    for (const auto& n : kNames)
        out.push_back(n.id);
    return out;
}

} // namespace weir::engine::dpi
