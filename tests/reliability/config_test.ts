/**
 * Config: the daemon started with every variable set to values it must refuse (the unit tests'
 * bad value of each that has one, an unterminated quote, and both forms of command substitution). Every start
 * must exit 2 naming file:line and the variable, and leave nothing behind: no socket directory,
 * PID file, DPDK runtime directory or hugepage file, and no command run.
 */

import { VARIABLES } from "../../src/config/config.ts";
import { LAUNCHER, pathExists } from "../rigs/daemon_process.ts";
import { World } from "../rigs/world.ts";
import { hugepageFiles } from "../rigs/testpmd.ts";
import { BAD_VALUES } from "../fixtures/bad_config_values.ts";
import { summary } from "./common.ts";

/** Runs `jobs` with at most `n` at a time. */
async function pool<T>(jobs: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  }));
  return out;
}

Deno.test("config: every variable with bad values stops the daemon with exit 2 and file:line, nothing started", async () => {
  await using w = await World.create("cfg");
  const { dir, tag } = w;
  const t0 = performance.now();
  const cases = VARIABLES.flatMap((v, i) => {
    const bad = BAD_VALUES[v.name]; // null: the variable takes every value, as the original
    const marker = `${dir}/ran-${i}`;
    return [
      ...(bad ? [{ name: v.name, value: bad[0], text: bad[1] }] : []),
      { name: v.name, value: "'unterminated", text: "unterminated single quote" },
      { name: v.name, value: `"$(touch ${marker})"`, text: "command substitution" },
      { name: v.name, value: `\`touch ${marker}\``, text: "command substitution" },
    ].map((c, j) => ({ ...c, id: `${i}-${j}`, marker }));
  });
  const failures = await pool(
    cases.map((c) => async () => {
      const prefix = `${tag}-${c.id}`;
      const file = `${dir}/${c.id}.conf`;
      const base = [
        "# vio4wd reliability: one bad variable",
        `VIRTIOFWD_SOCKET_DIR=${dir}/sock-${c.id}`,
        `VIRTIOFWD_PID_DIR=${dir}/pid-${c.id}`,
        `VIO4WD_EAL_FILE_PREFIX=${prefix}`,
        "VIRTIOFWD_CPU_MASK=1",
        "VIRTIOFWD_MASTER_LCORE=0",
      ];
      await Deno.writeTextFile(file, [...base, `${c.name}=${c.value}`].join("\n") + "\n");
      const out = await new Deno.Command(LAUNCHER, {
        args: ["daemon", "--config", file],
        stdout: "null",
        stderr: "piped",
      })
        .output();
      const err = new TextDecoder().decode(out.stderr);
      const where = `${file}:${base.length + 1}:`;
      const problems = [
        out.code !== 2 && `exit ${out.code}`,
        !err.includes(where) && `no ${where}`,
        !err.includes(c.text) && `no '${c.text}'`,
        pathExists(`${dir}/sock-${c.id}`) && "socket directory created",
        pathExists(`${dir}/pid-${c.id}`) && "PID directory created",
        pathExists(`/var/run/dpdk/${prefix}`) && "DPDK runtime directory created",
        hugepageFiles(prefix).length > 0 && "hugepage files created",
        pathExists(c.marker) && "a command in the file was run",
      ].filter((p) => p);
      return problems.length ? `${c.name}=${c.value}: ${problems.join(", ")}; stderr: ${err.trim()}` : null;
    }),
    4,
  );
  const bad = failures.filter((f) => f !== null);
  summary("config", {
    variables: VARIABLES.length,
    starts: cases.length,
    refused_cleanly: cases.length - bad.length,
    failures: bad.length,
    secs: ((performance.now() - t0) / 1000).toFixed(1),
  });
  if (bad.length) throw new Error(bad.join("\n"));
});
