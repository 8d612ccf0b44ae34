// Verdict channel over Redis pub/sub: weir SUBSCRIBEs to a channel, each
// message is one verdict request (the same JSON as on the Unix socket, see
// verdict_server.hpp and docs/ids.md "Redis"), and the reply is PUBLISHed
// to "<channel>.reply", or to the channel named by the request's
// "reply_to". A request's "id" (any JSON value) is copied into its reply so
// that callers sharing a reply channel can match replies to requests.
//
// Redis gives no peer credentials: who may publish on the channel is
// decided by Redis itself (ACLs, requirepass, bind to loopback), as for ZMQ
// without CURVE. The password is read from a file or the environment, never
// from the command line.
//
// The subscriber runs on its own thread and reconnects with exponential
// backoff when Redis goes away (one log line per outage, counted). Pub/sub
// does not queue: requests published while weir is disconnected are lost,
// so callers wait for the reply with a timeout (weirctl does).
#pragma once

#include <weir/core/result.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace weir::dataplane {

struct RedisEndpoint {
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    std::string unix_path;   ///< unix socket instead of host:port ("" = TCP)
    std::string channel = "weir.verdicts";
    std::string username;    ///< Redis 6 ACL user ("" = AUTH with the password only)
    std::string password;    ///< "" = no AUTH
};

/// Parses "redis://[user@]host[:port][/channel]", "unix:///path.sock[#channel]"
/// or "host:port". A password inside the URL is refused (EINVAL): it would
/// show in the process list; give it with load_redis_password().
/// An empty channel leaves `channel` as given in `base`.
Result<RedisEndpoint> parse_redis_url(std::string_view url, RedisEndpoint base = {});

/// The password from `file` (first line, trailing CR/LF removed) when not
/// empty, else from the environment variable `env_name` when set, else "".
/// Errors: the file cannot be read (errno), or it is readable by others
/// than its owner and group (EPERM, a password file must not be
/// world-readable).
Result<std::string> load_redis_password(const std::string& file, const char* env_name = "WEIR_REDIS_PASSWORD");

struct VerdictRedisOptions {
    RedisEndpoint endpoint;
    uint32_t connect_timeout_ms = 2000;
    uint32_t backoff_min_ms = 100;     ///< first retry delay after an outage
    uint32_t backoff_max_ms = 5000;    ///< delay cap (doubling in between)
    size_t max_request_bytes = size_t{256} << 20;
    /// One line of log (without newline); default: stderr.
    std::function<void(const std::string&)> log;
};

struct VerdictRedisStats {
    uint64_t messages = 0;       ///< requests received
    uint64_t replies = 0;        ///< replies published
    uint64_t publish_errors = 0; ///< replies that could not be published
    uint64_t oversize = 0;       ///< requests refused for max_request_bytes
    uint64_t connects = 0;       ///< successful (re)connections
    uint64_t outages = 0;        ///< connections lost (or never made)
    uint64_t connect_failures = 0;  ///< failed attempts, all outages together
    bool connected = false;
};

/// Handler: a request line in, the reply object (JSON, no newline) out.
using VerdictHandler = std::function<std::string(std::string_view)>;

class VerdictRedis {
public:
    /// Starts the subscriber thread. The first connection is tried here;
    /// when Redis is not reachable yet the thread keeps retrying (the
    /// server must not refuse to start because Redis starts later).
    /// Errors: EINVAL for an empty channel or a missing handler.
    static Result<std::unique_ptr<VerdictRedis>> start(VerdictHandler handler, VerdictRedisOptions opts);
    ~VerdictRedis();
    VerdictRedis(const VerdictRedis&) = delete;
    VerdictRedis& operator=(const VerdictRedis&) = delete;

    void stop();
    [[nodiscard]] VerdictRedisStats stats() const;

    struct Impl;

private:
    explicit VerdictRedis(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Adds `id` (a JSON value, already serialised) as the first member of a
/// reply object. Pure; used by the server and tested on its own.
std::string reply_with_id(std::string_view reply, std::string_view id_json);

/// Client side: publishes `line` (a JSON object) on the endpoint's channel
/// with a fresh "id" (and "reply_to" = `reply_channel`, default
/// "<channel>.reply"), waits for the reply carrying that id and returns it.
/// Errors: connection or AUTH failure (ECONNREFUSED, EACCES...), EINVAL when
/// `line` is not a JSON object, ETIMEDOUT when no reply came, EHOSTUNREACH
/// when nobody is subscribed to the channel (PUBLISH returned 0).
Result<std::string> redis_verdict_request(const RedisEndpoint& ep, std::string_view line, int timeout_ms = 10000,
                                          std::string reply_channel = {});

} // namespace weir::dataplane
