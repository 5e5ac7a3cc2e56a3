#!/usr/bin/env python3
"""The hot-upgrade design's front door and replay (docs/hot-upgrade.md), as a test rig.

Usage: vhost_replay_proxy.py LISTEN BACKEND CONTROL

Listens on the unix socket LISTEN for one vhost-user front-end (QEMU, or dpdk-testpmd's
virtio_user), connects to the back-end's server socket BACKEND (vio4wd's relay socket) and relays
every message both ways with its descriptors, keeping the replay record. A line "replay" on the
unix socket CONTROL makes it: stop reading the front-end, read every started ring's base from the
back-end (GET_VRING_BASE, which stops the ring there), close the back-end connection, connect
again (or, for "replay PATH", to another back-end's socket: another daemon) and replay the record
with those bases, write each ring's call eventfd once and resume. It
answers "replayed <rings> <ms> front-end-fd <fd>" (the front-end's socket is the same object
throughout: it is never closed) or "failed <why>". It prints "ready" once LISTEN exists.

This is the experiment behind the design's central claim: rte_vhost takes a session it never saw
from messages alone, at the right ring positions, and the front-end notices nothing.
"""
import array
import os
import select
import socket
import struct
import sys
import time

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_LOG_BASE, SET_LOG_FD = 6, 7
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
SET_VRING_ENABLE, NET_SET_MTU, SET_SLAVE_REQ_FD, SET_STATUS = 18, 20, 21, 39
VERSION, REPLY = 0x1, 0x4
HEADER = struct.Struct("<III")
# the protocol's largest payload (a memory table of 8 regions and then some): anything above is refused
MAX_PAYLOAD = 4096
MAX_FDS = 8
NOT_UPGRADABLE = {SET_LOG_BASE: "dirty logging (a live migration)", SET_LOG_FD: "dirty logging",
                  22: "an IOMMU (IOTLB messages)", 28: "postcopy", 29: "postcopy", 30: "postcopy",
                  32: "in-flight tracking"}


def recv_message(sock):
    """One whole message: (request, flags, payload, fds); None at the connection's end."""
    data, anc, _, _ = sock.recvmsg(HEADER.size, socket.CMSG_SPACE(MAX_FDS * 4))
    if not data:
        return None
    fds = []
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", blob[:len(blob) - len(blob) % 4]).tolist()
    while len(data) < HEADER.size:
        more = sock.recv(HEADER.size - len(data))
        if not more:
            return None
        data += more
    request, flags, size = HEADER.unpack(data)
    if size > MAX_PAYLOAD:
        raise ValueError(f"message {request} of {size} bytes")
    payload = b""
    while len(payload) < size:
        more = sock.recv(size - len(payload))
        if not more:
            return None
        payload += more
    return request, flags, payload, fds


