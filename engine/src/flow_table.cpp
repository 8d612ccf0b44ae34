// weir::engine::FlowTable: per-core bidirectional flow table.
//
// Layout (see flow_table_layout.hpp): one anonymous mapping holds the index
// (linear probing over 8-byte {hash, entry+1} slots, at most half full), the
// 128-byte hot entries, their 8-byte list links and 6-byte cold parts.
// Entries sit on two intrusive doubly linked lists with 32-bit links, both
// ordered by last activity: the LRU list of live flows and the list of
// TCP-ended flows waiting out their linger. Deletion from the index is
// backward-shift, so no tombstones accumulate under churn.
//
// Packet counters are 32-bit per direction: a direction about to wrap is
// exported as an active timeout and the flow restarts with the same client,
// exactly as a real active timeout would.
#include <weir/engine/flow_table.hpp>

#include "flow_table_layout.hpp"
#include "table_memory.hpp"


#if defined(__SSE4_1__)
#include <smmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <utility>

namespace weir::engine {

using detail::DirState;
using detail::Link;
using detail::ServerMac;
using detail::FlowEntry;
using detail::kNil;
using detail::Slot;

namespace {

constexpr uint32_t kMinCapacity = 16;
constexpr uint32_t kMaxCapacity = 1u << 30;
constexpr uint8_t kProtoTcp = 6;
/// Packets per prefetch pipeline round in update_burst.
constexpr uint32_t kBurst = 32;

inline void prefetch(const void* p) noexcept { __builtin_prefetch(p, 1, 3); }

inline bool keys_equal(const FlowKey& a, const FlowKey& b) noexcept
{
    // Compared whole, without early exit: the tags already match, so the
    // keys are nearly always equal.
#if defined(__SSE4_1__)
    const auto* pa = reinterpret_cast<const __m128i*>(&a);
    const auto* pb = reinterpret_cast<const __m128i*>(&b);
    const __m128i d0 = _mm_xor_si128(_mm_loadu_si128(pa), _mm_loadu_si128(pb));
    const __m128i d1 = _mm_xor_si128(_mm_loadu_si128(pa + 1), _mm_loadu_si128(pb + 1));
    const __m128i d2 = _mm_xor_si128(_mm_loadu_si128(pa + 2), _mm_loadu_si128(pb + 2));
    const __m128i d = _mm_or_si128(_mm_or_si128(d0, d1), d2);
    return _mm_testz_si128(d, d) != 0;
#else
    uint64_t wa[6];
    uint64_t wb[6];
    std::memcpy(wa, &a, sizeof(wa));
    std::memcpy(wb, &b, sizeof(wb));
    uint64_t d = 0;
    for (int i = 0; i < 6; ++i)
        d |= wa[i] ^ wb[i];
    return d == 0;
#endif
}

inline uint64_t flow_first(const FlowEntry& x) noexcept
{
    if (x.dir[1].packets == 0) return x.dir[0].first_ns;
    if (x.dir[0].packets == 0) return x.dir[1].first_ns;
    return std::min(x.dir[0].first_ns, x.dir[1].first_ns);
}

inline uint64_t flow_last(const FlowEntry& x) noexcept
{
    return std::max(x.dir[0].last_ns, x.dir[1].last_ns);
}

/// True when `now` is at least `timeout` after `t`, without overflow.
inline bool elapsed(uint64_t t, uint64_t now, uint64_t timeout) noexcept
{
    return now >= t && now - t >= timeout;
}

uint32_t next_pow2(uint64_t v) noexcept
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return static_cast<uint32_t>(p);
}

} // namespace

struct FlowTable::Impl {
    struct List {
        uint32_t head = kNil; ///< most recently active
        uint32_t tail = kNil; ///< least recently active
    };

    // Packet-path state first, so it shares few cache lines.
    Slot* index = nullptr;
    FlowEntry* entries = nullptr;
    Link* links = nullptr;
    ServerMac* server_mac = nullptr;
    uint32_t mask = 0;
    uint32_t cap = 0;
    uint32_t active = 0;
    uint32_t fresh = 0;         ///< entries [fresh, cap) were never used
    uint32_t free_head = kNil;  ///< recycled entries, linked through `next`
    List lru;
    List ended;
    bool count_wire = true;
    uint16_t worker = 0;
    FlowTableStats stats;
    FlowTableConfig cfg;

