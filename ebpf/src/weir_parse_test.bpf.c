/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir_parse_test: runs flow_parse.h on a frame and stores what it found,
 * so tests (tests/live/xdp_prog_test.cpp) can compare the BPF parser's key
 * with the C++ decoder's through BPF_PROG_RUN. Test-only: never attached.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <weir/abi/xdp.h>

#include "flow_parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_xdp_parse_result);
} weir_parse_out SEC(".maps");

SEC("xdp")
int weir_parse_test(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *data_end = (const void *)(long)ctx->data_end;
	struct weir_xdp_parse_result *r;
	__u32 zero = 0;

	r = bpf_map_lookup_elem(&weir_parse_out, &zero);
	if (!r)
		return XDP_ABORTED;
	__builtin_memset(r, 0, sizeof(*r));
	r->reason = (__u32)weir_parse_flow(data, data_end, &r->key);
	r->hash = weir_flow_key_hash(&r->key);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
