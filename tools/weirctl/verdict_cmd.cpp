// weirctl verdict: send one request to a running weir's verdict channel
// (Unix socket) and print the reply. Exit 0 when the reply says ok, 1 when
// it is an error reply, 2 when no reply could be had.
//
//   weirctl verdict add --socket S --src 10.0.0.1 --dst 10.0.0.2 --sport 1234
//       --dport 80 --proto tcp --verdict shunt --after 10 --ttl 60   (one line)
//   weirctl verdict add --socket S --host 10.0.0.9 --verdict drop
//   weirctl verdict del --socket S --subnet 10.0.0.0/8
//   weirctl verdict list|stats|expire --socket S
//   weirctl verdict raw --socket S '{"op":"add","items":[...]}'
//   weirctl verdict raw --socket S - < batch.json   (the request from stdin)
//   weirctl verdict load --socket S FILE [--del] [--batch 65536]
//       (a text file, one flow verdict per line, sent as binary batches;
//       format in weir/dataplane/verdict_client.hpp and docs/ids.md)
//   weirctl verdict list --redis redis://127.0.0.1:6379/weir.verdicts
//       (Redis pub/sub instead of the socket: the request gets an "id",
//       the reply with the same id is awaited on <channel>.reply; password
//       from --redis-password-file or $WEIR_REDIS_PASSWORD)
#include "commands.hpp"

#include <weir/dataplane/verdict_client.hpp>
#include <weir/dataplane/verdict_redis.hpp>
#include <weir/dataplane/verdict_server.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

using json = nlohmann::json;

struct TargetArgs {
    std::string src, dst, proto = "tcp", host, subnet;
    uint32_t sport = 0, dport = 0, vlan = 0;
};

struct VerdictArgs {
    std::string socket = "/run/weir/verdict.sock";
    std::string redis, redis_channel, redis_password_file;
    int timeout_ms = 10000;
    TargetArgs target;
    std::string verdict, reason;
    std::optional<uint32_t> after, egress;
    std::optional<double> ttl;
    bool tcp_control = false;
    std::string raw;
    std::string load_file;
    bool load_del = false;
    uint32_t load_batch = 65536;
};

void add_target_options(CLI::App* sub, TargetArgs& t)
{
    sub->add_option("--src", t.src, "flow: one endpoint's address");
    sub->add_option("--dst", t.dst, "flow: the other endpoint's address");
    sub->add_option("--sport", t.sport, "flow: --src's port")->check(CLI::Range(0, 65535));
    sub->add_option("--dport", t.dport, "flow: --dst's port")->check(CLI::Range(0, 65535));
    sub->add_option("--proto", t.proto, "flow: tcp, udp, icmp, icmpv6, sctp, gre or a number")->capture_default_str();
    sub->add_option("--vlan", t.vlan, "flow: outer VLAN id (0 = none)")->check(CLI::Range(0, 4095));
    sub->add_option("--host", t.host, "a host address");
    sub->add_option("--subnet", t.subnet, "a subnet (CIDR)");
}

// The request's target fields; an error text when they do not add up.
std::string put_target(json& j, const TargetArgs& t)
{
    const int n = int(!t.src.empty() || !t.dst.empty()) + int(!t.host.empty()) + int(!t.subnet.empty());
    if (n != 1)
        return "give exactly one of --src/--dst (a flow), --host or --subnet";
    if (!t.host.empty()) {
        j["host"] = t.host;
    } else if (!t.subnet.empty()) {
        j["subnet"] = t.subnet;
    } else {
        if (t.src.empty() || t.dst.empty())
            return "a flow needs both --src and --dst";
        json f;
        f["src"] = t.src;
        f["dst"] = t.dst;
        f["sport"] = t.sport;
        f["dport"] = t.dport;
        f["vlan"] = t.vlan;
        unsigned num = 0;
        if (!t.proto.empty() && t.proto.find_first_not_of("0123456789") == std::string::npos && t.proto.size() <= 3 &&
            (num = static_cast<unsigned>(std::stoul(t.proto))) <= 255)
            f["proto"] = num;
        else
            f["proto"] = t.proto;
        j["flow"] = f;
    }
    return {};
}

