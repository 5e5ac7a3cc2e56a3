/**
 * OVSDB: the monitor's server is killed and restarted again and again, with the tags changed while
 * it is down (ovsdb-tool on the database file) and while it is up (ovs-vsctl); after every restart
 * the daemon's relays must converge on what the database says.
 */

import { OvsDb } from "../rigs/ovs.ts";
import { fakeSysfs } from "../rigs/sysfs.ts";
import { type RelayState, until } from "../rigs/daemon_process.ts";
import { World } from "../rigs/world.ts";
import { Rng, SEED, sized, summary } from "./common.ts";

const RESTARTS = sized(10, 20);
const PORTS = 6;
/** Relay ids used as tags (each port gets a distinct one, or none). */
const IDS = [0, 1, 2, 3, 4, 5, 6, 7, 10, 20, 63];

const relays = (s: RelayState[]) => s.filter((r) => r.vf).map((r) => `${r.id}=${r.vf!.pciAddrStr}`).sort().join(" ");

/** A random tag assignment: port index -> relay id (null = untagged), ids distinct. */
function assignment(rng: Rng): (number | null)[] {
  const free = [...IDS];
  return Array.from({ length: PORTS }, () => rng.next() < 0.3 ? null : free.splice(rng.int(free.length), 1)[0]);
}

const expected = (tags: (number | null)[]) =>
  tags.filter((t) => t !== null).map((t) => `${t}=net_null${t}`).sort().join(" ");

const externalIds = (t: number | null): [string, string][] =>
  t === null ? [] : [["virtio_forwarder", String(t)], ["vio4wd_device", `net_null${t}`]];

Deno.test(`OVSDB: ${RESTARTS} server kills and restarts with tag changes in between, relays converge every time`, async () => {
  await using w = await World.create("ovsr");
  const dir = w.dir;
  await Deno.mkdir(`${dir}/ovs`);
  fakeSysfs(`${dir}/sys`, []);
  const db = w.own(await OvsDb.start(`${dir}/ovs`));
  const rng = new Rng(SEED);
  let maxConverge = 0;
  await db.vsctl("--no-wait", "add-br", "br0");
  let tags = assignment(rng);
  for (let p = 0; p < PORTS; p++) {
    const ids = externalIds(tags[p]).map(([k, v]) => `external_ids:${k}=${v}`);
    await db.vsctl(
      "--no-wait",
      "add-port",
      "br0",
      `p${p}`,
      ...(ids.length ? ["--", "set", "interface", `p${p}`, ...ids] : []),
    );
  }
  const d = await w.daemon([`VIRTIOFWD_OVSDB_SOCK_PATH=${db.socket}`], {
    env: { VIO4WD_SYSFS_ROOT: `${dir}/sys` },
  });
  const converge = async (what: string) => {
    const t0 = Date.now();
    let got = "";
    const want = expected(tags);
    await until(what, async () => (got = relays(await d.status())) === want, 10_000).catch(() => {
      throw new Error(`${what}: expected '${want}', got '${got}'; log:\n${d.log.slice(-2500)}`);
    });
    return Date.now() - t0;
  };
  await converge("initial table");
  for (let i = 1; i <= RESTARTS; i++) {
    await db.kill();
    tags = assignment(rng);
    await db.setExternalIdsOffline(Object.fromEntries(tags.map((t, p) => [`p${p}`, externalIds(t)])));
    await db.restart();
    maxConverge = Math.max(maxConverge, await converge(`restart ${i}: offline changes`));
    // and one change while the server is up
    const p = rng.int(PORTS);
    if (tags[p] !== null) {
      tags[p] = null;
      await db.vsctl("--no-wait", "remove", "interface", `p${p}`, "external_ids", "virtio_forwarder");
    } else {
      const free = IDS.filter((id) => !tags.includes(id));
      tags[p] = free[rng.int(free.length)];
      await db.vsctl(
        "--no-wait",
        "set",
        "interface",
        `p${p}`,
        ...externalIds(tags[p]).map(([k, v]) => `external_ids:${k}=${v}`),
      );
    }
    await converge(`restart ${i}: online change`);
  }
  const lost = d.count(/ovsdb: connection to .* lost/);
  summary("ovsdb", {
    restarts: RESTARTS,
    outages_logged: lost,
    max_converge_ms: maxConverge,
    crashes: d.log.includes("Uncaught") ? 1 : 0,
  });
  if (lost !== RESTARTS) throw new Error(`expected ${RESTARTS} connection losses logged once each, got ${lost}`);
});
