/**
 * The sd_notify protocol: state lines ("READY=1", "STOPPING=1", "STATUS=...") sent as one
 * datagram to $NOTIFY_SOCKET by the daemon's own process, so the unit can keep NotifyAccess=main.
 *
 * @module
 */

import { sendUnixDatagram } from "../../ffi/libc.ts";
import { errorText } from "../common/log.ts";

/**
 * Tells the service manager `state` (lines of KEY=value) when it asked for it ($NOTIFY_SOCKET
 * set); returns why it could not, or null (also when nobody asked).
 */
export function notifyServiceManager(state: string, env = Deno.env.get("NOTIFY_SOCKET")): string | null {
  if (!env) return null;
  if (!env.startsWith("/") && !env.startsWith("@")) return `NOTIFY_SOCKET=${env}: not a unix socket path`;
  try {
    sendUnixDatagram(env, new TextEncoder().encode(state));
    return null;
  } catch (e) {
    return `NOTIFY_SOCKET=${env}: ${errorText(e)}`;
  }
}
