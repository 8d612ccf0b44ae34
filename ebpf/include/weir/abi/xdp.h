/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: maps and counters of weir's own XDP program (weir_xdp.bpf.c).
 *
 * Included by the BPF program (C) and by the AF_XDP back-end (C++), which
 * sizes the maps before load and reads the counters.
 *
 * Maps (names as the kernel shows them, at most 15 characters):
 *   weir_xsks   XSKMAP, index = queue * sockets_per_queue + flow hash %
 *               sockets_per_queue; max_entries = rx queues * sockets_per_queue.
 *   weir_qstats PERCPU_ARRAY of struct weir_xdp_queue_stats indexed by
 *               rx_queue_index; max_entries = rx queues. User space sums the
 *               per-CPU values.
 *   weir_egress DEVMAP of ifindexes (__u32), the DIVERT egress ports of the
 *               IDS verdicts (verdict.h: weir_verdict.egress is the index);
 *               max_entries = egress ports (1 when there are none).
 *   weir_verdicts, weir_subnet_verdicts: the verdict maps of verdict.h,
 *               owned by user space and reused by fd before load (a
 *               one-entry placeholder of each when verdicts are off).
 * Configuration (.rodata, set before load): weir_sockets_per_queue (>= 1),
 * weir_verdicts_on (0/1).
 */
#ifndef WEIR_ABI_XDP_H
#define WEIR_ABI_XDP_H

#include <weir/abi/flow_key.h>

#ifdef __cplusplus
#define WEIR_XDP_U64 std::uint64_t
#else
#define WEIR_XDP_U64 __u64
#endif

/* Upper bound on RX queues the program and its maps are sized for. */
#define WEIR_XDP_MAX_QUEUES 256
/* Upper bound on sockets sharing one RX queue (flow-hash fan-out). */
#define WEIR_XDP_MAX_SOCKETS_PER_QUEUE 64
/* Upper bound on DIVERT egress ports (weir_egress entries). */
#define WEIR_XDP_MAX_EGRESS 64

/* One RX queue as the XDP program saw it (per CPU). */
struct weir_xdp_queue_stats {
	WEIR_XDP_U64 packets;         /* frames that entered the program on this queue */
	WEIR_XDP_U64 bytes;           /* their lengths (data_end - data) */
	WEIR_XDP_U64 redirected;      /* handed to an AF_XDP socket (bpf_redirect_map said so) */
	WEIR_XDP_U64 passed;          /* no socket at the index: XDP_PASS to the stack */
	WEIR_XDP_U64 redirect_failed; /* socket present but bpf_redirect_map refused */
	WEIR_XDP_U64 unparsed;        /* parsed (fan-out or verdicts) but no flow key (non-IP, truncated) */
	/* Verdicts on (each frame with a key counts in exactly one of these): */
	WEIR_XDP_U64 verdict_miss;    /* no entry, or an expired one: captured as usual */
	WEIR_XDP_U64 verdict_forward; /* FORWARD, SHUNT under its threshold, or a TCP control packet kept */
	WEIR_XDP_U64 verdict_drop;    /* DROP: XDP_DROP */
	WEIR_XDP_U64 verdict_shunt;   /* SHUNT past its threshold: XDP_DROP (bypassed) */
	WEIR_XDP_U64 verdict_divert;  /* DIVERT: redirected to the egress port */
	WEIR_XDP_U64 divert_failed;   /* DIVERT to an empty or refused egress slot: captured as usual */
};

/*
 * What the parser self-test program (weir_parse_test.bpf.c) writes for the
 * last frame it ran on: the flow key of ebpf/src/flow_parse.h, the parser's
 * verdict (enum weir_drop_reason, 0 = key valid) and the fan-out hash.
 */
struct weir_xdp_parse_result {
	struct weir_flow_key key;
	WEIR_U32 reason;
	WEIR_U32 hash;
};

#ifdef __cplusplus
static_assert(sizeof(weir_xdp_queue_stats) == 96, "weir_xdp_queue_stats layout");
static_assert(sizeof(weir_xdp_parse_result) == 56, "weir_xdp_parse_result layout");
#else
_Static_assert(sizeof(struct weir_xdp_queue_stats) == 96, "weir_xdp_queue_stats layout");
_Static_assert(sizeof(struct weir_xdp_parse_result) == 56, "weir_xdp_parse_result layout");
#endif

#endif /* WEIR_ABI_XDP_H */
