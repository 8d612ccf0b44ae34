/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir_bridge: the inline bridge (`weir --bridge ifA:ifB`). The same
 * program is attached to both ports (dataplane/src/bridge.cpp); every frame
 * that arrives on one port leaves through the other with
 * bpf_redirect_map(weir_br_ports, peer), unless an IDS verdict says
 * otherwise. Nothing reaches the stack or user space.
 *
 * Per frame:
 *   1. ingress port p from ctx->ingress_ifindex (weir_br_ifindex, .rodata);
 *      a frame of any other interface gets XDP_PASS (not ours);
 *   2. fail closed only: weir's heartbeat (weir_br_ctl) older than
 *      weir_br_watchdog_ns means weir is gone: XDP_DROP;
 *   3. with verdicts on: the flow key (flow_parse.h) looked up in the flow
 *      map, then the subnet trie (the longer prefix of the two endpoints,
 *      address a on a tie), weir_verdict_apply() decides:
 *        DROP, SHUNT past shunt_after   XDP_DROP (an inline bypass is a drop)
 *        DIVERT                         weir_egress[v->egress]; an empty slot
 *                                       is counted and the frame is bridged
 *        FORWARD, expired, miss         bridged
 *      Frames without a key (ARP, non-IP, truncated) are bridged unseen:
 *      a bridge that dropped ARP would break every IPv4 neighbour.
 *      With flow accounting on (weir_br_flows_on) every keyed frame is
 *      first added to its entry in weir_br_flows (created on the flow's
 *      first frame), which weir polls into flow records;
 *   4. XDP_REDIRECT to weir_br_ports[1 - p]; a refused redirect is counted
 *      (redirect_errors) and the frame dropped.
 *
 * weir_br_drop (every frame XDP_DROP) replaces weir_bridge on both ports
 * when weir stops in fail-closed mode; weir_br_pass is an XDP_PASS program
 * for a veth peer that must receive redirected frames.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <weir/abi/bridge.h>
#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>

#include "flow_parse.h"
#include "verdict_lookup.h"

/* Set by the loader before load. */
const volatile __u32 weir_br_ifindex[2] = {0, 0};
const volatile __u32 weir_br_fail_closed = 0;
const volatile __u64 weir_br_watchdog_ns = 3000000000ULL;
const volatile __u32 weir_verdicts_on = 0;
const volatile __u32 weir_br_flows_on = 0;

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} weir_br_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct weir_bridge_port_stats);
} weir_br_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_bridge_ctl);
} weir_br_ctl SEC(".maps");

/* Sized by the loader when flow accounting is on. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct weir_flow_key);
	__type(value, struct weir_bridge_flow);
} weir_br_flows SEC(".maps");

/* One packet of the flow `key`, sent by side A (dir 0) or B (dir 1). */
static __always_inline void weir_br_flow_account(const struct weir_flow_key *key, __u32 dir, __u64 len, __u64 now,
						 __u8 tcp_flags)
{
	struct weir_bridge_flow *f = bpf_map_lookup_elem(&weir_br_flows, key);

	dir &= 1;
	if (!f) {
		struct weir_bridge_flow n = {};

		/* Constant indices: the verifier refuses a variable offset into the stack. */
		if (dir) {
			n.packets[1] = 1;
			n.bytes[1] = len;
			n.first_ns[1] = now;
			n.last_ns[1] = now;
			n.tcp_flags[1] = tcp_flags;
		} else {
			n.packets[0] = 1;
			n.bytes[0] = len;
			n.first_ns[0] = now;
			n.last_ns[0] = now;
			n.tcp_flags[0] = tcp_flags;
			n.client_is_a = 1;
		}
		if (bpf_map_update_elem(&weir_br_flows, key, &n, BPF_NOEXIST) == 0)
			return;
		/* Another CPU created it meanwhile: add to that one. */
		f = bpf_map_lookup_elem(&weir_br_flows, key);
		if (!f)
			return;
	}
	__sync_fetch_and_add(&f->packets[dir], 1);
	__sync_fetch_and_add(&f->bytes[dir], len);
	if (!f->first_ns[dir])
		f->first_ns[dir] = now;
	f->last_ns[dir] = now;
	f->tcp_flags[dir] |= tcp_flags;
}

SEC("xdp")
int weir_bridge(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *data_end = (const void *)(long)ctx->data_end;
	const __u32 in = ctx->ingress_ifindex;
	struct weir_bridge_port_stats *st;
	__u32 port, peer;
	long rc;

	if (in == weir_br_ifindex[0])
		port = 0;
	else if (in == weir_br_ifindex[1])
		port = 1;
	else
		return XDP_PASS;
	peer = port ^ 1;
	st = bpf_map_lookup_elem(&weir_br_stats, &port);
	if (!st)
		return XDP_PASS; /* cannot happen: the array has both slots */
	st->packets++;
	st->bytes += (__u64)(data_end - data);

	if (weir_br_fail_closed) {
		__u32 zero = 0;
		struct weir_bridge_ctl *c = bpf_map_lookup_elem(&weir_br_ctl, &zero);

		if (!c || bpf_ktime_get_ns() - c->heartbeat_ns > weir_br_watchdog_ns) {
			st->dropped++;
			st->watchdog_drop++;
			return XDP_DROP;
		}
	}

	if (weir_verdicts_on || weir_br_flows_on) {
		struct weir_flow_key key __attribute__((aligned(8))) = {};
		struct weir_verdict *v;
		__u8 tcp_flags = 0;
		int src_is_a = 1;
		int act;

		if (weir_parse_flow_dir(data, data_end, &key, &tcp_flags, &src_is_a) != WEIR_DROP_NONE) {
			st->unparsed++;
			goto bridge;
		}
		/* Every keyed frame is accounted, whatever its verdict: the flow
		 * record says what arrived. */
		if (weir_br_flows_on)
			weir_br_flow_account(&key, !src_is_a, (__u64)(data_end - data), bpf_ktime_get_ns(),
					     key.proto == WEIR_IPPROTO_TCP ? tcp_flags : 0);
		if (!weir_verdicts_on)
			goto bridge;
		v = weir_verdict_find(&key);
		if (!v)
			goto bridge;
		act = weir_verdict_apply_frame(v, &key, (__u64)(data_end - data), tcp_flags, src_is_a);
		switch (act) {
		case WEIR_VERDICT_DROP:
			st->dropped++;
			st->verdict_drop++;
			return XDP_DROP;
		case WEIR_VERDICT_SHUNT:
			st->dropped++;
			st->verdict_shunt++;
			return XDP_DROP;
		case WEIR_VERDICT_DIVERT:
			if (weir_verdict_divert(v, &key, (__u64)(data_end - data), tcp_flags, src_is_a)) {
				st->diverted++;
				return XDP_REDIRECT;
			}
			st->divert_failed++;
			break;
		default: /* FORWARD, expired (-1), an unknown action */
			break;
		}
	}

bridge:
	rc = bpf_redirect_map(&weir_br_ports, peer, 0);
	if (rc == XDP_REDIRECT) {
		st->forwarded++;
		return XDP_REDIRECT;
	}
	st->redirect_errors++;
	return XDP_DROP;
}

/* Fail closed, weir stopped: nothing crosses. */
SEC("xdp")
int weir_br_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* On the far end of a veth port: lets the kernel deliver redirected frames. */
SEC("xdp")
int weir_br_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
