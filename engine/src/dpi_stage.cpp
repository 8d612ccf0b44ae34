// DpiStage: bounded per-worker micro-DPI state (see dpi_stage.hpp).
//
// The parsers are fed the way tests/golden/dpi_golden_test.cpp feeds them
// (first payloads of each direction, nDPI's rules for which value wins), so
// the fields match what that test checks against nDPI. Level 2 keeps the
// same map and inspection pool, with an nDPI flow state per inspection
// (dpi/ndpi_module.hpp, built when WEIR_HAVE_NDPI).
#include <weir/engine/dpi_stage.hpp>

#include <weir/core/ndpi_vocab.hpp>

#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/ndpi_compat.hpp>
#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/ssh.hpp>
#include <weir/engine/dpi/stun.hpp>
#include <weir/engine/dpi/tls.hpp>

#if WEIR_HAVE_NDPI
#include "dpi/ndpi_module.hpp"
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <vector>

namespace weir::engine {

namespace {

namespace d = weir::engine::dpi;

constexpr uint32_t kNone = 0xFFFFFFFFu;
constexpr uint32_t kMaxSize = 1u << 24;

template <std::size_t N>
void copy_text(char (&dst)[N], std::string_view s) noexcept
{
    std::size_t n = std::min(s.size(), N - 1);
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

/// Parser progress of one flow under inspection.
struct Inspection {
    uint32_t tls[2];          ///< TLS buffer per side (A, B), kNone when not taken; UDP: QUIC/DTLS assembler
    uint8_t tls_done[2];
    uint8_t http_response_seen;
    uint8_t dns_response_seen;
    uint8_t url_seen;
    uint8_t http_more;        ///< request headers continue: kHttpMore* bits, side in bit 2
    uint16_t packets;         ///< level 2: packets given to nDPI
    uint32_t next_free;
    uint8_t http_host_checked;///< the first request with a URL and a Host had its Host checked (numeric IP risk)
    void* ndpi;               ///< level 2: the nDPI flow state (NdpiModule::Flow)
};

constexpr uint8_t kHttpMoreHost = 1; ///< the request so far had no Host
constexpr uint8_t kHttpMoreUa = 2;   ///< ... no User-Agent

/// TCP timing of a flow (see track()): handshake halves and the server's
/// response time, measured from the flow's SYN while its entry lives.
enum TimingState : uint8_t {
    kTmNone = 0,     ///< nothing seen yet (entry made by this packet)
    kTmSyn,          ///< SYN seen from side `client`, at t
    kTmSynAck,       ///< first SYN/ACK after it, at t; server half known
    kTmEstablished,  ///< the client's ACK; client half known
    kTmRequest,      ///< the client's first payload, at t
    kTmDone,         ///< measured, or cannot be (mid-stream, simultaneous open)
};

struct Timing {
    uint64_t t;              ///< time of the state's packet (ns)
    uint32_t server_us;      ///< SERVER_NW_LATENCY (RTT/2), 0 = not measured
    uint32_t client_us;      ///< CLIENT_NW_LATENCY (RTT/2)
    uint32_t appl_us;        ///< APPL_LATENCY
    uint8_t state;           ///< TimingState
    uint8_t client;          ///< side (0 = A) that sent the SYN
    uint8_t pad_[2];
};

struct Entry {
    FlowKey key;
    uint32_t hash;
    uint32_t insp;            ///< Inspection index, kNone when released (level 1: none until the first payload)
    uint8_t payloads[2];      ///< payloads inspected per side (A, B)
    uint8_t done;             ///< inspection over: later packets are not looked at
    uint8_t found;            ///< a protocol was detected
    uint32_t next_free;
    uint32_t flow;            ///< flow mode: the flow table entry it belongs to
    Timing tm;
    L7Info l7;
};

/// Nanoseconds to microseconds, saturated to 32 bits; at least 1 so that a
/// measured latency below 1 us does not read as "not measured".
uint32_t to_us(uint64_t ns) noexcept
{
    const uint64_t us = ns / 1000;
    return us == 0 ? 1 : us > 0xFFFFFFFFu ? 0xFFFFFFFFu : static_cast<uint32_t>(us);
}

// Entries live in calloc'd memory (implicit-lifetime objects).
static_assert(std::is_trivially_copyable_v<Entry> && std::is_trivially_destructible_v<Entry>);

void set_name(L7Info& l7, d::AppProtocol p) noexcept
{
    l7.app = static_cast<uint16_t>(p);
    l7.master = 0;
    l7.guessed = 0;
    l7.category = d::app_protocol_category(p);
    l7.confidence = ndpi_vocab::kConfidenceDpi;
    copy_text(l7.name, d::app_protocol_name(p));
}

void set_hostname(L7Info& l7, std::string_view v, bool overwrite) noexcept
{
    d::FixedString<256> h;
    d::ndpi_hostname(v, h);
    if (h.empty() || (!overwrite && l7.server_name[0]))
        return;
    copy_text(l7.server_name, h.view());
}

/// nDPI's host name drops the port of the Host header (not an IPv6 literal's colons).
std::string_view host_without_port(std::string_view host) noexcept
{
    if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon)
        host = host.substr(0, colon);
    return host;
}

/// nDPI's "HTTP Numeric IP Address": the Host of the flow's first request
/// with a URL, when it starts with a digit, is under 21 characters and,
/// without its ":port", is an IPv4 address in canonical dotted-quad form
/// (what inet_addr() then inet_ntoa() give back unchanged).
bool http_host_is_numeric_ip(std::string_view host) noexcept
{
    if (host.empty() || host.size() >= 21 || host[0] < '0' || host[0] > '9')
        return false;
    if (const auto colon = host.find(':'); colon != std::string_view::npos)
        host = host.substr(0, colon);
    unsigned parts = 0;
    std::size_t i = 0;
    while (i < host.size()) {
        std::size_t j = i;
        unsigned v = 0;
        while (j < host.size() && host[j] >= '0' && host[j] <= '9' && j - i < 3)
            v = v * 10 + static_cast<unsigned>(host[j++] - '0');
        // One to three digits, no leading zero but "0" itself, at most 255.
        if (j == i || v > 255 || (host[i] == '0' && j - i > 1))
            return false;
        ++parts;
        if (j == host.size())
            break;
        if (host[j] != '.' || parts == 4)
            return false;
        i = j + 1;
        if (i == host.size())
            return false;
    }
    return parts == 4;
}

bool is_stun(const L7Info& l7) noexcept
{
    constexpr auto kStun = static_cast<uint16_t>(d::AppProtocol::Stun);
    return l7.app == kStun || l7.master == kStun;
}

// A STUN message: the flow is STUN (nDPI's "STUN.Sub" once an attribute
// sub-classifies it; later plain messages keep the sub-protocol), REALM is
// its host name. A flow already found as another protocol (a DTLS hello
// after the ICE checks) stays that protocol.
void take_stun(L7Info& l7, uint8_t& found, const d::StunMessage& m) noexcept
{
    if (found && !is_stun(l7))
        return;
    set_hostname(l7, m.realm.view(), false);
    if (m.sub != d::AppProtocol::Unknown && l7.master == 0) {
        set_name(l7, m.sub); // the application's category, as nDPI gives
        l7.master = static_cast<uint16_t>(d::AppProtocol::Stun);
        d::FixedString<sizeof(L7Info::name)> name;
        name.assign(std::string_view("STUN."));
        name.append(d::app_protocol_name(m.sub));
        copy_text(l7.name, name.view());
    } else if (!found) {
        set_name(l7, d::AppProtocol::Stun);
    }
    found = 1;
}

} // namespace

struct DpiStage::Impl {
    DpiConfig cfg;
    DpiStats stats;
    std::vector<uint64_t> index;         ///< by key: flow hash << 32 | entry + 1, 0 = empty; linear probing
    uint32_t mask = 0;
    struct FreeDeleter {
        void operator()(void* p) const noexcept { std::free(p); }
    };
    /// Flow mode: entry + 1 of each flow table entry, 0 = none (calloc'd:
    /// mapped where the table's entries are used).
    std::unique_ptr<uint32_t[], FreeDeleter> by_flow;
    std::unique_ptr<Entry[], FreeDeleter> entries;
    std::unique_ptr<Inspection[]> insps;
    std::unique_ptr<d::TlsStream[]> tls;
    std::vector<uint32_t> tls_free;
    std::unique_ptr<d::HelloAssembler[]> hellos; ///< QUIC CRYPTO / DTLS fragments spanning datagrams
    std::vector<uint32_t> hello_free;
    uint32_t entry_free = kNone, insp_free = kNone;
    uint32_t nentries = 0, ninsps = 0;
    uint32_t entries_touched = 0;          ///< entries never used lie past this mark, unmapped
    /// Hashes of flows recently refused (full map or pool): a refused flow
    /// is counted once, not at every payload it sends, without keeping
    /// state per flow. A flow pushed out of this cache is counted again.
    std::array<uint32_t, 4096> refused{};
    /// Entries waiting for the client's ACK of a handshake (kTmSynAck), by
    /// hash: a pure ACK is looked up only when its slot counts one, so the
    /// ACKs of established flows cost no map lookup. Counts, not flags: no
    /// waiting flow is ever missed, a collision only costs a lookup.
    std::array<uint16_t, 16384> ack_wait{};
#if WEIR_HAVE_NDPI
    std::unique_ptr<d::NdpiModule> ndpi;
#endif
    L7Notify notify_fn = nullptr;
    void* notify_ctx = nullptr;

