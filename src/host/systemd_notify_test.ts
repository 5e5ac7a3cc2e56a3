import { notifyServiceManager } from "./systemd_notify.ts";
import { assertEq } from "../../tests/rigs/assert.ts";
import { NotifyReceiver } from "../../tests/rigs/notify_socket.ts";
import { until } from "../../tests/rigs/daemon_process.ts";

for (const kind of ["path", "abstract"]) {
  Deno.test(`notifyServiceManager sends the state as one datagram from this process to a NOTIFY_SOCKET ${kind}`, async () => {
    const dir = await Deno.makeTempDir();
    const r = await NotifyReceiver.start(kind === "path" ? `${dir}/notify` : `@vio4wd-notify-test-${Deno.pid}`);
    try {
      assertEq(notifyServiceManager("READY=1\nSTATUS=relaying", r.path), null, "sent");
      await until("a notification", () => r.messages.length > 0, 5000);
      assertEq(r.messages[0].text, "READY=1\nSTATUS=relaying", "one datagram, as sent");
      assertEq(r.messages[0].pid, Deno.pid, "from this process (NotifyAccess=main)");
    } finally {
      await r.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("notifyServiceManager is silent without NOTIFY_SOCKET and names the socket when nobody listens", () => {
  assertEq(notifyServiceManager("READY=1", undefined), null, "not asked");
  const err = notifyServiceManager("READY=1", "/nonexistent/notify");
  assertEq(err !== null && err.includes("/nonexistent/notify") && err.includes("ENOENT"), true, String(err));
  assertEq(notifyServiceManager("READY=1", "relative")?.includes("not a unix socket path"), true, "relative path");
});
