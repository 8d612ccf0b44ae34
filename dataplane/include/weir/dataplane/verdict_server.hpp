// Verdict control channel: an IDS (or weirctl) tells weir what to do with a
// flow, a host or a subnet; the server applies it to a VerdictMap.
//
// Protocol: one JSON object per line (Unix socket) or per message (ZMQ
// REP), one JSON reply each. Full reference in docs/ids.md; in short:
//
//   {"op":"add","flow":{"src":"10.0.0.1","dst":"10.0.0.2","sport":1234,
//     "dport":80,"proto":"tcp","vlan":0},"verdict":"shunt","after":10,
//     "ttl":60,"reason":"tls"}
//   {"op":"add","host":"10.0.0.1","verdict":"drop"}
//   {"op":"add","subnet":"10.0.0.0/8","verdict":"divert","egress":2}
//   {"op":"add","items":[{...target + verdict...}, ...]}        (batch)
//   {"op":"del","flow":{...}} / "host" / "subnet" / "items"
//   {"op":"list"}  {"op":"stats"}  {"op":"expire"}
//   {"op":"policy_reload"}       (IDS mode: reload the --egress-conf file)
//   binary batch: a 16-byte header starting 'W' 'V' and fixed 72-byte
//   records (weir/abi/verdict_wire.h), add or del of flows, for the
//   highest rates; the reply is a JSON line as above.
//
//   -> {"ok":true,"installed":N}
//   -> {"ok":true,"removed":N,"entries":[{..., "packets":P,"bytes":B,...}]}
//   -> {"ok":false,"error":"table full"|"bad request: <why>"|"unauthorised"}
//
// Flow keys are canonicalised exactly like weir::FlowKey (side A = lower
// (address, port)), so either direction names the same entry. Deleting or
// expiring an entry returns its final counters; expired entries go to
// VerdictServerOptions::on_expired when set, and are kept (bounded) until
// an "expire" request collects them either way.
//
// Transports, all served by one thread (poll()):
//  - Unix stream socket: mode 0660 by default; the peer's credentials
//    (SO_PEERCRED) must be root or one of the allowed uids/gids, otherwise
//    the reply is {"ok":false,"error":"unauthorised"} and the connection is
//    closed.
//  - ZMQ REP (when built with libzmq), CURVE when a server secret key is
//    given.
// Malformed input gets an error reply, never a crash; a line over
// max_request_bytes closes the connection after the reply.
#pragma once