    // The hook hears of a flow's first detection and of its inspection's
    // end (final name, or nothing found): not of every packet.
    void notify(const Entry& e, const PacketMeta& m, bool was_found, bool ended) const noexcept
    {
        static const L7Info kNothing{};
        if (!notify_fn)
            return;
        if (ended)
            notify_fn(notify_ctx, m, e.found ? e.l7 : kNothing);
        else if (e.found && !was_found)
            notify_fn(notify_ctx, m, e.l7);
    }

    uint16_t& ack_slot(uint32_t hash) noexcept { return ack_wait[(hash ^ (hash >> 14)) & (ack_wait.size() - 1)]; }

    void set_timing(Entry& e, uint8_t st) noexcept
    {
        if (e.tm.state == kTmSynAck)
            --ack_slot(e.hash);
        if (st == kTmSynAck)
            ++ack_slot(e.hash);
        e.tm.state = st;
    }

    // The TCP timing of one packet of the flow (any level, payload or not).
    // SYN: (re)starts the measurement, so a retransmitted SYN counts from
    // the last one (as Wireshark's initial RTT). The first SYN/ACK from the
    // other side after it gives the server half, the client's first ACK
    // after that the client half (both RTT/2, as nProbe). Then the client's
    // first payload and the server's first payload after it give the
    // application latency. A flow whose first packet was not a SYN
    // (mid-stream), or a simultaneous open, is not measured.
    void track(Entry& e, const PacketMeta& m) noexcept
    {
        Timing& tm = e.tm;
        if (tm.state == kTmDone || m.key.proto != 6)
            return;
        const uint8_t f = m.tcp_flags;
        const uint8_t side = m.src_is_a ? 0 : 1;
        if (f & kTcpSyn) {
            if (!(f & kTcpAck)) {
                if (tm.state == kTmNone || (tm.state <= kTmSynAck && side == tm.client)) {
                    tm.client = side;
                    tm.t = m.ts_ns;
                    tm.server_us = 0;
                    set_timing(e, kTmSyn);
                } else if (tm.state <= kTmSynAck) {
                    set_timing(e, kTmDone); // both sides sent a SYN
                }
            } else if (tm.state == kTmSyn && side != tm.client) {
                tm.server_us = to_us(m.ts_ns > tm.t ? (m.ts_ns - tm.t) / 2 : 0);
                tm.t = m.ts_ns;
                set_timing(e, kTmSynAck);
            } else if (tm.state == kTmNone) {
                set_timing(e, kTmDone); // the SYN was not seen
            }
            return;
        }
        if (tm.state == kTmNone || tm.state == kTmSyn) {
            // A first packet without SYN, or no SYN/ACK before the client
            // went on: nothing to measure.
            if (tm.state == kTmNone || side == tm.client)
                set_timing(e, kTmDone);
            return;
        }
        if (tm.state == kTmSynAck) {
            if (side != tm.client || !(f & kTcpAck))
                return;
            tm.client_us = to_us(m.ts_ns > tm.t ? (m.ts_ns - tm.t) / 2 : 0);
            set_timing(e, kTmEstablished);
        }
        if (m.l4_payload_len == 0 || m.is_fragment)
            return;
        if (tm.state == kTmEstablished && side == tm.client) {
            tm.t = m.ts_ns;
            set_timing(e, kTmRequest);
        } else if (tm.state == kTmRequest && side != tm.client) {
            tm.appl_us = to_us(m.ts_ns > tm.t ? m.ts_ns - tm.t : 0);
            set_timing(e, kTmDone);
        }
    }

