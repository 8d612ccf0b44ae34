// Which nProbe field carries a flow's server name, for every output that
// names it (JSON, ZMQ TLV, v9/IPFIX): DNS_QUERY for DNS, MDNS and LLMNR;
// TLS_SERVER_NAME for TLS and the protocols that carry a TLS handshake in
// datagrams (QUIC, DTLS); HTTP_HOST (ZMQ: HTTP_SITE) for anything else.
// nDPI ids, master or app: DNS 5, MDNS 8, LLMNR 154, TLS 91, QUIC 188, DTLS 30.
#pragma once

#include <weir/core/flow_record.hpp>

#include <cstdint>

namespace weir::exporters::detail {

enum class ServerNameField : uint8_t { DnsQuery, TlsServerName, HttpHost };

inline ServerNameField server_name_field(const L7Info& l7) noexcept
{
    auto is = [&l7](uint16_t id) { return l7.master == id || l7.app == id; };
    if (is(5) || is(8) || is(154))
        return ServerNameField::DnsQuery;
    if (is(91) || is(188) || is(30))
        return ServerNameField::TlsServerName;
    return ServerNameField::HttpHost;
}

} // namespace weir::exporters::detail
