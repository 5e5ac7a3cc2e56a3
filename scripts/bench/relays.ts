/**
 * The relays under test in the bench: dpdk-testpmd io-fwd, vio4wd and OVS-DPDK, each started
 * with the VM sockets and VF peers the generator connects to.
 *
 * @module
 */

import { DaemonProcess } from "../../tests/rigs/daemon_process.ts";
import { OvsDb, OvsDpdk } from "../../tests/rigs/ovs.ts";
import { coreCycles, TestPmd } from "../../tests/rigs/testpmd.ts";
import { request } from "../../src/control/client.ts";
import {
  StatsRequestSchema,
  StatsResponse_Status,
  StatsResponseSchema,
  type WorkerState,
} from "../../src/control/gen/virtioforwarder_pb.ts";
import { STEP_LABELS, type StepCycles, type WorkerCycles } from "../../src/dataplane/worker_load.ts";
import { type Case, variantDaemonOptions, type VfKind } from "./cases.ts";

/** Busy cycles of the relay's forwarding core and packets it received, cumulative. */
export interface CoreCycles {
  cycles: number;
  pkts: number;
}

/** One reading of a relay's own accounting, cumulative. */
export interface RelayReading extends CoreCycles {
  /** Packets the relay dropped so far (null: it does not say). */
  drops: number | null;
  /** vio4wd: its workers' accounting summed, with the split by step of a STEPS=1 shim. */
  workers?: WorkerCycles & { steps: StepCycles };
}

/** A relay under test, with the devargs the generator uses for each relay's VM and VF peers. */
export interface RunningRelay {
  vmSockets: string[];
  vfPeers: string[];
  /** The relay's own accounting of its forwarding core (testpmd, OVS and vio4wd each count theirs). */
  read(): Promise<RelayReading>;
  stop(): Promise<void>;
}

const withoutDrops = async (cycles: Promise<CoreCycles>): Promise<RelayReading> => ({ ...await cycles, drops: null });

/** vio4wd's worker accounting and relay drops, from one stats request. */
async function vio4wdReading(d: DaemonProcess): Promise<RelayReading> {
  const res = await request(
    d.statsEndpoint,
    StatsRequestSchema,
    { includeInactive: true, includeWorkers: true },
    StatsResponseSchema,
  );
  if (res.status !== StatsResponse_Status.OK) throw new Error(`vio4wd stats: status ${res.status}`);
  const ws = res.workers;
  const sum = (get: (w: WorkerState) => bigint | undefined) => ws.reduce((s, w) => s + (get(w) ?? 0n), 0n);
  const steps = Object.fromEntries(
    (Object.keys(STEP_LABELS) as (keyof StepCycles)[]).map((k) => [k, sum((w) => w.steps?.[k])]),
  ) as StepCycles;
  const workers = {
    busyCycles: sum((w) => w.busyCycles),
    idleCycles: sum((w) => w.idleCycles),
    rxPkts: sum((w) => w.rxPkts),
    longPasses: sum((w) => w.longPasses),
    steps,
  };
  return {
    workers,
    cycles: Number(workers.busyCycles),
    pkts: Number(workers.rxPkts),
    drops: res.relay.reduce(
      (s, r) =>
        s + Number(
          (r.vfToVm?.pktsDroppedVmQueueFull ?? 0n) + (r.vfToVm?.pktsDroppedVmNotConnected ?? 0n) +
            (r.vmToVf?.pktsDroppedVfQueueFull ?? 0n) + (r.vmToVf?.pktsDroppedVfNotConnected ?? 0n),
        ),
      0,
    ),
  };
}

/** memif on a file-system socket (DPDK 22.11's abstract default is per network namespace). */
export function vfDevargs(kind: VfKind, i: number, socket: string): { relay: string; peer: (port: number) => string } {
  return kind === "memif"
    ? {
      relay: `net_memif${i + 1},role=server,socket=${socket},socket-abstract=no`,
      peer: (port) => `net_memif${port},role=client,socket=${socket},socket-abstract=no`,
    }
    : {
      relay: `net_vhost${i + 1},iface=${socket},queues=1`,
      peer: (port) => `net_virtio_user${port},path=${socket},queues=1`,
    };
}

export async function startRelay(c: Case, dir: string, tag: string): Promise<RunningRelay> {
  const vfs = Array.from({ length: c.relays }, (_, i) => vfDevargs(c.vf, i, `${dir}/vf${i}.sock`));
  const vfPeers = vfs.map((v, i) => v.peer(2 * i + 1));
  if (c.kind === "testpmd") {
    // VM side net_vhost100+i: clear of the vhost VF stand-in's names (net_vhost1...).
    const pmd = await TestPmd.start({
      prefix: `${tag}-r`,
      cores: "0,1",
      mainLcore: 0,
      memoryMb: 512,
      mbufs: 16384 * c.relays,
      vdevs: vfs.flatMap((v, i) => [`net_vhost${100 + i},iface=${dir}/vm${i}.sock,queues=1`, v.relay]),
      appArgs: ["--record-core-cycles"],
    });
    await pmd.send("set fwd io");
    await pmd.send("start");
    const vmSockets = vfs.map((_, i) => `${dir}/vm${i}.sock`);
    return {
      vmSockets,
      vfPeers,
      read: () => withoutDrops(coreCycles(pmd)),
      stop: () => pmd.close(),
    };
  }
  if (c.kind === "vio4wd") {
    const d = await DaemonProcess.start(dir, `${tag}-r`, [
      "VIO4WD_EAL_MEMORY_MB=512",
      "VIRTIOFWD_LOG_LEVEL=5",
      `VIO4WD_IDLE_SLEEP_US=${c.idleUs ?? 0}`,
      "VIRTIOFWD_STATIC_VFS=(",
      ...vfs.map((v, i) => `  ${v.relay}=${i}`),
      ")",
    ], variantDaemonOptions(c.shim));
    const vmSockets = vfs.map((_, i) => `${dir}/sock/virtio-forwarder${i}.sock`);
    return {
      vmSockets,
      vfPeers,
      read: () => vio4wdReading(d),
      stop: async () => void (await d.stop()),
    };
  }
  const db = await OvsDb.start(dir);
  let ovs: OvsDpdk | null = null;
  try {
    ovs = await OvsDpdk.start(db, { lcoreMask: "0x1", pmdCpuMask: "0x2", memoryMb: 512, prefix: `${tag}-r` });
    const vm = await ovs.addRelay("v4bench", "vhu0", "vf0", vfs[0].relay);
    const o = ovs;
    return {
      vmSockets: [vm],
      vfPeers,
      read: () => withoutDrops(o.pmdCycles()),
      stop: async () => (await o.stop(), await db.stop()),
    };
  } catch (e) {
    await ovs?.stop();
    await db.stop();
    throw e;
  }
}
