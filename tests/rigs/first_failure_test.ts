import { firstFailure } from "./first_failure.ts";
import { assert, assertEq } from "./assert.ts";

/** A resource whose disposal fails, counting disposals. */
function failingResource() {
  const r = {
    disposed: 0,
    [Symbol.asyncDispose]: () => {
      r.disposed++;
      return Promise.reject(new Error("clean-up failed"));
    },
  };
  return r;
}

Deno.test("firstFailure reports the body's failure, not the clean-up's after it, and still disposes", async () => {
  const r = failingResource();
  const err = await firstFailure(r, () => Promise.reject(new Error("assertion in the body")), () => "context")
    .then(() => null, (e: Error) => e);
  assert(err !== null && !(err.name === "SuppressedError"), `an error, not a SuppressedError: ${err?.name}`);
  assert(err!.message.includes("assertion in the body") && err!.message.includes("context"), err!.message);
  assert(!err!.message.includes("clean-up failed"), "the clean-up's failure is not the one reported");
  assertEq(r.disposed, 1, "disposed once");
});

Deno.test("firstFailure reports a clean-up failure when the body passed", async () => {
  const r = failingResource();
  const err = await firstFailure(r, () => Promise.resolve()).then(() => null, (e: Error) => e);
  assertEq(err?.message, "clean-up failed", "the clean-up's failure");
});
