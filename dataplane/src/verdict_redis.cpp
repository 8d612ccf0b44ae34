// Verdict channel over Redis pub/sub (hiredis, synchronous contexts driven
// by poll()). Two connections per side: a connection in SUBSCRIBE mode may
// only (un)subscribe, so replies go out on a second one.
//
// Server thread: connect + AUTH + SUBSCRIBE, then poll() the subscriber's
// socket and an eventfd (stop). Every complete "message" is handed to the
// handler and its reply published. Any I/O error on either connection ends
// the session: both are closed and the thread retries with exponential
// backoff, logging once per outage.
#include <weir/dataplane/verdict_redis.hpp>

#include "service_thread.hpp"

#include <hiredis/hiredis.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

namespace weir::dataplane {

using json = nlohmann::json;

namespace {

struct CtxFree {
    void operator()(redisContext* c) const { redisFree(c); }
};
using Ctx = std::unique_ptr<redisContext, CtxFree>;
struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

timeval to_tv(uint32_t ms)
{
    return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

std::string where(const RedisEndpoint& ep)
{
    if (!ep.unix_path.empty())
        return "unix:" + ep.unix_path;
    if (ep.host.find(':') != std::string::npos)
        return "[" + ep.host + "]:" + std::to_string(ep.port);
    return ep.host + ":" + std::to_string(ep.port);
}

// A connected (and authenticated) context with blocking I/O bounded by
// timeout_ms. Errors carry the endpoint and hiredis' reason.
Result<Ctx> connect(const RedisEndpoint& ep, uint32_t timeout_ms)
{
    const timeval tv = to_tv(timeout_ms);
    Ctx c(ep.unix_path.empty() ? redisConnectWithTimeout(ep.host.c_str(), ep.port, tv)
                               : redisConnectUnixWithTimeout(ep.unix_path.c_str(), tv));
    if (!c)
        return from_errno(ENOMEM, "redis " + where(ep));
    if (c->err) {
        const int e = c->err == REDIS_ERR_IO && errno ? errno : ECONNREFUSED;
        return from_errno(e, "redis " + where(ep) + ": " + c->errstr);
    }
    redisSetTimeout(c.get(), tv);
    if (ep.unix_path.empty())
        redisEnableKeepAlive(c.get());
    if (!ep.password.empty()) {
        Reply r(static_cast<redisReply*>(
            ep.username.empty() ? redisCommand(c.get(), "AUTH %b", ep.password.data(), ep.password.size())
                                : redisCommand(c.get(), "AUTH %b %b", ep.username.data(), ep.username.size(),
                                               ep.password.data(), ep.password.size())));
        if (!r)
            return from_errno(ECONNRESET, "redis " + where(ep) + ": AUTH: " + c->errstr);
        if (r->type == REDIS_REPLY_ERROR)
            return from_errno(EACCES, "redis " + where(ep) + ": AUTH refused: " + std::string(r->str, r->len));
    }
    return c;
}

Result<void> subscribe(redisContext* c, const RedisEndpoint& ep, const std::string& channel)
{
    Reply r(static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE %b", channel.data(), channel.size())));
    if (!r)
        return from_errno(ECONNRESET, "redis " + where(ep) + ": SUBSCRIBE: " + c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        return from_errno(EACCES, "redis " + where(ep) + ": SUBSCRIBE " + channel + " refused: " +
                                      std::string(r->str, r->len));
    return {};
}

// The payload of a pub/sub "message" push, or nullptr for anything else
// (subscribe confirmations).
const redisReply* message_payload(const redisReply* r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return nullptr;
    const redisReply* kind = r->element[0];
    if (!kind || kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message")
        return nullptr;
    const redisReply* p = r->element[2];
    return p && p->type == REDIS_REPLY_STRING ? p : nullptr;
}

std::string error_reply(std::string_view error)
{
    json j;
    j["ok"] = false;
    j["error"] = std::string(error);
    return j.dump();
}

} // namespace

std::string reply_with_id(std::string_view reply, std::string_view id_json)
{
    if (id_json.empty() || reply.empty() || reply.front() != '{')
        return std::string(reply);
    std::string out;
    out.reserve(reply.size() + id_json.size() + 8);
    out += "{\"id\":";
    out += id_json;
    std::string_view rest = reply.substr(1);
    const size_t first = rest.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && rest[first] != '}')
        out += ',';
    out += rest;
    return out;
}

Result<RedisEndpoint> parse_redis_url(std::string_view url, RedisEndpoint base)
{
    RedisEndpoint ep = std::move(base);
    std::string_view rest = url;
    auto set_channel = [&](std::string_view ch) {
        if (!ch.empty())
            ep.channel = std::string(ch);
    };
    if (rest.starts_with("unix://")) {
        rest.remove_prefix(7);
        if (auto h = rest.find('#'); h != std::string_view::npos) {
            set_channel(rest.substr(h + 1));
            rest = rest.substr(0, h);
        }
        if (rest.empty() || rest.front() != '/')
            return invalid("redis URL '" + std::string(url) + "': unix:// needs an absolute socket path");
        ep.unix_path = std::string(rest);
        return ep;
    }
    if (rest.starts_with("redis://"))
        rest.remove_prefix(8);
    else if (rest.find("://") != std::string_view::npos)
        return invalid("redis URL '" + std::string(url) + "': only redis:// and unix:// are supported (no TLS)");
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        set_channel(rest.substr(slash + 1));
        rest = rest.substr(0, slash);
    }
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view user = rest.substr(0, at);
        if (user.find(':') != std::string_view::npos)
            return invalid("redis URL: a password on the command line is refused (visible in ps); "
                           "use a password file or $WEIR_REDIS_PASSWORD");
        ep.username = std::string(user);
        rest = rest.substr(at + 1);
    }
    std::string_view host = rest, port;
    if (rest.starts_with("[")) {
        auto close = rest.find(']');
        if (close == std::string_view::npos)
            return invalid("redis URL '" + std::string(url) + "': unterminated [IPv6 address]");
        host = rest.substr(1, close - 1);
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return invalid("redis URL '" + std::string(url) + "': expected :port after ]");
            port = after.substr(1);
        }
    } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (!host.empty())
        ep.host = std::string(host);
    if (!port.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
            return invalid("redis URL '" + std::string(url) + "': bad port '" + std::string(port) + "'");
        ep.port = static_cast<uint16_t>(v);
    }
    if (ep.host.empty())
        return invalid("redis URL '" + std::string(url) + "': no host");
    if (ep.channel.empty())
        return invalid("redis URL '" + std::string(url) + "': no channel");
    return ep;
}

Result<std::string> load_redis_password(const std::string& file, const char* env_name)
{
    if (file.empty()) {
        const char* v = env_name ? std::getenv(env_name) : nullptr;
        return std::string(v ? v : "");
    }
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0)
        return from_errno(errno, "redis password file " + file);
    if (st.st_mode & S_IROTH)
        return from_errno(EPERM, "redis password file " + file + " is readable by everyone (chmod o-r)");
    std::ifstream in(file);
    if (!in)
        return from_errno(errno ? errno : EACCES, "redis password file " + file);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
        line.pop_back();
    if (line.empty())
        return invalid("redis password file " + file + " is empty");
    return line;
}

