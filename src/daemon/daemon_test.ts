import { loadConfig, mbufDataSize } from "../config/config.ts";
import { DEFAULT_VFIO_VF_TOKEN } from "../config/values.ts";
import { assert, assertEq } from "../../tests/rigs/assert.ts";
import { ealArgs } from "./daemon.ts";

const eal = (text: string) => ealArgs(loadConfig(text, "f").config);
const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

Deno.test("EAL arguments: worker and main lcores, hugetlbfs mount, file prefix, memory and log level come from the file", () => {
  const a = eal(
    "VIRTIOFWD_CPU_MASK=0x6\nVIRTIOFWD_MASTER_LCORE=3\nVIRTIOFWD_HUGETLBFS_MOUNT_POINT=/mnt/huge\nVIRTIOFWD_LOG_LEVEL=7\nVIO4WD_EAL_FILE_PREFIX=p1\nVIO4WD_EAL_MEMORY_MB=300\n",
  );
  assertEq(after(a, "-l"), "3,1,2", "lcores: main first, then the workers");
  assertEq(after(a, "--main-lcore"), "3", "main lcore");
  assertEq(after(a, "--huge-dir"), "/mnt/huge", "VIRTIOFWD_HUGETLBFS_MOUNT_POINT");
  assertEq(after(a, "--file-prefix"), "p1", "file prefix");
  assertEq(after(a, "-m"), "300", "memory");
  assertEq(a.includes("--log-level=8"), true, "log level 7 is DPDK's debug (8)");
  assertEq(a.includes("--no-telemetry"), true, "no telemetry socket");
});

Deno.test("EAL arguments: the file prefix is the original's virtio-forwarder_ unless VIO4WD_EAL_FILE_PREFIX names another (tools look in /var/run/dpdk/<prefix>)", () => {
  assertEq(after(eal(""), "--file-prefix"), "virtio-forwarder_", "the original's prefix (dpdk_eal.c)");
});

Deno.test("EAL arguments: VIRTIOFWD_VFIO_VF_TOKEN blank passes none, 0 the default UUID, a UUID itself", () => {
  assertEq(eal("").includes("--vfio-vf-token"), false, "blank: no token");
  assertEq(after(eal("VIRTIOFWD_VFIO_VF_TOKEN=0\n"), "--vfio-vf-token"), DEFAULT_VFIO_VF_TOKEN, "0: the default");
  const uuid = "4c3f1a5e-2b7d-4e0a-9c61-0123456789ab";
  assertEq(after(eal(`VIRTIOFWD_VFIO_VF_TOKEN=${uuid}\n`), "--vfio-vf-token"), uuid, "a UUID");
});

Deno.test("mbuf data room: DPDK's 2048 bytes by default (a 1500 MTU frame with VLAN tags fits), 9000-byte frames with VIRTIOFWD_JUMBO or VIRTIOFWD_TSO", () => {
  const room = (text: string) => mbufDataSize(loadConfig(text, "f").config);
  assertEq(room(""), 2048, "DPDK's RTE_MBUF_DEFAULT_DATAROOM");
  // the original's JUMBO_IP_MTU (9000) with its Ethernet header and two VLAN tags, in one buffer
  const jumboFrame = 9000 + 14 + 2 * 4;
  for (const text of ["VIRTIOFWD_JUMBO=y\n", "VIRTIOFWD_TSO=y\n"]) {
    assert(room(text) >= jumboFrame, `${text.trim()}: room ${room(text)} holds a ${jumboFrame}-byte frame`);
  }
});
