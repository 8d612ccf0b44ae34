/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: binary verdict batches on the verdict channel (docs/ids.md,
 * "Binary batches"). A frame is one header followed by `count` records,
 * all in host byte order (the channel is a local Unix socket or ZMQ; weir
 * runs on little-endian hosts only):
 *
 *   struct weir_vwire_hdr             16 bytes
 *   struct weir_verdict_req[count]    72 bytes each
 *
 * The first byte of a frame, 'W' (0x57), can never start a JSON request
 * (JSON text starts with '{', '[', '"', a digit, '-', t, f, n or
 * whitespace), so frames and JSON lines can be mixed on one connection. The
 * reply to a frame is one JSON line, as for a JSON request.
 *
 * Records name one flow each: the key as in flow_key.h (addresses of
 * ip_version in network order, IPv4 in the first 4 bytes, the rest zero;
 * pad zero), either canonical or with addr_a/port_a the source and
 * addr_b/port_b the destination: the server canonicalises it.
 *
 * Layouts: every field naturally aligned, no holes, no packing.
 */
#ifndef WEIR_ABI_VERDICT_WIRE_H
#define WEIR_ABI_VERDICT_WIRE_H

#include "verdict.h"

#define WEIR_VWIRE_MAGIC0 0x57u /* 'W' */
#define WEIR_VWIRE_MAGIC1 0x56u /* 'V' */
#define WEIR_VWIRE_VERSION 1u
/* Records per frame at most (the server may refuse fewer: a frame must
 * also fit its request size limit, 256 MiB by default). */
#define WEIR_VWIRE_MAX_COUNT (1u << 22)

enum weir_vwire_op {
	WEIR_VWIRE_OP_ADD = 1, /* install (replace) each record's verdict */
	WEIR_VWIRE_OP_DEL = 2, /* remove each record's flow verdict (only the key is read) */
};

/* Header flags (weir_vwire_hdr.flags); other bits are refused. */
/* DEL: reply {"ok":true,"removed":N} without the entries' final counters
 * (they still reach the flow export). */
#define WEIR_VWIRE_F_NO_ENTRIES 0x1u
#define WEIR_VWIRE_F__ALL 0x1u

struct weir_vwire_hdr {
	WEIR_U8 magic[2];   /* WEIR_VWIRE_MAGIC0, WEIR_VWIRE_MAGIC1 */
	WEIR_U8 version;    /* WEIR_VWIRE_VERSION */
	WEIR_U8 op;         /* enum weir_vwire_op */
	WEIR_U32 count;     /* records that follow, 1..WEIR_VWIRE_MAX_COUNT */
	WEIR_U32 flags;     /* WEIR_VWIRE_F_* */
	WEIR_U32 rec_size;  /* sizeof(struct weir_verdict_req): refuses a layout mismatch */
};

struct weir_verdict_req {
	struct weir_flow_key key; /* canonical, or src in side A and dst in side B */
	WEIR_U8 action;           /* enum weir_verdict_action */
	WEIR_U8 pad0;             /* zero */
	WEIR_U16 flags;           /* WEIR_VERDICT_F_* */
	WEIR_U16 reason;          /* reason code 1..32767, 0 = none */
	WEIR_U16 pad1;            /* zero */
	WEIR_U32 egress;          /* DIVERT: egress index; zero otherwise */
	WEIR_U32 shunt_after;     /* SHUNT: packets delivered before bypass; zero otherwise */
	WEIR_U64 ttl_ms;          /* milliseconds until the verdict expires, 0 = never (at most ten years) */
};

#ifdef __cplusplus
static_assert(sizeof(struct weir_vwire_hdr) == 16, "weir_vwire_hdr layout");
static_assert(sizeof(struct weir_verdict_req) == 72, "weir_verdict_req layout");
#else
_Static_assert(sizeof(struct weir_vwire_hdr) == 16, "weir_vwire_hdr layout");
_Static_assert(sizeof(struct weir_verdict_req) == 72, "weir_verdict_req layout");
#endif

#endif /* WEIR_ABI_VERDICT_WIRE_H */
