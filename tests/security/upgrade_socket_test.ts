/**
 * The upgrade socket (docs/hot-upgrade.md): a root daemon takes instructions there that end in
 * starting a program and handing it every VM's connection. What reaches it is checked: only root
 * can connect (0600), a line is read bounded and must be a request, a new daemon must bring the
 * token of the upgrade that started it, and a client that says nothing holds nobody up.
 */

import { num, until } from "../rigs/daemon_process.ts";
import { World } from "../rigs/world.ts";
import { assert, assertEq } from "../rigs/assert.ts";
import { Channel } from "../../src/daemon/upgrade_channel.ts";

const refused = (name: string, what: string) => console.log(`security ${name} refused: ${what}`);

Deno.test("security: the upgrade socket is root's alone (0600); a silent client, a 2 MiB line, a line that is not a request, a take-over with a wrong token and a program path with a newline are each turned away, and the daemon upgrades afterwards", async () => {
  await using w = await World.create("upsock");
  const d = await w.daemon(["VIRTIOFWD_STATIC_VFS=net_null0=0"]);
  const path = `${w.dir}/virtio-forwarder.upgrade.sock`;
  const st = Deno.lstatSync(path);
  assert(st.isSocket, "a socket");
  assertEq((st.mode! & 0o777).toString(8), "600", "its mode");
  assertEq(st.uid, 0, "its owner");

  const silent = await Deno.connect({ transport: "unix", path }); // says nothing: dropped after 5 s
  const huge = await Deno.connect({ transport: "unix", path });
  const big = new Uint8Array(2 << 20).fill(0x61);
  const wrote = huge.write(big).catch(() => 0); // the daemon stops reading at 1 MiB and closes
  const garbage = await Channel.connect(path);
  await garbage.send({ hello: "not a request" });
  const refusal = await garbage.receive(5000);
  assertEq(JSON.stringify(refusal), '{"result":{"ok":false,"error":"not an upgrade request"}}', "the answer");
  refused("upgrade-socket", "a line that is not an upgrade request");
  const impostor = await Channel.connect(path);
  await impostor.send({ takeOver: { token: "guessed", pid: 1 } });
  assertEq(
    JSON.stringify(await impostor.receive(5000)),
    '{"refused":"no upgrade is waiting for this daemon"}',
    "the answer to a guessed token",
  );
  refused("upgrade-socket", "a take-over with a guessed token");
  await wrote;
  await untilEnd(huge); // closed by the daemon (its answer may be lost to the reset of the unread rest)
  refused("upgrade-socket", "a 2 MiB line");

  const odd = await Channel.connect(path);
  await odd.send({ upgrade: { program: "/usr/bin/vio4wd\nforged log line" } });
  assert(/absolute path without control characters/.test(JSON.stringify(await odd.receive(5000))), "a forged program");
  refused("upgrade-socket", "a program path with a newline (it would reach the log and the process table)");
  assert(d.log.indexOf("forged log line") < 0, "nothing of it in the log");

  // the silent one holds nothing: an upgrade goes through meanwhile
  const up = await d.upgrade();
  assert(up.code === 0 && up.result.ok, `the upgrade beside a silent client: ${JSON.stringify(up.result)}`);
  assertEq(await untilEnd(silent), "", "the silent client was dropped");
  refused("upgrade-socket", "a client that says nothing (dropped after 5 s; an upgrade went through meanwhile)");
  await until("relay 0 in the new daemon", async () => (await d.status()).some((r) => r.id === 0 && r.vfToVm.active));
  assert(num((await d.status())[0].vfToVm.pktsRxFromVf) >= 0, "stats from the new daemon");
});

Deno.test("security: another user than root cannot connect to the upgrade socket, even through a directory open to all", async () => {
  await using w = await World.create("upuser");
  await w.daemon([]);
  Deno.chmodSync(w.dir, 0o755); // the directory open to all: only the socket's own mode keeps them out
  const r = await new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "/usr/bin/python3",
      "-c",
      `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
    print("connected")
except PermissionError:
    print("refused")
`,
      `${w.dir}/virtio-forwarder.upgrade.sock`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEq(
    new TextDecoder().decode(r.stdout).trim(),
    "refused",
    `nobody connecting: ${new TextDecoder().decode(r.stderr)}`,
  );
  refused("upgrade-socket", "a connection from uid 65534");
});

/** What `conn` sends until it closes (closed here then). */
async function untilEnd(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  try {
    for (let n; (n = await conn.read(buf)) !== null;) text += new TextDecoder().decode(buf.subarray(0, n));
  } catch { /* reset: closed too */ }
  conn.close();
  return text;
}
