// weir --verdict-redis: starts the Redis pub/sub transport of the verdict
// channel next to a running VerdictServer (docs/ids.md "Redis").
#pragma once

#include <weir/dataplane/verdict_redis.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <memory>
#include <string>

namespace weir::tools {

struct VerdictRedisCli {
    std::string url;            ///< --verdict-redis ("" = off)
    std::string channel;        ///< --verdict-redis-channel (overrides the URL's)
    std::string password_file;  ///< --verdict-redis-password-file (else $WEIR_REDIS_PASSWORD)
};

/// The subscriber, feeding `server`; nullptr when no URL was given. The
/// server must outlive it. Errors: a bad URL or password file (EINVAL,
/// EPERM...), or ENOTSUP when weir was built without hiredis.
inline Result<std::unique_ptr<dataplane::VerdictRedis>> start_verdict_redis(const VerdictRedisCli& cli,
                                                                            dataplane::VerdictServer& server)
{
    if (cli.url.empty())
        return std::unique_ptr<dataplane::VerdictRedis>();
#if WEIR_HAVE_VERDICT_REDIS
    auto ep = dataplane::parse_redis_url(cli.url);
    if (!ep)
        return ep.error();
    if (!cli.channel.empty())
        ep->channel = cli.channel;
    auto pw = dataplane::load_redis_password(cli.password_file);
    if (!pw)
        return pw.error();
    ep->password = std::move(pw.value());
    dataplane::VerdictRedisOptions ro;
    ro.endpoint = std::move(ep.value());
    return dataplane::VerdictRedis::start([&server](std::string_view line) { return server.handle(line); }, ro);
#else
    (void)server;
    return from_errno(ENOTSUP, "--verdict-redis: weir was built without hiredis (libhiredis-dev)");
#endif
}

} // namespace weir::tools
