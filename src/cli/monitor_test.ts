import { render, type Snapshot } from "./monitor.ts";
import { assert } from "../../tests/rigs/assert.ts";

const snapshot: Snapshot = {
  cpus: [1, 2].map((cpu) => ({
    cpu,
    load: 0.4 * cpu,
    busy: 0.25,
    cycles_per_pkt: 161,
    relays: { vf_to_vm: Array.from({ length: 20 }, (_, i) => i * 2 + cpu - 1), vm_to_vf: [] },
  })),
  relays: [0, 1].map((id) => ({
    id,
    load: 1,
    vf_to_vm: { cpu: 1, pps: 1.5e6, bps: 1.2e10, drops: 12345 },
    vm_to_vf: { cpu: 2, pps: 2.5e6, bps: 2.2e10, drops: 67890 },
  })),
};

Deno.test("monitor fits its screen: at 80 columns every line fits and keeps busy, cycles per packet, the relays (cut with a count) and both directions' drops", () => {
  for (const width of [80, 110, 200]) {
    const text = render(snapshot, false, width);
    const lines = text.split("\n");
    assert(lines.every((l) => l.length <= width), `${width}: a line over ${width} columns:\n${text}`);
    const cpus = lines.filter((l) => l.startsWith("CPU1:") || l.startsWith("CPU2:"));
    assert(cpus.length === 2, `${width}: both CPU lines:\n${text}`);
    for (const l of cpus) {
      assert(/busy\s+25\.0%/.test(l) && /161 cyc\/pkt/.test(l) && /relays 0|relays 1/.test(l), `${width}: ${l}`);
    }
    for (const id of [0, 1]) {
      const row = lines.find((l) => new RegExp(`^\\s+${id}\\s`).test(l));
      assert(row !== undefined && row.includes("12345") && row.includes("67890"), `${width}: relay ${id}:\n${text}`);
    }
  }
  assert(/relays 0,2,.*,\+\d+$/m.test(render(snapshot, false, 80)), "a long relay list is cut with a count");
});
