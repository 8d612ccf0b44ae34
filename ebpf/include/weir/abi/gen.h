/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: the traffic generator and its counting sink (weir_gen.bpf.c,
 * tools/weir-gen).
 *
 * The only definition of the generator's flow set and of the counters both
 * sides read. Included by the BPF program (C) and by C++ user space.
 *
 * Flow set: packet k of a run (per generator thread) carries flow
 * i = k mod nflows, and flow i is
 *   source port    = sport_base + (i mod WEIR_GEN_PORTS_PER_IP)
 *   source address = template source address (IPv4 or IPv6) with
 *                    (i / WEIR_GEN_PORTS_PER_IP) added to its LAST byte only
 *                    (no carry into the byte before),
 * every other field as in the template. A receiver can rebuild the set
 * from (nflows, sport_base, source address) alone.
 */
#ifndef WEIR_ABI_GEN_H
#define WEIR_ABI_GEN_H

#ifdef __cplusplus
#include <cstdint>
#define WEIR_GEN_U8 std::uint8_t
#define WEIR_GEN_U16 std::uint16_t
#define WEIR_GEN_U32 std::uint32_t
#define WEIR_GEN_U64 std::uint64_t
#else
#include <linux/types.h>
#define WEIR_GEN_U8 __u8
#define WEIR_GEN_U16 __u16
#define WEIR_GEN_U32 __u32
#define WEIR_GEN_U64 __u64
#endif

#define WEIR_GEN_PORTS_PER_IP 60000u
#define WEIR_GEN_MAX_FLOWS (WEIR_GEN_PORTS_PER_IP * 256u)
#define WEIR_GEN_MIN_FRAME 60u
#define WEIR_GEN_MAX_FRAME 1514u

/* Sink: frames kept verbatim (the first WEIR_GEN_SAMPLES each CPU received,
 * each cut to WEIR_GEN_SAMPLE_BYTES) so a test can decode what arrived. */
#define WEIR_GEN_SAMPLES 16u
#define WEIR_GEN_SAMPLE_BYTES 128u

/* Generator counters (per-CPU array, one slot). */
struct weir_gen_stats {
	WEIR_GEN_U64 redirected;   /* XDP_REDIRECT verdicts the program returned */
	WEIR_GEN_U64 short_frame;  /* frame shorter than the configured offsets */
	WEIR_GEN_U64 xmit_sent;    /* frames the target device accepted (devmap flush) */
	WEIR_GEN_U64 xmit_drops;   /* frames the target device refused (devmap flush) */
	WEIR_GEN_U64 redirect_err; /* redirects that failed before the flush */
	WEIR_GEN_U64 cursor;       /* flow index of this CPU's next frame */
};

/* Sink counters (per-CPU array, one slot). */
struct weir_gen_sink_stats {
	WEIR_GEN_U64 packets;
	WEIR_GEN_U64 bytes;
	WEIR_GEN_U64 flow_table_full; /* distinct-flow table full: flow not counted */
	WEIR_GEN_U64 unparsed;        /* not IPv4/IPv6 (or cut short): flow not counted */
	WEIR_GEN_U64 sampled;         /* samples this CPU kept so far */
};

/* Sink distinct-flow table key, bytes as on the wire (IPv4 addresses in the
 * first 4 bytes of saddr/daddr, the rest zero; ports zero unless UDP/TCP). */
struct weir_gen_flow {
	WEIR_GEN_U8 saddr[16];
	WEIR_GEN_U8 daddr[16];
	WEIR_GEN_U16 sport;
	WEIR_GEN_U16 dport;
	WEIR_GEN_U8 proto;
	WEIR_GEN_U8 ip_version;
	WEIR_GEN_U8 pad[2];
};

/* One sampled frame. */
struct weir_gen_sample {
	WEIR_GEN_U32 len;    /* frame length on the wire */
	WEIR_GEN_U32 caplen; /* bytes kept in data */
	WEIR_GEN_U8 data[WEIR_GEN_SAMPLE_BYTES];
};

#ifdef __cplusplus
static_assert(sizeof(struct weir_gen_stats) == 48, "weir_gen_stats layout");
static_assert(sizeof(struct weir_gen_sink_stats) == 40, "weir_gen_sink_stats layout");
static_assert(sizeof(struct weir_gen_flow) == 40, "weir_gen_flow layout");
static_assert(sizeof(struct weir_gen_sample) == 8 + WEIR_GEN_SAMPLE_BYTES, "weir_gen_sample layout");
#else
_Static_assert(sizeof(struct weir_gen_stats) == 48, "weir_gen_stats layout");
_Static_assert(sizeof(struct weir_gen_sink_stats) == 40, "weir_gen_sink_stats layout");
_Static_assert(sizeof(struct weir_gen_flow) == 40, "weir_gen_flow layout");
_Static_assert(sizeof(struct weir_gen_sample) == 8 + WEIR_GEN_SAMPLE_BYTES, "weir_gen_sample layout");
#endif

#undef WEIR_GEN_U8
#undef WEIR_GEN_U16
#undef WEIR_GEN_U32
#undef WEIR_GEN_U64

#endif /* WEIR_ABI_GEN_H */