    detail::TableMemory mem;
    std::size_t mem_bytes = 0;

    // ---- index -------------------------------------------------------

    /// Finds `key`; returns its entry or kNil. `slot` gets the slot holding
    /// it, or the first empty slot of its probe sequence.
    uint32_t find(const FlowKey& key, uint32_t hash, uint32_t& slot) const noexcept
    {
        for (uint32_t s = hash & mask;; s = (s + 1) & mask) {
            const Slot v = index[s];
            const uint32_t e1 = detail::slot_entry1(v);
            if (e1 == 0) {
                slot = s;
                return kNil;
            }
            if (detail::slot_hash(v) == hash && keys_equal(entries[e1 - 1].key, key)) {
                slot = s;
                return e1 - 1;
            }
        }
    }

    /// First empty slot of `hash`'s probe sequence (key known absent).
    uint32_t find_empty(uint32_t hash) const noexcept
    {
        uint32_t s = hash & mask;
        while (detail::slot_entry1(index[s]) != 0)
            s = (s + 1) & mask;
        return s;
    }

    /// Removes entry `e` from the index by backward-shift deletion: later
    /// members of the cluster that may live closer to their home slot move
    /// back, so lookups never need tombstones.
    void index_erase(uint32_t e) noexcept
    {
        const uint32_t want = e + 1;
        uint32_t i = entries[e].hash & mask;
        while (detail::slot_entry1(index[i]) != want)
            i = (i + 1) & mask;
        for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
            const Slot v = index[j];
            if (detail::slot_entry1(v) == 0)
                break;
            const uint32_t home = detail::slot_hash(v) & mask;
            // The slot at j may fill the hole at i only if i lies within
            // [home, j) going forward, i.e. no closer to j than home is.
            if (((j - home) & mask) >= ((j - i) & mask)) {
                index[i] = v;
                i = j;
            }
        }
        index[i] = 0;
    }

    // ---- lists -------------------------------------------------------

    List& list_of(const FlowEntry& x) noexcept { return (x.state & detail::kStEnded) ? ended : lru; }

    void unlink(List& l, uint32_t e) noexcept
    {
        const Link x = links[e];
        if (x.prev != kNil) links[x.prev].next = x.next;
        else l.head = x.next;
        if (x.next != kNil) links[x.next].prev = x.prev;
        else l.tail = x.prev;
    }

    void push_head(List& l, uint32_t e) noexcept
    {
        links[e] = Link{kNil, l.head};
        if (l.head != kNil) links[l.head].prev = e;
        else l.tail = e;
        l.head = e;
    }

    void touch(List& l, uint32_t e) noexcept
    {
        if (l.head == e)
            return;
        unlink(l, e);
        push_head(l, e);
    }

    // ---- entries -----------------------------------------------------

    uint32_t alloc_entry() noexcept
    {
        if (free_head != kNil) {
            const uint32_t e = free_head;
            free_head = links[e].next;
            return e;
        }
        return fresh++;
    }

    void free_entry(uint32_t e) noexcept
    {
        links[e].next = free_head;
        free_head = e;
    }

    void emit(uint32_t e, EndReason reason, const FlowSink& sink) noexcept
    {
        const FlowEntry& x = entries[e];
        FlowRecord r;
        r.key = x.key;
        for (int d = 0; d < 2; ++d) {
            const DirState& s = x.dir[d];
            r.dir[d].packets = s.packets;
            r.dir[d].bytes = s.bytes;
            r.dir[d].first_ns = s.first_ns;
            r.dir[d].last_ns = s.last_ns;
            r.dir[d].tcp_flags = s.tcp_flags;
            r.dir[d].min_ttl = s.min_ttl;
            r.dir[d].max_ttl = s.max_ttl;
            r.dir[d].tos = s.tos;
        }
        r.client_mac = x.client_mac;
        r.server_mac = server_mac[e];
        r.fragments = x.fragments;
        r.worker = worker;
        r.end_reason = reason;
        r.client_is_a = x.client_is_a;
        r.table_entry = e;
        ++stats.exported[static_cast<uint8_t>(reason)];
        if (sink)
            sink(r);
    }

    /// Exports entry `e` and frees it.
    void end_flow(uint32_t e, EndReason reason, const FlowSink& sink) noexcept
    {
        emit(e, reason, sink);
        unlink(list_of(entries[e]), e);
        index_erase(e);
        free_entry(e);
        --active;
    }

    /// Resets counters for a fresh flow of the same connection.
    void reset_counters(uint32_t e) noexcept
    {
        std::memset(static_cast<void*>(entries[e].dir), 0, sizeof(entries[e].dir));
        entries[e].fragments = 0;
        ++stats.flows_created;
    }

    /// Starts entry `e` as a new flow whose first packet is `p`.
    void init_flow(uint32_t e, const PacketMeta& p) noexcept
    {
        FlowEntry& x = entries[e];
        const bool src_a = p.src_is_a != 0;
        const bool synack = p.key.proto == kProtoTcp &&
                            (p.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck);
        x.client_is_a = (synack ? !src_a : src_a) ? 1 : 0;
        if (synack) {
            // The server spoke first: name the MACs from its packet until the
            // client's own first packet replaces them.
            x.client_mac = p.dst_mac;
            server_mac[e] = p.src_mac;
            x.state = 0;
        } else {
            x.client_mac = p.src_mac;
            server_mac[e] = p.dst_mac;
            x.state = detail::kStMacsFromClient;
        }
        std::memset(static_cast<void*>(x.dir), 0, sizeof(x.dir));
        x.fragments = 0;
        ++stats.flows_created;
    }

    void swap_roles(uint32_t e) noexcept
    {
        FlowEntry& x = entries[e];
        std::swap(x.dir[0], x.dir[1]);
        x.client_is_a ^= 1;
        const uint8_t fins = x.state & (detail::kStFinClient | detail::kStFinServer);
        x.state &= static_cast<uint8_t>(~(detail::kStFinClient | detail::kStFinServer));
        if (fins & detail::kStFinClient) x.state |= detail::kStFinServer;
        if (fins & detail::kStFinServer) x.state |= detail::kStFinClient;
        std::swap(x.client_mac, server_mac[e]);
    }

    /// Accounts `p` in direction `d` of entry `e`, then applies the TCP
    /// ending rules. Returns true when this packet ended the flow.
    bool account(uint32_t e, const PacketMeta& p, uint32_t d) noexcept
    {
        FlowEntry& x = entries[e];
        DirState& s = x.dir[d];
        const uint32_t len = count_wire ? p.wire_len : p.ip_len;
        if (s.packets == 0) {
            s.first_ns = p.ts_ns;
            s.last_ns = p.ts_ns;
            s.min_ttl = p.ttl;
            s.max_ttl = p.ttl;
            s.tos = p.tos;
        } else {
            // Min/max rather than overwrite: merged multi-queue captures can
            // deliver slightly out-of-order timestamps.
            s.first_ns = std::min(s.first_ns, p.ts_ns);
            s.last_ns = std::max(s.last_ns, p.ts_ns);
            s.min_ttl = std::min(s.min_ttl, p.ttl);
            s.max_ttl = std::max(s.max_ttl, p.ttl);
        }
        ++s.packets;
        s.bytes += len;
        s.tcp_flags |= p.tcp_flags;
        if (p.is_fragment)
            ++x.fragments;
        if (d == 0 && !(x.state & detail::kStMacsFromClient)) {
            x.client_mac = p.src_mac;
            server_mac[e] = p.dst_mac;
            x.state |= detail::kStMacsFromClient;
        }
        ++stats.packets;
        stats.bytes += len;

        if (p.key.proto != kProtoTcp || (x.state & detail::kStEnded))
            return false;
        const uint8_t f = p.tcp_flags;
        if (f & kTcpSyn && d == 0)
            x.state |= detail::kStSynClient;
        if (f & kTcpFin)
            x.state |= d == 0 ? detail::kStFinClient : detail::kStFinServer;
        const uint8_t both = detail::kStFinClient | detail::kStFinServer;
        if ((f & kTcpRst) || (x.state & both) == both) {
            x.state |= detail::kStEnded;
            return true;
        }
        return false;
    }

    /// Makes room for one more flow: an ended flow first (it is over
    /// anyway), else the least recently active one.
    void evict(const FlowSink& sink) noexcept
    {
        if (ended.tail != kNil) {
            end_flow(ended.tail, EndReason::EndOfFlow, sink);
            return;
        }
        end_flow(lru.tail, EndReason::LackOfResources, sink);
        if (lru.tail != kNil) {
            // The next eviction exports the new tail: start fetching it.
            prefetch(&entries[lru.tail]);
            prefetch(&entries[lru.tail].dir);
            prefetch(&server_mac[lru.tail]);
            prefetch(&links[lru.tail]);
        }
    }

    /// Returns the new flow's entry.
    uint32_t insert(const PacketMeta& p, uint32_t slot, const FlowSink& sink) noexcept
    {
        if (active == cap) {
            evict(sink);
            // Backward shifts may have moved the hole we were given.
            slot = find_empty(p.hash);
        }
        const uint32_t e = alloc_entry();
        FlowEntry& x = entries[e];
        x.key = p.key;
        x.hash = p.hash;
        index[slot] = detail::make_slot(p.hash, e);
        ++active;
        init_flow(e, p);
        const uint32_t d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;
        account(e, p, d);
        push_head(list_of(x), e);
        return e;
    }

    /// The packet of most flows: a live flow within its timeouts, no TCP
    /// SYN, FIN or RST, the MACs already named from the client. Accounts it
    /// and returns true; returns false, having changed nothing, for
    /// anything else (update_found() decides those).
    [[gnu::always_inline]] bool update_common(uint32_t e, const PacketMeta& p) noexcept
    {
        FlowEntry& x = entries[e];
        const uint32_t d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;
        DirState& s = x.dir[d];
        const uint64_t ts = p.ts_ns;
        // A direction without packets has zero times: it cannot raise the
        // last one, and must not lower the first one.
        const uint64_t last = std::max(x.dir[0].last_ns, x.dir[1].last_ns);
        const uint64_t first = std::min(x.dir[0].packets ? x.dir[0].first_ns : UINT64_MAX,
                                        x.dir[1].packets ? x.dir[1].first_ns : UINT64_MAX);
        // Each test below is nearly always false: branches, not arithmetic.
        const uint8_t st = x.state;
        if ((st & detail::kStEnded) || (d == 0 && !(st & detail::kStMacsFromClient)))
            return false;
        if (p.key.proto == kProtoTcp && (p.tcp_flags & (kTcpSyn | kTcpFin | kTcpRst)))
            return false;
        if (elapsed(last, ts, cfg.idle_timeout_ns) || elapsed(first, ts, cfg.active_timeout_ns) ||
            s.packets == UINT32_MAX)
            return false;
        const uint32_t len = count_wire ? p.wire_len : p.ip_len;
        if (s.packets == 0) {
            s.first_ns = ts;
            s.last_ns = ts;
            s.min_ttl = p.ttl;
            s.max_ttl = p.ttl;
            s.tos = p.tos;
        } else {
            s.first_ns = std::min(s.first_ns, ts);
            s.last_ns = std::max(s.last_ns, ts);
            s.min_ttl = std::min(s.min_ttl, p.ttl);
            s.max_ttl = std::max(s.max_ttl, p.ttl);
        }
        ++s.packets;
        s.bytes += len;
        s.tcp_flags |= p.tcp_flags;
        x.fragments += p.is_fragment != 0;
        ++stats.packets;
        stats.bytes += len;
        touch(lru, e);
        return true;
    }

    /// Accounts `p` to its flow, entry `e`: every rule.
    [[gnu::noinline]] void update_found(uint32_t e, const PacketMeta& p, const FlowSink& sink) noexcept
    {
        FlowEntry& x = entries[e];
        const bool tcp = p.key.proto == kProtoTcp;
        const bool pure_syn = tcp && (p.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
        uint32_t d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;

        // A flow past its idle timeout (or an ended one past its linger) is
        // over whether or not expire() has run since: decide here, so the
        // records depend only on the flow's own packets, not on how often
        // the caller expires (one worker or many give the same flows).
        const bool is_ended = (x.state & detail::kStEnded) != 0;
        const bool timed_out = is_ended ? elapsed(flow_last(x), p.ts_ns, cfg.tcp_end_linger_ns)
                                        : elapsed(flow_last(x), p.ts_ns, cfg.idle_timeout_ns);
        if (timed_out || (is_ended && pure_syn)) {
            // Expired, or a new connection reusing the 5-tuple of an ended one.
            emit(e, is_ended ? EndReason::EndOfFlow : EndReason::IdleTimeout, sink);
            unlink(list_of(x), e);
            init_flow(e, p);
            d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;
            if (account(e, p, d)) push_head(ended, e);
            else push_head(lru, e);
            return;
        }

        if (elapsed(flow_first(x), p.ts_ns, cfg.active_timeout_ns) || x.dir[d].packets == UINT32_MAX) {
            emit(e, EndReason::ActiveTimeout, sink);
            reset_counters(e);
        }

        if (pure_syn && d == 1 && !(x.state & detail::kStSynClient)) {
            swap_roles(e);
            d = 0;
        }

        List& before = list_of(x);
        if (account(e, p, d)) {
            unlink(before, e);
            push_head(ended, e);
        } else {
            touch(before, e);
        }
    }

    /// Returns the entry the packet was accounted to.
    uint32_t update(const PacketMeta& p, const FlowSink& sink) noexcept
    {
        uint32_t slot;
        const uint32_t e = find(p.key, p.hash, slot);
        if (e == kNil)
            return insert(p, slot, sink);
        if (!update_common(e, p))
            update_found(e, p, sink);
        return e;
    }

    /// Starts entry `e` as a flow known only from a bulk delta: its sender
    /// is the client until a packet says otherwise; no MACs yet.
    void init_delta_flow(uint32_t e, const PacketMeta& p) noexcept
    {
        FlowEntry& x = entries[e];
        x.client_is_a = p.src_is_a != 0 ? 1 : 0;
        x.client_mac = {};
        server_mac[e] = {};
        x.state = 0;
        std::memset(static_cast<void*>(x.dir), 0, sizeof(x.dir));
        x.fragments = 0;
        ++stats.flows_created;
    }

    /// Adds a bulk delta (PacketMeta::control == kCtlDelta) to its flow:
    /// the timeouts apply as for a packet at the delta's time, the packets
    /// are counted in the delta's direction, and the flow's last activity
    /// moves on (it stays live while XDP keeps its packets from us). The
    /// delta's TCP flags are ORed into that direction's exported flags
    /// only: a FIN or RST in them does not end the flow (they are a union
    /// over an interval, not one packet).
    void add_delta(const PacketMeta& p, const FlowSink& sink) noexcept
    {
        const uint32_t np = delta_packets(p);
        const uint64_t wire = delta_bytes(p);
        if (np == 0 && wire == 0 && p.tcp_flags == 0)
            return;
        // Flags alone (read a poll after their packets) join a live flow
        // only: they never start one or keep one alive.
        const bool counts = np != 0 || wire != 0;
        uint32_t slot;
        uint32_t e = find(p.key, p.hash, slot);
        if (e == kNil) {
            if (!counts)
                return;
            if (active == cap) {
                evict(sink);
                slot = find_empty(p.hash);
            }
            e = alloc_entry();
            entries[e].key = p.key;
            entries[e].hash = p.hash;
            index[slot] = detail::make_slot(p.hash, e);
            ++active;
            init_delta_flow(e, p);
            push_head(lru, e);
        } else {
            FlowEntry& x = entries[e];
            const bool is_ended = (x.state & detail::kStEnded) != 0;
            const bool timed_out = is_ended ? elapsed(flow_last(x), p.ts_ns, cfg.tcp_end_linger_ns)
                                            : elapsed(flow_last(x), p.ts_ns, cfg.idle_timeout_ns);
            if (timed_out && !counts)
                return;
            if (timed_out) {
                emit(e, is_ended ? EndReason::EndOfFlow : EndReason::IdleTimeout, sink);
                unlink(list_of(x), e);
                init_delta_flow(e, p);
                push_head(lru, e);
            } else {
                const uint32_t d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;
                // Flags alone belong to the record open now: no rollover.
                if (counts &&
                    (elapsed(flow_first(x), p.ts_ns, cfg.active_timeout_ns) || x.dir[d].packets > UINT32_MAX - np)) {
                    emit(e, EndReason::ActiveTimeout, sink);
                    reset_counters(e);
                }
                if (counts)
                    touch(list_of(x), e);
            }
        }
        FlowEntry& x = entries[e];
        const uint32_t d = (p.src_is_a != 0) == (x.client_is_a != 0) ? 0 : 1;
        DirState& s = x.dir[d];
        // IP byte count: the frames' Ethernet headers (14 bytes, untagged)
        // taken off, as nothing else is known about them.
        const uint64_t len = count_wire ? wire : (wire > 14ULL * np ? wire - 14ULL * np : 0);
        if (counts && s.packets == 0) {
            s.first_ns = p.ts_ns;
            s.last_ns = p.ts_ns;
        } else if (counts) {
            s.first_ns = std::min(s.first_ns, p.ts_ns);
            s.last_ns = std::max(s.last_ns, p.ts_ns);
        }
        s.packets += np;
        s.bytes += len;
        s.tcp_flags |= p.tcp_flags;
        stats.packets += np;
        stats.bytes += len;
        stats.delta_packets += np;
        stats.delta_bytes += len;
    }

    /// Pipeline for one round of at most kBurst packets: the hash of every
    /// packet is known, so fetch all index slots, then all candidate entries
    /// and their LRU neighbours, and only then update. A candidate is the
    /// first slot of the packet's probe sequence with its hash; it is used
    /// only if that slot still holds the same entry and the entry the same
    /// key (earlier packets of the round may have inserted, evicted or
    /// moved flows), and as keys are unique in the index it is then the
    /// flow find() would return. Otherwise update() looks the key up again.
    void update_round(const PacketMeta* p, uint32_t n, const FlowSink& sink, FlowTable::AfterPacket after, void* ctx,
                      uint32_t base) noexcept
    {
        uint32_t cand[kBurst];
        uint32_t cand_slot[kBurst];
        for (uint32_t i = 0; i < n; ++i)
            prefetch(&index[p[i].hash & mask]);
        for (uint32_t i = 0; i < n; ++i) {
            cand[i] = kNil;
            const uint32_t h = p[i].hash;
            for (uint32_t s = h & mask;; s = (s + 1) & mask) {
                const Slot v = index[s];
                const uint32_t e1 = detail::slot_entry1(v);
                if (e1 == 0)
                    break;
                if (detail::slot_hash(v) == h) {
                    cand[i] = e1 - 1;
                    cand_slot[i] = s;
                    prefetch(&entries[e1 - 1]);
                    prefetch(&entries[e1 - 1].dir);
                    prefetch(&links[e1 - 1]);
                    break;
                }
            }
        }
        for (uint32_t i = 0; i < n; ++i) {
            if (cand[i] == kNil)
                continue;
            const Link x = links[cand[i]];
            if (x.prev != kNil) prefetch(&links[x.prev]);
            if (x.next != kNil) prefetch(&links[x.next]);
        }
        for (uint32_t i = 0; i < n; ++i) {
            uint32_t e = cand[i];
            if (e != kNil && index[cand_slot[i]] == detail::make_slot(p[i].hash, e) &&
                keys_equal(entries[e].key, p[i].key)) {
                if (!update_common(e, p[i]))
                    update_found(e, p[i], sink);
            } else {
                e = update(p[i], sink);
            }
            if (after)
                after(ctx, p[i], base + i, e);
        }
    }
};

