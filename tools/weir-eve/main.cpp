// weir-eve: turns Suricata eve.json events into weir verdicts. Follows the
// file like tail -F, matches every event against a rules file and sends the
// matches, batched, to weir's verdict socket (docs/ids.md "Suricata
// eve.json"). Exit codes: 0 done, 1 a batch got an error reply (--once),
// 2 bad options or weir unreachable (--once).
#include <weir/dataplane/eve_follower.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int)
{
    g_stop.store(true);
}

void sleep_ms(int ms)
{
    ::poll(nullptr, 0, ms);  // returns early on a signal
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"weir-eve: Suricata eve.json events -> weir verdicts"};
    std::string eve, rules_path, stats_json;
    weir::dataplane::EveForwarderOptions fo;
    fo.socket_path = "/run/weir/verdict.sock";
    weir::dataplane::LineFollowerOptions lo;
    bool once = false, verbose = false;
    int poll_ms = 200;
    double stats_interval = 0;
    app.add_option("--eve", eve, "Suricata eve.json to follow")->required();
    app.add_option("--rules", rules_path, "rules file (JSON, see docs/ids.md)")->required()->check(CLI::ExistingFile);
    app.add_option("--socket", fo.socket_path, "weir's verdict socket")->capture_default_str();
    app.add_flag("--from-beginning", lo.from_beginning, "read the events already in the file (default: start at its end)");
    app.add_flag("--once", once, "read the file from its beginning to its end, send, print the counters and exit");
    app.add_option("--batch-max", fo.batch_max, "verdicts per request at most")->check(CLI::Range(1, 1 << 22))->capture_default_str();
    app.add_option("--timeout-ms", fo.timeout_ms, "reply timeout")->check(CLI::Range(1, 600000))->capture_default_str();
    app.add_option("--poll-ms", poll_ms, "how often an idle file is checked")->check(CLI::Range(1, 60000))->capture_default_str();
    app.add_option("--stats-interval", stats_interval, "print the counters (JSON) every S seconds (0 = at exit only)");
    app.add_option("--stats-json", stats_json, "write the final counters (JSON) to this file");
    app.add_flag("-v,--verbose", verbose, "log every skipped event and error reply");
    CLI11_PARSE(app, argc, argv);

    auto rules = weir::dataplane::load_eve_rules(rules_path);
    if (!rules) {
        fmt::print(stderr, "weir-eve: {}\n", rules.error().message());
        return 2;
    }
    if (once)
        lo.from_beginning = true;
    weir::dataplane::LineFollower follower(eve, lo);
    weir::dataplane::EveForwarder fw(std::move(rules.value()), fo);
    uint64_t logged = 0;
    fw.log = [&](const std::string& line) {
        // Without -v a flood of odd events costs a few lines, not a disk.
        if (verbose || logged++ < 10)
            fmt::print(stderr, "weir-eve: {}\n", line);
    };
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    using clock = std::chrono::steady_clock;
    auto next_stats = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(stats_interval));
    bool down = false;
    int backoff = 100;
    int rc = 0;
    auto on_line = [&](std::string_view line) { fw.add_line(line); };
    while (!g_stop.load()) {
        // A request is sent when a batch is full or nothing more is there
        // to read now, so a burst of events goes out in few requests.
        if (fw.pending() >= fo.batch_max || (fw.pending() && follower.at_end())) {
            // Nothing more is read while weir does not answer: the file
            // itself is the buffer.
            auto r = fw.flush_one();
            if (!r) {
                if (!down)
                    fmt::print(stderr, "weir-eve: {}; retrying\n", r.error().message());
                down = true;
                if (once) {
                    rc = 2;
                    break;
                }
                sleep_ms(backoff);
                backoff = std::min(backoff * 2, 5000);
                continue;
            }
            if (down)
                fmt::print(stderr, "weir-eve: verdict socket answers again\n");
            down = false;
            backoff = 100;
            continue;
        }
        const size_t n = follower.poll(on_line);
        if (once && follower.at_end() && !fw.pending()) {
            if (follower.stats().opens == 0) {
                fmt::print(stderr, "weir-eve: cannot open {}\n", eve);
                rc = 2;
            }
            break;
        }
        if (stats_interval > 0 && clock::now() >= next_stats) {
            fmt::print(stderr, "{}\n", fw.stats_json(&follower.stats()));
            next_stats = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(stats_interval));
        }
        if (n == 0 && follower.at_end() && !fw.pending())
            sleep_ms(poll_ms);
    }
    // On a stop, one last try for what was read already.
    if (fw.pending() && !down)
        (void)fw.flush_one();
    const std::string st = fw.stats_json(&follower.stats());
    fmt::print(stderr, "{}\n", st);
    if (!stats_json.empty()) {
        std::ofstream out(stats_json);
        out << st << '\n';
    }
    if (rc == 0 && once && fw.stats().replies_error)
        rc = 1;
    return rc;
}