    /// A new entry for `m`'s flow at `pos` (what lookup() returned it),
    /// without inspection.
    Entry& new_entry(uint32_t ei, uint32_t pos, const PacketMeta& m) noexcept
    {
        Entry& e = entries[ei];
        ++nentries;
        std::memset(static_cast<void*>(&e), 0, sizeof(e));
        e.key = m.key;
        e.hash = m.hash;
        e.insp = kNone;
        if (by_flow) {
            e.flow = pos;
            by_flow[pos] = ei + 1;
        } else {
            e.flow = kNone;
            index[pos] = uint64_t{m.hash} << 32 | (ei + 1);
        }
        return e;
    }

    /// The entry of the flow with key k (flow mode: at flow table entry
    /// `flow`), kNone when it has none. `pos` is where a new entry for it
    /// goes (new_entry(), remove()); lookup() refuses (kNone, and `pos`
    /// kNone) a flow mode call without a flow entry.
    uint32_t lookup(const FlowKey& k, uint32_t hash, uint32_t flow, uint32_t& pos) noexcept
    {
        if (!by_flow)
            return find(k, hash, pos);
        pos = flow < cfg.flow_slots ? flow : kNone;
        if (pos == kNone)
            return kNone;
        const uint32_t v = by_flow[flow];
        if (v == 0)
            return kNone;
        if (entries[v - 1].key == k) // the hash follows from the key
            return v - 1;
        // The table gave its entry to another flow without the end of this
        // one reaching finish(): that state is stale, it goes.
        ++stats.stale;
        drop(v - 1);
        return kNone;
    }
    /// lookup() that changes nothing (a stale entry reads as none).
    uint32_t peek(const FlowKey& k, uint32_t hash, uint32_t flow) const noexcept
    {
        uint32_t pos;
        if (!by_flow)
            return find(k, hash, pos);
        if (flow >= cfg.flow_slots || by_flow[flow] == 0)
            return kNone;
        const uint32_t ei = by_flow[flow] - 1;
        return entries[ei].key == k ? ei : kNone;
    }
    /// Takes entry ei out of the map (pos: where lookup() found it) and frees it.
    void remove(uint32_t ei, uint32_t pos) noexcept
    {
        if (by_flow)
            by_flow[entries[ei].flow] = 0;
        else
            erase_at(pos);
        entries[ei].next_free = entry_free;
        entry_free = ei;
        --nentries;
    }
    /// Flow mode: a stale entry's state goes, unexported.
    void drop(uint32_t ei) noexcept
    {
        Entry& e = entries[ei];
        set_timing(e, kTmDone);
        release_inspection(e);
        remove(ei, e.flow);
    }

    /// Takes an inspection for entry e; false when the pool is empty.
    bool take_inspection(Entry& e) noexcept
    {
        if (insp_free == kNone)
            return false;
        const uint32_t ii = insp_free;
        Inspection& in = insps[ii];
        insp_free = in.next_free;
        ++ninsps;
        e.insp = ii;
        std::memset(static_cast<void*>(&in), 0, sizeof(in));
        in.tls[0] = in.tls[1] = kNone;
        ++stats.inspected;
        return true;
    }

    void count_refused(uint32_t hash) noexcept
    {
        uint32_t& slot = refused[(hash ^ (hash >> 12)) & (refused.size() - 1)];
        if (slot != hash + 1) {
            slot = hash + 1;
            ++stats.not_inspected;
        }
    }

    uint32_t alloc_entry() noexcept
    {
        if (entry_free != kNone) {
            uint32_t e = entry_free;
            entry_free = entries[e].next_free;
            return e;
        }
        return entries_touched < cfg.max_flows ? entries_touched++ : kNone;
    }

    uint32_t find(const FlowKey& k, uint32_t hash, uint32_t& pos) const noexcept
    {
        for (pos = hash & mask;; pos = (pos + 1) & mask) {
            // The hash in the slot: an entry is read only when it matches.
            const uint64_t v = index[pos];
            const auto e1 = static_cast<uint32_t>(v);
            if (e1 == 0)
                return kNone;
            if (static_cast<uint32_t>(v >> 32) == hash && entries[e1 - 1].key == k)
                return e1 - 1;
        }
    }

    // Backward-shift deletion keeps probe chains intact without tombstones.
    void erase_at(uint32_t pos) noexcept
    {
        uint32_t hole = pos;
        for (uint32_t j = (pos + 1) & mask; index[j] != 0; j = (j + 1) & mask) {
            uint32_t home = static_cast<uint32_t>(index[j] >> 32) & mask;
            // Move j into the hole when its home is not in (hole, j].
            bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!between) {
                index[hole] = index[j];
                hole = j;
            }
        }
        index[hole] = 0;
    }

