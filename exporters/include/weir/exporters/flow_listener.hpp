// FlowListener: the sockets of a NetFlow/IPFIX collector. UDP sockets
// (IPv4/IPv6, big SO_RCVBUF, recvmmsg batches) take v5, v9 and IPFIX
// datagrams; TCP listeners take IPFIX message streams (RFC 7011 s.10.4),
// framed by the message length field. Everything received goes through one
// FlowDecoder into a FlowRecordSink.
//
// All sockets sit in one epoll set whose descriptor (fd()) can be polled
// by the caller's loop (zmq_poll takes it as a plain descriptor); poll()
// then drains what is ready without blocking, or waits itself.
//
// A TCP message whose length field is below 16 or whose version is not 10
// closes that connection (counted); the templates of a closed connection
// are dropped with it. Connections are capped (max_connections).
//
// Ending: close_tcp() stops accepting and shuts down the collector's half
// of every TCP stream (FIN) while reading on, as RFC 7011 s.10.4 asks of a
// Collecting Process that wants no more messages; an exporter that sees
// the FIN closes its half, and what it wrote before that is still read.
// Closing a socket that holds unread bytes would drop them unseen.
#pragma once

#include <weir/core/result.hpp>
#include <weir/exporters/flow_decoder.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weir::exporters {

/// "udp://127.0.0.1:2055", "udp://[::1]:2055", "udp://*:2055" (all IPv6
/// and IPv4 addresses), "tcp://127.0.0.1:4739".
struct ListenSpec {
    bool tcp = false;
    std::string host; ///< numeric address; "" = any
    uint16_t port = 0;
    std::string text; ///< as given
};

/// Errors: EINVAL naming what is wrong (scheme, brackets, port).
Result<ListenSpec> parse_listen_spec(std::string_view s);

struct ListenerOptions {
    std::vector<ListenSpec> listen;
    DecoderOptions decoder;
    int rcvbuf = 32 << 20;        ///< asked for; the kernel caps it at net.core.rmem_max
    uint32_t batch = 64;          ///< datagrams per recvmmsg
    uint32_t max_connections = 256;
};

struct ListenerStats {
    uint64_t datagrams = 0;
    uint64_t datagram_bytes = 0;
    uint64_t truncated = 0;        ///< datagrams larger than 65535 bytes (MSG_TRUNC)
    uint64_t recv_errors = 0;
    uint64_t tcp_accepted = 0;
    uint64_t tcp_refused = 0;      ///< over max_connections
    uint64_t tcp_closed = 0;       ///< by the peer
    uint64_t tcp_abandoned = 0;    ///< still open when the collector ended (close_tcp's wait ran out)
    uint64_t tcp_bad_length = 0;   ///< connections closed for a bad message header
    uint64_t tcp_messages = 0;
    uint64_t tcp_bytes = 0;
    uint64_t decode_refused = 0;   ///< messages the decoder refused whole
};

class FlowListener {
public:
    /// Errors: socket/bind/listen/epoll errors with the address.
    static Result<std::unique_ptr<FlowListener>> create(const ListenerOptions& opts);
    ~FlowListener();
    FlowListener(const FlowListener&) = delete;
    FlowListener& operator=(const FlowListener&) = delete;

    /// The epoll descriptor: readable when any socket has something.
    [[nodiscard]] int fd() const noexcept;

    /// Waits up to timeout_ms (0 = not at all) and handles every socket
    /// that is ready. Returns the flows delivered.
    uint64_t poll(int timeout_ms, FlowRecordSink& sink) noexcept;

    /// Graceful end of the TCP side: closes the TCP listeners and sends FIN
    /// on every connection, then keeps reading (delivering flows to sink)
    /// until each exporter has closed its half or wait_ms has passed; the
    /// connections left are closed and counted in tcp_abandoned. UDP
    /// sockets stay open. Returns the flows delivered meanwhile.
    uint64_t close_tcp(int wait_ms, FlowRecordSink& sink) noexcept;
    /// TCP connections open now.
    [[nodiscard]] std::size_t tcp_connections() const noexcept;

    [[nodiscard]] FlowDecoder& decoder() noexcept;
    [[nodiscard]] const ListenerStats& stats() const noexcept;
    /// The bound addresses ("udp 127.0.0.1:2055 (rcvbuf 33554432)"), one per socket.
    [[nodiscard]] std::vector<std::string> describe() const;
    /// The bound ports, in the order of ListenerOptions::listen (port 0 picks one).
    [[nodiscard]] std::vector<uint16_t> ports() const;

private:
    struct Impl;
    explicit FlowListener(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::exporters