#include <weir/dataplane/verdict_map.hpp>
#include <weir/abi/verdict_wire.h>

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weir::dataplane {

enum class VerdictOp : uint8_t { Add, Del, List, Stats, Expire, PolicyReload };

struct VerdictTarget {
    enum class Kind : uint8_t { Flow, Subnet };  ///< a host is a /32 or /128 subnet
    Kind kind = Kind::Flow;
    FlowKey key{};
    Subnet subnet{};
};

struct VerdictItem {
    VerdictTarget target;
    Verdict verdict{};     ///< action, egress, shunt_after, flags, reason set; times at apply
    uint64_t ttl_ns = 0;   ///< 0 = never expires
    std::string reason;    ///< text reason ("" = none or numeric in verdict.reason)
};

struct VerdictRequest {
    VerdictOp op = VerdictOp::Stats;
    std::vector<VerdictItem> items;  ///< add / del
};

/// Canonical key from endpoints as an IDS reports them (either direction).
/// Addresses must be of one IP version. Errors: EINVAL with the reason.
Result<FlowKey> make_flow_key(std::string_view src, std::string_view dst, uint16_t sport, uint16_t dport,
                              uint8_t proto, uint16_t vlan = 0, uint32_t tunnel_id = 0, uint8_t tunnel_type = 0);

/// Parses one request (pure: no map, no clock). The error context is the
/// reply's text after "bad request: ".
Result<VerdictRequest> parse_verdict_request(std::string_view line, size_t max_items = size_t{1} << 22);

/// Names used on the wire.
[[nodiscard]] const char* verdict_action_name(uint8_t action) noexcept;

/// A binary batch (weir/abi/verdict_wire.h), decoded and validated.
struct VerdictBatch {
    VerdictOp op = VerdictOp::Add;  ///< Add or Del
    uint32_t flags = 0;             ///< WEIR_VWIRE_F_*
    std::vector<FlowKey> keys;      ///< canonical
    std::vector<Verdict> verdicts;  ///< Add: action, flags, reason, egress, shunt_after, source API
    std::vector<uint64_t> ttl_ns;   ///< Add: 0 = never expires
};

/// Bytes of the binary frame that `buf` starts with, from its header: 0
/// while fewer bytes than the header have arrived. Errors (EINVAL, the
/// reply's text after "bad request: ") on a header that is not one this
/// server takes: bad magic, version, op, flags, record size, or a count of
/// 0, over max_items or making a frame over max_bytes.
Result<size_t> verdict_frame_size(std::string_view buf, size_t max_items = WEIR_VWIRE_MAX_COUNT,
                                  size_t max_bytes = size_t{256} << 20);

/// Decodes one whole frame (pure: no map, no clock). Every record is
/// checked before anything is returned; the first bad one is the error
/// ("record N: why").
Result<void> parse_verdict_frame(std::string_view frame, VerdictBatch& out, size_t max_items = WEIR_VWIRE_MAX_COUNT);

/// The canonical form of a key whose side A is the source: sides swapped
/// when B is the lower (address, port) endpoint, as weir::FlowKey has it.
FlowKey canonical_flow_key(const FlowKey& k) noexcept;

struct VerdictServerOptions {
    std::string unix_path;                ///< Unix socket path ("" = none)
    uint32_t unix_mode = 0660;            ///< socket file mode
    gid_t unix_group = static_cast<gid_t>(-1);  ///< chown the socket to this group (-1 = leave)
    std::vector<uid_t> allowed_uids;      ///< besides root
    std::vector<gid_t> allowed_gids;      ///< peer's primary gid
    std::string zmq_endpoint;             ///< ZMQ REP bind endpoint ("" = none)
    std::string zmq_curve_secret_key;     ///< Z85 server secret key: enables CURVE
    /// No socket of its own: requests come only through handle() (the
    /// Redis subscriber, verdict_redis.hpp); the thread still sweeps expiry.
    bool external_transport = false;
    uint32_t sweep_interval_ms = 1000;    ///< expiry sweep period (0 = no sweeping)
    size_t max_request_bytes = size_t{256} << 20;
    /// A binary frame that gets no new byte for this long is answered
    /// "truncated" and its connection closed (0 = wait for ever).
    uint32_t frame_timeout_ms = 10000;
    size_t max_pending_expired = 1u << 20;  ///< expired entries kept for "expire"
    /// Runs a {"op":"policy_reload"} request (server thread): reloads the
    /// egress policy; the text goes back in "policy", an error (with the
    /// file's line) in "error". Unset: the op is answered with an error.
    std::function<Result<std::string>()> on_policy_reload;
    /// Receives expired entries (server thread), e.g. to complete the
    /// exported flows; they are kept for "expire" as well.
    std::function<void(const std::vector<FlowVerdict>&, const std::vector<SubnetVerdict>&)> on_expired;
    /// Receives each flow entry a "del" request removed, with its final
    /// counters (server thread), e.g. to complete the exported flow.
    std::function<void(std::span<const FlowVerdict>)> on_removed;
};

struct VerdictServerStats {
    uint64_t requests = 0;
    uint64_t errors = 0;         ///< error replies (bad request, table full, ...)
    uint64_t unauthorised = 0;   ///< connections refused by credentials
    uint64_t installed = 0;
    uint64_t removed = 0;
    uint64_t expired = 0;
    uint64_t connections = 0;
};

class VerdictServer {
public:
    /// Binds the transports and starts the server thread. The map must
    /// outlive the server.
    static Result<std::unique_ptr<VerdictServer>> start(VerdictMap& map, VerdictServerOptions opts);
    ~VerdictServer();
    VerdictServer(const VerdictServer&) = delete;
    VerdictServer& operator=(const VerdictServer&) = delete;

    /// Stops the thread, closes the sockets and removes the socket file.
    void stop();

    /// Applies one request (a JSON line, or a whole binary frame: one
    /// starting with 'W') and returns the reply (no newline). What the
    /// transports call; thread-safe.
    std::string handle(std::string_view line);

    /// In-process "add" of one flow verdict (the IDS egress policy's
    /// offload): sets installed_ns and expires_ns (ttl_ns 0 = never). An
    /// entry of the key from another source is left alone (false); one of
    /// the same source is removed first, its final counters to on_removed.
    /// Thread-safe. Errors: ENOSPC "table full", map errors.
    Result<bool> install(const FlowKey& key, Verdict v, uint64_t ttl_ns);
    /// In-process "del": removes the key's flow verdict only when its
    /// source is `source` (final counters to on_removed); false when there
    /// was none or another source's. Thread-safe.
    Result<bool> remove_if(const FlowKey& key, uint8_t source);

    [[nodiscard]] VerdictServerStats stats() const;

    struct Impl;

private:
    explicit VerdictServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Client side of the Unix transport: sends one request line, returns the
/// reply line (without the newline).
Result<std::string> verdict_request(const std::string& socket_path, std::string_view line, int timeout_ms = 10000);

} // namespace weir::dataplane
