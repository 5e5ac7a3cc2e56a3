#!/usr/bin/env python3
"""ICMP echo to one host at a fixed interval, going on through send errors (busybox ping stops at
the first, e.g. while its interface is down), for measuring a traffic gap.

Usage: pinger.py HOST INTERVAL_S COUNT

Prints one JSON object: "replies" (the sequence numbers answered, in arrival order, a duplicate
as often as it came), "send_errors", "longest_silence_ms" (the longest time between two
answered echoes' sending, counting from before the first and to after the last) and "dups".
"""
import json
import os
import select
import socket
import struct
import sys
import time


def checksum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    host, interval, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    ident = os.getpid() & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    replies, errors = [], 0
    start = time.monotonic()
    for seq in range(count + int(1 / interval)):  # then a second for the last replies
        if seq < count:
            body = struct.pack("!d", time.monotonic()) + bytes(48)
            head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, seq) + body
            try:
                s.sendto(packet, (host, 0))
            except OSError:
                errors += 1
        until = start + (seq + 1) * interval
        while (left := until - time.monotonic()) > 0:
            ready, _, _ = select.select([s], [], [], left)
            if not ready:
                break
            data = s.recv(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and rid == ident:
                replies.append(rseq)
    got = sorted(set(replies))
    gaps = [b - a for a, b in zip([-1] + got, got + [count])]
    print(json.dumps({"replies": replies, "send_errors": errors, "dups": len(replies) - len(got),
                      "longest_silence_ms": round(max(gaps) * interval * 1000, 1)}))


if __name__ == "__main__":
    main()