FlowTable::FlowTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FlowTable::~FlowTable() = default;

Result<std::unique_ptr<FlowTable>> FlowTable::create(const FlowTableConfig& cfg, uint16_t worker_id)
{
    if (cfg.capacity < kMinCapacity || cfg.capacity > kMaxCapacity)
        return invalid("flow table capacity " + std::to_string(cfg.capacity) + " outside [16, 2^30]");
    if (cfg.idle_timeout_ns == 0 || cfg.active_timeout_ns == 0 || cfg.tcp_end_linger_ns == 0)
        return invalid("flow table timeouts must be non-zero");
    if (cfg.byte_count != ByteCount::Wire && cfg.byte_count != ByteCount::Ip)
        return invalid("flow table byte count mode");

    std::unique_ptr<Impl> impl(new (std::nothrow) Impl);
    if (!impl)
        return from_errno(ENOMEM, "flow table");
    const uint32_t slots = next_pow2(2ULL * cfg.capacity);
    const std::size_t index_bytes = std::size_t{slots} * sizeof(Slot);
    const std::size_t entry_bytes = std::size_t{cfg.capacity} * sizeof(FlowEntry);
    const std::size_t link_bytes = std::size_t{cfg.capacity} * sizeof(Link);
    const std::size_t mac_bytes = std::size_t{cfg.capacity} * sizeof(ServerMac);
    const std::size_t total = index_bytes + entry_bytes + link_bytes + mac_bytes;

    // Huge pages: with a million random flows far fewer TLB misses.
    detail::TableMemory::Options mo;
    mo.prefault = cfg.prefault;
    auto mem = detail::TableMemory::map(total, mo, "flow table");
    if (!mem)
        return mem.error();
    impl->mem = std::move(mem.value());
    uint8_t* region = impl->mem.data();

    impl->index = reinterpret_cast<Slot*>(region);
    impl->entries = reinterpret_cast<FlowEntry*>(region + index_bytes);
    impl->links = reinterpret_cast<Link*>(region + index_bytes + entry_bytes);
    impl->server_mac = reinterpret_cast<ServerMac*>(region + index_bytes + entry_bytes + link_bytes);
    impl->mask = slots - 1;
    impl->cap = cfg.capacity;
    impl->count_wire = cfg.byte_count == ByteCount::Wire;
    impl->worker = worker_id;
    impl->cfg = cfg;
    impl->mem_bytes = total;
    return std::unique_ptr<FlowTable>(new FlowTable(std::move(impl)));
}

