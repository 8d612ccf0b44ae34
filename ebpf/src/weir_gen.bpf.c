/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir-gen's kernel half: a packet generator driven by BPF_PROG_RUN and a
 * counting sink.
 *
 * weir_gen_xdp runs under BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the
 * kernel hands it copies of one template frame and transmits whatever it
 * redirects. For every frame it writes the next flow of the flow set (see
 * weir/abi/gen.h) into the source port and, past 60000 flows, the last byte
 * of the IPv4 or IPv6 source address, fixes the IPv4 header and L4
 * checksums incrementally
 * (RFC 1624) from the TEMPLATE's values kept in rodata, and redirects out of
 * gen_ifindex. Live frames are recycled without being reset, so nothing is
 * derived from the bytes already in the frame: the result does not depend
 * on which earlier frame a page carried.
 *
 * The redirect verdict is counted by the program; what happens at the
 * device is counted by two raw tracepoints (xdp_devmap_xmit for frames the
 * device accepted or refused at flush, xdp_redirect_err for redirects that
 * failed before) filtered on the generator's own process, since the flush
 * runs synchronously inside its BPF_PROG_RUN call, and on the target device
 * (a softirq of another device may run on top of the generator's thread).
 *
 * weir_gen_sink is the receiving end for tests and benchmarks: it counts
 * frames and bytes per CPU, keeps a few frames per CPU verbatim (the first
 * ones, or every Nth), optionally counts packets per distinct IPv4/IPv6
 * 5-tuple, and drops.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include <weir/abi/gen.h>

/* Generator configuration, set by weir-gen before load. */
const volatile __u32 gen_ifindex = 0;
const volatile __u32 gen_nflows = 1;
const volatile __u32 gen_sport_base = 1024; /* host order */
const volatile __u32 gen_l3_off = ETH_HLEN;  /* 18 with an 802.1Q tag */
const volatile __u32 gen_ipv4 = 1;           /* 0: IPv6, no header checksum */
const volatile __u32 gen_l4_off = ETH_HLEN + 20;
const volatile __u32 gen_l4_csum_off = 6;    /* from the L4 header: UDP 6, TCP 16 */
const volatile __u32 gen_saddr_lo_off = ETH_HLEN + 15; /* last byte of the source address */
const volatile __u32 gen_saddr_w1 = 0;       /* last two source address bytes, host order */
const volatile __u32 gen_ip_csum = 0;        /* template IPv4 header checksum, host order */
const volatile __u32 gen_l4_csum = 0;        /* template L4 checksum, host order */
const volatile __u32 gen_udp = 1;            /* UDP: a computed 0 checksum is sent as 0xffff */
const volatile __u32 gen_tgid = 0;           /* the generator's process, for the tracepoints */

/* Sink configuration. */
const volatile __u32 sink_count_flows = 0;
const volatile __u32 sink_sample_every = 1; /* sample frames 0, N, 2N... of each CPU */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_gen_stats);
} gen_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_gen_sink_stats);
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_GEN_SAMPLES);
	__type(key, __u32);
	__type(value, struct weir_gen_sample);
} sink_samples SEC(".maps");

/* Distinct flows seen by the sink; max_entries is resized before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_gen_flow);
	__type(value, __u64);
} sink_flows SEC(".maps");

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all values host order 16 bit. */
static __always_inline __u16 csum_replace16(__u32 csum, __u32 old, __u32 new)
{
	__u32 s = (~csum & 0xffff) + (~old & 0xffff) + (new & 0xffff);

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

static __always_inline __u16 csum_replace2x16(__u32 csum, __u32 old1, __u32 new1, __u32 old2,
					      __u32 new2)
{
	__u32 s = (~csum & 0xffff) + (~old1 & 0xffff) + (new1 & 0xffff) + (~old2 & 0xffff) +
		  (new2 & 0xffff);

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

SEC("xdp")
int weir_gen_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct weir_gen_stats *st;
	__u32 zero = 0;
	__u32 flow, sport, hi, w1;
	__u8 *l4;

	st = bpf_map_lookup_elem(&gen_stats, &zero);
	if (!st)
		return XDP_ABORTED;

	/* Offsets are rodata constants: the verifier sees them as such. The
	 * source address and the IPv4 header lie before the L4 header. */
	l4 = data + gen_l4_off;
	if ((void *)(l4 + gen_l4_csum_off + 2) > data_end) {
		/* weir-gen never builds such a template; count it, do not send it. */
		st->short_frame++;
		return XDP_DROP;
	}

	flow = st->cursor;
	st->cursor = flow + 1 >= gen_nflows ? 0 : flow + 1;

	hi = flow / WEIR_GEN_PORTS_PER_IP;
	sport = gen_sport_base + (flow - hi * WEIR_GEN_PORTS_PER_IP);
	w1 = (gen_saddr_w1 & 0xff00) | ((gen_saddr_w1 + hi) & 0xff);

	*(__u16 *)l4 = bpf_htons(sport);
	*((__u8 *)data + gen_saddr_lo_off) = w1 & 0xff;
	if (gen_ipv4) {
		struct iphdr *ip = data + gen_l3_off;

		ip->check = bpf_htons(csum_replace16(gen_ip_csum, gen_saddr_w1, w1));
	}
	{
		__u16 c = csum_replace2x16(gen_l4_csum, gen_saddr_w1, w1, gen_sport_base, sport);

		if (gen_udp && c == 0)
			c = 0xffff;
		*(__u16 *)(l4 + gen_l4_csum_off) = bpf_htons(c);
	}

	st->redirected++;
	return bpf_redirect(gen_ifindex, 0);
}

/* Only the field read here; CO-RE relocates its offset against the
 * running kernel's BTF. */
struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

/* TP_PROTO(const struct net_device *from_dev, const struct net_device *to_dev,
 *          int sent, int drops, int err) */
SEC("raw_tp/xdp_devmap_xmit")
int weir_gen_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	const struct net_device *to = (const void *)ctx->args[1];
	struct weir_gen_stats *st;
	__u32 zero = 0;

	if ((bpf_get_current_pid_tgid() >> 32) != gen_tgid)
		return 0;
	if ((__u32)BPF_CORE_READ(to, ifindex) != gen_ifindex)
		return 0;
	st = bpf_map_lookup_elem(&gen_stats, &zero);
	if (!st)
		return 0;
	st->xmit_sent += (int)ctx->args[2];
	st->xmit_drops += (int)ctx->args[3];
	return 0;
}

