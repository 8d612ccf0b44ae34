/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: packet drop and skip reasons, counted per core.
 *
 * The only definition of these codes. Included by BPF programs (C) and by
 * C++ user space, so both sides count the same things under the same index.
 * Append new reasons before WEIR_DROP__MAX; never renumber existing ones.
 */
#ifndef WEIR_ABI_DROP_REASON_H
#define WEIR_ABI_DROP_REASON_H

enum weir_drop_reason {
	WEIR_DROP_NONE = 0,
	WEIR_DROP_TRUNCATED_L2,      /* frame shorter than its link header */
	WEIR_DROP_CAPLEN_GT_LEN,     /* capture length larger than wire length */
	WEIR_DROP_UNKNOWN_LINKTYPE,  /* link type not decoded */
	WEIR_DROP_NON_IP,            /* ARP, LLDP, STP, ... (not a flow) */
	WEIR_DROP_TRUNCATED_IP,      /* IP header cut by the snap length */
	WEIR_DROP_BAD_IP_HEADER,     /* version, IHL or total length invalid */
	WEIR_DROP_TRUNCATED_L4,      /* L4 header cut by the snap length */
	WEIR_DROP_BAD_IPV6_EXT,      /* IPv6 extension header chain invalid */
	WEIR_DROP_TOO_MANY_ENCAPS,   /* tunnel or VLAN nesting too deep */
	WEIR_DROP_BAD_TUNNEL,        /* GRE/VXLAN/GTP-U header invalid */
	WEIR_DROP_BAD_MPLS,          /* MPLS stack without bottom of stack */
	WEIR_DROP_BAD_PPPOE,         /* PPPoE header or protocol invalid */
	WEIR_DROP_FRAG_NO_FIRST,     /* non-first fragment whose first was not seen */
	WEIR_DROP_TABLE_FULL,        /* flow table full and nothing evictable */
	WEIR_DROP_RING_FULL,         /* hand-off ring to a worker full */
	WEIR_DROP_EXPORT_RING_FULL,  /* expired flow lost: export ring full */
	WEIR_DROP__MAX,
};

#endif /* WEIR_ABI_DROP_REASON_H */
