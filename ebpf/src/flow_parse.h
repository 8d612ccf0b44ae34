/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * BPF-side packet parser: an Ethernet frame into the canonical flow key
 * (weir/abi/flow_key.h). BPF programs only; user space has the decoder
 * (engine/src/decoder.cpp), and for the frames this parser accepts both
 * build the same 48 bytes (tests/live/xdp_prog_test.cpp checks it):
 *
 *   Ethernet, up to two 802.1Q/802.1ad tags (0x8100, 0x88a8, 0x9100; the
 *   outer id is the key's vlan), IPv4 with options, IPv6 with up to eight
 *   extension headers (hop-by-hop, routing, destination options, mobility,
 *   fragment, AH), then TCP/UDP/UDP-Lite/SCTP ports or ICMP/ICMPv6
 *   type/code folded the decoder's way: an echo/timestamp/information/mask
 *   reply carries its request's type as the source "port", anything else
 *   puts type << 8 | code on the destination side.
 *
 * Differences from the decoder, by design:
 *   - Tunnels (GRE, VXLAN, GTP-U, IP-in-IP) are not decapsulated: the key is
 *     the outer datagram's (tunnel_type 0). The decoder keys the inner flow.
 *   - Non-first IP fragments get ports 0. The decoder remembers the ports of
 *     a first fragment it saw (and agrees with this parser when it did not).
 *   - MPLS, PPPoE and more than two VLAN tags are not parsed (NON_IP and
 *     TOO_MANY_ENCAPS), so such frames have no key here.
 *
 * weir_parse_flow() returns WEIR_DROP_NONE with *key filled, or the
 * decoder's drop reason for the frame (the key is then incomplete).
 * Every read goes through weir_hdr(), whose bounds check is the one the
 * verifier needs; offsets are kept below WEIR_PARSE_MAX_OFF so their ranges
 * stay known.
 */
#ifndef WEIR_FLOW_PARSE_H
#define WEIR_FLOW_PARSE_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <weir/abi/drop_reason.h>
#include <weir/abi/flow_key.h>

#define WEIR_PARSE_MAX_VLAN 2
#define WEIR_PARSE_MAX_IPV6_EXT 8
/* Deepest header offset looked at (IPv6 extension chains end here). */
#define WEIR_PARSE_MAX_OFF 4096

#define WEIR_ETH_P_IPV4 0x0800
#define WEIR_ETH_P_IPV6 0x86dd
#define WEIR_ETH_P_8021Q 0x8100
#define WEIR_ETH_P_8021AD 0x88a8
#define WEIR_ETH_P_QINQ_OLD 0x9100

#define WEIR_IPPROTO_HOPOPTS 0
#define WEIR_IPPROTO_ICMP 1
#define WEIR_IPPROTO_TCP 6
#define WEIR_IPPROTO_UDP 17
#define WEIR_IPPROTO_ROUTING 43
#define WEIR_IPPROTO_FRAGMENT 44
#define WEIR_IPPROTO_AH 51
#define WEIR_IPPROTO_ICMPV6 58
#define WEIR_IPPROTO_DSTOPTS 60
#define WEIR_IPPROTO_SCTP 132
#define WEIR_IPPROTO_MH 135
#define WEIR_IPPROTO_UDPLITE 136

/* n bytes at off, or NULL when the frame is shorter. */
static __always_inline const __u8 *weir_hdr(const void *data, const void *data_end, __u32 off, __u32 n)
{
	const __u8 *p;

	if (off > WEIR_PARSE_MAX_OFF)
		return NULL;
	p = (const __u8 *)data + off;
	if ((const void *)(p + n) > data_end)
		return NULL;
	return p;
}

static __always_inline __u16 weir_ld16(const __u8 *p)
{
	return (__u16)(p[0] << 8 | p[1]);
}

static __always_inline int weir_is_vlan(__u16 type)
{
	return type == WEIR_ETH_P_8021Q || type == WEIR_ETH_P_8021AD || type == WEIR_ETH_P_QINQ_OLD;
}

/* The addresses and ports in packet direction, before canonicalisation. */
struct weir_parse_state {
	__u64 src[2]; /* address bytes in packet order, IPv4: 4 bytes then zeros */
	__u64 dst[2];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 tcp_flags; /* TCP only: the header's flag byte (FIN 0x01, SYN 0x02, RST 0x04...) */
};

/* Ports (or ICMP type/code) of the L4 header at l4; the datagram ends at end. */
static __always_inline int weir_parse_l4(const void *data, const void *data_end, __u32 l4, __u32 end,
					 struct weir_parse_state *s)
{
	const __u32 avail = end - l4;
	const __u8 *t;
	__u32 need;

	switch (s->proto) {
	case WEIR_IPPROTO_TCP:
		need = 20;
		break;
	case WEIR_IPPROTO_UDP:
	case WEIR_IPPROTO_UDPLITE:
		need = 8;
		break;
	case WEIR_IPPROTO_SCTP:
		need = 12;
		break;
	case WEIR_IPPROTO_ICMP:
	case WEIR_IPPROTO_ICMPV6:
		need = 4;
		break;
	default:
		return WEIR_DROP_NONE; /* no ports */
	}
	if (avail < need)
		return WEIR_DROP_TRUNCATED_L4;
	t = weir_hdr(data, data_end, l4, 4);
	if (!t)
		return WEIR_DROP_TRUNCATED_L4;
	if (s->proto == WEIR_IPPROTO_ICMP || s->proto == WEIR_IPPROTO_ICMPV6) {
		/* A reply carries its request's type as source "port" so that a
		 * request and its reply make one bidirectional flow. */
		const __u8 type = t[0], code = t[1];
		int request = -1;

		if (s->proto == WEIR_IPPROTO_ICMP) {
			if (type == 0)
				request = 8;
			else if (type == 14)
				request = 13;
			else if (type == 16)
				request = 15;
			else if (type == 18)
				request = 17;
		} else if (type == 129) {
			request = 128;
		}
		if (request >= 0) {
			s->sport = (__u16)(request << 8 | code);
			s->dport = 0;
		} else {
			s->sport = 0;
			s->dport = (__u16)(type << 8 | code);
		}
		return WEIR_DROP_NONE;
	}
	s->sport = weir_ld16(t);
	s->dport = weir_ld16(t + 2);
	if (s->proto == WEIR_IPPROTO_TCP) {
		/* avail >= 20 above, and end never lies past the frame */
		const __u8 *f = weir_hdr(data, data_end, l4 + 13, 1);

		if (f)
			s->tcp_flags = f[0];
	}
	return WEIR_DROP_NONE;
}

static __always_inline int weir_parse_ipv4(const void *data, const void *data_end, __u32 off, __u32 cap,
					   struct weir_parse_state *s)
{
	const __u8 *h = weir_hdr(data, data_end, off, 20);
	__u32 hl, total, full_end, end;
	__u32 a;

	if (!h)
		return WEIR_DROP_TRUNCATED_IP;
	hl = (h[0] & 0x0f) * 4;
	if ((h[0] >> 4) != 4 || hl < 20)
		return WEIR_DROP_BAD_IP_HEADER;
	/* Total length 0: a segmentation-offloaded super-frame; the frame is
	 * the only bound (as in the decoder). */
	total = weir_ld16(h + 2);
	if (total == 0)
		total = cap - off;
	if (total < hl)
		return WEIR_DROP_BAD_IP_HEADER;
	if (cap - off < hl)
		return WEIR_DROP_TRUNCATED_IP;
	__builtin_memcpy(&a, h + 12, 4);
	s->src[0] = a;
	s->src[1] = 0;
	__builtin_memcpy(&a, h + 16, 4);
	s->dst[0] = a;
	s->dst[1] = 0;
	s->proto = h[9];
	/* A non-first fragment holds no L4 header: ports stay 0. */
	if (weir_ld16(h + 6) & 0x1fff)
		return WEIR_DROP_NONE;
	/* Trust the header's total length over the frame (Ethernet padding). */
	full_end = off + total;
	end = full_end < cap ? full_end : cap;
	return weir_parse_l4(data, data_end, off + hl, end, s);
}

static __always_inline int weir_ipv6_is_ext(__u8 nh)
{
	return nh == WEIR_IPPROTO_HOPOPTS || nh == WEIR_IPPROTO_ROUTING || nh == WEIR_IPPROTO_DSTOPTS ||
	       nh == WEIR_IPPROTO_MH || nh == WEIR_IPPROTO_FRAGMENT || nh == WEIR_IPPROTO_AH;
}

static __always_inline int weir_parse_ipv6(const void *data, const void *data_end, __u32 off, __u32 cap,
					   struct weir_parse_state *s)
{
	const __u8 *h = weir_hdr(data, data_end, off, 40);
	__u32 plen, full_end, end, x;
	int later = 0;
	__u8 nh;
	int n;

	if (!h)
		return WEIR_DROP_TRUNCATED_IP;
	if ((h[0] >> 4) != 6)
		return WEIR_DROP_BAD_IP_HEADER;
	plen = weir_ld16(h + 4);
	/* Payload length 0: a jumbogram or an offloaded super-frame. */
	full_end = plen ? off + 40 + plen : cap;
	end = full_end < cap ? full_end : cap;
	__builtin_memcpy(s->src, h + 8, 16);
	__builtin_memcpy(s->dst, h + 24, 16);

	nh = h[6];
	x = off + 40;
#pragma unroll
	for (n = 0; n <= WEIR_PARSE_MAX_IPV6_EXT; n++) {
		const __u8 *e;
		__u32 len;
		__u8 next;

		if (!weir_ipv6_is_ext(nh))
			break;
		if (n == WEIR_PARSE_MAX_IPV6_EXT || x + 2 > full_end)
			return WEIR_DROP_BAD_IPV6_EXT;
		if (x + 2 > end)
			return WEIR_DROP_TRUNCATED_IP;
		e = weir_hdr(data, data_end, x, 2);
		if (!e)
			return WEIR_DROP_TRUNCATED_IP;
		if (nh == WEIR_IPPROTO_FRAGMENT)
			len = 8;
		else if (nh == WEIR_IPPROTO_AH)
			len = (e[1] + 2u) * 4;
		else
			len = (e[1] + 1u) * 8;
		if (x + len > full_end)
			return WEIR_DROP_BAD_IPV6_EXT;
		if (x + len > end)
			return WEIR_DROP_TRUNCATED_IP;
		next = e[0];
		if (nh == WEIR_IPPROTO_FRAGMENT) {
			const __u8 *f = weir_hdr(data, data_end, x, 8);

			if (!f)
				return WEIR_DROP_TRUNCATED_IP;
			/* Offset > 0: everything after this header is fragment
			 * data. An atomic fragment (offset 0, M=0) is a whole
			 * datagram (RFC 6946). */
			if (weir_ld16(f + 2) & 0xfff8)
				later = 1;
		}
		nh = next;
		x += len;
		if (later)
			break;
	}
	s->proto = nh;
	if (later)
		return WEIR_DROP_NONE;
	return weir_parse_l4(data, data_end, x, end, s);
}

/* Side a = the numerically lower (address, port) endpoint, addresses
 * compared as big-endian byte strings (as the decoder's write_key).
 * Returns 1 when the packet's source became side a, 0 when the key was
 * swapped (the packet goes from side b to side a). */
static __always_inline int weir_canonical_key(const struct weir_parse_state *s, __u16 vlan, __u8 version,
					       struct weir_flow_key *key)
{
	int src_is_a;

	if (s->src[0] != s->dst[0])
		src_is_a = __builtin_bswap64(s->src[0]) < __builtin_bswap64(s->dst[0]);
	else if (s->src[1] != s->dst[1])
		src_is_a = __builtin_bswap64(s->src[1]) < __builtin_bswap64(s->dst[1]);
	else
		src_is_a = s->sport <= s->dport;
	if (src_is_a) {
		__builtin_memcpy(key->addr_a, s->src, 16);
		__builtin_memcpy(key->addr_b, s->dst, 16);
		key->port_a = s->sport;
		key->port_b = s->dport;
	} else {
		__builtin_memcpy(key->addr_a, s->dst, 16);
		__builtin_memcpy(key->addr_b, s->src, 16);
		key->port_a = s->dport;
		key->port_b = s->sport;
	}
	key->tunnel_id = 0;
	key->vlan = vlan;
	key->proto = s->proto;
	key->ip_version = version;
	key->tunnel_type = 0;
	key->pad[0] = key->pad[1] = key->pad[2] = 0;
	return src_is_a;
}

/* The frame [data, data_end) into *key; WEIR_DROP_NONE when *key is valid.
 * tcp_flags (may be NULL) gets the TCP flag byte, 0 for anything else and
 * for non-first fragments. src_is_a (may be NULL) gets 1 when the frame's
 * source is side a of the key, 0 when it is side b (the decoder's
 * PacketMeta::src_is_a). */
static __always_inline int weir_parse_flow_dir(const void *data, const void *data_end, struct weir_flow_key *key,
					       __u8 *tcp_flags, int *src_is_a)
{
	struct weir_parse_state s = {};
	const __u32 cap = (__u32)((const __u8 *)data_end - (const __u8 *)data);
	const __u8 *eth = weir_hdr(data, data_end, 0, 14);
	__u16 type, vlan = 0;
	__u32 off = 14;
	__u8 version;
	int rc, i;

	if (!eth)
		return WEIR_DROP_TRUNCATED_L2;
	type = weir_ld16(eth + 12);
#pragma unroll
	for (i = 0; i < WEIR_PARSE_MAX_VLAN; i++) {
		const __u8 *tag;

		if (!weir_is_vlan(type))
			break;
		tag = weir_hdr(data, data_end, off, 4);
		if (!tag)
			return WEIR_DROP_TRUNCATED_L2;
		if (i == 0)
			vlan = weir_ld16(tag) & 0x0fff;
		type = weir_ld16(tag + 2);
		off += 4;
	}
	if (type == WEIR_ETH_P_IPV4) {
		version = 4;
		rc = weir_parse_ipv4(data, data_end, off, cap, &s);
	} else if (type == WEIR_ETH_P_IPV6) {
		version = 6;
		rc = weir_parse_ipv6(data, data_end, off, cap, &s);
	} else {
		return weir_is_vlan(type) ? WEIR_DROP_TOO_MANY_ENCAPS : WEIR_DROP_NON_IP;
	}
	if (rc != WEIR_DROP_NONE)
		return rc;
	rc = weir_canonical_key(&s, vlan, version, key);
	if (src_is_a)
		*src_is_a = rc;
	if (tcp_flags)
		*tcp_flags = s.tcp_flags;
	return WEIR_DROP_NONE;
}

static __always_inline int weir_parse_flow_flags(const void *data, const void *data_end, struct weir_flow_key *key,
						 __u8 *tcp_flags)
{
	return weir_parse_flow_dir(data, data_end, key, tcp_flags, NULL);
}

static __always_inline int weir_parse_flow(const void *data, const void *data_end, struct weir_flow_key *key)
{
	return weir_parse_flow_flags(data, data_end, key, NULL);
}

/* 32-bit hash of a canonical key: the same for both directions of a flow. */
static __always_inline __u32 weir_flow_key_hash(const struct weir_flow_key *key)
{
	const __u32 *w = (const __u32 *)key;
	__u64 h = 0x9e3779b97f4a7c15ULL;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*key) / 4); i++) {
		h ^= w[i];
		h *= 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 31;
	}
	return (__u32)(h ^ (h >> 32));
}

#endif /* WEIR_FLOW_PARSE_H */