/* TP_PROTO(const struct net_device *dev, const struct bpf_prog *xdp,
 *          const void *tgt, int err, enum bpf_map_type map_type,
 *          u32 map_id, u32 index); index is the target ifindex of a
 * bpf_redirect(). */
SEC("raw_tp/xdp_redirect_err")
int weir_gen_redirect_err(struct bpf_raw_tracepoint_args *ctx)
{
	struct weir_gen_stats *st;
	__u32 zero = 0;

	if ((bpf_get_current_pid_tgid() >> 32) != gen_tgid)
		return 0;
	if ((__u32)ctx->args[6] != gen_ifindex)
		return 0;
	st = bpf_map_lookup_elem(&gen_stats, &zero);
	if (!st)
		return 0;
	st->redirect_err++;
	return 0;
}

static __always_inline void sink_count_flow(struct xdp_md *ctx, struct weir_gen_sink_stats *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct weir_gen_flow key = {};
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u16 proto;
	__u64 one = 1, *v;
	__u16 *ports;

	if ((void *)(eth + 1) > data_end)
		goto unparsed;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		__u16 *inner = l3;

		if ((void *)(inner + 2) > data_end)
			goto unparsed;
		proto = inner[1];
		l3 = inner + 2;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end || ip->ihl != 5)
			goto unparsed;
		__builtin_memcpy(key.saddr, &ip->saddr, 4);
		__builtin_memcpy(key.daddr, &ip->daddr, 4);
		key.proto = ip->protocol;
		key.ip_version = 4;
		ports = (void *)(ip + 1);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			goto unparsed;
		__builtin_memcpy(key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
		key.proto = ip6->nexthdr;
		key.ip_version = 6;
		ports = (void *)(ip6 + 1);
	} else {
		goto unparsed;
	}
	if (key.proto == IPPROTO_UDP || key.proto == IPPROTO_TCP) {
		if ((void *)(ports + 2) > data_end)
			goto unparsed;
		key.sport = ports[0];
		key.dport = ports[1];
	}

	v = bpf_map_lookup_elem(&sink_flows, &key);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	if (bpf_map_update_elem(&sink_flows, &key, &one, BPF_NOEXIST) == 0)
		return;
	/* Another CPU inserted it first, or the table is full. */
	v = bpf_map_lookup_elem(&sink_flows, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		st->flow_table_full++;
	return;

unparsed:
	st->unparsed++;
}

SEC("xdp")
int weir_gen_sink(struct xdp_md *ctx)
{
	struct weir_gen_sink_stats *st;
	__u32 zero = 0;
	__u32 len;

	st = bpf_map_lookup_elem(&sink_stats, &zero);
	if (!st)
		return XDP_DROP;
	len = bpf_xdp_get_buff_len(ctx);
	st->packets++;
	st->bytes += len;

	if (st->sampled < WEIR_GEN_SAMPLES &&
	    (sink_sample_every <= 1 || (st->packets - 1) % sink_sample_every == 0)) {
		__u32 idx = st->sampled;
		struct weir_gen_sample *s = bpf_map_lookup_elem(&sink_samples, &idx);

		st->sampled++;
		if (s) {
			__u64 cap = len;

			if (cap > WEIR_GEN_SAMPLE_BYTES)
				cap = WEIR_GEN_SAMPLE_BYTES;
			/* Keep clang from folding cap back into len: the
			 * verifier needs the bounds on the register passed. */
			asm volatile("" : "+r"(cap));
			s->len = len;
			s->caplen = 0;
			if (cap >= 1 && cap <= WEIR_GEN_SAMPLE_BYTES &&
			    bpf_xdp_load_bytes(ctx, 0, s->data, cap) == 0)
				s->caplen = cap;
		}
	}

	if (sink_count_flows)
		sink_count_flow(ctx, st);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