    void release_inspection(Entry& e) noexcept
    {
        if (e.insp == kNone)
            return;
        Inspection& in = insps[e.insp];
#if WEIR_HAVE_NDPI
        if (in.ndpi) {
            ndpi->free_flow(static_cast<d::NdpiModule::Flow*>(in.ndpi));
            in.ndpi = nullptr;
        }
#endif
        for (uint32_t& t : in.tls)
            if (t != kNone) {
                // Capacity reserved at create(): no allocation.
                (e.key.proto == 17 ? hello_free : tls_free).push_back(t);
                t = kNone;
            }
        in.next_free = insp_free;
        insp_free = e.insp;
        --ninsps;
        e.insp = kNone;
    }

    void inspect_tls(Entry& e, Inspection& in, int side, d::Bytes payload) noexcept
    {
        if (in.tls_done[side])
            return;
        d::ParseStatus st;
        uint32_t& t = in.tls[side];
        const d::TlsStream* stream = nullptr;
        if (t == kNone) {
            payload = d::tls_skip_leading_records(payload);
            if (payload.empty() || payload[0] != 0x16) {
                return;
            }
            // Most handshakes fit one segment: parse in place, and take a
            // reassembly buffer only when the message continues.
            d::TlsClientHello ch;
            d::TlsServerHello sh;
            st = d::parse_tls_client_hello(payload, ch);
            if (st == d::ParseStatus::Ok) {
                in.tls_done[side] = 1;
                take_client_hello(e, ch);
                return;
            }
            if (st == d::ParseStatus::Malformed)
                take_malformed_client_hello(e, ch);
            if (st == d::ParseStatus::NotMatched) {
                st = d::parse_tls_server_hello(payload, sh);
                if (st == d::ParseStatus::Ok) {
                    in.tls_done[side] = 1;
                    take_server_hello(e, sh);
                    return;
                }
            }
            if (tls_free.empty()) {
                ++stats.tls_stream_full;
                in.tls_done[side] = 1;
                return;
            }
            t = tls_free.back();
            tls_free.pop_back();
            tls[t].reset();
        }
        d::TlsStream& s = tls[t];
        st = s.feed(payload);
        if (st == d::ParseStatus::NeedMore)
            return;
        in.tls_done[side] = 1;
        stream = &s;
        if (st == d::ParseStatus::Ok) {
            if (stream->message_type() == d::kTlsHandshakeClientHello) {
                d::TlsClientHello ch;
                const d::ParseStatus cs = d::parse_client_hello_message(stream->message(), d::TlsTransport::Tcp, ch);
                if (cs == d::ParseStatus::Ok)
                    take_client_hello(e, ch);
                else if (cs == d::ParseStatus::Malformed)
                    take_malformed_client_hello(e, ch);
            } else if (stream->message_type() == d::kTlsHandshakeServerHello) {
                d::TlsServerHello sh;
                if (d::parse_server_hello_message(stream->message(), sh) == d::ParseStatus::Ok)
                    take_server_hello(e, sh);
            }
        }
        tls_free.push_back(t);
        t = kNone;
    }

    static void take_client_hello(Entry& e, const d::TlsClientHello& ch,
                                  d::AppProtocol p = d::AppProtocol::Tls) noexcept
    {
        set_hostname(e.l7, ch.sni.view(), false);
        // nDPI 4.2's TLS dissector, on each ClientHello: the handshake's
        // version (not supported_versions) decides; DTLS versions (0xfeXX)
        // are never "obsolete".
        flag_obsolete_version(e, ch.legacy_version);
        if (ch.legacy_version >= 0x0303 && !ch.alpn_present)
            e.l7.risk |= 1ULL << ndpi_vocab::kRiskTlsNotCarryingHttps;
        if (e.l7.server_name[0] == 0 && ch.legacy_version >= 0x0302 && !ch.esni_present)
            e.l7.risk |= 1ULL << ndpi_vocab::kRiskTlsMissingSni;
        if (!e.l7.ja3c[0])
            copy_text(e.l7.ja3c, ch.ja3);
        if (!e.l7.ja4[0])
            copy_text(e.l7.ja4, ch.ja4);
        set_name(e.l7, p);
        e.found = 1;
    }

    static void flag_obsolete_version(Entry& e, uint16_t version) noexcept
    {
        if (version < 0x0303)
            e.l7.risk |= 1ULL << ndpi_vocab::kRiskTlsObsoleteVersion;
    }

    // A ClientHello whose lengths do not add up: nDPI has read its version
    // (and flagged an obsolete one) before it checks them.
    static void take_malformed_client_hello(Entry& e, const d::TlsClientHello& ch) noexcept
    {
        if (ch.legacy_version != 0) // 0: the version itself could not be read
            flag_obsolete_version(e, ch.legacy_version);
    }

    static void take_server_hello(Entry& e, const d::TlsServerHello& sh,
                                  d::AppProtocol p = d::AppProtocol::Tls) noexcept
    {
        if (!e.l7.ja3s[0])
            copy_text(e.l7.ja3s, sh.ja3s);
        if (d::tls_cipher_safety(sh.cipher) == 1)
            e.l7.risk |= 1ULL << ndpi_vocab::kRiskTlsWeakCipher;
        set_name(e.l7, p);
        e.found = 1;
    }

