#!/usr/bin/env python3
"""An 802.3ad (LACP) partner for a test: speaks LACP on the given interfaces as a switch would.

Usage: lacp_partner.py SECONDS FLOOD_AT FLOOD_COUNT LEAVE_AT IFACE...

Every 0.3 s it sends a LACPDU on each interface (fast rate, in sync, collecting and distributing),
with what it last heard from the other side as the partner information, so that the other side
can aggregate. At FLOOD_AT seconds it sends FLOOD_COUNT broadcast data frames on the first
interface. At LEAVE_AT seconds it leaves the aggregation (no longer in sync, collecting or
distributing), as a switch does when its port is taken out. After SECONDS it prints, as JSON, per
interface: the LACPDUs it received after the flood, and the last one's actor state, partner system
and partner state (what the other side last heard from this partner).
"""
import json
import select
import socket
import struct
import sys
import time

ETH_P_SLOW = 0x8809
LACP_DST = bytes.fromhex("0180c2000002")
SYSTEM = bytes.fromhex("0200000000aa")
# actor state: active, short timeout, aggregatable, in sync, collecting, distributing
IN = 0x3F
# active, short timeout, aggregatable only
OUT = 0x07


def info_tlv(kind, system, key, port, state, prio=0x8000, port_prio=0x80):
    return struct.pack("!BBH6sHHHB3x", kind, 20, prio, system, key, port_prio, port, state)


def lacpdu(src, port, heard, state):
    body = struct.pack("!BB", 1, 1)  # LACP, version 1
    body += info_tlv(1, SYSTEM, 7, port, state)
    body += heard if heard else info_tlv(2, bytes(6), 0, 0, 0)
    body += struct.pack("!BBH12x", 3, 16, 0)  # collector
    body += bytes(52)  # terminator and reserved
    return LACP_DST + src + struct.pack("!H", ETH_P_SLOW) + body


def main():
    seconds, flood_at, flood_count, leave_at = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(
        sys.argv[4])
    ifaces = sys.argv[5:]
    socks, macs, heard, seen = {}, {}, {}, {}
    for i in ifaces:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_SLOW))
        s.bind((i, ETH_P_SLOW))
        socks[i] = s
        macs[i] = bytes.fromhex(open(f"/sys/class/net/{i}/address").read().strip().replace(":", ""))
        heard[i] = None
        seen[i] = {"after_flood": 0, "total": 0, "actor_state": None, "partner_system": None,
                   "partner_state": None}
    data = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    data.bind((ifaces[0], 0))
    start = time.monotonic()
    next_send, flooded = start, False
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_send:
            for n, i in enumerate(ifaces):
                socks[i].send(lacpdu(macs[i], n + 1, heard[i], OUT if now - start >= leave_at else IN))
            next_send = now + 0.3
        if not flooded and now - start >= flood_at:
            frame = b"\xff" * 6 + macs[ifaces[0]] + struct.pack("!H", 0x88B5) + bytes(50)
            for _ in range(flood_count):
                data.send(frame)
            flooded = True
        ready, _, _ = select.select(list(socks.values()), [], [], 0.05)
        for s in ready:
            i = next(k for k, v in socks.items() if v is s)
            f = s.recv(2048)
            if len(f) < 14 + 2 + 40 or f[12:14] != struct.pack("!H", ETH_P_SLOW) or f[14] != 1:
                continue
            actor = f[16:36]
            # what we heard becomes our partner information (TLV type 2)
            heard[i] = bytes([2]) + actor[1:]
            rec = seen[i]
            rec["total"] += 1
            if flooded:
                rec["after_flood"] += 1
            rec["actor_state"] = actor[16]
            rec["partner_system"] = f[40:46].hex(":")
            rec["partner_state"] = f[52]
    print(json.dumps(seen))


main()