struct VerdictRedis::Impl {
    VerdictHandler handler;
    VerdictRedisOptions opts;
    std::string reply_channel;
    ServiceThread svc;
    mutable std::mutex mu;
    VerdictRedisStats st;

    void log(const std::string& line) const
    {
        if (opts.log)
            opts.log(line);
        else
            std::fprintf(stderr, "weir: %s\n", line.c_str());
    }

    void count(uint64_t VerdictRedisStats::*field, uint64_t n = 1)
    {
        std::lock_guard<std::mutex> g(mu);
        st.*field += n;
    }

    // Sleeps up to ms; false when stop() was called meanwhile.
    bool sleep_ms(uint32_t ms)
    {
        return svc.sleep_ms(ms);
    }

    // Answers one request; false when the reply could not be published
    // (the publisher connection is then unusable).
    bool serve(Ctx& pub, std::string_view line)
    {
        count(&VerdictRedisStats::messages);
        std::string id;
        std::string to = reply_channel;
        std::string reply;
        if (line.size() > opts.max_request_bytes) {
            count(&VerdictRedisStats::oversize);
            reply = error_reply("bad request: message longer than " + std::to_string(opts.max_request_bytes) + " bytes");
        } else {
            // Only requests that mention them pay for a second parse: batches
            // of verdicts from an IDS usually come without an id.
            if (line.find("\"id\"") != std::string_view::npos || line.find("\"reply_to\"") != std::string_view::npos) {
                json j = json::parse(line.begin(), line.end(), nullptr, false);
                if (j.is_object()) {
                    if (auto it = j.find("id"); it != j.end())
                        id = it->dump(-1, ' ', false, json::error_handler_t::replace);
                    if (auto it = j.find("reply_to"); it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty() &&
                                                      it->get_ref<const std::string&>().size() <= 256)
                        to = it->get<std::string>();
                }
            }
            reply = handler(line);
        }
        reply = reply_with_id(reply, id);
        auto publish = [&] {
            return Reply(static_cast<redisReply*>(
                redisCommand(pub.get(), "PUBLISH %b %b", to.data(), to.size(), reply.data(), reply.size())));
        };
        Reply r = publish();
        if (!r) {
            // The reply connection sat idle and may have been closed by
            // Redis' "timeout" while the subscriber stayed up: reconnect it
            // once so the request's effect is not left unanswered.
            if (auto fresh = connect(opts.endpoint, opts.connect_timeout_ms); fresh) {
                pub = std::move(fresh.value());
                r = publish();
            }
        }
        if (!r || r->type == REDIS_REPLY_ERROR) {
            count(&VerdictRedisStats::publish_errors);
            if (!r)
                return false;
            log("verdict redis: PUBLISH " + to + " refused: " + std::string(r->str, r->len));
            return true;
        }
        count(&VerdictRedisStats::replies);
        return true;
    }

