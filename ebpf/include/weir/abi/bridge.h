/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: the inline bridge XDP program (weir_bridge.bpf.c) and its maps.
 *
 * Included by the BPF program (C) and by its loader (C++,
 * dataplane/src/bridge.cpp), which configures .rodata before load and
 * reads the counters. weirctl finds the maps of a running (or orphaned)
 * bridge through the program attached to the interface (prog info
 * map_ids, map names below), so nothing needs to be pinned.
 *
 * Ports: port 0 = ifA, port 1 = ifB of `--bridge ifA:ifB`. A frame that
 * arrives on port p leaves through port 1 - p; direction p is "entered on
 * port p".
 *
 * Maps (names as the kernel shows them, at most 15 characters):
 *   weir_br_ports   DEVMAP, 2 entries: slot p = ifindex of port p.
 *   weir_br_stats   PERCPU_ARRAY of struct weir_bridge_port_stats, 2
 *                   entries: index = ingress port (= direction).
 *   weir_br_ctl     ARRAY of struct weir_bridge_ctl, 1 entry: the
 *                   liveness heartbeat of the fail-closed watchdog.
 *   weir_br_flows   LRU_HASH weir_flow_key -> struct weir_bridge_flow,
 *                   the bridged flows (max_entries set by the loader; one
 *                   unused entry when flow accounting is off).
 *   weir_egress     DEVMAP of DIVERT egress ports (as in xdp.h).
 *   weir_verdicts, weir_subnet_verdicts: the verdict maps of verdict.h,
 *                   reused by fd before load.
 * Configuration (.rodata): weir_br_ifindex[2], weir_br_fail_closed,
 * weir_br_watchdog_ns, weir_verdicts_on, weir_br_flows_on.
 */
#ifndef WEIR_ABI_BRIDGE_H
#define WEIR_ABI_BRIDGE_H

#include "flow_key.h"

#ifdef __cplusplus
#define WEIR_BR_U64 std::uint64_t
#else
#define WEIR_BR_U64 __u64
#endif

#define WEIR_BRIDGE_PROG_NAME "weir_bridge"       /* forwarding program */
#define WEIR_BRIDGE_DROP_PROG_NAME "weir_br_drop" /* fail-closed: drops every frame */
#define WEIR_BRIDGE_PASS_PROG_NAME "weir_br_pass" /* XDP_PASS, for a veth peer receiving redirects */
#define WEIR_BRIDGE_STATS_MAP_NAME "weir_br_stats"
#define WEIR_BRIDGE_CTL_MAP_NAME "weir_br_ctl"
#define WEIR_BRIDGE_FLOWS_MAP_NAME "weir_br_flows"

/* One direction of the bridge (per CPU; user space sums). Every frame that
 * enters the program counts in packets/bytes and in exactly one of
 * forwarded, diverted, dropped, redirect_errors. */
struct weir_bridge_port_stats {
	WEIR_BR_U64 packets;         /* frames received on this port */
	WEIR_BR_U64 bytes;           /* their lengths (data_end - data) */
	WEIR_BR_U64 forwarded;       /* redirected to the peer port */
	WEIR_BR_U64 diverted;        /* DIVERT verdict: redirected to an egress port */
	WEIR_BR_U64 divert_failed;   /* DIVERT to an empty egress slot: forwarded to the peer instead (also in forwarded) */
	WEIR_BR_U64 dropped;         /* DROP, SHUNT past its threshold, or the watchdog */
	WEIR_BR_U64 redirect_errors; /* bpf_redirect_map refused (peer or egress slot missing): dropped */
	WEIR_BR_U64 unparsed;        /* no flow key (non-IP, truncated): forwarded without a verdict lookup */
	WEIR_BR_U64 verdict_drop;    /* of dropped: DROP verdicts */
	WEIR_BR_U64 verdict_shunt;   /* of dropped: SHUNT past its threshold */
	WEIR_BR_U64 watchdog_drop;   /* of dropped: fail closed and weir's heartbeat stale */
};

/* One flow as the bridge saw it (weir_br_flows, LRU_HASH keyed by the
 * canonical struct weir_flow_key). Index 0 = packets sent by side A of the
 * key, 1 = by side B. Created by the program on a flow's first packet
 * (client_is_a = that packet came from side A); packets, bytes updated
 * with __sync_fetch_and_add, last_ns and tcp_flags with plain stores (a
 * flag OR may be lost when two CPUs hit one flow at the same instant).
 * weir reads and deletes entries once idle or past the active timeout. */
struct weir_bridge_flow {
	WEIR_BR_U64 packets[2];
	WEIR_BR_U64 bytes[2];
	WEIR_BR_U64 first_ns[2]; /* CLOCK_MONOTONIC; 0 = none that way */
	WEIR_BR_U64 last_ns[2];
	WEIR_U8 tcp_flags[2];    /* OR of the TCP flag bytes */
	WEIR_U8 client_is_a;
	WEIR_U8 pad[5];
};

/* Written by user space only. */
struct weir_bridge_ctl {
	WEIR_BR_U64 heartbeat_ns; /* CLOCK_MONOTONIC of weir's last heartbeat */
};

#ifdef __cplusplus
static_assert(sizeof(weir_bridge_port_stats) == 88, "weir_bridge_port_stats layout");
static_assert(sizeof(weir_bridge_ctl) == 8, "weir_bridge_ctl layout");
static_assert(sizeof(weir_bridge_flow) == 72, "weir_bridge_flow layout");
#else
_Static_assert(sizeof(struct weir_bridge_port_stats) == 88, "weir_bridge_port_stats layout");
_Static_assert(sizeof(struct weir_bridge_ctl) == 8, "weir_bridge_ctl layout");
_Static_assert(sizeof(struct weir_bridge_flow) == 72, "weir_bridge_flow layout");
#endif

#endif /* WEIR_ABI_BRIDGE_H */
