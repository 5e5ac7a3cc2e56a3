/**
 * What the daemon would refuse or ignore at start with a configuration, found without starting
 * it: for `vio4wd config check` (and `vio4wd doctor`), so that an operator learns it before the
 * journal does. Each finding names the variable and where it was set.
 *
 * @module
 */

import { dirname } from "node:path";
import { coreSchedEndpoint, describeSource, type LoadedConfig, VARIABLES } from "../config/config.ts";
import { endpointReach, formatCpuSet, formatLcoreMap } from "../config/values.ts";
import { offlineCpus } from "../host/topology.ts";
import { sysfsRoot } from "../common/sysfs.ts";
import { qemuAccount, socketAccounts } from "../config/accounts.ts";
import { sharedSocketDir, socketDirTrust, untrustedDir, untrustedDirectories } from "../host/trusted_dir.ts";

/** One finding: "error" when the daemon would not start, "warning" when it would start without it. */
export interface Finding {
  level: "error" | "warning";
  /** `FILE:LINE: VARIABLE=value: why`. */
  text: string;
}

/** Everything the daemon would refuse or ignore at start with `l`, errors first. */
export function startupFindings(l: LoadedConfig, etc = "/etc", sys = sysfsRoot()): Finding[] {
  const c = l.config;
  const out: Finding[] = [];
  const byKey = new Map(VARIABLES.map((v) => [v.key as string, v.name]));
  const at = (key: keyof typeof c, value: string, why: string) =>
    `${describeSource(l.sources[key])}: ${byKey.get(key)}=${value}: ${why}`;
  const error = (key: keyof typeof c, value: string, why: string) =>
    out.push({ level: "error", text: at(key, value, why) });
  const warning = (key: keyof typeof c, value: string, why: string) =>
    out.push({ level: "warning", text: at(key, value, why) });

  const off = offlineCpus(c, sys);
  if (off) {
    error(
      c.ealLcores ? "ealLcores" : "cpus",
      c.ealLcores ? formatLcoreMap(c.ealLcores) : formatCpuSet(c.cpus),
      `CPU ${off.missing.join(",")} is not online on this host (online: ${off.online.join(",")}): ${off.fix}`,
    );
  }
  const accounts = socketAccounts(c, etc);
  if (accounts.error) { // it names the variable and the value itself
    out.push({
      level: "error",
      text: `${describeSource(l.sources[c.socketOwner ? "socketOwner" : "socketGroup"])}: ${accounts.error}`,
    });
  }
  for (const u of untrustedDirectories(c, accounts)) {
    error(u.variable === "VIRTIOFWD_SOCKET_DIR" ? "socketDir" : "pidDir", u.dir, `the daemon will not start: ${u.why}`);
  }

  const endpoints = [
    ["zmqConfigEp", c.zmqConfigEp],
    ["zmqPortControlEp", c.zmqPortControlEp],
    ["zmqStatsEp", c.zmqStatsEp],
    ["zmqCoreSchedEp", coreSchedEndpoint(c)],
  ] as const;
  const shared = sharedSocketDir(c.socketDir, accounts);
  for (const [key, ep] of endpoints) {
    if (ep === "") continue;
    const reach = endpointReach(ep);
    if (reach === "remote" && !c.zmqAllowRemote) {
      warning(
        key,
        ep,
        "the daemon will not open it (anyone who reaches the address could use it, unauthenticated) and runs " +
          "without it; use ipc:// or loopback, or set VIO4WD_ZMQ_ALLOW_REMOTE=y to accept that",
      );
    } else if (reach === "remote") {
      warning(key, ep, "reachable from the network and unauthenticated (VIO4WD_ZMQ_ALLOW_REMOTE is set)");
    } else if (reach === "loopback") {
      warning(key, ep, "unauthenticated: every local user can use it (ipc:// limits it to VIO4WD_ZMQ_GROUP)");
    }
    if (ep.startsWith("ipc://")) {
      const why = untrustedDir(dirname(ep.slice("ipc://".length)), { shared });
      if (why) error(key, ep, `the daemon will not start: ${why}`);
    }
  }
  if (c.zmqCoreSchedEp !== "" && !c.coreSchedEnable) {
    warning("zmqCoreSchedEp", c.zmqCoreSchedEp, "not opened: VIO4WD_CORE_SCHED_ENABLE is not true");
  }
  if (c.metricsListen !== "" && endpointReach(`tcp://${c.metricsListen}`) === "remote") {
    warning("metricsListen", c.metricsListen, "reachable from the network (127.0.0.1 keeps it local)");
  }
  if (c.dynamicSockets) {
    const why = untrustedDir(c.stateDir);
    if (why) warning("stateDir", c.stateDir, `ADD_SOCK pairings will not be kept across restarts: ${why}`);
  }
  const trust = socketDirTrust(accounts, qemuAccount(etc), etc);
  for (const dir of c.socketDirsAllow) {
    const why = untrustedDir(dir, trust);
    if (why) warning("socketDirsAllow", dir, `ADD_SOCK will refuse sockets there: ${why}`);
  }
  return out.sort((a, b) => (a.level === b.level ? 0 : a.level === "error" ? -1 : 1));
}
