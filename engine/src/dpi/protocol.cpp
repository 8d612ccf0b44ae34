// nDPI-compatible protocol names for micro-DPI's results (see types.hpp).
#include <weir/engine/dpi/types.hpp>

#include <algorithm>
#include <vector>

namespace weir::engine::dpi {

namespace {

struct Named {
    AppProtocol id;
    std::string_view name;
    uint16_t category; ///< nDPI 4.2's default category of the protocol
    std::array<uint16_t, 2> tcp_ports{}; ///< nDPI 4.2's default ports (0 = none)
    std::array<uint16_t, 2> udp_ports{};
};

struct PortProtocol {
    uint16_t port;
    uint16_t protocol; ///< nDPI protocol id
};

// nDPI 4.2's port trees: the protocol its port guess gives for each port
// that is some protocol's default (the first protocol registered with it),
// sorted by port. tests/unit/ndpi_vocab_test.cpp asks libndpi for all
// 65,535 ports of each.
constexpr PortProtocol kTcpPorts[] = {
    {20, 175}, {21, 1}, {22, 92}, {23, 77}, {25, 3}, {43, 170}, {53, 5}, {80, 7}, {88, 111}, {102, 249},
    {110, 2}, {135, 127}, {139, 10}, {143, 4}, {177, 15}, {179, 13}, {194, 65}, {210, 260}, {389, 112},
    {443, 91}, {445, 41}, {465, 29}, {500, 79}, {502, 44}, {514, 17}, {548, 97}, {554, 50}, {587, 29},
    {655, 209}, {853, 196}, {873, 166}, {903, 28}, {993, 51}, {995, 23}, {1080, 172}, {1119, 213},
    {1194, 159}, {1352, 150}, {1433, 114}, {1434, 114}, {1494, 132}, {1521, 167}, {1719, 158}, {1720, 158},
    {1812, 146}, {1813, 146}, {1883, 222}, {1935, 174}, {2000, 164}, {2049, 11}, {2404, 245}, {2598, 132},
    {2604, 85}, {2605, 13}, {3128, 131}, {3201, 151}, {3306, 20}, {3389, 88}, {3868, 237}, {4244, 144},
    {4343, 170}, {4569, 95}, {5001, 243}, {5060, 100}, {5061, 100}, {5201, 243}, {5242, 144}, {5243, 144},
    {5355, 154}, {5432, 19}, {5800, 89}, {5900, 89}, {5901, 89}, {5938, 148}, {6077, 155}, {6379, 182},
    {6556, 138}, {7985, 144}, {8008, 161}, {8009, 139}, {8010, 139}, {8080, 131}, {8333, 42}, {8883, 222},
    {9042, 264}, {9418, 226}, {10000, 161}, {10050, 248}, {11095, 43}, {11211, 40}, {20000, 244},
    {27017, 60}, {30303, 42}, {30491, 229}, {30501, 229}, {44818, 278}, {51413, 37}, {53646, 37},
};
constexpr PortProtocol kUdpPorts[] = {
    {53, 5}, {67, 18}, {68, 18}, {69, 96}, {88, 111}, {123, 9}, {137, 10}, {138, 10}, {139, 10}, {161, 14},
    {162, 14}, {177, 15}, {194, 65}, {389, 112}, {443, 188}, {500, 79}, {514, 17}, {548, 97}, {554, 50},
    {655, 209}, {784, 196}, {902, 28}, {903, 28}, {1080, 172}, {1119, 213}, {1194, 159}, {1719, 158},
    {1720, 158}, {1812, 146}, {1813, 146}, {2049, 11}, {2055, 128}, {2123, 152}, {2152, 152}, {2944, 181},
    {3389, 88}, {3478, 78}, {3702, 153}, {4244, 144}, {4341, 236}, {4342, 236}, {4500, 79}, {4569, 95},
    {5001, 243}, {5060, 100}, {5061, 100}, {5072, 66}, {5201, 243}, {5242, 144}, {5243, 144}, {5246, 247},
    {5247, 247}, {5353, 8}, {5354, 8}, {5355, 154}, {5683, 27}, {5684, 27}, {5938, 148}, {6000, 190},
    {6078, 155}, {6343, 129}, {6771, 37}, {7985, 144}, {7987, 144}, {8116, 53}, {8612, 204}, {10000, 161},
    {10001, 31}, {11211, 40}, {17500, 121}, {22023, 69}, {22102, 257}, {25826, 171}, {30490, 229},
    {30491, 229}, {30501, 229}, {51413, 37}, {51820, 206}, {58267, 184},
};

// Categories: 5 Web, 10 VoIP, 12 RemoteAccess, 14 Network, 26 Video
// (weir/core/ndpi_vocab.hpp; tests/unit/ndpi_vocab_test.cpp asks libndpi).
// Default ports likewise checked against libndpi.
constexpr Named kNames[] = {
    {AppProtocol::Dns, "DNS", 14, {53}, {53}},   {AppProtocol::Http, "HTTP", 5, {80}, {}},
    {AppProtocol::Mdns, "MDNS", 14, {}, {5353, 5354}},
    {AppProtocol::Dtls, "DTLS", 5},  {AppProtocol::Tls, "TLS", 5, {443}, {}},
    {AppProtocol::Ssh, "SSH", 12, {22}, {}},
    {AppProtocol::HttpConnect, "HTTP_Connect", 5, {8080}, {}},
    {AppProtocol::HttpProxy, "HTTP_Proxy", 5, {8080, 3128}, {}},
    {AppProtocol::Llmnr, "LLMNR", 14, {5355}, {5355}}, {AppProtocol::Quic, "QUIC", 5, {}, {443}},
    {AppProtocol::Stun, "STUN", 14, {}, {3478}}, {AppProtocol::SkypeCall, "SkypeCall", 10},
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

uint16_t ndpi_port_protocol(uint8_t l4_proto, uint16_t port) noexcept
{
    const auto find = [port](const auto& table) -> uint16_t {
        const auto* end = std::end(table);
        const auto* it = std::lower_bound(std::begin(table), end, port,
                                          [](const PortProtocol& e, uint16_t p) { return e.port < p; });
        return it != end && it->port == port ? it->protocol : 0;
    };
    if (l4_proto == 6)
        return find(kTcpPorts);
    if (l4_proto == 17)
        return find(kUdpPorts);
    return 0;
}

std::array<uint16_t, 2> app_protocol_default_ports(AppProtocol p, uint8_t l4_proto) noexcept
{
    for (const auto& n : kNames)
        if (n.id == p)
            return l4_proto == 6 ? n.tcp_ports : l4_proto == 17 ? n.udp_ports : std::array<uint16_t, 2>{};
    return {};
}

bool known_protocol_on_non_standard_port(uint8_t l4_proto, uint16_t master, uint16_t app, uint16_t server_port,
                                         uint16_t client_port) noexcept
{
    if ((l4_proto != 6 && l4_proto != 17) || (master == 0 && app == 0) || server_port == 0 || client_port == 0)
        return false;
    uint16_t guessed = ndpi_port_protocol(l4_proto, server_port);
    if (guessed == 0)
        guessed = ndpi_port_protocol(l4_proto, client_port);
    if (guessed != 0 && guessed != master && guessed != app) {
        // A port of another protocol. nDPI's one exception: TLS on the
        // ports of IMAPS (51), POPS (23) and SMTPS (29) is those protocols.
        constexpr uint16_t kTls = static_cast<uint16_t>(AppProtocol::Tls);
        return !((master == kTls || app == kTls) && (guessed == 51 || guessed == 23 || guessed == 29));
    }
    const auto ports = app_protocol_default_ports(static_cast<AppProtocol>(master ? master : app), l4_proto);
    if (ports[0] == 0)
        return false; // a protocol without default ports is at home anywhere
    for (uint16_t d : ports)
        if (d != 0 && (d == server_port || d == client_port))
            return false;
    return true;
}

} // namespace weir::engine::dpi
