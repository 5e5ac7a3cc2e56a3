/**
 * Builders for the device strings and paths the tests repeat: vhost-user socket paths as the
 * daemon names them, memif VF stand-ins (the daemon's server end, the peer's client end) and
 * virtio_user VM stand-ins.
 *
 * @module
 */

/** The daemon's default vhost-user socket of relay `id` in `sockDir` (pattern virtio-forwarder%u.sock). */
export function vmSocket(sockDir: string, id = 0): string {
  return `${sockDir}/virtio-forwarder${id}.sock`;
}

/** A memif VF stand-in: the daemon's devargs (memif server on `sock`) and its peer's (client). */
export function memifPair(sock: string, daemonPort = 0, peerPort = 1): { vf: string; peer: string } {
  return {
    vf: `net_memif${daemonPort},role=server,socket=${sock}`,
    peer: `net_memif${peerPort},role=client,socket=${sock}`,
  };
}

/** A virtio_user VM stand-in on vhost-user socket `path`; `server`: QEMU-style listening end. */
export function virtioUser(path: string, o: { port?: number; queues?: number; server?: boolean } = {}): string {
  return `net_virtio_user${o.port ?? 0},path=${path},queues=${o.queues ?? 1}${o.server ? ",server=1" : ""}`;
}
