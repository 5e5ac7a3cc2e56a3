/**
 * A stand-in for systemd's notification socket ($NOTIFY_SOCKET): a datagram socket that records
 * each message with the sender's PID (SO_PASSCRED), as systemd checks it for NotifyAccess=main.
 * python3 holds the socket: Deno has no unix datagram sockets.
 *
 * @module
 */

const RECEIVER = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
p = sys.argv[1]
s.bind('\\0' + p[1:] if p.startswith('@') else p)
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = next((struct.unpack("iII", d)[0] for l, t, d in anc if t == socket.SCM_CREDENTIALS), -1)
    print(json.dumps({"pid": pid, "text": data.decode(errors="replace")}), flush=True)
`;

/** One notification: who sent it and what it said. */
export interface Notification {
  pid: number;
  text: string;
}

/** A notification socket at `path` ("@name": abstract), recording until closed. */
export class NotifyReceiver {
  readonly messages: Notification[] = [];
  #pump: Promise<void>;

  private constructor(readonly path: string, readonly child: Deno.ChildProcess, lines: ReadableStream<string>) {
    this.#pump = (async () => {
      for await (const line of lines) if (line.trim()) this.messages.push(JSON.parse(line));
    })();
  }

  /** Binds `path` and returns once it is listening. */
  static async start(path: string): Promise<NotifyReceiver> {
    const child = new Deno.Command("python3", { args: ["-c", RECEIVER, path], stdout: "piped", stderr: "inherit" })
      .spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
    const reader = lines.getReader();
    const first = await reader.read();
    if (first.done || !first.value.includes("bound")) throw new Error(`notify socket ${path}: receiver did not start`);
    reader.releaseLock();
    return new NotifyReceiver(path, child, lines);
  }

  async close(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.child.status;
    await this.#pump;
  }
}

function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, out) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      parts.forEach((p) => out.enqueue(p));
    },
    flush(out) {
      if (rest) out.enqueue(rest);
    },
  });
}