    // UDP hellos: QUIC client Initials, DTLS ClientHello / ServerHello, and
    // Google QUIC's clear CHLO. The first datagram is read into a stack
    // assembler; an assembler from the pool is taken only when the hello
    // continues in a later datagram (a ClientHello over two Initials).
    void inspect_udp_hello(Entry& e, Inspection& in, int side, d::Bytes payload) noexcept
    {
        if (in.tls_done[side])
            return;
        const bool quic = d::quic_looks_initial(payload);
        uint32_t& t = in.tls[side];
        if (!quic && !d::dtls_looks_handshake(payload)) {
            d::GquicChlo chlo;
            if (t == kNone && d::parse_gquic_chlo(payload, chlo) == d::ParseStatus::Ok) {
                in.tls_done[side] = 1;
                set_hostname(e.l7, chlo.sni.view(), false);
                // nDPI's gQUIC CHLO check: no SNI tag is "Missing SNI" too.
                if (e.l7.server_name[0] == 0)
                    e.l7.risk |= 1ULL << ndpi_vocab::kRiskTlsMissingSni;
                if (!e.l7.user_agent[0])
                    copy_text(e.l7.user_agent, chlo.uaid.view());
                set_name(e.l7, d::AppProtocol::Quic);
                e.found = 1;
            }
            return;
        }
        d::HelloAssembler local;
        d::HelloAssembler* h = &local;
        if (t != kNone)
            h = &hellos[t];
        d::ParseStatus st;
        if (quic) {
            d::QuicDatagramInfo info;
            st = d::quic_read_initial(payload, *h, info);
            // A server Initial (other keys), a short-header packet: the
            // client's next datagram may still carry the hello.
            if (st == d::ParseStatus::NotMatched ||
                (st == d::ParseStatus::Malformed && info.give_up == d::QuicGiveUp::DecryptFailed)) {
                if (st == d::ParseStatus::Malformed)
                    ++stats.hello_gave_up;
                return;
            }
        } else {
            d::DtlsDatagramInfo info;
            st = d::dtls_read_handshake(payload, *h, info);
            // A corrupt datagram before any fragment was placed (the
            // assembler untouched): the client's retransmission may be
            // whole, so the direction stays open, as for QUIC above.
            if (st == d::ParseStatus::Malformed && info.fragments == 0) {
                ++stats.hello_gave_up;
                return;
            }
        }
        if (st == d::ParseStatus::NeedMore) {
            if (t != kNone)
                return;
            if (hello_free.empty()) {
                ++stats.tls_stream_full;
                in.tls_done[side] = 1;
                return;
            }
            t = hello_free.back();
            hello_free.pop_back();
            hellos[t] = local;
            return;
        }
        in.tls_done[side] = 1;
        if (st == d::ParseStatus::Ok) {
            const d::AppProtocol p = quic ? d::AppProtocol::Quic : d::AppProtocol::Dtls;
            d::TlsClientHello ch;
            d::TlsServerHello sh;
            if (d::parse_client_hello_message(h->message(), quic ? d::TlsTransport::Quic : d::TlsTransport::Dtls,
                                              ch) == d::ParseStatus::Ok) {
                take_client_hello(e, ch, p);
                d::FixedString<256> ua;
                if (quic && !e.l7.user_agent[0] && d::quic_user_agent(h->message(), ua) == d::ParseStatus::Ok)
                    copy_text(e.l7.user_agent, ua.view());
            }
            else if (d::parse_server_hello_message(h->message(), sh) == d::ParseStatus::Ok)
                take_server_hello(e, sh, p);
            else
                ++stats.hello_gave_up;
        } else {
            ++stats.hello_gave_up;
        }
        if (t != kNone) {
            hello_free.push_back(t);
            t = kNone;
        }
    }

    // nDPI's DNS dissector takes the name from the response when it sees
    // one, else from the query.
    static void inspect_dns(Entry& e, Inspection& in, const d::DnsMessage& m) noexcept
    {
        if (in.dns_response_seen || m.qname.empty() || !d::ndpi_dns_plausible(m, m.flags))
            return;
        d::FixedString<256> name;
        d::ndpi_dns_name(m.qname.view(), name);
        copy_text(e.l7.server_name, name.view());
        e.l7.dns_qtype = m.qtype;
        if (m.is_response) {
            in.dns_response_seen = 1;
            e.l7.dns_rcode = m.rcode;
        }
        const uint16_t sp = e.key.port_a, dp = e.key.port_b;
        set_name(e.l7, (sp == 5353 || dp == 5353) ? d::AppProtocol::Mdns : d::AppProtocol::Dns);
        e.found = 1;
    }

    void inspect_payload(Entry& e, Inspection& in, int side, d::Bytes payload) noexcept
    {
        const bool dns_port = e.key.port_a == 53 || e.key.port_b == 53;
        if (e.key.proto == 6) {
            inspect_tls(e, in, side, payload);
            // nDPI keeps the fields of the last request seen before the
            // first response ends its HTTP dissection.
            d::HttpRequest req;
            d::HttpResponse resp;
            if (!in.http_response_seen && d::parse_http_request(payload, req) == d::ParseStatus::Ok) {
                d::FixedString<1024> url;
                d::http_url(req, url);
                copy_text(e.l7.url, url.view());
                copy_text(e.l7.user_agent, req.user_agent.view());
                e.l7.http_method = ndpi_vocab::http_method_id(req.method.view());
                set_hostname(e.l7, host_without_port(req.host.view()), true);
                if (!in.http_host_checked && !req.host.empty() && !url.empty()) {
                    in.http_host_checked = 1;
                    if (http_host_is_numeric_ip(req.host.view()))
                        e.l7.risk |= 1ULL << ndpi_vocab::kRiskHttpNumericIpHost;
                }
                in.url_seen = 1;
                // Headers cut by the segment end (a long request line, a
                // request sent in pieces): nDPI reads the lines of the
                // direction's next segments too.
                in.http_more = 0;
                if (!req.headers_complete)
                    in.http_more = static_cast<uint8_t>((req.host.empty() ? kHttpMoreHost : 0) |
                                                        (req.user_agent.empty() ? kHttpMoreUa : 0) | side << 2);
                if ((in.http_more & 3) == 0)
                    in.http_more = 0;
                set_name(e.l7, req.method.view() == "CONNECT" ? d::AppProtocol::HttpConnect : d::AppProtocol::Http);
                e.found = 1;
            } else if (in.url_seen && d::parse_http_response(payload, resp) == d::ParseStatus::Ok) {
                in.http_response_seen = 1;
                e.l7.http_status = resp.status;
            } else if (in.http_more && !in.http_response_seen && (in.http_more >> 2) == side) {
                d::HttpRequest more;
                d::http_continue_headers(payload, more);
                if ((in.http_more & kHttpMoreHost) && !more.host.empty()) {
                    set_hostname(e.l7, host_without_port(more.host.view()), true);
                    in.http_more &= static_cast<uint8_t>(~kHttpMoreHost);
                }
                if ((in.http_more & kHttpMoreUa) && !more.user_agent.empty()) {
                    copy_text(e.l7.user_agent, more.user_agent.view());
                    in.http_more &= static_cast<uint8_t>(~kHttpMoreUa);
                }
                if (more.headers_complete || (in.http_more & 3) == 0)
                    in.http_more = 0;
            }
            d::DnsMessage dns;
            if (dns_port && d::parse_dns_tcp(payload, dns) != d::ParseStatus::NotMatched)
                inspect_dns(e, in, dns);
            if (!e.found) {
                d::SshBanner ssh;
                if (d::parse_ssh_banner(payload, ssh) == d::ParseStatus::Ok) {
                    set_name(e.l7, d::AppProtocol::Ssh);
                    e.found = 1;
                }
            }
            if ((!e.found || is_stun(e.l7)) && d::stun_tcp_may_be(payload)) {
                d::StunMessage stun;
                if (d::parse_stun_tcp(payload, stun) == d::ParseStatus::Ok)
                    take_stun(e.l7, e.found, stun);
            }
        } else if (e.key.proto == 17) {
            d::DnsMessage dns;
            if (dns_port && d::parse_dns(payload, dns) == d::ParseStatus::Ok)
                inspect_dns(e, in, dns);
            else if (!take_udp_stun(e, payload))
                inspect_udp_hello(e, in, side, payload);
        }
    }

