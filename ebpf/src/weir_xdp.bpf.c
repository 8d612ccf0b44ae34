/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir_xdp: the XDP program behind the AF_XDP back-end
 * (dataplane/src/afxdp.cpp). One program per interface, attached by weir
 * with bpf_xdp_attach (libxdp's dispatcher is not used).
 *
 * Every frame is counted on its RX queue, then redirected into the AF_XDP
 * socket at
 *     weir_xsks[rx_queue_index * sockets_per_queue + hash % sockets_per_queue]
 * where hash is the symmetric hash of the frame's canonical flow key
 * (flow_parse.h), so both directions of a flow meet in one socket when
 * several sockets share a queue. With one socket per queue (and verdicts
 * off) no parsing is done. A queue nobody captures (no socket at the index) gets XDP_PASS: the
 * stack sees its traffic as if weir were not there.
 *
 * With verdicts on (weir_verdicts_on, set by the loader when it hands over
 * the verdict maps of weir/abi/verdict.h), every frame is parsed and its
 * key looked up between "key" and "redirect": the flow map first, then the
 * subnet trie for address a and address b (the longer prefix wins, a on a
 * tie). weir_verdict_apply() accounts the hit in the entry and decides:
 *   DROP                      XDP_DROP
 *   SHUNT past shunt_after    XDP_DROP: passive capture, the packet is
 *                             bypassed and only counted in the entry
 *   DIVERT                    XDP_REDIRECT through weir_egress[v->egress];
 *                             an empty or refused slot is counted
 *                             (divert_failed) and the frame is captured
 *                             as usual, so a missing egress never loses
 *                             traffic silently; with
 *                             WEIR_VERDICT_F_TCP_CONTROL (the IDS egress
 *                             policy's kernel egress) TCP SYN/FIN/RST are
 *                             captured as usual instead, so weir's flow
 *                             table sees a connection's start and end
 *   FORWARD, expired, miss    captured as usual
 * DROP, SHUNT past shunt_after and a successful DIVERT are counted in the
 * entry's undelivered counters by direction (the frame's source side of
 * the canonical key), with their TCP flags, so weir can add them back to
 * the exported flow.
 * Frames without a key (non-IP, truncated) are captured as usual. A
 * non-first IPv4/IPv6 fragment has ports 0 (flow_parse.h): it matches a
 * verdict installed for the ports-0 key of its addresses and protocol, or a
 * subnet verdict, never the 5-tuple verdict of its first fragment.
 * With verdicts off the program is verified with the whole step pruned
 * (the flag is read-only data), and nothing is parsed unless sockets share
 * a queue.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>

#include "flow_parse.h"
#include "verdict_lookup.h"

/* Sockets per RX queue (>= 1), set by the loader before load. */
const volatile __u32 weir_sockets_per_queue = 1;
/* 1: look every frame up in the verdict maps, set by the loader before load. */
const volatile __u32 weir_verdicts_on = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, WEIR_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} weir_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct weir_xdp_queue_stats);
} weir_qstats SEC(".maps");

SEC("xdp")
int weir_xdp(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *data_end = (const void *)(long)ctx->data_end;
	const __u32 spq = weir_sockets_per_queue;
	__u32 q = ctx->rx_queue_index;
	struct weir_xdp_queue_stats *st;
	__u32 idx;
	long rc;

	st = bpf_map_lookup_elem(&weir_qstats, &q);
	if (!st)
		return XDP_PASS; /* a queue beyond what the maps were sized for */
	st->packets++;
	st->bytes += (__u64)(data_end - data);

	/* Step 1: the flow key, when fan-out or verdicts need it, and the
	 * socket slot of this queue, by flow when it is shared. */
	idx = q * spq;
	if (spq > 1 || weir_verdicts_on) {
		struct weir_flow_key key __attribute__((aligned(8))) = {};
		__u8 tcp_flags = 0;
		int src_is_a = 1;

		if (weir_parse_flow_dir(data, data_end, &key, &tcp_flags, &src_is_a) != WEIR_DROP_NONE) {
			st->unparsed++;
			goto redirect;
		}
		if (spq > 1)
			idx += weir_flow_key_hash(&key) % spq;

		/* Step 2: the verdict of the flow, if any. */
		if (weir_verdicts_on) {
			struct weir_verdict *v = weir_verdict_find(&key);
			int act;

			if (!v) {
				st->verdict_miss++;
				goto redirect;
			}
			act = weir_verdict_apply_frame(v, &key, (__u64)(data_end - data), tcp_flags, src_is_a);
			switch (act) {
			case WEIR_VERDICT_DROP:
				st->verdict_drop++;
				return XDP_DROP;
			case WEIR_VERDICT_SHUNT:
				st->verdict_shunt++;
				return XDP_DROP;
			case WEIR_VERDICT_DIVERT:
				if ((v->flags & WEIR_VERDICT_F_TCP_CONTROL) && key.proto == WEIR_IPPROTO_TCP &&
				    (tcp_flags & (WEIR_TCP_FIN | WEIR_TCP_SYN | WEIR_TCP_RST))) {
					/* Captured: user space sends it to the same egress. */
					st->verdict_forward++;
					break;
				}
				if (weir_verdict_divert(v, &key, (__u64)(data_end - data), tcp_flags, src_is_a)) {
					st->verdict_divert++;
					return XDP_REDIRECT;
				}
				st->divert_failed++;
				break;
			case WEIR_VERDICT_FORWARD:
				st->verdict_forward++;
				break;
			default: /* expired (-1), or an action this program does not know */
				st->verdict_miss++;
				break;
			}
		}
	}

redirect:
	/* Step 3: to the socket, or to the stack when nobody listens there. */
	if (!bpf_map_lookup_elem(&weir_xsks, &idx)) {
		st->passed++;
		return XDP_PASS;
	}
	rc = bpf_redirect_map(&weir_xsks, idx, XDP_PASS);
	if (rc == XDP_REDIRECT)
		st->redirected++;
	else
		st->redirect_failed++;
	return (int)rc;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
