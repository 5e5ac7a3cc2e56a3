/**
 * One test's world: a temp directory, a unique tag for DPDK file prefixes, and every daemon,
 * stand-in process and cleanup the test starts, all disposed of when the test's scope ends
 * (`await using world = await World.create("name")`).
 *
 * Disposal order: daemons stop first (asserting exit status 0), then the other processes close
 * in reverse order, then deferred cleanups run, then the directory goes. Daemons first because
 * DPDK 22.11's memif frees its shared memory when the peer hangs up without waiting for a burst in
 * progress on it: a VF peer leaving while the daemon polls can crash the daemon.
 *
 * @module
 */

import { type DaemonOptions, DaemonProcess, uniqueTag } from "./daemon_process.ts";
import { vmSocket } from "./devices.ts";
import { NetNs } from "./netns.ts";
import { TestPmd, type TestPmdOptions } from "./testpmd.ts";

/** Something the world ends: a stand-in process (close or stop). */
export type Closable = { close(): Promise<unknown> } | { stop(): Promise<unknown> };

/** A test's processes and files, disposed of together. */
export class World implements AsyncDisposable {
  readonly #daemons: DaemonProcess[] = [];
  readonly #closables: Closable[] = [];
  readonly #cleanups: (() => unknown)[] = [];
  #count = 0;

  private constructor(readonly tag: string, readonly dir: string) {}

  /** A fresh world named `name`: its directory has `sock/`, the daemons' socket directory. */
  static async create(name: string): Promise<World> {
    const tag = uniqueTag(name);
    const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
    await Deno.mkdir(`${dir}/sock`);
    return new World(tag, dir);
  }

  /** The daemons' socket directory. */
  get sockDir(): string {
    return `${this.dir}/sock`;
  }

  /** Relay `id`'s vhost-user socket under the default pattern. */
  vmSocket(id = 0): string {
    return vmSocket(this.sockDir, id);
  }

  /** A new unique DPDK file prefix / name within this world. */
  nextTag(what: string): string {
    return `${this.tag}-${what}${this.#count++}`;
  }

  /** Starts a daemon with `configLines` (see DaemonProcess.start); stopped first at disposal. */
  async daemon(configLines: string[], options: DaemonOptions = {}): Promise<DaemonProcess> {
    const d = await DaemonProcess.start(this.dir, this.nextTag("d"), configLines, options);
    this.#daemons.push(d);
    return d;
  }

  /** Starts a dpdk-testpmd stand-in (prefix chosen here unless given); closed at disposal. */
  async testpmd(o: Omit<TestPmdOptions, "prefix"> & { prefix?: string }): Promise<TestPmd> {
    return this.own(await TestPmd.start({ ...o, prefix: o.prefix ?? this.nextTag("p") }));
  }

  /** A network namespace named after the world, deleted at disposal (after the processes). */
  async netns(): Promise<NetNs> {
    const ns = await NetNs.create(this.tag);
    this.defer(() => ns.delete());
    return ns;
  }

  /** Closes `c` at disposal (after the daemons); returns it. */
  own<T extends Closable>(c: T): T {
    this.#closables.push(c);
    return c;
  }

  /** Runs `fn` at disposal, after the processes. */
  defer(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const problems: string[] = [];
    for (const d of this.#daemons) {
      const code = await d.stop();
      if (code !== 0) problems.push(`daemon ${d.prefix} exit status ${code}; log:\n${d.log.slice(-2500)}`);
    }
    for (const c of this.#closables.reverse()) {
      const end = "close" in c ? () => c.close() : () => c.stop();
      await end().catch((e) => problems.push(`closing a stand-in: ${e instanceof Error ? e.message : e}`));
    }
    for (const fn of this.#cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        problems.push(`cleanup: ${e instanceof Error ? e.message : e}`);
      }
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    if (problems.length > 0) throw new Error(problems.join("\n"));
  }
}
