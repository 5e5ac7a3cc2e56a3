/**
 * `vio4wd demo`: the forwarder on virtual devices, no SR-IOV needed. Starts the daemon in this
 * process with a memif VF stand-in, a dpdk-testpmd VM stand-in (virtio_user) that also plays the
 * VF's peer, loops traffic both ways, prints live rates, and cleans up.
 *
 * @module
 */

import { examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { command, constant, flag, option } from "@optique/core/primitives";
import { integer } from "@optique/core/valueparser";
import { loadConfig } from "../config/config.ts";
import { socketPath } from "../config/values.ts";
import { Logger } from "../common/log.ts";
import { startDaemon } from "../daemon/daemon.ts";
import type { RelayCounters } from "../dataplane/dataplane.ts";
import { TestPmd } from "../demo/testpmd.ts";

/** The `demo` command's parser. */
export const demoCommand = command(
  "demo",
  object({
    action: constant("demo" as const),
    seconds: withDefault(
      option("--seconds", integer({ min: 1, max: 3600 }), { description: message`How long traffic runs.` }),
      5,
    ),
    json: optional(flag("--json", { description: message`Print the result as JSON (no live lines).` })),
  }),
  {
    brief: message`Relay real packets on virtual devices and report.`,
    description:
      message`Run the forwarder on virtual devices: a memif VF stand-in and a dpdk-testpmd VM stand-in (virtio_user over vhost-user). Packets loop VM -> VF -> VM through the relay; live per-direction rates are printed, then PASS with packet counts. Needs root, hugepages and dpdk-testpmd (scripts/setup.sh).`,
    footer: examples(
      "vio4wd demo",
      "vio4wd demo --seconds 20",
      "vio4wd demo --json",
    ),
  },
);

const mpps = (pkts: bigint, secs: number) => (Number(pkts) / secs / 1e6).toFixed(3);

/** Runs the demo; returns 0 on PASS. */
export async function runDemo(a: { seconds: number; json?: boolean }): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "vio4wd-demo-" });
  const tag = `vio4wd-demo-${Deno.pid}`;
  const vfSock = `${dir}/vf.sock`;
  // the socket directory is handed to the sockets' owner (QEMU's account): the demo's state and
  // PID file stay beside it, in the root-owned directory
  const sockDir = `${dir}/sock`;
  const say = (s: string) => {
    if (!a.json) console.log(s);
  };
  const configText = [
    "VIRTIOFWD_CPU_MASK=1",
    "VIRTIOFWD_MASTER_LCORE=0",
    "VIRTIOFWD_LOG_LEVEL=4",
    `VIRTIOFWD_SOCKET_DIR=${sockDir}`,
    `VIRTIOFWD_PID_DIR=${dir}`,
    "VIRTIOFWD_DYNAMIC_SOCKETS=y",
    // the demo's own state and priority: its stand-ins share the worker's CPU
    `VIO4WD_STATE_DIR=${dir}/state`,
    "VIO4WD_NICE=0",
    `VIRTIOFWD_STATIC_VFS=net_memif0,role=server,socket=${vfSock}=0`,
    `VIO4WD_EAL_FILE_PREFIX=${tag}`,
    "VIO4WD_EAL_MEMORY_MB=256",
  ].join("\n");
  const loaded = loadConfig(configText, "(demo)");
  const vmSock = socketPath(sockDir, "vm%u.sock", 0);
  say(`vio4wd demo: relay 0 = VF net_memif0 (server, ${vfSock}) <-> vhost-user ${vmSock}`);
  const daemon = startDaemon(loaded, new Logger(4));
  let pmd: TestPmd | null = null;
  let status = 1;
  try {
    daemon.table.addSocket(0, vmSock);
    say("starting the VM stand-in (dpdk-testpmd, virtio_user) and the VF peer (memif client)...");
    pmd = await TestPmd.start({
      prefix: `${tag}-vm`,
      vdevs: [`net_virtio_user0,path=${vmSock},queues=1`, `net_memif1,role=client,socket=${vfSock}`],
    });
    await pmd.waitLinksUp();
    await pmd.send("set fwd io");
    await pmd.send("start tx_first 8");
    say(`links up; looping packets for ${a.seconds} s (io forwarding in the VM stand-in)`);
    let prev: RelayCounters = daemon.dataplane.counters()[0];
    for (let s = 1; s <= a.seconds; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = daemon.dataplane.counters()[0];
      say(
        `  t=${s}s  VF->VM ${mpps(now.vfToVm.txPkts - prev.vfToVm.txPkts, 1)} Mpps  ` +
          `VM->VF ${mpps(now.vmToVf.txPkts - prev.vmToVf.txPkts, 1)} Mpps  ` +
          `drops ${
            now.vfToVm.dropFullPkts + now.vmToVf.dropFullPkts + now.vfToVm.dropUnavailPkts + now.vmToVf.dropUnavailPkts
          }`,
      );
      prev = now;
    }
    const ports = await pmd.stop();
    const c = daemon.dataplane.counters()[0];
    const balanced = (d: RelayCounters["vfToVm"]) => d.rxPkts === d.txPkts + d.dropFullPkts + d.dropUnavailPkts;
    const pass = c.vfToVm.txPkts > 0n && c.vmToVf.txPkts > 0n && balanced(c.vfToVm) && balanced(c.vmToVf);
    const result = {
      result: pass ? "PASS" : "FAIL",
      seconds: a.seconds,
      vf_to_vm: {
        rx: Number(c.vfToVm.rxPkts),
        tx: Number(c.vfToVm.txPkts),
        drops: Number(c.vfToVm.dropFullPkts + c.vfToVm.dropUnavailPkts),
      },
      vm_to_vf: {
        rx: Number(c.vmToVf.rxPkts),
        tx: Number(c.vmToVf.txPkts),
        drops: Number(c.vmToVf.dropFullPkts + c.vmToVf.dropUnavailPkts),
      },
      vm_standin: { rx: ports[0]?.rxPackets ?? 0, tx: ports[0]?.txPackets ?? 0 },
      vf_peer: { rx: ports[1]?.rxPackets ?? 0, tx: ports[1]?.txPackets ?? 0 },
    };
    if (a.json) console.log(JSON.stringify(result));
    else {
      say(
        `${result.result}: VF->VM ${result.vf_to_vm.tx} packets (${mpps(c.vfToVm.txPkts, a.seconds)} Mpps avg), ` +
          `VM->VF ${result.vm_to_vf.tx} packets (${mpps(c.vmToVf.txPkts, a.seconds)} Mpps avg); ` +
          `VM stand-in received ${result.vm_standin.rx}, VF peer received ${result.vf_peer.rx}`,
      );
    }
    status = pass ? 0 : 1;
  } finally {
    // The VF goes first: DPDK 22.11's memif frees its shared memory when the peer hangs up without
    // waiting for a burst in progress on it, so the peer must not leave while the VF is polled.
    try {
      daemon.table.removeVf(0);
    } catch { /* never attached */ }
    await pmd?.close();
    await daemon.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return status;
}
