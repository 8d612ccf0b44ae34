/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * weir ABI: the canonical flow key as BPF programs build it.
 *
 * Byte for byte the same layout as weir::FlowKey (engine/core/.../flow_key.hpp,
 * which static_asserts it), so a key read from a BPF map is a FlowKey and a
 * FlowKey can be used as a map key with no conversion:
 *   side a = the numerically lower (address, port) endpoint, b the higher;
 *   IPv4 addresses in the first 4 bytes of addr_*, the other 12 zero;
 *   ports in HOST byte order (ICMP: type << 8 | code);
 *   vlan = outer 802.1Q id (12 bits), 0 = none;
 *   tunnel_id/tunnel_type describe the outermost tunnel (0 = none);
 *   pad always zero.
 */
#ifndef WEIR_ABI_FLOW_KEY_H
#define WEIR_ABI_FLOW_KEY_H

#ifdef __cplusplus
#include <cstdint>
#define WEIR_U8 std::uint8_t
#define WEIR_U16 std::uint16_t
#define WEIR_U32 std::uint32_t
#else
#include <linux/types.h>
#define WEIR_U8 __u8
#define WEIR_U16 __u16
#define WEIR_U32 __u32
#endif

struct weir_flow_key {
	WEIR_U8 addr_a[16];
	WEIR_U8 addr_b[16];
	WEIR_U16 port_a;
	WEIR_U16 port_b;
	WEIR_U32 tunnel_id;
	WEIR_U16 vlan;
	WEIR_U8 proto;
	WEIR_U8 ip_version;
	WEIR_U8 tunnel_type;
	WEIR_U8 pad[3];
};

#endif /* WEIR_ABI_FLOW_KEY_H */
