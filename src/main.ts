/**
 * vio4wd: the command-line entry point. One subcommand per file in src/cli/.
 *
 * @module
 */

import { extraCompletions } from "./cli/completions.ts";
import { or } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { run } from "@optique/run";
import { ConfigError, readConfig } from "./config/config.ts";
import { DataplaneError } from "./dataplane/dataplane.ts";
import { runDaemon, StartupError, VERSION } from "./daemon/daemon.ts";
import { configCommand, runConfig } from "./cli/config.ts";
import { daemonCommand, normalizeOriginalArgs, optionOverrides } from "./cli/daemon.ts";
import { demoCommand, runDemo } from "./cli/demo.ts";
import { pinCommand, runPin } from "./cli/pin.ts";
import { portCommand, runPort, runPortList } from "./cli/port.ts";
import { runStats, statsCommand } from "./cli/stats.ts";
import { runSched, schedCommand } from "./cli/sched.ts";
import { monitorCommand, runMonitor } from "./cli/monitor.ts";
import { runVmConfig, vmConfigCommand } from "./cli/vm_config.ts";
import { doctorCommand, runDoctor } from "./cli/doctor.ts";
import { runUpgrade, upgradeCommand } from "./cli/upgrade.ts";
import { DaemonUnreachableError } from "./control/client.ts";
import { ShimNotFoundError } from "../ffi/shim.ts";
import { Dataplane } from "./dataplane/dataplane.ts";
import { runOriginalTool } from "./cli/original_tools.ts";

/** Every subcommand. */
export const parser = or(
  daemonCommand,
  configCommand,
  demoCommand,
  portCommand,
  statsCommand,
  pinCommand,
  schedCommand,
  monitorCommand,
  vmConfigCommand,
  doctorCommand,
  upgradeCommand,
);

/** `vio4wd --version`: vio4wd, Deno and (when the shim loads) DPDK versions. */
export function versionText(): string {
  let dpdk: string;
  try {
    const dp = Dataplane.open();
    const l = dp.limits;
    dpdk = `${dp.dpdkVersion} (max ${l.maxRelays} relays, ${l.maxQueuePairs} queue pairs each; ` +
      `${l.maxPorts} DPDK ports per process, RTE_MAX_ETHPORTS)`;
    dp.close();
  } catch (e) {
    dpdk = e instanceof ShimNotFoundError ? "DPDK: shim not built (run scripts/setup.sh)" : `DPDK: ${e}`;
  }
  return `vio4wd ${VERSION}\ndeno ${Deno.version.deno} (v8 ${Deno.version.v8})\n${dpdk}`;
}

/** Options for run(): shared with the completion generator so scripts match the CLI. */
export const runOptions = {
  programName: "vio4wd",
  help: "both",
  completion: { command: { names: ["completions"] as [string] } },
  brief: message`vio4wd: relay packets between SR-IOV VFs (DPDK) and VMs' virtio-net devices (vhost-user).`,
  footer:
    message`Configuration: /etc/default/virtioforwarder (see 'vio4wd config show'). Manual: docs/manual.md (installed: /usr/share/doc/vio4wd/manual.md.gz), man vio4wd.`,
} as const;

/** Parses `args` and runs the command; returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  // the original's Python clients, as their launchers at the original's paths run them
  if (args[0] === "original-tool") return await runOriginalTool(args.slice(1));
  // what the completion scripts ask beyond optique's answers (the shells, a daemon's relays)
  const extra = args[0] === "completions" ? await extraCompletions(args) : null;
  if (extra !== null) {
    await Deno.stdout.write(new TextEncoder().encode(extra));
    return 0;
  }
  // -h as the manual says, for vio4wd itself and any subcommand but the daemon (whose -h is the original's)
  if (args[0] !== "daemon") args = args.map((a) => a === "-h" ? "--help" : a);
  const isDaemon = args[0] === "daemon";
  let argv = [...args];
  if (isDaemon) {
    const n = normalizeOriginalArgs(args.slice(1));
    for (const w of n.warnings) console.error(`vio4wd daemon: warning: ${w}`);
    // -v wins over everything, as the original's "terminate" flag
    if (n.args.includes("--version")) {
      console.log(versionText());
      return 0;
    }
    if (n.error) {
      console.error(`vio4wd daemon: ${n.error}; see 'vio4wd daemon --help'`);
      return 1;
    }
    argv = ["daemon", ...n.args];
  }
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    console.log(versionText());
    return 0;
  }
  const a = run(parser, {
    ...runOptions,
    // bad arguments: the error alone (not every command's usage), exit 2 as documented
    aboveError: "none",
    errorExitCode: 2,
    args: argv,
    version: { value: VERSION, option: { names: ["--version", "-v"] } },
  });
  try {
    switch (a.action) {
      case "daemon": {
        const loaded = await readConfig(a.config, optionOverrides(a.options as Record<string, unknown>));
        return await runDaemon(loaded);
      }
      case "config-check":
      case "config-show":
        return await runConfig(a);
      case "demo":
        return await runDemo(a);
      case "port":
        return await runPort(a);
      case "port-list":
        return await runPortList(a);
      case "stats":
        return await runStats(a);
      case "pin":
        return await runPin(a);
      case "sched":
        return await runSched(a);
      case "monitor":
        return await runMonitor(a);
      case "vm-config":
        return await runVmConfig(a);
      case "doctor":
        return await runDoctor(a);
      case "upgrade":
        return await runUpgrade(a);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`vio4wd: configuration error: ${e.message}`);
      if (Deno.env.get("INVOCATION_ID")) {
        // under systemd: the unit's RestartPreventExitStatus=2 stops the restarts
        console.error(
          "vio4wd: exit status 2: systemd will not restart the service until the configuration is fixed; " +
            "fix it ('vio4wd config check' shows every error), then 'systemctl restart virtio-forwarder'",
        );
      }
      return 2;
    }
    if (e instanceof DaemonUnreachableError) {
      console.error(`vio4wd: ${e.message}`);
      return 2;
    }
    if (e instanceof StartupError || e instanceof ShimNotFoundError || e instanceof DataplaneError) {
      console.error(`vio4wd: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