    // One connected session; returns the reason it ended ("" = stop()).
    std::string session(Ctx& sub, Ctx& pub)
    {
        for (;;) {
            // Replies already in hiredis' buffer first: one read may have
            // brought several messages.
            for (;;) {
                void* raw = nullptr;
                if (redisGetReplyFromReader(sub.get(), &raw) != REDIS_OK)
                    return std::string("protocol error: ") + sub->errstr;
                if (!raw)
                    break;
                Reply r(static_cast<redisReply*>(raw));
                if (const redisReply* p = message_payload(r.get())) {
                    std::string_view line(p->str, p->len);
                    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
                        line.remove_suffix(1);
                    if (!serve(pub, line))
                        return std::string("publishing a reply: ") + pub->errstr;
                }
                if (!svc.running())
                    return {};
            }
            pollfd pf[2] = {{svc.wake_fd(), POLLIN, 0}, {sub->fd, POLLIN, 0}};
            const int n = ::poll(pf, 2, 1000);
            if (!svc.running())
                return {};
            if (n < 0 && errno != EINTR)
                return std::string("poll: ") + std::strerror(errno);
            if (n > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (redisBufferRead(sub.get()) != REDIS_OK)
                    return sub->errstr[0] ? std::string(sub->errstr) : std::string("connection closed");
            }
        }
    }

    void run()
    {
        const RedisEndpoint& ep = opts.endpoint;
        uint32_t backoff = opts.backoff_min_ms;
        bool in_outage = false;
        uint64_t attempts = 0;
        while (svc.running()) {
            auto sub = connect(ep, opts.connect_timeout_ms);
            Result<Ctx> pub = sub ? connect(ep, opts.connect_timeout_ms) : Result<Ctx>(sub.error());
            Result<void> subd = pub ? subscribe(sub->get(), ep, ep.channel) : Result<void>(pub.error());
            if (!subd) {
                ++attempts;
                count(&VerdictRedisStats::connect_failures);
                if (!in_outage) {
                    // One line per outage, not one per attempt.
                    in_outage = true;
                    count(&VerdictRedisStats::outages);
                    log("verdict redis: " + subd.error().message() + "; retrying with backoff");
                }
                if (!sleep_ms(backoff))
                    break;
                backoff = std::min(backoff * 2, opts.backoff_max_ms);
                continue;
            }
            {
                std::lock_guard<std::mutex> g(mu);
                ++st.connects;
                st.connected = true;
            }
            log("verdict redis: subscribed to " + ep.channel + " on " + where(ep) +
                (attempts ? " after " + std::to_string(attempts) + " failed attempt(s)" : std::string()));
            in_outage = false;
            attempts = 0;
            backoff = opts.backoff_min_ms;
            std::string why = session(sub.value(), pub.value());
            {
                std::lock_guard<std::mutex> g(mu);
                st.connected = false;
            }
            if (why.empty())
                break;
            in_outage = true;
            count(&VerdictRedisStats::outages);
            log("verdict redis: lost " + where(ep) + " (" + why + "); reconnecting with backoff");
            if (!sleep_ms(backoff))
                break;
        }
    }
};

