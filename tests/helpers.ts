/** Test helpers: running `./vio4wd` commands and a daemon per test (see src/testbed/daemon_process.ts). */

import { DaemonProcess, LAUNCHER, uniqueTag } from "../src/testbed/daemon_process.ts";

export { DaemonProcess, type RelayStatus, uniqueTag, until } from "../src/testbed/daemon_process.ts";

/** Runs `./vio4wd args` to completion. */
export async function runVio4wd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(LAUNCHER, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Runs `fn` against a daemon started in a fresh temp dir with a unique DPDK prefix; afterwards
 * stops it (asserting exit status 0) and removes the dir, whatever `fn` did.
 *
 * A test with memif VF peers stops the daemon itself before closing them: DPDK 22.11's memif frees
 * its shared memory when the peer hangs up without waiting for a burst in progress on it, so a
 * peer leaving while the daemon polls the VF can crash the daemon (and a testpmd the other way).
 */
export async function withDaemon(
  name: string,
  configLines: (dir: string) => string[],
  fn: (d: DaemonProcess, dir: string, tag: string) => Promise<void>,
): Promise<void> {
  const tag = uniqueTag(name);
  const dir = await Deno.makeTempDir({ prefix: `${tag}-` });
  try {
    const d = await DaemonProcess.start(dir, tag, configLines(dir));
    let failure: unknown = null;
    try {
      await fn(d, dir, tag);
    } catch (e) {
      failure = e;
    }
    const code = await d.stop();
    if (failure) throw failure;
    if (code !== 0) throw new Error(`daemon exit status: expected 0, got ${code}; log:\n${d.log.slice(-2500)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
