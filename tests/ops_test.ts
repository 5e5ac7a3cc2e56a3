/**
 * Operations: Prometheus metrics checked by promtool, systemd units checked by systemd-analyze,
 * libvirt snippets checked by virt-xml-validate.
 */

import { withDaemon } from "./helpers.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("metrics: /metrics serves every relay's counters by direction and reason, and promtool accepts it", async () => {
  const port = freePort();
  await withDaemon("metrics", () => [
    `VIO4WD_METRICS_LISTEN=127.0.0.1:${port}`,
    "VIRTIOFWD_STATIC_VFS=net_null0=0",
  ], async (d) => {
    await d.waitLog(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (
      const want of [
        /^vio4wd_relay_rx_packets_total\{relay="0",direction="vf_to_vm"\} [1-9]\d*$/m, // net_null receives at once
        /^vio4wd_relay_dropped_packets_total\{relay="0",direction="vf_to_vm",reason="not_connected"\} [1-9]\d*$/m,
        /^vio4wd_relay_vm_connected\{relay="0"\} 0$/m,
        /^vio4wd_relay_vf_attached\{relay="0"\} 1$/m,
        /^vio4wd_relay_info\{relay="0",socket=".*virtio-forwarder0\.sock",vf="net_null0",vf_to_vm_cpu="1",vm_to_vf_cpu="-1"\} 1$/m,
        /^vio4wd_worker_busy_ratio\{cpu="1"\} [\d.e-]+$/m,
        /^vio4wd_build_info\{version="[^"]+",dpdk="DPDK 22\.11[^"]*"\} 1$/m,
      ]
    ) {
      if (!want.test(text)) throw new Error(`no ${want} in:\n${text.slice(0, 3000)}`);
    }
    const p = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(text));
    await w.close();
    const r = await p.output();
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`promtool: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`);
    const notFound = await fetch(`http://127.0.0.1:${port}/other`);
    await notFound.body?.cancel();
    if (notFound.status !== 404) throw new Error(`/other: ${notFound.status}`);
  });
});
