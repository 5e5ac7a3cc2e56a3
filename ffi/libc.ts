/**
 * The few libc calls Deno's file API lacks: opening without following a symbolic link and
 * without blocking on a FIFO (`open` with O_NOFOLLOW | O_NONBLOCK), `fstat` on what was opened, a
 * bounded `read`; one datagram to a unix socket (Deno has no unix datagram sockets). Linux x86_64
 * (struct stat's layout below).
 *
 * @module
 */

import { errnoName } from "./errno.ts";

/** libc's symbols used here. */
export const symbols = {
  // int open(const char *path, int flags, mode_t mode)
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count)
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int close(int fd)
  close: { parameters: ["i32"], result: "i32" },
  // int fstat(int fd, struct stat *st)
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  // int socket(int domain, int type, int protocol)
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  // int setpriority(int which, id_t who, int prio)
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  // int *__errno_location(void)
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const O_RDONLY = 0, O_NONBLOCK = 0o4000, O_NOFOLLOW = 0o400000, O_CLOEXEC = 0o2000000;
/** struct stat on x86_64: size and field offsets. */
const STAT = { size: 144, dev: 0, ino: 8, mode: 24, uid: 28, gid: 32, fileSize: 48 } as const;
/** File type bits of st_mode. */
export const S_IFMT = 0o170000, S_IFREG = 0o100000;

let lib: Deno.DynamicLibrary<typeof symbols> | null = null;
function libc(): Deno.DynamicLibrary<typeof symbols> {
  lib ??= Deno.dlopen("libc.so.6", symbols);
  return lib;
}

/** A libc call failed: `errno` and its name. */
export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${errnoName(errno)}`);
    this.name = "LibcError";
  }
}

function errno(): number {
  return new Deno.UnsafePointerView(libc().symbols.__errno_location()!).getInt32();
}

/** What fstat said of an opened file. */
export interface OpenedFile {
  dev: bigint;
  ino: bigint;
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  /** Up to the bytes asked for (nothing is read from what is not a regular file). */
  data: Uint8Array;
}

/**
 * Opens `path` without following a final symbolic link (ELOOP) and without blocking, stats what
 * was opened, and reads at most `maxBytes` of it if it is a regular file. Throws LibcError.
 */
export function readNoFollow(path: string, maxBytes: number): OpenedFile {
  const s = libc().symbols;
  const name = new TextEncoder().encode(path + "\0");
  const fd = s.open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw new LibcError(`open ${path}`, errno());
  try {
    const st = new Uint8Array(STAT.size);
    if (s.fstat(fd, st) !== 0) throw new LibcError(`fstat ${path}`, errno());
    const v = new DataView(st.buffer);
    const mode = v.getUint32(STAT.mode, true);
    let data = new Uint8Array(0);
    if ((mode & S_IFMT) === S_IFREG) {
      const buf = new Uint8Array(maxBytes);
      const n = Number(s.read(fd, buf, BigInt(maxBytes)));
      if (n < 0) throw new LibcError(`read ${path}`, errno());
      data = buf.slice(0, n);
    }
    return {
      dev: v.getBigUint64(STAT.dev, true),
      ino: v.getBigUint64(STAT.ino, true),
      mode,
      uid: v.getUint32(STAT.uid, true),
      gid: v.getUint32(STAT.gid, true),
      size: v.getBigInt64(STAT.fileSize, true),
      data,
    };
  } finally {
    s.close(fd);
  }
}

const AF_UNIX = 1, SOCK_DGRAM = 2, MSG_NOSIGNAL = 0x4000, ENAMETOOLONG = 36;
/** sun_path's size in struct sockaddr_un. */
const SUN_PATH = 108;

/**
 * Sends `data` as one datagram to the unix socket at `path` (a leading "@" names an abstract
 * socket, as in $NOTIFY_SOCKET). Throws LibcError.
 */
export function sendUnixDatagram(path: string, data: Uint8Array): void {
  const name = new TextEncoder().encode(path);
  const abstract = name[0] === 0x40;
  if (name.length >= SUN_PATH) throw new LibcError(`sendto ${path}: name too long`, ENAMETOOLONG);
  const addr = new Uint8Array(2 + SUN_PATH);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  if (abstract) addr[2] = 0;
  const len = 2 + name.length + (abstract ? 0 : 1);
  const s = libc().symbols;
  const fd = s.socket(AF_UNIX, SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) throw new LibcError("socket AF_UNIX", errno());
  try {
    if (Number(s.sendto(fd, data, BigInt(data.length), MSG_NOSIGNAL, addr, len)) < 0) {
      throw new LibcError(`sendto ${path}`, errno());
    }
  } finally {
    s.close(fd);
  }
}

/**
 * Sets the calling thread's nice value (Linux keeps it per thread; threads it creates afterwards
 * inherit it). Throws LibcError (EACCES without CAP_SYS_NICE).
 */
export function setThreadNice(value: number): void {
  const PRIO_PROCESS = 0;
  if (libc().symbols.setpriority(PRIO_PROCESS, 0, value) !== 0) throw new LibcError("setpriority", errno());
}
