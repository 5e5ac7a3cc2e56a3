import { assert, assertEq } from "../../tests/rigs/assert.ts";
import {
  clientBondNameRefusal,
  type ClientDevicePolicy,
  clientDeviceRefusal,
  parseDriverList,
} from "./client_devices.ts";

const policy = (drivers: string[] = [], pci: string[] = []): ClientDevicePolicy => ({
  drivers,
  pci,
  socketDir: "/run/vio4wd/",
  isVf: (p) => p === "0000:05:08.1",
  untrustedPeerSocket: (path) => path.includes("theirs") ? "a socket of uid 65534" : null,
});

Deno.test("client devices: by default only SR-IOV VFs by PCI address; VIO4WD_PCI_ALLOW adds others", () => {
  assertEq(clientDeviceRefusal("0000:05:08.1", policy()), null, "a VF");
  assertEq(clientDeviceRefusal("05:08.1", policy()), null, "a VF, short form");
  assert(/not an SR-IOV VF.*VIO4WD_PCI_ALLOW/.test(clientDeviceRefusal("0000:03:00.0", policy())!), "a PF");
  assertEq(clientDeviceRefusal("0000:03:00.0", policy([], ["0000:03:00.0"])), null, "a listed PF");
  assert(/takes no arguments/.test(clientDeviceRefusal("0000:05:08.1,representor=[0]", policy())!), "a VF with args");
  assert(
    /driver net_null are not allowed.*VIO4WD_DEVARGS_ALLOW/.test(clientDeviceRefusal("net_null0", policy())!),
    "a vdev",
  );
});

Deno.test("client devices: the review's attacks are refused even with every driver allowed", () => {
  const all = policy(["net_null", "net_memif", "net_tap", "net_virtio_user", "net_vhost"]);
  const cases: [string, RegExp][] = [
    ["net_pcap0,rx_iface=lo,tx_pcap=/etc/shadow", /driver net_pcap are not allowed/],
    ["net_af_packet0,iface=eth0", /driver net_af_packet are not allowed/],
    ["net_tap0,remote=eth0", /net_tap key 'remote' is not allowed/],
    ["net_memif0,socket=/etc/x.sock", /socket=\/etc\/x.sock is not a path inside the socket directory \/run\/vio4wd/],
    ["net_memif0,socket=/run/vio4wd/../x.sock", /is not a path inside/],
    ["net_memif0,socket=/run/vio4wdx/a.sock", /is not a path inside/],
    ["net_vhost0,iface=/tmp/s", /iface=\/tmp\/s is not a path inside/],
    ["net_virtio_user0,path=/dev/vhost-net", /path=\/dev\/vhost-net is not a path inside/],
    ["net_virtio_user0,path=/run/vio4wd/v.sock,iface=tap9", /key 'iface' is not allowed/],
    ["eth_pcap0,iface=eth0", /driver eth_pcap are not allowed/],
    // the probe would wait for a peer: the daemon held by whoever never connects or answers
    ["net_virtio_user0,path=/run/vio4wd/v.sock,server=1", /key 'server' is not allowed/],
    ["net_virtio_user0,path=/run/vio4wd/theirs.sock", /path=\/run\/vio4wd\/theirs.sock: a socket of uid 65534/],
    // an abstract socket has no file whose permissions would keep anyone out
    ["net_memif1,socket=/run/vio4wd/m1.sock", /net_memif from a client needs socket-abstract=no/],
    ["net_memif1,socket=/run/vio4wd/m1.sock,socket-abstract=yes", /needs socket-abstract=no/],
  ];
  for (const [device, want] of cases) {
    const why = clientDeviceRefusal(device, all);
    assert(why !== null && want.test(why), `${device}: got ${why}`);
  }
  for (
    const ok of [
      "net_null3",
      "net_null_vf2,copy=1",
      "net_memif1,socket=/run/vio4wd/m1.sock,role=server,socket-abstract=no",
      "net_tap0,iface=t0",
    ]
  ) {
    assertEq(clientDeviceRefusal(ok, all), null, ok);
  }
  assertEq(clientBondNameRefusal("net_bonding0"), null, "a bond name");
  assert(clientBondNameRefusal("net_bonding0,slave=net_pcap0") !== null, "a bond name with arguments");
});

Deno.test("client devices: VIO4WD_DEVARGS_ALLOW takes only the drivers with rules", () => {
  assertEq(parseDriverList("net_null, net_memif").join(), "net_null,net_memif", "two drivers");
  let err = "";
  try {
    parseDriverList("net_null,net_pcap");
  } catch (e) {
    err = (e as Error).message;
  }
  assert(/'net_pcap' is not one of them/.test(err), `net_pcap refused: ${err}`);
});