weir::Result<std::string> request(const VerdictArgs& a, const std::string& line)
{
    if (a.redis.empty())
        return weir::dataplane::verdict_request(a.socket, line, a.timeout_ms);
#if WEIR_HAVE_VERDICT_REDIS
    auto ep = weir::dataplane::parse_redis_url(a.redis);
    if (!ep)
        return ep.error();
    if (!a.redis_channel.empty())
        ep->channel = a.redis_channel;
    auto pw = weir::dataplane::load_redis_password(a.redis_password_file);
    if (!pw)
        return pw.error();
    ep->password = std::move(pw.value());
    return weir::dataplane::redis_verdict_request(ep.value(), line, a.timeout_ms);
#else
    return weir::from_errno(ENOTSUP, "--redis: weirctl was built without hiredis");
#endif
}

int send(const VerdictArgs& a, const std::string& line)
{
    auto r = request(a, line);
    if (!r) {
        std::fprintf(stderr, "weirctl verdict: %s\n", r.error().message().c_str());
        return 2;
    }
    std::printf("%s\n", r->c_str());
    json reply = json::parse(*r, nullptr, false);
    if (reply.is_object() && reply.value("ok", false))
        return 0;
    return 1;
}

// "verdict load": the file's verdicts as binary batches on one connection.
int load(const VerdictArgs& a)
{
    if (!a.redis.empty()) {
        std::fprintf(stderr, "weirctl verdict load: binary batches go through the Unix socket only (no --redis)\n");
        return 2;
    }
    std::ifstream in;
    std::istream* is = &std::cin;
    if (a.load_file != "-") {
        in.open(a.load_file);
        if (!in) {
            std::fprintf(stderr, "weirctl verdict load: cannot open %s\n", a.load_file.c_str());
            return 2;
        }
        is = &in;
    }
    auto client = weir::dataplane::VerdictClient::connect(a.socket, a.timeout_ms);
    if (!client) {
        std::fprintf(stderr, "weirctl verdict load: %s\n", client.error().message().c_str());
        return 2;
    }
    std::vector<weir_verdict_req> batch;
    batch.reserve(a.load_batch);
    uint64_t sent = 0, done = 0, batches = 0, lineno = 0;
    const auto t0 = std::chrono::steady_clock::now();
    // Deletes do not ask for every entry's final counters: they still
    // reach the flow export, and a reply per 65536 entries would be huge.
    const auto op = a.load_del ? WEIR_VWIRE_OP_DEL : WEIR_VWIRE_OP_ADD;
    const uint32_t flags = a.load_del ? WEIR_VWIRE_F_NO_ENTRIES : 0;
    auto flush = [&]() -> int {
        if (batch.empty())
            return 0;
        auto r = client->send_binary(op, batch, flags);
        if (!r) {
            std::fprintf(stderr, "weirctl verdict load: %s\n", r.error().message().c_str());
            return 2;
        }
        ++batches;
        sent += batch.size();
        batch.clear();
        json reply = json::parse(*r, nullptr, false);
        if (reply.is_object())
            done += reply.value(a.load_del ? "removed" : "installed", uint64_t{0});
        if (!reply.is_object() || !reply.value("ok", false)) {
            std::printf("%s\n", r->c_str());
            std::fprintf(stderr, "weirctl verdict load: batch %llu (lines up to %llu) failed\n",
                         static_cast<unsigned long long>(batches), static_cast<unsigned long long>(lineno));
            return 1;
        }
        return 0;
    };
    std::string line;
    while (std::getline(*is, line)) {
        ++lineno;
        auto rec = weir::dataplane::parse_verdict_line(line, a.load_del);
        if (!rec) {
            std::fprintf(stderr, "weirctl verdict load: %s:%llu: %s\n", a.load_file.c_str(),
                         static_cast<unsigned long long>(lineno), rec.error().context.c_str());
            return 2;
        }
        if (!rec->has_value())
            continue;
        batch.push_back(**rec);
        if (batch.size() >= a.load_batch)
            if (int rc = flush(); rc)
                return rc;
    }
    if (int rc = flush(); rc)
        return rc;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"ok\":true,\"%s\":%llu,\"sent\":%llu,\"batches\":%llu,\"seconds\":%.3f}\n",
                a.load_del ? "removed" : "installed", static_cast<unsigned long long>(done),
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(batches), s);
    return 0;
}

