/**
 * A hostile stats client, for the starvation test (run as another user): opens N REQ connections
 * to the stats endpoint, each asking for a 60 s delay, counts the requests answered EBADR within
 * 3 s, prints `{"sent":N,"ebadr":M}`, and holds its connections until its stdin closes.
 *
 *   deno run --no-config --allow-ffi --allow-read --allow-env stats_hog.ts ENDPOINT N
 *
 * @module
 */

import { ZMQ_REQ, ZmqContext, type ZmqSocket } from "../../ffi/zmq.ts";

const [endpoint, count] = Deno.args;
const n = Number(count);
const ctx = new ZmqContext();
// StatsRequest { delay: 60000 } (field 3, varint)
const slow = Uint8Array.of(0x18, 0xe0, 0xd4, 0x03);
const open: ZmqSocket[] = [];
for (let i = 0; i < n; i++) {
  const s = ctx.socket(ZMQ_REQ);
  s.connect(endpoint);
  if (!s.trySend(slow)) throw new Error(`request ${i} could not be queued`);
  open.push(s);
}
/** StatsResponse.status (field 1, varint), as sent. */
const status = (b: Uint8Array) => b[0] === 0x08 ? (b[1] & 0x7f) | ((b[1] & 0x80) ? b[2] << 7 : 0) : 0;
let ebadr = 0;
const end = Date.now() + 3000;
const waiting = new Set(open);
while (Date.now() < end) {
  for (const s of [...waiting]) {
    const m = s.tryReceive();
    if (!m) continue;
    waiting.delete(s);
    if (status(m[0]) === 400) ebadr++;
  }
  await new Promise((r) => setTimeout(r, 50));
}
console.log(JSON.stringify({ sent: n, ebadr }));
await Deno.stdin.readable.pipeTo(new WritableStream());
ctx.close();
