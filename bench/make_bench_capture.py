#!/usr/bin/env python3
"""Builds the throughput capture from the real captures in ../shared/pcaps/ndpi.

Every Ethernet capture is concatenated (mergecap -a), then the result is
repeated COPIES times. In copy k the client port of every TCP/UDP packet
(the higher of the two ports, the ephemeral one) is shifted by k, and the
timestamps by k times the span plus one second, so every copy's flows are
distinct and the flows of one copy end before the next begins.
About 5.0 million packets with real payloads at the default 65 copies.

usage: make_bench_capture.py OUT.pcap [--copies 65] [--shared DIR]
"""
import argparse, glob, os, struct, subprocess, sys, tempfile

def linktype_of(path):
    out = subprocess.run(["capinfos", "-E", "-M", path], capture_output=True, text=True).stdout
    return any(l.split(":", 1)[1].strip() == "ether" for l in out.splitlines() if l.startswith("File encapsulation"))

def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xa1b2c3d4: e, ns = "<", False
    elif magic == 0xa1b23c4d: e, ns = "<", True
    elif magic == 0xd4c3b2a1: e, ns = ">", False
    elif magic == 0x4d3cb2a1: e, ns = ">", True
    else: sys.exit(f"{path}: not a classic pcap")
    off, recs = 24, []
    while off + 16 <= len(data):
        s, sub, cap, wire = struct.unpack(e + "IIII", data[off:off + 16])
        ts = s * 1_000_000_000 + (sub if ns else sub * 1000)
        recs.append((ts, wire, data[off + 16: off + 16 + cap]))
        off += 16 + cap
    return recs

def l4_offset(frame):
    """Offset of the TCP/UDP header in an Ethernet frame (VLANs skipped), or None."""
    off, et = 14, struct.unpack("!H", frame[12:14])[0] if len(frame) >= 14 else 0
    while et in (0x8100, 0x88a8) and len(frame) >= off + 4:
        et = struct.unpack("!H", frame[off + 2: off + 4])[0]; off += 4
    if et == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0f) * 4
        frag = struct.unpack("!H", frame[off + 6: off + 8])[0] & 0x1fff
        if frame[off + 9] in (6, 17) and frag == 0:
            return off + ihl
    elif et == 0x86dd and len(frame) >= off + 40 and frame[off + 6] in (6, 17):
        return off + 40
    return None

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--copies", type=int, default=65)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    a = ap.parse_args()
    caps = sorted(glob.glob(os.path.join(a.shared, "pcaps", "ndpi", "pcap", "*")))
    eth = [c for c in caps if linktype_of(c)]
    with tempfile.TemporaryDirectory() as tmp:
        merged = os.path.join(tmp, "merged.pcap")
        subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", merged] + eth, check=True)
        recs = read_pcap(merged)
    # Shift every capture's time base onto the first one's: mergecap -a keeps
    # original stamps, which jump back and forth between captures.
    t0 = recs[0][0]
    base = []
    prev = t0
    for ts, wire, frame in recs:
        if ts < prev or ts - prev > 600_000_000_000:
            ts = prev + 1000  # a capture boundary: continue 1 us later
        base.append((ts, wire, frame)); prev = ts
    span = base[-1][0] - base[0][0] + 1_000_000_000
    offsets = [l4_offset(f) for _, _, f in base]
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, 1))
        for k in range(a.copies):
            for (ts, wire, frame), l4 in zip(base, offsets):
                if k and l4 is not None and len(frame) >= l4 + 4:
                    sp, dp = struct.unpack("!HH", frame[l4:l4 + 4])
                    fr = bytearray(frame)
                    if sp >= dp:
                        sp = 1024 + (sp - 1024 + k) % 64512
                    else:
                        dp = 1024 + (dp - 1024 + k) % 64512
                    fr[l4:l4 + 4] = struct.pack("!HH", sp, dp)
                    frame = bytes(fr)
                t = ts + k * span
                f.write(struct.pack("<IIII", t // 1_000_000_000, t % 1_000_000_000, len(frame), wire))
                f.write(frame)
    print(f"{a.out}: {len(base) * a.copies} packets from {len(eth)} Ethernet captures x {a.copies}")

if __name__ == "__main__":
    main()
