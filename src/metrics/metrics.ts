/**
 * Prometheus metrics (`VIO4WD_METRICS_LISTEN=127.0.0.1:9464`, off by default): per relay and
 * direction packet, byte and drop counters, connection state, per-worker cycle accounting (busy
 * share, cycles per packet, as OVS's pmd-perf-show), relay info
 * and build info, in the text exposition format at `/metrics`.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import type { RelayReader } from "../relays/table.ts";
import type { WorkerCounters } from "../dataplane/dataplane.ts";
import { hasSteps, stepName, workerLoad } from "../dataplane/worker_load.ts";

/** Escapes a label value for the text format. */
const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** Figures of the daemon beside the relays' (the stats service's, DPDK's heap). */
export interface DaemonGauges {
  statsWaiting(): number;
  heapBytes(): number;
}

const NO_GAUGES: DaemonGauges = { statsWaiting: () => 0, heapBytes: () => 0 };

/** Renders every metric of the relays; `prev` (the workers' counters at the last scrape) gives the busy share and cycles per packet since then. */
export function renderMetrics(
  relays: RelayReader,
  build: { version: string; dpdk: string },
  prev: WorkerCounters[] | null,
  gauges: DaemonGauges = NO_GAUGES,
): { text: string; workers: WorkerCounters[] } {
  const out: string[] = [];
  const family: Family = (name, type, help) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  relayMetrics(out, family, relays);
  const workers = relays.workers();
  workerMetrics(out, family, workers, prev, relays.tscHz());
  daemonMetrics(out, family, build, gauges);
  return { text: out.join("\n") + "\n", workers };
}

/** Starts a metric family: its HELP and TYPE lines. */
type Family = (name: string, type: string, help: string) => void;

/** Each relay's counters by direction and drop reason, the VF's losses, and the relay's state. */
function relayMetrics(out: string[], family: Family, relays: RelayReader): void {
  const counters = relays.counters();
  const shown = relays.list().filter((r) => r.socket !== null || r.vf !== null);
  const dirs = [["vf_to_vm", "vfToVm"], ["vm_to_vf", "vmToVf"]] as const;
  const series: [string, string, string, (c: (typeof counters)[number]["vfToVm"]) => bigint][] = [
    ["vio4wd_relay_rx_packets_total", "Packets received by a relay direction.", "", (c) => c.rxPkts],
    ["vio4wd_relay_rx_bytes_total", "Bytes received by a relay direction.", "", (c) => c.rxBytes],
    ["vio4wd_relay_tx_packets_total", "Packets sent on by a relay direction.", "", (c) => c.txPkts],
    ["vio4wd_relay_tx_bytes_total", "Bytes sent on by a relay direction.", "", (c) => c.txBytes],
  ];
  for (const [name, help, , get] of series) {
    family(name, "counter", help);
    for (const r of shown) {
      for (const [dir, key] of dirs) {
        out.push(`${name}{relay="${r.id}",direction="${dir}"} ${get(counters[r.id][key])}`);
      }
    }
  }
  for (const [unit, pick] of [["packets", "Pkts"], ["bytes", "Bytes"]] as const) {
    const name = `vio4wd_relay_dropped_${unit}_total`;
    family(
      name,
      "counter",
      `${unit === "packets" ? "Packets" : "Bytes"} dropped, by reason (queue_full, not_connected).`,
    );
    for (const r of shown) {
      for (const [dir, key] of dirs) {
        const c = counters[r.id][key];
        out.push(`${name}{relay="${r.id}",direction="${dir}",reason="queue_full"} ${c[`dropFull${pick}`]}`);
        out.push(`${name}{relay="${r.id}",direction="${dir}",reason="not_connected"} ${c[`dropUnavail${pick}`]}`);
      }
    }
  }
  const vfLosses = [
    [
      "vio4wd_relay_vf_rx_missed_packets_total",
      "Packets the VF's RX ring had no room for (a guest slower than its traffic).",
      "vfRxMissed",
    ],
    ["vio4wd_relay_vf_rx_nombuf_total", "VF receives that found no free mbuf in the relay's pool.", "vfRxNombuf"],
  ] as const;
  const withVf = shown.filter((r) => r.vf !== null).map((r) => ({ id: r.id, report: relays.report(r.id) }));
  for (const [name, help, key] of vfLosses) {
    family(name, "counter", help);
    for (const r of withVf) {
      const v = r.report[key];
      if (v !== null) out.push(`${name}{relay="${r.id}"} ${v}`);
    }
  }
  family("vio4wd_relay_vm_connected", "gauge", "1 when a VM is connected on the relay's socket.");
  for (const r of shown) out.push(`vio4wd_relay_vm_connected{relay="${r.id}"} ${r.vm ? 1 : 0}`);
  family("vio4wd_relay_vf_attached", "gauge", "1 when the relay has a VF (or bond).");
  for (const r of shown) out.push(`vio4wd_relay_vf_attached{relay="${r.id}"} ${r.vf !== null ? 1 : 0}`);
  family("vio4wd_relay_info", "gauge", "Relay identity: socket, VF device and worker CPUs (value 1).");
  for (const r of shown) {
    out.push(
      `vio4wd_relay_info{relay="${r.id}",socket="${esc(r.socket ?? "")}",vf="${esc(r.vf ?? "")}",vf_to_vm_cpu="${
        r.cpus[0]
      }",vm_to_vf_cpu="${r.cpus[1]}"} 1`,
    );
  }
}

