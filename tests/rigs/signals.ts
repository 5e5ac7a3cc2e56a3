/**
 * Signals to one thread of another process (`tgkill`), e.g. a Deno pool thread waiting in a
 * blocking call, which a process-directed signal would not reach.
 *
 * @module
 */

const SYS_TGKILL = 234n; // x86_64

let libc: Deno.DynamicLibrary<{ syscall: { parameters: ["i64", "i64", "i64", "i64"]; result: "i64" } }> | null = null;

/** Sends signal number `sig` to thread `tid` of process `pid`; false when it is gone. */
export function tgkill(pid: number, tid: number, sig: number): boolean {
  libc ??= Deno.dlopen("libc.so.6", { syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" } });
  return libc.symbols.syscall(SYS_TGKILL, BigInt(pid), BigInt(tid), BigInt(sig)) === 0n;
}

/**
 * The threads of `pid` whose name starts with `prefix` (e.g. Deno's pool: "tokio-runtime-w").
 * Read through `ps`: Deno refuses /proc/<pid>/task without --allow-all.
 */
export async function threadsNamed(pid: number, prefix: string): Promise<number[]> {
  const out = await new Deno.Command("ps", {
    args: ["-L", "-o", "tid=,comm=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim().split(/\s+/))
    .filter(([tid, comm]) => tid && comm?.startsWith(prefix)).map(([tid]) => Number(tid));
}

/**
 * Keeps process `pid` stopped `stoppedMs` of every `stoppedMs + runningMs` (SIGSTOP/SIGCONT), as a
 * VM descheduled on a busy host, until the returned function is called: it ends the cycle and
 * leaves the process running.
 */
export function descheduleCycle(pid: number, stoppedMs: number, runningMs: number): () => Promise<void> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let cycling = true;
  const loop = (async () => {
    while (cycling) {
      Deno.kill(pid, "SIGSTOP");
      await sleep(stoppedMs);
      Deno.kill(pid, "SIGCONT");
      await sleep(runningMs);
    }
  })();
  return async () => {
    cycling = false;
    await loop;
    Deno.kill(pid, "SIGCONT");
  };
}
