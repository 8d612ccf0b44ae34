"""The IDS egress e2e scripts' flows: generated pcap files (IPv4 frames
with valid header checksums) and per-flow views of weir's JSON flow files."""
import json
import struct
import sys

# pcap file header: microsecond timestamps, snaplen 65535, Ethernet.
PCAP_HEADER = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
# Start of the generated captures' time, in microseconds.
T0_US = 1_700_000_000 * 1_000_000


def pcap_record(t_us, f):
    """One pcap record of frame f at t_us microseconds."""
    return struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(f), len(f)) + f


def csum(h):
    """The Internet checksum of h (even length)."""
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


def ip4(src, dst, proto, l4):
    """An IPv4 packet (no options, TTL 64) around the L4 bytes."""
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4


def udp_frame(src, dst, sp, dp, plen=18):
    """An Ethernet frame (02:..:01 -> 02:..:02 whatever the direction) with
    a UDP datagram of plen zero bytes."""
    udp = struct.pack("!HHHH", sp, dp, 8 + plen, 0) + bytes(plen)
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip4(src, dst, 17, udp)


def load(p):
    """The flows of a --json file, [] if weir wrote none."""
    try:
        return [json.loads(l) for l in open(p)]
    except FileNotFoundError:
        return []


def key(f):
    """The flow's 5-tuple, the same for both directions."""
    a = sorted([(f.get("IPV4_SRC_ADDR") or f.get("IPV6_SRC_ADDR"), f["L4_SRC_PORT"]),
                (f.get("IPV4_DST_ADDR") or f.get("IPV6_DST_ADDR"), f["L4_DST_PORT"])])
    return (f["PROTOCOL"], *a)


def agg(fl):
    """Packets per flow key, both directions and every record of the flow."""
    r = {}
    for f in fl:
        k = key(f)
        r[k] = r.get(k, 0) + f["IN_PKTS"] + f["OUT_PKTS"]
    return r


def names(fl):
    """The L7 protocol name per flow key."""
    return {key(f): f.get("L7_PROTO_NAME", "") for f in fl}


class Checks:
    """ok/FAIL lines as the scripts' shell check() prints them, counted."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.bad = 0

    def ok(self, cond, what):
        print(("ok: " if cond else "FAIL: ") + self.prefix + what)
        self.bad += 0 if cond else 1

    def exit(self):
        """Ends the script: status 1 if any check failed."""
        sys.exit(1 if self.bad else 0)
