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
 * several sockets share a queue. With one socket per queue no parsing is
 * done. A queue nobody captures (no socket at the index) gets XDP_PASS: the
 * stack sees its traffic as if weir were not there.
 *
 * The steps are kept apart so that a per-flow verdict (the flow key looked
 * up in an LRU map of decisions, e.g. shunting flows an IDS is done with)
 * slots in between "key" and "redirect".
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <weir/abi/xdp.h>

#include "flow_parse.h"

/* Sockets per RX queue (>= 1), set by the loader before load. */
const volatile __u32 weir_sockets_per_queue = 1;

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

	/* Step 1: the socket slot of this queue, by flow when it is shared. */
	idx = q * spq;
	if (spq > 1) {
		struct weir_flow_key key __attribute__((aligned(8))) = {};

		if (weir_parse_flow(data, data_end, &key) == WEIR_DROP_NONE)
			idx += weir_flow_key_hash(&key) % spq;
		else
			st->unparsed++;
	}

	/* Step 2 (verdicts) goes here: look the key up, drop or pass. */

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
