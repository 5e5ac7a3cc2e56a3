/**
 * A network namespace for a test: where a net_tap VF stand-in's interface lives, with the
 * host-side peer of a guest. Commands run in it through `ip netns exec`.
 *
 * @module
 */

/** What a command run in the namespace returned. */
export interface NsOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** A network namespace created for one test and deleted after it. */
export class NetNs {
  private constructor(readonly name: string) {}

  /** Creates namespace `name` (replacing a stale one of that name) with `lo` up. */
  static async create(name: string): Promise<NetNs> {
    if (!/^[A-Za-z0-9_.-]{1,60}$/.test(name)) throw new Error(`unsafe netns name '${name}'`);
    await new Deno.Command("ip", { args: ["netns", "del", name], stderr: "null" }).output();
    const ns = new NetNs(name);
    await ns.#ip(["netns", "add", name]);
    await ns.#ip(["-n", name, "link", "set", "lo", "up"]);
    return ns;
  }

  async #ip(args: string[]): Promise<void> {
    const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
    if (!out.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }

  /** Runs `argv` in the namespace to completion. */
  async run(argv: string[]): Promise<NsOutput> {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", this.name, ...argv],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  /**
   * Starts `argv` in the namespace and resolves once its standard error matches `ready` (for
   * tcpdump, its "listening on" line: the only sign it gives that it captures); `done` is its output
   * in the end; `pid` is its own (`ip netns exec` execs it). Throws with what it printed when it
   * ends before that, or is killed for not saying it within `timeoutMs`.
   */
  async startUntil(
    argv: string[],
    ready: RegExp,
    timeoutMs = 10_000,
  ): Promise<{ pid: number; done: Promise<NsOutput> }> {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.name, ...argv],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    const reader = child.stderr.getReader(), dec = new TextDecoder();
    let stderr = "";
    const more = async () => {
      const { value, done } = await reader.read();
      if (!done) stderr += dec.decode(value, { stream: true });
      return !done;
    };
    // bounded: a process that neither says it nor ends is killed (its output then ends the reads)
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
    }, timeoutMs);
    try {
      while (!ready.test(stderr)) {
        if (!(await more())) {
          const status = await child.status;
          throw new Error(
            `${argv.join(" ")} ended (${status.code}) before ${ready} (waited at most ${timeoutMs} ms): ` +
              `${stderr}${await stdout}`,
          );
        }
      }
    } finally {
      clearTimeout(timer);
    }
    const rest = (async () => {
      while (await more());
    })();
    return {
      pid: child.pid,
      done: (async () => {
        const { code } = await child.status;
        await rest;
        return { code, stdout: await stdout, stderr };
      })(),
    };
  }

  /** Runs a `sh -c` script in the namespace to completion. */
  sh(script: string): Promise<NsOutput> {
    return this.run(["sh", "-c", script]);
  }

  /** Waits for interface `iface` to appear (a VF stand-in creates it), then gives it `cidr` and sets it up. */
  async configure(iface: string, cidr: string, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ((await this.run(["ip", "link", "show", iface])).code !== 0) {
      if (Date.now() > end) throw new Error(`netns ${this.name}: no interface ${iface} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.#ip(["-n", this.name, "addr", "replace", cidr, "dev", iface]);
    await this.#ip(["-n", this.name, "link", "set", iface, "up"]);
  }

  /** Milliseconds until `peer` answers one ping (each try waits 1 s at most); throws after `timeoutMs`. */
  async firstReply(peer: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    while ((await this.run(["busybox", "ping", "-c", "1", "-W", "1", peer])).code !== 0) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`netns ${this.name}: ${peer} silent for ${timeoutMs} ms`);
    }
    return Date.now() - t0;
  }

  /** Kills what still runs in the namespace (a listener nobody connected to, by PID), then deletes it
   * (its interfaces go with it). */
  async delete(): Promise<void> {
    const pids = await new Deno.Command("ip", { args: ["netns", "pids", this.name], stdout: "piped", stderr: "null" })
      .output();
    for (const pid of new TextDecoder().decode(pids.stdout).split("\n").filter(Boolean).map(Number)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await new Deno.Command("ip", { args: ["netns", "del", this.name], stderr: "null" }).output();
  }
}
