/**
 * Runs a test body with a resource and disposes of the resource after it, reporting the first
 * failure: the body's, not one of the clean-up after it (which `await using` would report as a
 * SuppressedError whose message is the clean-up's, hiding the assertion that failed). A clean-up
 * failure after a body failure is printed; alone, it is the failure.
 *
 * @module
 */

/** Runs `fn(resource)`, then disposes of `resource`; `describe` adds context to a body failure. */
export async function firstFailure<T extends AsyncDisposable>(
  resource: T,
  fn: (resource: T) => Promise<void>,
  describe: () => string = () => "",
): Promise<void> {
  let failure: Error | null = null;
  try {
    await fn(resource);
  } catch (e) {
    const context = describe();
    failure = new Error(`${e instanceof Error ? e.stack ?? e.message : e}${context ? `\n${context}` : ""}`);
  }
  try {
    await resource[Symbol.asyncDispose]();
  } catch (e) {
    if (failure === null) throw e;
    console.error(`clean-up after the failure also failed: ${e instanceof Error ? e.message : e}`);
  }
  if (failure) throw failure;
}
