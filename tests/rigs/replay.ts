/**
 * Replays of a VM's vhost-user session (docs/hot-upgrade.md): by the daemon's own front door (the
 * fault build's VIO4WD_FAULT_FILE), or by the test rig tests/rigs/vhost_replay_proxy.py between a
 * VM (which connects to `front`) and a relay's socket `back`, which can replay into another daemon.
 *
 * @module
 */

import type { World } from "./world.ts";
import { assertEq } from "./assert.ts";
import { until } from "./daemon_process.ts";

/**
 * Has the front door of the daemon started with VIO4WD_FAULT_FILE=`file` (fault build) replay
 * every session; its answer: "replayed <sessions> <rings> <ms>" or "failed <why>".
 */
export async function replayInDaemon(file: string): Promise<string> {
  await Deno.writeTextFile(file, "replay\n");
  let text = "replay";
  await until(
    "the daemon's front door: replay",
    async () => (text = (await Deno.readTextFile(file)).trim()) !== "replay",
  );
  return text;
}

const PROXY = new URL("./vhost_replay_proxy.py", import.meta.url).pathname;

/** The running proxy; stopped at the world's disposal. */
export interface ReplayProxy {
  /**
   * Replays into the same back-end, or into the one listening on `to` (another daemon); the
   * proxy's answer: "replayed <rings> <ms> front-end-fd <fd> bases {...}" or "failed <why>".
   */
  replay(to?: string): Promise<string>;
}

/** Starts the proxy between `front` and `back`, its control socket at `control`; once it listens. */
export async function replayProxy(w: World, front: string, back: string, control: string): Promise<ReplayProxy> {
  const child = new Deno.Command("python3", { args: [PROXY, front, back, control], stdout: "piped" }).spawn();
  w.own({
    close: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* it ended with its front-end */ }
      await child.status;
    },
  });
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assertEq(new TextDecoder().decode(value).trim(), "ready", "the proxy listens");
  void (async () => { // read on to its end: the proxy writes nothing more, and never into a closed pipe
    while (!(await reader.read()).done);
  })();
  return {
    async replay(to?: string) {
      const c = await Deno.connect({ transport: "unix", path: control });
      await c.write(new TextEncoder().encode(to ? `replay ${to}\n` : "replay\n"));
      let text = "";
      const buf = new Uint8Array(512);
      for (let n; (n = await c.read(buf)) !== null;) text += new TextDecoder().decode(buf.subarray(0, n));
      c.close();
      return text.trim();
    },
  };
}
