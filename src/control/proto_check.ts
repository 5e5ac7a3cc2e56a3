/**
 * Decoding a request as the original's protobuf-c does: bytes that do not parse, and proto2
 * `required` fields left out (which protobuf-es does not check when parsing), are refused.
 *
 * @module
 */

import { type DescMessage, fromBinary, isFieldSet, type Message, type MessageShape } from "@bufbuild/protobuf";
import { errorText, type Logger } from "../common/log.ts";

/** FeatureSet.FieldPresence.LEGACY_REQUIRED: how protobuf-es marks proto2 `required`. */
const LEGACY_REQUIRED = 3;

/** The dotted path of the first required field missing in `msg` (nested messages too), or null. */
export function missingRequired(schema: DescMessage, msg: Message, prefix = ""): string | null {
  const values = msg as unknown as Record<string, unknown>;
  for (const f of schema.fields) {
    const path = prefix + f.name;
    if (f.presence === LEGACY_REQUIRED && !isFieldSet(msg, f)) return path;
    if (f.fieldKind === "message" && isFieldSet(msg, f)) {
      const m = missingRequired(f.message, values[f.localName] as Message, path + ".");
      if (m) return m;
    }
    if (f.fieldKind === "list" && f.listKind === "message") {
      for (const [i, item] of (values[f.localName] as Message[]).entries()) {
        const m = missingRequired(f.message, item, `${path}[${i}].`);
        if (m) return m;
      }
    }
  }
  return null;
}

/**
 * `bytes` as a `schema` message, or null (logged as `service: why`) when they do not parse or a
 * required field is missing.
 */
export function decodeRequest<S extends DescMessage>(
  schema: S,
  bytes: Uint8Array,
  service: string,
  log: Logger,
): MessageShape<S> | null {
  let req: MessageShape<S>;
  try {
    req = fromBinary(schema, bytes);
  } catch (e) {
    log.warn(`${service}: undecodable request (${bytes.length} B): ${errorText(e)}`);
    return null;
  }
  const missing = missingRequired(schema, req);
  if (missing) {
    log.warn(`${service}: request without required field ${missing}`);
    return null;
  }
  return req;
}
