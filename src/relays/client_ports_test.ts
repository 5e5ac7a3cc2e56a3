import { assert, assertEq } from "../../tests/rigs/assert.ts";
import { loadConfig } from "../config/config.ts";
import { Logger } from "../common/log.ts";
import { FakeDataPath } from "../../tests/rigs/fake_data_path.ts";
import { RelayError, RelayTable } from "./table.ts";
import { clientPorts } from "./client_ports.ts";
import { ERRNO } from "../../ffi/errno.ts";

Deno.test("client ports: while a hot upgrade hands the relays over, every change a client asks for is refused with EBUSY and the reason, and the table is left as it was; reads go on", () => {
  const table = new RelayTable(loadConfig("VIRTIOFWD_CPU_MASK=1\n", "f").config, new FakeDataPath(), new Logger(0));
  let busy: string | null = "the relays are being handed to a new daemon";
  const ports = clientPorts(table, {
    drivers: ["net_null"],
    pci: [],
    socketDir: "/run/vio4wd",
    isVf: () => false,
    untrustedPeerSocket: () => null,
  }, () => busy);
  const changes: [string, () => void][] = [
    ["add a socket", () => ports.addSocket(1, "/run/vio4wd/x.sock")],
    ["add a VF", () => ports.addVf(1, "net_null1")],
    ["add a bond", () => ports.addBond(1, "net_bonding1", 1, ["net_null2", "net_null3"])],
    ["remove a socket", () => ports.removeSocket(1)],
    ["remove a VF", () => ports.removeVf(1)],
  ];
  for (const [what, change] of changes) {
    try {
      change();
      throw new Error(`${what}: not refused`);
    } catch (e) {
      assert(e instanceof RelayError && e.code === ERRNO.EBUSY, `${what}: ${e}`);
      assert(/handed to a new daemon/.test((e as Error).message), `${what}: the reason`);
    }
  }
  assertEq(table.list().filter((r) => r.socket !== null || r.vf !== null).length, 0, "nothing changed");
  assertEq(ports.list().length, table.list().length, "reads go on");
  busy = null;
  ports.addVf(1, "net_null1");
  assertEq(table.get(1).vf, "net_null1", "once the upgrade is over, changes go through");
});