/**
 * Each worker's loop counters, busy share and cycles per packet since the last scrape (`prev`),
 * and the frequency of their cycle counter.
 */
function workerMetrics(
  out: string[],
  family: Family,
  workers: WorkerCounters[],
  prev: WorkerCounters[] | null,
  tscHz: bigint,
): void {
  const workerCounters: [string, string, (w: WorkerCounters) => bigint][] = [
    ["vio4wd_worker_busy_cycles_total", "TSC cycles of a worker's passes that moved packets.", (w) => w.busyCycles],
    ["vio4wd_worker_idle_cycles_total", "TSC cycles of a worker's passes that moved none.", (w) => w.idleCycles],
    ["vio4wd_worker_rx_packets_total", "Packets a worker took in, both directions.", (w) => w.rxPkts],
    ["vio4wd_worker_bursts_total", "Receive calls of a worker that returned packets.", (w) => w.bursts],
    [
      "vio4wd_worker_long_passes_total",
      "Passes that took over 50 us per burst they moved (interrupted; not counted as busy).",
      (w) => w.longPasses,
    ],
  ];
  for (const [name, help, get] of workerCounters) {
    family(name, "counter", help);
    for (const w of workers) out.push(`${name}{cpu="${w.cpu}"} ${get(w)}`);
  }
  const profiled = workers.filter((w) => hasSteps(w.steps));
  if (profiled.length) {
    family(
      "vio4wd_worker_step_cycles_total",
      "counter",
      "A worker's busy cycles by step (a shim built with STEPS=1 only): vf_rx, vm_enqueue, mbuf_free, vm_dequeue, vf_tx, empty_poll.",
    );
    for (const w of profiled) {
      for (const [step, c] of Object.entries(w.steps)) {
        out.push(`vio4wd_worker_step_cycles_total{cpu="${w.cpu}",step="${stepName(step)}"} ${c}`);
      }
    }
  }
  const loads = workers.map((w) => ({ cpu: w.cpu, load: workerLoad(w, prev?.find((x) => x.cpu === w.cpu)) }));
  family(
    "vio4wd_worker_busy_ratio",
    "gauge",
    "Share of a worker's cycles in passes that moved packets, since the last scrape.",
  );
  for (const { cpu, load } of loads) out.push(`vio4wd_worker_busy_ratio{cpu="${cpu}"} ${load.busyShare ?? 0}`);
  family(
    "vio4wd_worker_cycles_per_packet",
    "gauge",
    "A worker's busy cycles per packet taken in, since the last scrape (absent without packets).",
  );
  for (const { cpu, load } of loads) {
    if (load.cyclesPerPkt !== null) out.push(`vio4wd_worker_cycles_per_packet{cpu="${cpu}"} ${load.cyclesPerPkt}`);
  }
  family("vio4wd_tsc_hz", "gauge", "Frequency of the workers' cycle counter (cycles per second).");
  out.push(`vio4wd_tsc_hz ${tscHz}`);
}

/** The daemon's own: build, stats requests waiting, hugepage memory in use. */
function daemonMetrics(
  out: string[],
  family: Family,
  build: { version: string; dpdk: string },
  gauges: DaemonGauges,
): void {
  family("vio4wd_stats_waiting_requests", "gauge", "Stats requests waiting out their delay (ZeroMQ stats endpoint).");
  out.push(`vio4wd_stats_waiting_requests ${gauges.statsWaiting()}`);
  family("vio4wd_dpdk_heap_bytes", "gauge", "Bytes allocated from DPDK's hugepage heap (pools, queues, devices).");
  out.push(`vio4wd_dpdk_heap_bytes ${gauges.heapBytes()}`);
  family("vio4wd_build_info", "gauge", "vio4wd and DPDK versions (value 1).");
  out.push(`vio4wd_build_info{version="${esc(build.version)}",dpdk="${esc(build.dpdk)}"} 1`);
}

/** Serves /metrics on `listen` (HOST:PORT) until closed. */
export function serveMetrics(
  listen: string,
  relays: RelayReader,
  log: Logger,
  build: { version: string; dpdk: string },
  gauges: DaemonGauges = NO_GAUGES,
): Deno.HttpServer {
  const m = /^(.*):(\d+)$/.exec(listen)!;
  let prev: WorkerCounters[] | null = null;
  return Deno.serve({
    hostname: m[1].replace(/^\[|\]$/g, ""),
    port: Number(m[2]),
    onListen: ({ hostname, port }) => log.notice(`metrics: http://${hostname}:${port}/metrics`),
  }, (req) => {
    if (new URL(req.url).pathname !== "/metrics") return new Response("see /metrics\n", { status: 404 });
    const r = renderMetrics(relays, build, prev, gauges);
    prev = r.workers;
    return new Response(r.text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
  });
}