uint32_t FlowTable::update_burst(const PacketMeta* pkts, uint32_t n, const FlowSink& sink) noexcept
{
    return update_burst(pkts, n, sink, nullptr, nullptr);
}

uint32_t FlowTable::update_burst(const PacketMeta* pkts, uint32_t n, const FlowSink& sink, AfterPacket after,
                                 void* ctx) noexcept
{
    for (uint32_t off = 0; off < n; off += kBurst)
        impl_->update_round(pkts + off, std::min(kBurst, n - off), sink, after, ctx, off);
    return n;
}

void FlowTable::update(const PacketMeta& pkt, const FlowSink& sink) noexcept
{
    impl_->update(pkt, sink);
}

void FlowTable::add_delta(const PacketMeta& delta, const FlowSink& sink) noexcept
{
    impl_->add_delta(delta, sink);
}

uint32_t FlowTable::expire(uint64_t now_ns, const FlowSink& sink, uint32_t budget) noexcept
{
    Impl& t = *impl_;
    uint32_t n = 0;
    while (n < budget && t.ended.tail != kNil) {
        const uint32_t e = t.ended.tail;
        if (!elapsed(flow_last(t.entries[e]), now_ns, t.cfg.tcp_end_linger_ns))
            break;
        if (t.links[e].prev != kNil)
            prefetch(&t.entries[t.links[e].prev]);
        t.end_flow(e, EndReason::EndOfFlow, sink);
        ++n;
    }
    while (n < budget && t.lru.tail != kNil) {
        const uint32_t e = t.lru.tail;
        if (!elapsed(flow_last(t.entries[e]), now_ns, t.cfg.idle_timeout_ns))
            break;
        const uint32_t next = t.links[e].prev;
        if (next != kNil) {
            prefetch(&t.entries[next]);
            prefetch(&t.entries[next].dir);
        }
        t.end_flow(e, EndReason::IdleTimeout, sink);
        ++n;
    }
    return n;
}

uint32_t FlowTable::flush(const FlowSink& sink, EndReason reason) noexcept
{
    Impl& t = *impl_;
    uint32_t n = 0;
    // Flows already ended by TCP keep their true reason.
    while (t.ended.tail != kNil) {
        t.end_flow(t.ended.tail, EndReason::EndOfFlow, sink);
        ++n;
    }
    while (t.lru.tail != kNil) {
        t.end_flow(t.lru.tail, reason, sink);
        ++n;
    }
    return n;
}

uint32_t FlowTable::active() const noexcept { return impl_->active; }
uint32_t FlowTable::capacity() const noexcept { return impl_->cap; }
std::size_t FlowTable::memory_bytes() const noexcept { return impl_->mem_bytes; }
const FlowTableStats& FlowTable::stats() const noexcept { return impl_->stats; }
const FlowTableConfig& FlowTable::config() const noexcept { return impl_->cfg; }

} // namespace weir::engine