def send_message(sock, request, flags, payload, fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([HEADER.pack(request, flags, len(payload)) + payload], anc)


class Record:
    """What a fresh back-end needs to reach the session's state (the design's replay record)."""

    def __init__(self):
        self.features = self.protocol_features = None
        self.owner = False
        self.mem_table = None  # (payload, fds)
        self.slave_req_fd = None
        self.mtu = self.status = None
        self.rings = {}  # index -> {"num", "addr", "base", "kick", "call", "err", "enable"}
        self.refusal = None

    def ring(self, index):
        return self.rings.setdefault(index, {})

    def keep(self, request, payload, fds):
        """Takes the front-end's message; keeps copies of what a replay needs (fds are dups)."""
        if request in NOT_UPGRADABLE:
            self.refusal = NOT_UPGRADABLE[request]
        if request == SET_FEATURES:
            self.features = payload
        elif request == SET_PROTOCOL_FEATURES:
            self.protocol_features = payload
        elif request == SET_OWNER:
            self.owner = True
        elif request == RESET_OWNER:
            self.__init__()
        elif request == SET_MEM_TABLE:
            self.mem_table = (payload, fds)
        elif request == SET_SLAVE_REQ_FD:
            self.slave_req_fd = fds[0] if fds else None
        elif request == NET_SET_MTU:
            self.mtu = payload
        elif request == SET_STATUS:
            self.status = payload
        elif request in (SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ENABLE):
            index, _ = struct.unpack("<II", payload[:8])
            self.ring(index)[{SET_VRING_NUM: "num", SET_VRING_BASE: "base", SET_VRING_ENABLE: "enable"}[request]] = payload
        elif request == SET_VRING_ADDR:
            (index,) = struct.unpack("<I", payload[:4])
            self.ring(index)["addr"] = payload
        elif request in (SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR):
            (u64,) = struct.unpack("<Q", payload[:8])
            key = {SET_VRING_KICK: "kick", SET_VRING_CALL: "call", SET_VRING_ERR: "err"}[request]
            self.ring(u64 & 0xFF)[key] = (payload, fds[0] if fds and not u64 & 0x100 else None)

    def started(self):
        """The rings the back-end runs (address, kick and call given)."""
        return sorted(i for i, r in self.rings.items() if "addr" in r and "kick" in r and "call" in r)


def replay(backend_path, rec, bases):
    """A fresh back-end connection brought to the record's state, rings at `bases`."""
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.connect(backend_path)
    flags = VERSION

    def ask(request):
        send_message(b, request, flags, b"")
        reply = recv_message(b)
        if reply is None:
            raise ConnectionError(f"the back-end hung up at request {request}")
        return struct.unpack("<Q", reply[2][:8])[0]

    offered = ask(GET_FEATURES)
    wanted = struct.unpack("<Q", rec.features)[0]
    if wanted & ~offered:
        raise ValueError(f"features {wanted:#x} not all offered ({offered:#x})")
    if rec.protocol_features is not None:
        offered_p = ask(GET_PROTOCOL_FEATURES)
        wanted_p = struct.unpack("<Q", rec.protocol_features)[0]
        if wanted_p & ~offered_p:
            raise ValueError(f"protocol features {wanted_p:#x} not all offered ({offered_p:#x})")
        send_message(b, SET_PROTOCOL_FEATURES, flags, rec.protocol_features)
    if rec.owner:
        send_message(b, SET_OWNER, flags, b"")
    if rec.slave_req_fd is not None:
        send_message(b, SET_SLAVE_REQ_FD, flags, b"", [rec.slave_req_fd])
    send_message(b, SET_FEATURES, flags, rec.features)
    if rec.mem_table:
        send_message(b, SET_MEM_TABLE, flags, rec.mem_table[0], rec.mem_table[1])
    if rec.mtu is not None:
        send_message(b, NET_SET_MTU, flags, rec.mtu)
    for i, r in sorted(rec.rings.items()):
        if "num" in r:
            send_message(b, SET_VRING_NUM, flags, r["num"])
        if i in bases:
            send_message(b, SET_VRING_BASE, flags, struct.pack("<II", i, bases[i]))
        if "addr" in r:
            send_message(b, SET_VRING_ADDR, flags, r["addr"])
        for req, key in ((SET_VRING_KICK, "kick"), (SET_VRING_CALL, "call"), (SET_VRING_ERR, "err")):
            if key in r:
                payload, fd = r[key]
                send_message(b, req, flags, payload, [fd] if fd is not None else [])
        if "enable" in r:
            send_message(b, SET_VRING_ENABLE, flags, r["enable"])
    if rec.status is not None:
        send_message(b, SET_STATUS, flags, rec.status)
    # a guest that suppressed interrupts looks at its used rings again
    for i, r in rec.rings.items():
        if "call" in r and r["call"][1] is not None:
            os.write(r["call"][1], struct.pack("<Q", 1))
    return b


def main():
    listen_path, backend_path, control_path = sys.argv[1:4]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen_path)
    srv.listen(1)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(control_path)
    ctl.listen(1)
    os.write(1, b"ready\n")  # one write: the test reads it whole
    front, _ = srv.accept()
    back = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    back.connect(backend_path)
    rec = Record()
    while True:
        ready, _, _ = select.select([front, back, ctl], [], [])
        if front in ready:
            m = recv_message(front)
            if m is None:
                return
            request, flags, payload, fds = m
            send_message(back, request, flags, payload, fds)
            rec.keep(request, payload, [os.dup(fd) for fd in fds])
            for fd in fds:
                os.close(fd)
        if back in ready:
            m = recv_message(back)
            if m is None:
                return
            send_message(front, *m)
            for fd in m[3]:
                os.close(fd)
        if ctl in ready:
            conn, _ = ctl.accept()
            # "replay" into the same back-end, or "replay PATH" into another one (another daemon)
            words = conn.recv(4096).decode().split()
            target = words[1] if len(words) > 1 else backend_path
            t0 = time.monotonic()
            try:
                if rec.refusal:
                    raise ValueError(f"not upgradable: {rec.refusal}")
                bases = {}
                for i in rec.started():
                    send_message(back, GET_VRING_BASE, VERSION, struct.pack("<II", i, 0))
                    reply = recv_message(back)
                    if reply is None or reply[0] != GET_VRING_BASE:
                        raise ConnectionError(f"no base for ring {i}")
                    bases[i] = struct.unpack("<II", reply[2][:8])[1]
                back.close()
                t1 = time.monotonic()
                back = replay(target, rec, bases)
                backend_path = target
                ms, stop_ms = (time.monotonic() - t0) * 1000, (t1 - t0) * 1000
                conn.sendall((f"replayed {len(bases)} {ms:.1f} front-end-fd {front.fileno()} bases {bases} "
                              f"(rings stopped in {stop_ms:.1f} ms)\n").encode())
            except Exception as e:  # the test reads the reason
                conn.sendall(f"failed {e}\n".encode())
            conn.close()


if __name__ == "__main__":
    main()