VerdictRedis::VerdictRedis(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VerdictRedis::~VerdictRedis()
{
    stop();
}

Result<std::unique_ptr<VerdictRedis>> VerdictRedis::start(VerdictHandler handler, VerdictRedisOptions opts)
{
    if (!handler)
        return invalid("verdict redis: no request handler");
    if (opts.endpoint.channel.empty())
        return invalid("verdict redis: empty channel name");
    if (opts.backoff_min_ms == 0)
        opts.backoff_min_ms = 1;
    opts.backoff_max_ms = std::max(opts.backoff_max_ms, opts.backoff_min_ms);
    auto impl = std::make_unique<Impl>();
    impl->handler = std::move(handler);
    impl->opts = std::move(opts);
    impl->reply_channel = impl->opts.endpoint.channel + ".reply";
    if (auto r = impl->svc.open_wake(); !r)
        return r.error();
    Impl* raw = impl.get();
    impl->svc.start([raw] { raw->run(); });
    return std::unique_ptr<VerdictRedis>(new VerdictRedis(std::move(impl)));
}

void VerdictRedis::stop()
{
    if (impl_)
        impl_->svc.stop();
}

VerdictRedisStats VerdictRedis::stats() const
{
    std::lock_guard<std::mutex> g(impl_->mu);
    return impl_->st;
}

Result<std::string> redis_verdict_request(const RedisEndpoint& ep, std::string_view line, int timeout_ms,
                                          std::string reply_channel)
{
    json req = json::parse(line.begin(), line.end(), nullptr, false);
    if (!req.is_object())
        return invalid("the request is not a JSON object");
    if (reply_channel.empty())
        reply_channel = ep.channel + ".reply";
    const uint32_t tmo = static_cast<uint32_t>(std::max(timeout_ms, 1));
    auto sub = connect(ep, tmo);
    if (!sub)
        return sub.error();
    // Subscribe before publishing, or a fast reply would be missed.
    if (auto s = subscribe(sub->get(), ep, reply_channel); !s)
        return s.error();
    auto pub = connect(ep, tmo);
    if (!pub)
        return pub.error();

    std::random_device rd;
    char idbuf[64];
    std::snprintf(idbuf, sizeof(idbuf), "weirctl-%d-%08x%08x", static_cast<int>(::getpid()), rd(), rd());
    const std::string id = idbuf;
    req["id"] = id;
    req["reply_to"] = reply_channel;
    const std::string msg = req.dump();
    Reply r(static_cast<redisReply*>(
        redisCommand(pub->get(), "PUBLISH %b %b", ep.channel.data(), ep.channel.size(), msg.data(), msg.size())));
    if (!r)
        return from_errno(ECONNRESET, "redis " + where(ep) + ": PUBLISH: " + (*pub)->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        return from_errno(EACCES, "redis " + where(ep) + ": PUBLISH refused: " + std::string(r->str, r->len));
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        return from_errno(EHOSTUNREACH, "redis " + where(ep) + ": nobody subscribed to " + ep.channel +
                                            " (is weir running with --verdict-redis?)");

    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    redisContext* c = sub->get();
    for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK)
            return from_errno(EPROTO, "redis " + where(ep) + ": " + c->errstr);
        if (raw) {
            Reply m(static_cast<redisReply*>(raw));
            if (const redisReply* p = message_payload(m.get())) {
                std::string_view payload(p->str, p->len);
                json j = json::parse(payload.begin(), payload.end(), nullptr, false);
                // Other callers' replies on a shared channel are skipped.
                if (j.is_object() && j.contains("id") && j["id"] == id)
                    return std::string(payload);
            }
            continue;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0)
            return from_errno(ETIMEDOUT, "waiting for the reply on " + reply_channel);
        pollfd pf{c->fd, POLLIN, 0};
        const int n = ::poll(&pf, 1, static_cast<int>(left));
        if (n < 0 && errno != EINTR)
            return from_errno(errno, "poll");
        if (n > 0 && redisBufferRead(c) != REDIS_OK)
            return from_errno(ECONNRESET, "redis " + where(ep) + ": " + c->errstr);
    }
}

} // namespace weir::dataplane