    // STUN over UDP; false when the datagram is not STUN.
    static bool take_udp_stun(Entry& e, d::Bytes payload) noexcept
    {
        if (!d::stun_may_be(payload))
            return false;
        d::StunMessage m;
        if (d::parse_stun(payload, m) != d::ParseStatus::Ok)
            return false;
        take_stun(e.l7, e.found, m);
        return true;
    }

    // Detection ends once nothing more can change the result.
    static bool complete(const Entry& e, const Inspection& in) noexcept
    {
        if (in.http_response_seen || in.dns_response_seen)
            return true;
        // QUIC: the server's hello is encrypted; the client's is all there is.
        if (e.l7.app == static_cast<uint16_t>(d::AppProtocol::Quic))
            return e.l7.ja3c[0] || e.l7.user_agent[0];
        return e.l7.ja3c[0] && e.l7.ja3s[0];
    }

    // Level 2: the entry and its inspection for a packet's flow, made at its
    // first packet; nullptr when the flow is done or cannot be inspected.
    Entry* ndpi_entry(const PacketMeta& m, uint32_t flow) noexcept
    {
        uint32_t pos;
        uint32_t ei = lookup(m.key, m.hash, flow, pos);
        if (pos == kNone)
            return nullptr;
        if (ei != kNone) {
            Entry& e = entries[ei];
            track(e, m);
            return e.done ? nullptr : &e;
        }
#if WEIR_HAVE_NDPI
        if (insp_free == kNone || (ei = alloc_entry()) == kNone) {
            count_refused(m.hash);
            return nullptr;
        }
        void* state = ndpi->new_flow();
        if (!state) {
            // Out of memory: the entry goes back, the flow is not inspected.
            entries[ei].next_free = entry_free;
            entry_free = ei;
            count_refused(m.hash);
            return nullptr;
        }
        Entry& e = new_entry(ei, pos, m);
        take_inspection(e);
        insps[e.insp].ndpi = state;
        track(e, m);
        return &e;
#else
        return nullptr;
#endif
    }

    void inspect_ndpi(const PacketMeta& m, std::span<const uint8_t> ip, uint32_t flow) noexcept
    {
        if (ip.empty())
            return;
        // As ndpiReader: an IPv4 first fragment goes to nDPI (it reads the
        // L4 header there), later ones do not. IPv6 fragments are skipped.
        if (m.is_fragment && !(ip.size() >= 20 && (ip[0] >> 4) == 4 && ((ip[6] & 0x1f) | ip[7]) == 0))
            return;
        Entry* e = ndpi_entry(m, flow);
        if (!e)
            return;
#if WEIR_HAVE_NDPI
        Inspection& in = insps[e->insp];
        const bool was_found = e->found;
        ++in.packets;
        ++stats.payloads;
        const uint16_t bound = m.key.proto == 6 ? cfg.ndpi_tcp_packets : cfg.ndpi_udp_packets;
        const auto st = ndpi->process(static_cast<d::NdpiModule::Flow*>(in.ndpi), ip.data(),
                                      static_cast<uint32_t>(ip.size()), m.ts_ns / 1000000, in.packets > bound, e->l7);
        if (st.found)
            e->found = 1;
        if (st.done) {
            e->done = 1;
            if (e->found)
                ++stats.detected;
            if (st.gave_up)
                ++stats.gave_up;
            release_inspection(*e);
        }
        notify(*e, m, was_found, st.done);
#endif
    }
};

