/**
 * Port sources against real processes: the OVSDB monitor with a private ovsdb-server and
 * ovs-vsctl (tags added, changed, removed; the server killed and restarted with changes made
 * meanwhile), and the IPC command file.
 */

import { OvsDb } from "./rigs/ovs.ts";
import { fakeSysfs, standInForVf } from "./rigs/sysfs.ts";
import { type RelayState, until } from "./rigs/daemon_process.ts";
import { World } from "./rigs/world.ts";
import { assertEq } from "./rigs/assert.ts";

const relays = (s: RelayState[]) => s.filter((r) => r.vf).map((r) => `${r.id}=${r.vf!.pciAddrStr}`).join(" ");

/** A tagged interface mapped by vio4wd_device (no SR-IOV here). */
const tagged = (port: string, relay: number) => [
  "--",
  "set",
  "interface",
  port,
  `external_ids:virtio_forwarder=${relay}`,
  `external_ids:vio4wd_device=net_null${relay}`,
];

Deno.test("OVSDB monitor: tagged ports become relays, tags removed/re-added, server restarts with offline changes converge", async () => {
  await using w = await World.create("ovsdb");
  const dir = w.dir;
  await Deno.mkdir(`${dir}/ovs`);
  fakeSysfs(`${dir}/sys`, [3]);
  const db = w.own(await OvsDb.start(`${dir}/ovs`));
  await db.vsctl("--no-wait", "add-br", "br0");
  await db.vsctl("--no-wait", "add-port", "br0", "p0", ...tagged("p0", 0));
  // Started after p0 exists: the initial table is picked up.
  const d = await w.daemon([`VIRTIOFWD_OVSDB_SOCK_PATH=${db.socket}`], {
    env: { VIO4WD_SYSFS_ROOT: `${dir}/sys` },
  });
  const expect = async (want: string, what: string, ms = 5000) => {
    let got = "";
    await until(what, async () => (got = relays(await d.status())) === want, ms).catch(() => {
      throw new Error(`${what}: expected relays '${want}', got '${got}'; log:\n${d.log.slice(-2500)}`);
    });
  };
  await expect("0=net_null0", "existing tagged port");
  await db.vsctl("--no-wait", "add-port", "br0", "p1", ...tagged("p1", 1));
  await expect("0=net_null0 1=net_null1", "added tagged port");
  await db.vsctl("--no-wait", "remove", "interface", "p1", "external_ids", "virtio_forwarder");
  await expect("0=net_null0", "tag removed");
  assertEq((await db.vsctl("list-ports", "br0")).trim(), "p0\np1", "p1 stays on the bridge");
  await db.vsctl("--no-wait", "set", "interface", "p1", "external_ids:virtio_forwarder=1");
  await expect("0=net_null0 1=net_null1", "tag set again");
  // Mapped through sysfs: interface vf3 is VF 3 of its PF, 0000:05:08.3 (no such device here).
  await db.vsctl(
    "--no-wait",
    "add-port",
    "br0",
    "vf3",
    "--",
    "set",
    "interface",
    "vf3",
    "external_ids:virtio_forwarder=1",
  );
  await d.waitLog(/ovsdb: cannot add 0000:05:08\.3 to relay 3/);

  // Server killed; changes made to its database meanwhile; server back.
  await db.kill();
  await db.setExternalIdsOffline({ p0: [], p1: [["virtio_forwarder", "5"], ["vio4wd_device", "net_null5"]] });
  await d.waitLog(/ovsdb: connection to .* lost/);
  const restarted = Date.now();
  await db.restart();
  await expect("5=net_null5", "converged after the restart", 2000 + (Date.now() - restarted));
  assertEq(d.count(/ovsdb: connection to .* lost/), 1, "connection loss logged once");
  assertEq(d.count(/ovsdb: reconnected/), 1, "reconnection logged once");
});

Deno.test("IPC file monitor: add_port and del_port are carried out (relay 3 gets and loses VF 0000:05:08.3) and the file removed; a VF that cannot be probed is reported; malformed files are reported once and left; a file being written is read only once it stays unchanged", async () => {
  await using w = await World.create("ipc");
  const dir = w.dir;
  // VF 3 is a fake PCI device standing in as net_null3 (as its PCI address would be probed); VF 4 has no stand-in
  fakeSysfs(`${dir}/sys`, [3, 4]);
  standInForVf(`${dir}/sys`, "0000:05:08.3", "net_null3");
  const cmd = `${dir}/vio_cmd`;
  const gone = () => Deno.stat(cmd).then(() => false, () => true);
  const d = await w.daemon(["VIRTIOFWD_IPC_PORT_CONTROL=y", `VIO4WD_IPC_CMD_FILE=${cmd}`], {
    env: { VIO4WD_SYSFS_ROOT: `${dir}/sys` },
  });
  await Deno.writeTextFile(cmd, "add_port vf3\n");
  await until("command file consumed", gone, 2000);
  await until("relay 3 has VF 0000:05:08.3", async () => relays(await d.status()) === "3=0000:05:08.3");
  await Deno.writeTextFile(cmd, "add_port vf4\n");
  await until("command file consumed", gone, 2000);
  await d.waitLog(/ipc: cannot add 0000:05:08\.4 to relay 4: .*cannot probe device '0000:05:08\.4'/);
  await Deno.writeTextFile(cmd, "bogus vf3\n");
  await d.waitLog(/ipc: .*vio_cmd is not a command \(expected 'add_port <netdev>' or 'del_port <netdev>'/);
  await new Promise((r) => setTimeout(r, 300));
  if (await gone()) throw new Error("a malformed file was removed");
  assertEq(d.count(/is not a command/), 1, "malformed file reported once");
  await Deno.writeTextFile(cmd, "del_port vf3\n"); // fixed in place
  await until("fixed file consumed", gone, 2000);
  await until("relay 3 without its VF", async () => relays(await d.status()) === "");
  await Deno.writeTextFile(cmd, "del_port vf3\n");
  await until("command file consumed", gone, 2000);
  await d.waitLog(/ipc: del_port vf3: relay 3 does not have 0000:05:08\.3/);
  await Deno.writeTextFile(cmd, "add_port nope0\n");
  await d.waitLog(/ipc: add_port nope0: .*does not exist/);
  assertEq(relays(await d.status()), "", "no relay left with a VF");
  // a writer that creates the file and writes it in two steps: the halves are not commands
  const file = await Deno.open(cmd, { write: true, create: true, truncate: true });
  await file.write(new TextEncoder().encode("add_po"));
  await new Promise((r) => setTimeout(r, 30));
  await file.write(new TextEncoder().encode("rt vf3\n"));
  file.close();
  await until("command file consumed", gone, 2000);
  await until("relay 3 has VF 0000:05:08.3 again", async () => relays(await d.status()) === "3=0000:05:08.3");
  assertEq(d.count(/is not a command/), 1, "a file being written is not reported");
});
