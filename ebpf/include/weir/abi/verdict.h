/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: per-flow and per-subnet verdicts from an IDS, as the XDP
 * program reads them.
 *
 * Two maps, created by user space (weir::dataplane::VerdictMap) and handed
 * to the XDP program with bpf_map__reuse_fd() before load, or pinned under
 * a bpffs directory as <dir>/weir_verdicts and <dir>/weir_subnet_verdicts:
 *
 *   weir_verdicts         BPF_MAP_TYPE_LRU_HASH
 *                         key   struct weir_flow_key (flow_key.h, canonical)
 *                         value struct weir_verdict
 *   weir_subnet_verdicts  BPF_MAP_TYPE_LPM_TRIE, BPF_F_NO_PREALLOC
 *                         key   struct weir_subnet_key
 *                         value struct weir_verdict
 *
 * (The kernel keeps 15 characters of a map name: bpftool shows the second
 * one as "weir_subnet_ver"; the pin file has the full name.)
 *
 * Declaration in a BPF program (sizes are replaced by reuse_fd):
 *
 *   struct {
 *       __uint(type, BPF_MAP_TYPE_LRU_HASH);
 *       __uint(max_entries, WEIR_VERDICT_DEFAULT_MAX);
 *       __type(key, struct weir_flow_key);
 *       __type(value, struct weir_verdict);
 *   } weir_verdicts SEC(".maps");
 *   struct {
 *       __uint(type, BPF_MAP_TYPE_LPM_TRIE);
 *       __uint(max_entries, WEIR_SUBNET_VERDICT_DEFAULT_MAX);
 *       __uint(map_flags, BPF_F_NO_PREALLOC);
 *       __type(key, struct weir_subnet_key);
 *       __type(value, struct weir_verdict);
 *   } weir_subnet_verdicts SEC(".maps");
 *
 * Lookup order in XDP: the flow map first (a flow verdict beats a subnet
 * verdict, so an IDS can FORWARD one flow of a DROPped host), then the
 * subnet trie for address A and for address B of the key; when both match,
 * the longer prefix (value's prefix_len) wins, address A on a tie. weir_verdict_apply() below
 * turns a hit into what to do with the packet and updates the counters.
 *
 * Ownership and concurrency:
 *  - Only user space inserts and deletes entries; the XDP program never
 *    creates or removes one (an expired entry is a miss and stays until
 *    user space sweeps it, so its final counters reach the flow export).
 *    User space refuses new flows before the LRU would evict anything.
 *  - The XDP program updates packets, bytes, bypassed and the counters
 *    after last_ns with __sync_fetch_and_add (atomic on every CPU),
 *    undelivered_tcp_flags with __sync_fetch_and_or (BPF_ATOMIC BPF_OR,
 *    kernel 5.12 and later) and last_ns with a plain store; every other field is written by user
 *    space only, when the entry is installed (a reinstall replaces the
 *    whole value and zeroes the counters). User space reads the counters without locks: each
 *    64-bit counter is read whole, the set of them is not a snapshot.
 *  - All times are CLOCK_MONOTONIC nanoseconds, as bpf_ktime_get_ns().
 *
 * Direction: side A and side B as in the canonical key (flow_key.h); a
 * packet whose source is side B goes "B->A". The ba_* counters are the B->A
 * part of their totals, so A->B = total - ba_*.
 *
 * Layout: 104 bytes, every field naturally aligned, no holes; append only
 * (the first 64 bytes are the original layout, 96 bytes before
 * undelivered_tcp_flags). A map of an older layout (a pin left by an older
 * weir) has another value size and is refused by weir, never reused.
 */
#ifndef WEIR_ABI_VERDICT_H
#define WEIR_ABI_VERDICT_H

#include "flow_key.h"

#ifdef __cplusplus
#define WEIR_U64 std::uint64_t
#else
#define WEIR_U64 __u64
#endif

#define WEIR_VERDICT_MAP_NAME "weir_verdicts"
#define WEIR_SUBNET_VERDICT_MAP_NAME "weir_subnet_verdicts"
#define WEIR_VERDICT_DEFAULT_MAX (1u << 20)
#define WEIR_SUBNET_VERDICT_DEFAULT_MAX 65536u

enum weir_verdict_action {
	WEIR_VERDICT_FORWARD = 0, /* to the IDS egress / capture as usual */
	WEIR_VERDICT_DROP = 1,    /* drop (inline) or stop delivering (passive) */
	WEIR_VERDICT_DIVERT = 2,  /* send to egress index `egress` instead */
	WEIR_VERDICT_SHUNT = 3,   /* shunt_after more packets as usual, then bypass: count only */
	WEIR_VERDICT__MAX,
};

/* Who installed the entry (weir_verdict.source). */
enum weir_verdict_source {
	WEIR_VERDICT_SRC_UNSPEC = 0,
	WEIR_VERDICT_SRC_API = 1,    /* the control channel (an IDS, weirctl) */
	WEIR_VERDICT_SRC_POLICY = 2, /* the policy file */
};

/* Flags (weir_verdict.flags). */
/* SHUNT/DROP: still deliver TCP SYN/FIN/RST as usual, so the IDS can log
 * the connection's end (Zeek's shunting keeps control packets). */
#define WEIR_VERDICT_F_TCP_CONTROL 0x1u

struct weir_verdict {
	WEIR_U8 action;        /* enum weir_verdict_action */
	WEIR_U8 source;        /* enum weir_verdict_source */
	WEIR_U16 reason;       /* installer's reason code, 0 = none */
	WEIR_U32 egress;       /* DIVERT: egress index (DEVMAP / queue slot) */
	WEIR_U32 shunt_after;  /* SHUNT: packets delivered as usual after install */
	WEIR_U16 flags;        /* WEIR_VERDICT_F_* */
	WEIR_U8 prefix_len;    /* subnet trie: the entry's CIDR length (set by user space) */
	WEIR_U8 pad;           /* zero */
	WEIR_U64 expires_ns;   /* CLOCK_MONOTONIC; 0 = never */
	WEIR_U64 installed_ns; /* CLOCK_MONOTONIC at install */
	/* Updated by the XDP program (both directions of the flow): */
	WEIR_U64 packets;      /* packets matched since install */
	WEIR_U64 bytes;        /* their wire bytes */
	WEIR_U64 bypassed;     /* of those, packets not delivered to the IDS */
	WEIR_U64 last_ns;      /* time of the last matched packet, 0 = none */
	/* Packets the program kept from weir's own capture (DROP, SHUNT past
	 * shunt_after, successful DIVERT): weir's flow export adds them back
	 * (docs/ids.md, "Flow accounting"). Both directions, then B->A. */
	WEIR_U64 undelivered;          /* packets */
	WEIR_U64 undelivered_bytes;    /* their wire bytes */
	WEIR_U64 ba_undelivered;       /* of undelivered, sent by side B */
	WEIR_U64 ba_undelivered_bytes; /* their wire bytes */
	/* TCP flags of the undelivered packets, ORed since install: bits 0-7
	 * those sent by side A, bits 8-15 those sent by side B, the rest zero
	 * (WEIR_VERDICT_UNDELIVERED_FLAGS() reads one direction). */
	WEIR_U64 undelivered_tcp_flags;
};

/* The TCP flags byte of one direction (ba: 1 = sent by side B) in
 * weir_verdict.undelivered_tcp_flags. */
#define WEIR_VERDICT_UNDELIVERED_FLAGS(v, ba) ((WEIR_U8)(((v)->undelivered_tcp_flags >> ((ba) ? 8 : 0)) & 0xff))

/* LPM key: prefixlen counts the version byte too (prefixlen = 8 + CIDR
 * bits), so an IPv4 /8 never matches an IPv6 address that happens to start
 * with the same byte. addr as in flow_key.h: IPv4 in the first 4 bytes. */
struct weir_subnet_key {
	WEIR_U32 prefixlen;   /* 8 + prefix length in bits */
	WEIR_U8 ip_version;   /* 4 or 6 */
	WEIR_U8 addr[16];     /* network order; bits past the prefix zero */
	WEIR_U8 pad[3];       /* zero; never part of a prefix */
};

#define WEIR_SUBNET_KEY_PREFIX(bits) (8u + (bits))

#if defined(__bpf__) && !defined(__cplusplus)
/* A packet of `len` bytes (direction ba: 1 = sent by side B) that weir's
 * capture does not get; tcp_flags its TCP flags byte (0 for other
 * protocols). The flags are ORed only when they add a bit, so a flow whose
 * flags are all known already costs a read, not an atomic. */
static __attribute__((always_inline)) inline void
weir_verdict_count_undelivered(struct weir_verdict *v, __u64 len, int ba, __u8 tcp_flags)
{
	__u64 bits = (__u64)tcp_flags << (ba ? 8 : 0);

	__sync_fetch_and_add(&v->undelivered, 1);
	__sync_fetch_and_add(&v->undelivered_bytes, len);
	if (ba) {
		__sync_fetch_and_add(&v->ba_undelivered, 1);
		__sync_fetch_and_add(&v->ba_undelivered_bytes, len);
	}
	if (bits & ~v->undelivered_tcp_flags)
		__sync_fetch_and_or(&v->undelivered_tcp_flags, bits);
}

/*
 * XDP helper: account one packet of `len` wire bytes against a verdict hit
 * and say what to do with it. Returns:
 *   -1                      entry expired: treat as a miss
 *   WEIR_VERDICT_FORWARD    deliver to the IDS as usual
 *   WEIR_VERDICT_DROP       drop
 *   WEIR_VERDICT_DIVERT     redirect to v->egress
 *   WEIR_VERDICT_SHUNT      bypass (count only, do not deliver)
 * tcp_flags: the packet's TCP flags byte, 0 when it is not TCP; SYN, FIN
 * or RST make it a control packet (WEIR_VERDICT_F_TCP_CONTROL).
 * ba: 1 when the packet's source is side B of the canonical key
 * (weir_parse_flow_dir() in flow_parse.h says so), else 0.
 * DROP and SHUNT packets are counted as undelivered here; a DIVERT is
 * counted only by the caller, with weir_verdict_count_undelivered(), once
 * its redirect succeeded (a failed one is captured as usual).
 * The shunt threshold reads `packets` before adding this packet, so with
 * several CPUs hitting one flow at once a few packets more than
 * shunt_after may be delivered (never fewer).
 */
static __attribute__((always_inline)) inline int
weir_verdict_apply(struct weir_verdict *v, __u64 len, __u64 now, __u8 tcp_flags, int ba)
{
	int tcp_control = (tcp_flags & 0x07) != 0; /* FIN, SYN, RST */
	__u64 seen;
	int act;

	if (v->expires_ns && now >= v->expires_ns)
		return -1;
	seen = v->packets;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_ns = now;
	act = v->action;
	if (act == WEIR_VERDICT_SHUNT && seen < v->shunt_after)
		act = WEIR_VERDICT_FORWARD;
	if ((act == WEIR_VERDICT_SHUNT || act == WEIR_VERDICT_DROP) && tcp_control &&
	    (v->flags & WEIR_VERDICT_F_TCP_CONTROL))
		act = WEIR_VERDICT_FORWARD;
	if (act == WEIR_VERDICT_SHUNT || act == WEIR_VERDICT_DROP) {
		__sync_fetch_and_add(&v->bypassed, 1);
		weir_verdict_count_undelivered(v, len, ba, tcp_flags);
	}
	return act;
}
#endif

#endif /* WEIR_ABI_VERDICT_H */
