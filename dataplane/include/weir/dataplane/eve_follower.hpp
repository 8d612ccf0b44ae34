// Suricata eve.json to weir verdicts: follow the file (tail -F), match each
// event against a rules file, and send the matching ones as batched "add"
// requests to weir's verdict socket. Full reference: docs/ids.md "Suricata
// eve.json".
//
//  - LineFollower: tail -F of one file. Starts at its end or beginning;
//    survives truncation (copytruncate), rotation by rename (the old file
//    is read to its end first) and a file that does not exist yet; keeps a
//    partial last line until its newline arrives.
//  - EveRule / parse_eve_rules(): the rules file (JSON). First match wins.
//  - eve_event_to_item(): one eve line -> one verdict item (JSON) or why not.
//  - EveForwarder: collects items (the last verdict for a target wins within
//    a batch), validates each with the server's own parser so one bad event
//    cannot fail a whole batch, and sends them as one request.
// Nothing here throws on input: garbage lines are counted.
#pragma once

#include <weir/core/result.hpp>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace weir::dataplane {

struct LineFollowerOptions {
    bool from_beginning = false;             ///< first open: read what is already there
    size_t max_line_bytes = size_t{16} << 20;  ///< longer lines are skipped (counted)
    size_t read_bytes_per_poll = size_t{4} << 20;  ///< bounds one poll's batch
};

struct LineFollowerStats {
    uint64_t lines = 0;          ///< complete lines delivered
    uint64_t bytes = 0;          ///< bytes read
    uint64_t opens = 0;          ///< files opened (first one, then after each rotation)
    uint64_t rotations = 0;      ///< path replaced by another file (rename, re-create)
    uint64_t truncations = 0;    ///< file shrank below the read offset
    uint64_t overlong = 0;       ///< lines over max_line_bytes, skipped
    uint64_t partial_dropped = 0;  ///< unterminated last line of a rotated or truncated file
};

class LineFollower {
public:
    LineFollower(std::string path, LineFollowerOptions opts = {});
    ~LineFollower();
    LineFollower(const LineFollower&) = delete;
    LineFollower& operator=(const LineFollower&) = delete;

    /// Reads what was appended since the last call (at most
    /// read_bytes_per_poll) and calls on_line for every complete line
    /// (without its newline, CR stripped). Returns the number of lines. A
    /// missing or unreadable file is waited for (0 lines), never an error.
    size_t poll(const std::function<void(std::string_view)>& on_line);

    /// True when the last poll() reached the end of the current file.
    [[nodiscard]] bool at_end() const noexcept { return at_end_; }
    [[nodiscard]] const LineFollowerStats& stats() const noexcept { return st_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    bool open_file(bool at_end);
    size_t read_some(const std::function<void(std::string_view)>& on_line, size_t budget, bool* eof);
    void close_file();

    std::string path_;
    LineFollowerOptions opts_;
    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    uint64_t offset_ = 0;
    bool first_open_ = true;
    bool skipping_ = false;  // inside an overlong line: drop until its newline
    bool at_end_ = false;
    std::string buf_;        // partial line
    std::string chunk_;
    LineFollowerStats st_;
};

/// One rule of the rules file. Every given condition must hold; an absent
/// one matches anything.
struct EveRule {
    std::string name;                      ///< for logs ("" = rule N)
    std::vector<std::string> event_types;  ///< "alert", "flow", "tls", ... (any of)
    std::vector<std::pair<uint64_t, uint64_t>> sids;  ///< alert.signature_id ranges (inclusive)
    std::vector<int64_t> severities;       ///< alert.severity (any of; 1 = highest)
    std::vector<std::string> categories;   ///< alert.category, exact (any of)
    std::vector<std::string> app_protos;   ///< app_proto, case-insensitive (any of)
    std::optional<bool> bypassed;          ///< flow bypassed (flow.bypassed / flow.bypass / "bypass" event)
    enum class Target : uint8_t { Flow, SrcHost, DestHost };
    Target target = Target::Flow;
    std::string verdict = "drop";          ///< forward, drop, shunt, divert
    uint32_t after = 0;                    ///< shunt
    std::optional<uint32_t> egress;        ///< divert
    double ttl_s = 0;                      ///< 0 = never expires
    bool tcp_control = false;
    std::string reason = "{signature}";    ///< template: {signature} {sid} {category} {event_type} {app_proto} {rule}
};

/// Parses the rules file text: {"rules":[{...}, ...]}. Unknown keys, bad
/// ranges and a verdict missing its parameter are errors (EINVAL, with the
/// rule's index).
Result<std::vector<EveRule>> parse_eve_rules(std::string_view text);
Result<std::vector<EveRule>> load_eve_rules(const std::string& path);

enum class EveOutcome : uint8_t {
    NoMatch,   ///< a valid event no rule wants
    Item,      ///< *item holds the verdict item
    BadLine,   ///< not a JSON object (garbage, truncated line)
    BadEvent,  ///< a matching event without a usable 5-tuple (why in *why)
};

struct EveItem {
    std::string target_key;  ///< the item's target, serialised (dedup key)
    std::string json;        ///< the item: {"flow":{...},"verdict":...}
    size_t rule = 0;         ///< index of the rule that matched
};

/// Turns one eve.json line into a verdict item with the first matching rule.
EveOutcome eve_event_to_item(const std::vector<EveRule>& rules, std::string_view line, EveItem* item, std::string* why);

struct EveStats {
    uint64_t lines = 0;          ///< lines read
    uint64_t bad_lines = 0;      ///< not JSON objects
    uint64_t events = 0;         ///< valid events
    uint64_t matched = 0;        ///< events a rule matched
    uint64_t bad_events = 0;     ///< matched, but no usable flow (counted, skipped)
    uint64_t merged = 0;         ///< same target twice in one batch (the later one kept)
    uint64_t sent = 0;           ///< items sent
    uint64_t requests = 0;       ///< requests sent
    uint64_t replies_ok = 0;
    uint64_t replies_error = 0;  ///< error replies ("table full", ...)
    uint64_t send_failures = 0;  ///< no reply (socket down): the batch is kept and retried
    std::vector<uint64_t> per_rule;  ///< matches per rule
};

struct EveForwarderOptions {
    std::string socket_path;
    size_t batch_max = 10000;   ///< items per request
    int timeout_ms = 10000;
};

/// Collects items from eve lines and sends them to weir.
class EveForwarder {
public:
    EveForwarder(std::vector<EveRule> rules, EveForwarderOptions opts);

    /// Processes one line; returns true when it produced an item.
    bool add_line(std::string_view line);
    [[nodiscard]] size_t pending() const noexcept { return items_.size(); }

    /// Sends up to batch_max pending items as one request. The items leave
    /// the queue once a reply came (ok or error: an error reply is counted,
    /// resending would not change it). Errors: the transport failure
    /// (nothing removed; call again later).
    Result<std::string> flush_one();

    [[nodiscard]] const EveStats& stats() const noexcept { return st_; }
    /// Counters as one JSON object (also the follower's when given).
    [[nodiscard]] std::string stats_json(const LineFollowerStats* follower = nullptr) const;
    /// Sink for one-line diagnostics (bad events, error replies); default none.
    std::function<void(const std::string&)> log;

private:
    std::vector<EveRule> rules_;
    EveForwarderOptions opts_;
    std::vector<EveItem> items_;
    std::unordered_map<std::string, size_t> index_;  // target_key -> position in items_
    EveStats st_;
};

} // namespace weir::dataplane