weirctl::Runner setup(CLI::App& app)
{
    auto args = std::make_shared<VerdictArgs>();
    auto* cmd = app.add_subcommand("verdict", "install, remove and list IDS verdicts of a running weir");
    cmd->require_subcommand(1);
    cmd->add_option("--socket", args->socket, "verdict channel Unix socket")->capture_default_str();
    cmd->add_option("--timeout-ms", args->timeout_ms, "reply timeout")->capture_default_str();
    cmd->add_option("--redis", args->redis, "send through Redis pub/sub instead: redis://[user@]host:port/channel");
    cmd->add_option("--redis-channel", args->redis_channel, "Redis request channel (overrides the URL's)");
    cmd->add_option("--redis-password-file", args->redis_password_file, "file holding the Redis password");

    auto* add = cmd->add_subcommand("add", "install a verdict for a flow, host or subnet");
    add_target_options(add, args->target);
    add->add_option("--verdict", args->verdict, "forward, drop, shunt or divert")
        ->required()
        ->check(CLI::IsMember({"forward", "drop", "shunt", "divert"}));
    add->add_option("--after", args->after, "shunt: packets still delivered to the IDS");
    add->add_option("--egress", args->egress, "divert: egress index");
    add->add_option("--ttl", args->ttl, "seconds until the verdict expires (0 = never)");
    add->add_option("--reason", args->reason, "reason text shown by list");
    add->add_flag("--tcp-control", args->tcp_control, "keep delivering TCP SYN/FIN/RST");
    auto* del = cmd->add_subcommand("del", "remove a verdict and print its final counters");
    add_target_options(del, args->target);
    auto* list = cmd->add_subcommand("list", "list every verdict with its counters");
    auto* stats = cmd->add_subcommand("stats", "table occupancy and request counters");
    auto* expire = cmd->add_subcommand("expire", "sweep expired verdicts and print their final counters");
    auto* raw = cmd->add_subcommand("raw", "send one JSON request as given");
    raw->add_option("request", args->raw, "the JSON request, or - to read it from stdin (large batches)")->required();
    auto* load_cmd = cmd->add_subcommand("load", "install (or --del remove) the flow verdicts of a text file in binary batches");
    load_cmd->add_option("file", args->load_file, "one verdict per line: src dst sport dport proto verdict [N] [TTL] "
                                                  "[key=value ...]; - for stdin")
        ->required();
    load_cmd->add_flag("--del", args->load_del, "remove the file's flows instead (only the first five fields are read)");
    load_cmd->add_option("--batch", args->load_batch, "verdicts per binary frame")
        ->check(CLI::Range(1u, static_cast<unsigned>(WEIR_VWIRE_MAX_COUNT)))
        ->capture_default_str();
    load_cmd->add_option("--timeout-ms", args->timeout_ms, "reply timeout");
    for (auto* s : {add, del, list, stats, expire, raw, load_cmd}) {
        // Accept --socket after the action too.
        s->add_option("--socket", args->socket, "verdict channel Unix socket");
        s->add_option("--redis", args->redis, "send through Redis pub/sub: redis://[user@]host:port/channel");
    }

    return [args, add, del, list, stats, expire, raw, load_cmd]() -> int {
        json j;
        if (load_cmd->parsed())
            return load(*args);
        if (raw->parsed()) {
            if (args->raw != "-")
                return send(*args, args->raw);
            // A batch can be far larger than one command-line argument
            // (128 KiB): read it from stdin, one line.
            std::string line, all;
            while (std::getline(std::cin, line))
                all += line;
            return send(*args, all);
        }
        if (list->parsed() || stats->parsed() || expire->parsed()) {
            j["op"] = list->parsed() ? "list" : stats->parsed() ? "stats" : "expire";
            return send(*args, j.dump());
        }
        j["op"] = add->parsed() ? "add" : "del";
        if (std::string e = put_target(j, args->target); !e.empty()) {
            std::fprintf(stderr, "weirctl verdict: %s\n", e.c_str());
            return 2;
        }
        if (add->parsed()) {
            j["verdict"] = args->verdict;
            if (args->after)
                j["after"] = *args->after;
            if (args->egress)
                j["egress"] = *args->egress;
            if (args->ttl)
                j["ttl"] = *args->ttl;
            if (!args->reason.empty())
                j["reason"] = args->reason;
            if (args->tcp_control)
                j["tcp_control"] = true;
        }
        (void)del;
        return send(*args, j.dump());
    };
}

const weirctl::Registrar reg(&setup);

} // namespace
