/**
 * `vio4wd upgrade`: a new daemon takes the running relays over without the VMs noticing (hot
 * upgrade, docs/hot-upgrade.md). What the unit's ExecReload runs, so `systemctl reload
 * virtio-forwarder` does it.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { float, string } from "@optique/core/valueparser";
import { pidFilePath, readConfig } from "../config/config.ts";
import { Channel, field } from "../daemon/upgrade_channel.ts";
import { upgradeSocketPath } from "../daemon/upgrade_channel.ts";

/** The `upgrade` command's parser. */
export const upgradeCommand = command(
  "upgrade",
  object({
    action: constant("upgrade" as const),
    config: configOption(),
    program: optional(
      option("--program", string({ metavar: "PATH" }), {
        description: message`The vio4wd to start (default: the one the daemon was started from, as installed now).`,
      }),
    ),
    timeout: optional(
      option("--timeout", float({ min: 1, max: 3600, metavar: "SECONDS" }), {
        description: message`Give up (the old daemon keeps every relay) after this long (default 60).`,
      }),
    ),
    json: optional(flag("--json", { description: message`Print the result as JSON (progress is not printed).` })),
  }),
  {
    brief: message`Hand the running relays to a new daemon without the VMs noticing (hot upgrade).`,
    description:
      message`What \`systemctl reload virtio-forwarder\` runs. Starts the new program beside the running daemon, which hands it each relay: its VM's vhost-user connection (kept open: QEMU notices nothing), its VF and its counters; then its endpoints, PID file and systemd main PID. Refused while a relay's VM is being live-migrated. If anything fails the running daemon keeps every relay. Needs root (the upgrade socket is root's).`,
    footer: examples(
      "vio4wd upgrade",
      "vio4wd upgrade --json",
      "vio4wd upgrade --program /usr/bin/vio4wd --timeout 120",
    ),
  },
);

/** Parsed `upgrade` arguments. */
export interface UpgradeArgs {
  config?: string;
  program?: string;
  timeout?: number;
  json?: boolean;
}

/** Runs `vio4wd upgrade`; returns the exit status (0 upgraded, 1 refused or failed, 2 no daemon). */
export async function runUpgrade(a: UpgradeArgs): Promise<number> {
  const c = (await readConfig(a.config)).config;
  const path = upgradeSocketPath(pidFilePath(c));
  let ch: Channel;
  try {
    ch = await Channel.connect(path);
  } catch (e) {
    const why = e instanceof Deno.errors.PermissionDenied
      ? "only root may upgrade"
      : "is the daemon running? The original virtio-forwarder and a vio4wd without hot upgrade have no such socket: " +
        "restart it once";
    console.error(`vio4wd upgrade: cannot reach the daemon's upgrade socket ${path} (${why}): ${(e as Error).message}`);
    return 2;
  }
  const timeoutMs = (a.timeout ?? 60) * 1000;
  await ch.send({ upgrade: { program: a.program ? await Deno.realPath(a.program) : undefined, timeoutMs } });
  for (;;) {
    const m = await ch.receive(timeoutMs + 30_000);
    if (m === null) {
      console.error("vio4wd upgrade: the daemon closed the upgrade socket without an answer; see its log");
      return 1;
    }
    if (typeof m.progress === "string") {
      if (!a.json) console.error(`vio4wd upgrade: ${m.progress}`);
      continue;
    }
    const result = field(m, "result");
    if (!result) continue;
    ch.close();
    if (a.json) console.log(JSON.stringify(result));
    else if (!result.ok) console.error(`vio4wd upgrade: ${result.error}`);
    else console.log(`upgraded: vio4wd ${result.version} runs as PID ${result.pid}`);
    return result.ok ? 0 : 1;
  }
}
