// weirctl policy reload: asks a running weir to reload its egress policy
// (--egress-conf) through the verdict channel. The reply says what was
// installed, or why not (file and line); weir keeps the running policy on
// an error. Exit 0 when ok, 1 on an error reply, 2 when no reply could be had.
//
//   weirctl policy reload --socket /run/weir/verdict.sock
#include "commands.hpp"

#include <weir/dataplane/verdict_server.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace {

struct PolicyArgs {
    std::string socket = "/run/weir/verdict.sock";
    int timeout_ms = 10000;
};

weirctl::Runner setup(CLI::App& app)
{
    auto args = std::make_shared<PolicyArgs>();
    auto* cmd = app.add_subcommand("policy", "manage the egress policy of a running weir (IDS mode)");
    cmd->require_subcommand(1);
    cmd->add_option("--socket", args->socket, "verdict channel Unix socket")->capture_default_str();
    cmd->add_option("--timeout-ms", args->timeout_ms, "reply timeout")->capture_default_str();
    auto* reload = cmd->add_subcommand("reload", "reload the --egress-conf file (the old policy stays on an error)");
    reload->add_option("--socket", args->socket, "verdict channel Unix socket");
    return [args]() -> int {
        auto r = weir::dataplane::verdict_request(args->socket, R"({"op":"policy_reload"})", args->timeout_ms);
        if (!r) {
            std::fprintf(stderr, "weirctl policy: %s\n", r.error().message().c_str());
            return 2;
        }
        std::printf("%s\n", r->c_str());
        const auto reply = nlohmann::json::parse(*r, nullptr, false);
        return reply.is_object() && reply.value("ok", false) ? 0 : 1;
    };
}

const weirctl::Registrar reg(&setup);

} // namespace
