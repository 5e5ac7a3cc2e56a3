/**
 * `vio4wd vm-config RELAY`: what a VM needs to use relay RELAY under the current configuration,
 * as libvirt domain XML (interface + shared hugepage memory + NUMA cell) or QEMU arguments.
 *
 * @module
 */

import { configOption, examples } from "./help.ts";
import { object } from "@optique/core/constructs";
import { message } from "@optique/core/message";
import { optional, withDefault } from "@optique/core/modifiers";
import { argument, command, constant, flag, option } from "@optique/core/primitives";
import { integer } from "@optique/core/valueparser";
import { readConfig } from "../config/config.ts";
import { MAX_QUEUE_PAIRS, MAX_RELAYS, socketPath } from "../config/values.ts";
import { qemuAccount, qemuCannotReach, socketAccounts } from "../config/accounts.ts";

/** The `vm-config` command's parser. */
export const vmConfigCommand = command(
  "vm-config",
  object({
    action: constant("vm-config" as const),
    relay: argument(integer({ min: 0, metavar: "RELAY" }), { description: message`Relay id.` }),
    qemu: optional(flag("--qemu", { description: message`Print QEMU arguments (default: libvirt XML).` })),
    libvirt: optional(flag("--libvirt", { description: message`Print libvirt domain XML (the default).` })),
    queues: withDefault(
      option("--queues", integer({ min: 1, metavar: "N" }), { description: message`Virtio queue pairs.` }),
      1,
    ),
    client: optional(
      flag("--client", {
        description:
          message`The daemon is a vhost-user client (QEMU listens); default: as VIRTIOFWD_VHOST_CLIENT says.`,
      }),
    ),
    memory: withDefault(
      option("--memory", integer({ min: 64, metavar: "MIB" }), { description: message`Guest memory (MiB).` }),
      1024,
    ),
    config: configOption(),
  }),
  {
    brief: message`Print the libvirt XML or QEMU arguments for a VM on a relay.`,
    description:
      message`Print what a VM needs to use relay RELAY: the vhost-user interface (socket path and mode from the configuration, queues, MSI-X vectors = 2*queues+2), guest memory on shared hugepages and the NUMA cell vhost-user requires. libvirt: a domain skeleton to merge into yours.`,
    footer: examples(
      "vio4wd vm-config 1",
      "vio4wd vm-config 1 --queues 4 --qemu",
    ),
  },
);

/** Parsed `vm-config` arguments. */
export interface VmConfigArgs {
  relay: number;
  qemu?: boolean;
  libvirt?: boolean;
  queues: number;
  client?: boolean;
  memory: number;
  config?: string;
}

/** A stable locally administered MAC for a relay. */
const macOf = (relay: number) => `52:54:00:76:34:${relay.toString(16).padStart(2, "0")}`;

/** libvirt domain XML around the relay's interface. */
export function libvirtXml(
  relay: number,
  sock: string,
  daemonClient: boolean,
  queues: number,
  memoryMib: number,
): string {
  // libvirt names the role of QEMU's end: 'client' when the daemon listens.
  const mode = daemonClient ? "server" : "client";
  const kib = memoryMib * 1024;
  // As a client QEMU reconnects when the daemon restarts; as a server it just waits.
  const source = daemonClient
    ? `<source type='unix' path='${sock}' mode='${mode}'/>`
    : `<source type='unix' path='${sock}' mode='${mode}'>\n        <reconnect enabled='yes' timeout='2'/>\n      </source>`;
  return `<!-- vio4wd relay ${relay}: merge <memoryBacking>, <cpu><numa> and the <interface> into your domain.
     vhost-user needs guest memory shared with the daemon, on hugepages. -->
<domain type='kvm'>
  <name>vio4wd-relay${relay}</name>
  <memory unit='KiB'>${kib}</memory>
  <memoryBacking>
    <hugepages/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
  </os>
  <cpu>
    <numa>
      <cell id='0' cpus='0-1' memory='${kib}' unit='KiB' memAccess='shared'/>
    </numa>
  </cpu>
  <devices>
    <interface type='vhostuser'>
      <mac address='${macOf(relay)}'/>
      ${source}
      <model type='virtio'/>
      <driver queues='${queues}'/>
    </interface>
  </devices>
</domain>`;
}

/** QEMU command-line arguments for the relay's interface and shared guest memory. */
export function qemuArgs(
  relay: number,
  sock: string,
  daemonClient: boolean,
  queues: number,
  memoryMib: number,
): string[] {
  const chardev = `socket,id=vio4wd${relay},path=${sock}` + (daemonClient ? ",server=on,wait=off" : ",reconnect=1");
  const mq = queues > 1 ? `,mq=on,vectors=${2 * queues + 2}` : "";
  return [
    "-m",
    `${memoryMib}M`,
    "-object",
    `memory-backend-file,id=mem0,size=${memoryMib}M,mem-path=/dev/hugepages,share=on`,
    "-numa",
    "node,memdev=mem0",
    "-chardev",
    chardev,
    "-netdev",
    `vhost-user,id=net${relay},chardev=vio4wd${relay},queues=${queues}`,
    "-device",
    `virtio-net-pci,netdev=net${relay},mac=${macOf(relay)}${mq}`,
  ];
}

/** Runs `vio4wd vm-config`; returns the exit status. */
export async function runVmConfig(a: VmConfigArgs): Promise<number> {
  if (a.relay >= MAX_RELAYS) {
    console.error(`vio4wd vm-config: relay ${a.relay} is out of range 0-${MAX_RELAYS - 1}`);
    return 2;
  }
  if (a.queues > MAX_QUEUE_PAIRS) {
    console.error(`vio4wd vm-config: --queues ${a.queues}: at most ${MAX_QUEUE_PAIRS} queue pairs per relay`);
    return 2;
  }
  const c = (await readConfig(a.config)).config;
  const sock = socketPath(c.socketDir, c.socketPattern, a.relay);
  const accounts = socketAccounts(c);
  const unreachable = accounts.error ?? qemuCannotReach(accounts, qemuAccount());
  if (unreachable) console.error(`vio4wd vm-config: warning: ${unreachable}`);
  const daemonClient = a.client ?? c.vhostClient;
  if (a.qemu) {
    const args = qemuArgs(a.relay, sock, daemonClient, a.queues, a.memory);
    const lines: string[] = [];
    for (let i = 0; i < args.length; i += 2) lines.push(`  ${args[i]} ${args[i + 1]}`);
    console.log(
      `# vio4wd relay ${a.relay} (${daemonClient ? "QEMU listens, the daemon connects" : "the daemon listens"}):`,
    );
    console.log(lines.join(" \\\n"));
  } else {
    console.log(libvirtXml(a.relay, sock, daemonClient, a.queues, a.memory));
  }
  return 0;
}