Result<std::unique_ptr<DpiStage>> DpiStage::create(const DpiConfig& cfg)
{
    if (cfg.level > 2)
        return invalid("DPI level must be 0, 1 or 2");
    if (cfg.max_inspections == 0 || cfg.max_flows == 0 || cfg.tls_streams == 0 || cfg.packets_per_direction == 0 ||
        cfg.ndpi_tcp_packets == 0 || cfg.ndpi_udp_packets == 0)
        return invalid("DPI sizes must be positive");
    if (cfg.ndpi_tcp_packets > 10000 || cfg.ndpi_udp_packets > 10000)
        return invalid("nDPI packet bounds must be at most 10000");
    if (cfg.max_inspections > kMaxSize || cfg.max_flows > kMaxSize || cfg.tls_streams > kMaxSize)
        return invalid("DPI sizes must be at most 2^24");
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    if (cfg.level == 0)
        return std::unique_ptr<DpiStage>(new DpiStage(std::move(impl)));
    if (cfg.level == 2) {
#if WEIR_HAVE_NDPI
        auto mod = d::NdpiModule::create(cfg.ndpi_protocols_file);
        if (!mod)
            return mod.error();
        impl->ndpi = std::move(mod.value());
#else
        return from_errno(ENOTSUP, "DPI level 2 (nDPI): this build has no libndpi (install libndpi-dev and reconfigure)");
#endif
    }
    try {
        if (cfg.flow_slots) {
            impl->by_flow.reset(static_cast<uint32_t*>(std::calloc(cfg.flow_slots, sizeof(uint32_t))));
            if (!impl->by_flow)
                throw std::bad_alloc();
        } else {
            uint32_t slots = 16;
            while (slots < 2 * cfg.max_flows)
                slots <<= 1;
            impl->index.assign(slots, 0);
            impl->mask = slots - 1;
        }
        // Left uninitialised: large blocks are mapped as they are used.
        // calloc: a large block comes as zero pages mapped on first use, and
        // entries are taken in order (alloc_entry), so memory follows the
        // number of flows ever inspected at once, not max_flows.
        impl->entries.reset(static_cast<Entry*>(std::calloc(cfg.max_flows, sizeof(Entry))));
        if (!impl->entries)
            throw std::bad_alloc();
        impl->insps = std::make_unique_for_overwrite<Inspection[]>(cfg.max_inspections);
        impl->tls = std::make_unique_for_overwrite<d::TlsStream[]>(cfg.tls_streams);
        impl->tls_free.reserve(cfg.tls_streams);
        impl->hellos = std::make_unique_for_overwrite<d::HelloAssembler[]>(cfg.tls_streams);
        impl->hello_free.reserve(cfg.tls_streams);
    } catch (const std::bad_alloc&) {
        return from_errno(ENOMEM, "cannot allocate the DPI stage");
    }
    for (uint32_t i = cfg.tls_streams; i-- > 0;) {
        impl->tls_free.push_back(i);
        impl->hello_free.push_back(i);
    }
    for (uint32_t i = cfg.max_inspections; i-- > 0;) {
        impl->insps[i].ndpi = nullptr;
        impl->insps[i].next_free = impl->insp_free;
        impl->insp_free = i;
    }
    return std::unique_ptr<DpiStage>(new DpiStage(std::move(impl)));
}

DpiStage::DpiStage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DpiStage::~DpiStage()
{
    // nDPI flow states are malloc'd: free those of flows never finished.
    Impl& s = *impl_;
    if (s.cfg.level == 2 && s.entries)
        for (uint32_t i = 0; i < s.entries_touched; ++i)
            if (s.entries[i].insp != kNone && s.insps[s.entries[i].insp].ndpi)
                s.release_inspection(s.entries[i]);
}

std::span<const uint8_t> DpiStage::input(uint8_t level, const PacketMeta& m, const uint8_t* frame,
                                         uint32_t caplen) noexcept
{
    if (level == 2) {
        if (m.l3_offset >= caplen)
            return {};
        return {frame + m.l3_offset, std::min<std::size_t>(caplen - m.l3_offset, 0xffff)};
    }
    if (m.l4_payload_len == 0 || m.l4_payload_offset == 0 || m.l4_payload_offset >= caplen)
        return {};
    return {frame + m.l4_payload_offset, std::min<std::size_t>(m.l4_payload_len, caplen - m.l4_payload_offset)};
}

bool DpiStage::wants(const PacketMeta& m, uint32_t flow) const noexcept
{
    const Impl& s = *impl_;
    if (s.by_flow && flow >= s.cfg.flow_slots)
        return false;
    if (s.cfg.level == 2) {
        uint32_t e = s.peek(m.key, m.hash, flow);
        return e == kNone || !s.entries[e].done;
    }
    if (s.cfg.level == 0 || m.l4_payload_len == 0 || m.is_fragment || (m.key.proto != 6 && m.key.proto != 17))
        return false;
    uint32_t e = s.peek(m.key, m.hash, flow);
    if (e == kNone)
        return true;
    const Entry& en = s.entries[e];
    return !en.done && en.payloads[m.src_is_a ? 0 : 1] < s.cfg.packets_per_direction;
}

void DpiStage::inspect(const PacketMeta& m, std::span<const uint8_t> payload, uint32_t flow) noexcept
{
    Impl& s = *impl_;
    if (s.cfg.level == 2) {
        s.inspect_ndpi(m, payload, flow);
        return;
    }
    // ndpiReader skips non-first fragments: their payload is no L4 header's.
    if (s.cfg.level == 0 || payload.empty() || m.is_fragment || (m.key.proto != 6 && m.key.proto != 17))
        return;
    uint32_t pos;
    uint32_t ei = s.lookup(m.key, m.hash, flow, pos);
    if (pos == kNone)
        return;
    if (ei == kNone) {
        if (s.insp_free == kNone || (ei = s.alloc_entry()) == kNone) {
            s.count_refused(m.hash);
            return;
        }
        s.new_entry(ei, pos, m);
    }
    Entry& e = s.entries[ei];
    s.track(e, m);
    if (e.done)
        return;
    if (e.insp == kNone && !s.take_inspection(e)) {
        // Entry made at the SYN, no inspection left at the first payload.
        e.done = 1;
        s.count_refused(m.hash);
        return;
    }
    const int side = m.src_is_a ? 0 : 1;
    const uint8_t limit = s.cfg.packets_per_direction;
    if (e.payloads[side] >= limit)
        return;
    ++e.payloads[side];
    ++s.stats.payloads;
    Inspection& in = s.insps[e.insp];
    const bool was_found = e.found;
    s.inspect_payload(e, in, side, payload);
    if (Impl::complete(e, in) || (e.payloads[0] >= limit && e.payloads[1] >= limit)) {
        e.done = 1;
        if (e.found)
            ++s.stats.detected;
        s.release_inspection(e);
    }
    s.notify(e, m, was_found, e.done);
}

