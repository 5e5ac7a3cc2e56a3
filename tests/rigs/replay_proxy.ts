/**
 * The hot-upgrade design's front door as a test rig (tests/rigs/vhost_replay_proxy.py): between a
 * VM (which connects to `front`) and vio4wd's relay socket `back`; `replay()` has it replay the
 * session into a fresh connection (docs/hot-upgrade.md).
 *
 * @module
 */

import type { World } from "./world.ts";
import { assertEq } from "./assert.ts";

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
