/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * BPF-side verdict lookup, shared by the programs that apply IDS verdicts
 * (weir_xdp.bpf.c, weir_bridge.bpf.c): the declarations of the maps of
 * weir/abi/verdict.h (the loaders find them by these names), the lookup
 * order docs/ids.md specifies, weir_verdict_apply() for a parsed frame and
 * the DIVERT redirect. The including program keeps its own decision on
 * what each action does to the frame (capture, bridge) and its counters.
 *
 * Lookup: the flow map first, then the subnet trie for address a and
 * address b of the canonical key; the longer prefix wins, address a on a
 * tie.
 */
#ifndef WEIR_VERDICT_LOOKUP_H
#define WEIR_VERDICT_LOOKUP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <weir/abi/flow_key.h>
#include <weir/abi/verdict.h>

#include "flow_parse.h"

#define WEIR_TCP_FIN 0x01
#define WEIR_TCP_SYN 0x02
#define WEIR_TCP_RST 0x04

/* Placeholders sized 1: with verdicts on, the loader replaces the two
 * verdict maps by the user-space ones (bpf_map__reuse_fd), whose sizes then
 * apply, and gives weir_egress one slot per DIVERT egress interface. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct weir_flow_key);
	__type(value, struct weir_verdict);
} weir_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_subnet_key);
	__type(value, struct weir_verdict);
} weir_subnet_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} weir_egress SEC(".maps");

/* The subnet verdict covering one address of the key, or NULL. */
static __always_inline struct weir_verdict *weir_subnet_lookup(const __u8 *addr, __u8 version)
{
	struct weir_subnet_key sk __attribute__((aligned(8))) = {};

	sk.prefixlen = WEIR_SUBNET_KEY_PREFIX(version == 4 ? 32 : 128);
	sk.ip_version = version;
	__builtin_memcpy(sk.addr, addr, 16);
	return bpf_map_lookup_elem(&weir_subnet_verdicts, &sk);
}

/* The verdict for a key: flow entry first, then the longer of the two
 * subnet matches (a on a tie), or NULL. */
static __always_inline struct weir_verdict *weir_verdict_find(const struct weir_flow_key *key)
{
	struct weir_verdict *v, *b;

	v = bpf_map_lookup_elem(&weir_verdicts, key);
	if (v)
		return v;
	v = weir_subnet_lookup(key->addr_a, key->ip_version);
	b = weir_subnet_lookup(key->addr_b, key->ip_version);
	if (!v)
		return b;
	if (b && b->prefix_len > v->prefix_len)
		return b;
	return v;
}

/* The TCP flags byte weir_parse_flow_dir() returned for a frame of `key`,
 * 0 when the flow is not TCP. */
static __always_inline __u8 weir_frame_tcp_flags(const struct weir_flow_key *key, __u8 tcp_flags)
{
	return key->proto == WEIR_IPPROTO_TCP ? tcp_flags : 0;
}

/* weir_verdict_apply() for one frame of `key`: `len` bytes, sent from the
 * key's address a when src_is_a, with the TCP flags weir_parse_flow_dir()
 * returned (a TCP SYN, FIN or RST is a control frame; the flags of an
 * undelivered frame go to the entry's undelivered_tcp_flags). */
static __always_inline int weir_verdict_apply_frame(struct weir_verdict *v, const struct weir_flow_key *key, __u64 len,
						    __u8 tcp_flags, int src_is_a)
{
	return weir_verdict_apply(v, len, bpf_ktime_get_ns(), weir_frame_tcp_flags(key, tcp_flags), !src_is_a);
}

/* DIVERT: the frame to weir_egress[v->egress]. Once the redirect is taken
 * the frame is not captured, so the entry counts it as undelivered and
 * weir's flow export adds it back. 0 when the slot is empty or refuses the
 * frame: the caller counts divert_failed and handles it as usual, so a
 * missing egress never loses traffic silently. */
static __always_inline int weir_verdict_divert(struct weir_verdict *v, const struct weir_flow_key *key, __u64 len,
					       __u8 tcp_flags, int src_is_a)
{
	if (bpf_redirect_map(&weir_egress, v->egress, 0) != XDP_REDIRECT)
		return 0;
	weir_verdict_count_undelivered(v, len, !src_is_a, weir_frame_tcp_flags(key, tcp_flags));
	return 1;
}

#endif /* WEIR_VERDICT_LOOKUP_H */