void DpiStage::observe(const PacketMeta& m, uint32_t flow) noexcept
{
    Impl& s = *impl_;
    if (s.cfg.level == 0 || m.key.proto != 6 || m.is_fragment)
        return;
    const uint8_t f = m.tcp_flags;
    if (!(f & kTcpSyn) && !((f & kTcpAck) && s.ack_slot(m.hash) != 0))
        return;
    uint32_t pos;
    uint32_t ei = s.lookup(m.key, m.hash, flow, pos);
    if (pos == kNone)
        return;
    if (ei == kNone) {
        // Level 1 keeps a flow from its SYN (level 2 from its first
        // packet, in inspect()), so the handshake is timed.
        if ((f & (kTcpSyn | kTcpAck)) != kTcpSyn || s.cfg.level != 1)
            return;
        if ((ei = s.alloc_entry()) == kNone) {
            s.count_refused(m.hash);
            return;
        }
        s.new_entry(ei, pos, m);
    }
    s.track(s.entries[ei], m);
}

void DpiStage::set_l7_notify(L7Notify fn, void* ctx) noexcept
{
    impl_->notify_fn = fn;
    impl_->notify_ctx = ctx;
}

void DpiStage::finish(FlowRecord& r) noexcept
{
    Impl& s = *impl_;
    if (s.cfg.level > 0 && s.nentries > 0) {
        uint32_t pos;
        uint32_t ei = s.lookup(r.key, s.by_flow ? 0 : flow_hash(r.key), r.table_entry, pos);
        if (ei != kNone) {
            Entry& e = s.entries[ei];
            const bool ending = r.end_reason != EndReason::ActiveTimeout;
#if WEIR_HAVE_NDPI
            // nDPI's last word on a flow it was still reading (ndpiReader
            // does the same for the flows left at the end of a capture).
            if (ending && !e.done && e.insp != kNone && s.insps[e.insp].ndpi) {
                L7Info l7;
                if (s.ndpi->give_up(static_cast<d::NdpiModule::Flow*>(s.insps[e.insp].ndpi), l7)) {
                    e.l7 = l7;
                    e.found = 1;
                }
            }
#endif
            if (e.found)
                r.l7 = e.l7;
            if (s.cfg.level == 1) {
                // A hello too broken to name the flow may still show a risk
                // (its version); nDPI mode's score is libndpi's, micro-DPI
                // sums its risks' scores.
                r.l7.risk = e.l7.risk;
                if (e.found && d::known_protocol_on_non_standard_port(r.key.proto, r.l7.master, r.l7.app,
                                                                      r.server_port(), r.client_port()))
                    r.l7.risk |= 1ULL << ndpi_vocab::kRiskKnownProtocolOnNonStandardPort;
                r.l7.risk_score = ndpi_vocab::risk_score(r.l7.risk);
            }
            // Timing: the SYN's sender is the client; a record that names
            // the other side client (roles swapped by the flow table) gets
            // the halves swapped, so each stays with its host.
            const bool syn_client_is_a = e.tm.client == 0;
            const bool same = syn_client_is_a == (r.client_is_a != 0);
            r.l7.client_nw_latency_us = same ? e.tm.client_us : e.tm.server_us;
            r.l7.server_nw_latency_us = same ? e.tm.server_us : e.tm.client_us;
            r.l7.appl_latency_us = e.tm.appl_us;
            if (ending) {
                if (!e.done && e.found)
                    ++s.stats.detected;
                s.set_timing(e, kTmDone);
                s.release_inspection(e);
                s.remove(ei, pos);
            }
            // nDPI read this flow: its answer (or its guess, or Unknown) stands.
            if (s.cfg.level == 2)
                return;
        }
    }
    guess_l7_by_port(r);
}

uint32_t DpiStage::flows() const noexcept { return impl_->nentries; }
uint32_t DpiStage::inspections() const noexcept { return impl_->ninsps; }
const DpiStats& DpiStage::stats() const noexcept { return impl_->stats; }
const DpiConfig& DpiStage::config() const noexcept { return impl_->cfg; }

void guess_l7_by_port(FlowRecord& r) noexcept
{
    if (r.l7.app != 0 && !r.l7.guessed)
        return;
    d::AppProtocol p = d::AppProtocol::Unknown;
    const uint8_t proto = r.key.proto;
    for (uint16_t port : {r.server_port(), r.client_port()}) {
        if (proto == 6) {
            switch (port) {
            case 53: p = d::AppProtocol::Dns; break;
            case 80: case 8080: p = d::AppProtocol::Http; break;
            case 443: p = d::AppProtocol::Tls; break;
            case 22: p = d::AppProtocol::Ssh; break;
            default: break;
            }
        } else if (proto == 17) {
            switch (port) {
            case 53: p = d::AppProtocol::Dns; break;
            case 5353: p = d::AppProtocol::Mdns; break;
            case 5355: p = d::AppProtocol::Llmnr; break;
            case 443: p = d::AppProtocol::Quic; break;
            default: break;
            }
        }
        if (p != d::AppProtocol::Unknown)
            break;
    }
    if (p == d::AppProtocol::Unknown)
        return;
    set_name(r.l7, p);
    r.l7.guessed = 1;
    r.l7.confidence = ndpi_vocab::kConfidenceMatchByPort;
}

Result<std::vector<NdpiProtocol>> ndpi_protocols(const std::string& protos_file)
{
#if WEIR_HAVE_NDPI
    auto mod = d::NdpiModule::create(protos_file);
    if (!mod)
        return mod.error();
    std::vector<NdpiProtocol> out;
    for (auto& p : (*mod)->protocols())
        out.push_back({p.id, std::move(p.name), std::move(p.category)});
    return out;
#else
    (void)protos_file;
    return from_errno(ENOTSUP, "nDPI: this build has no libndpi (install libndpi-dev and reconfigure)");
#endif
}

std::string ndpi_version()
{
#if WEIR_HAVE_NDPI
    return d::NdpiModule::version();
#else
    return {};
#endif
}

uint32_t ndpi_flow_state_size() noexcept
{
#if WEIR_HAVE_NDPI
    return d::NdpiModule::flow_state_size();
#else
    return 0;
#endif
}

} // namespace weir::engine
