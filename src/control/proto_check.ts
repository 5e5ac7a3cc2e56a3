/**
 * proto2 `required` checking, which protobuf-es does not do when parsing: the original's
 * protobuf-c refuses a message with a required field missing, and so do we.
 *
 * @module
 */

import { type DescMessage, isFieldSet, type Message } from "@bufbuild/protobuf";

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
