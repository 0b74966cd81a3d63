// Output the way QEMU prints it: human sizes, pretty JSON, stdout/stderr writes

const encoder = new TextEncoder();

/** The exit status a shell reports for a program killed by SIGPIPE (128 + 13). */
export const BROKEN_PIPE_STATUS = 141;

/**
 * Writes text to stdout synchronously (keeps order with stderr and progress lines).
 * When the reader has gone (`vmkit img map x | head -1`), the process ends at once and
 * quietly with status 141, as qemu-img does when SIGPIPE kills it: Deno ignores SIGPIPE,
 * so the write fails with BrokenPipe instead, which is not vmkit's bug to report.
 */
export function writeOut(text: string): void {
  try {
    writeAll(Deno.stdout, encoder.encode(text));
  } catch (e) {
    if (e instanceof Deno.errors.BrokenPipe) Deno.exit(BROKEN_PIPE_STATUS);
    throw e;
  }
}

/** Writes text to stderr synchronously. */
export function writeErr(text: string): void {
  writeAll(Deno.stderr, encoder.encode(text));
}

function writeAll(target: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += target.writeSync(bytes.subarray(done));
}

export { formatG, sizeToStr } from "../core/size_text.ts";

/** A JSON value QEMU's writer prints. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json | undefined };

/**
 * QEMU's pretty JSON (`qobject_to_json_pretty`): four-space indent, `"key": value`,
 * and an empty object or array printed across two lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { qemuJson } from "./output.ts";
 *
 * assert.equal(qemuJson({ a: 1, b: [true] }), '{\n    "a": 1,\n    "b": [\n        true\n    ]\n}');
 * assert.equal(qemuJson([]), "[\n]");
 * ```
 */
export function qemuJson(value: Json, depth = 0): string {
  const pad = (d: number) => " ".repeat(d * 4);
  if (value === null) return "null";
  if (Array.isArray(value)) {
    if (value.length === 0) return `[\n${pad(depth)}]`;
    const items = value.map((v) => pad(depth + 1) + qemuJson(v, depth + 1));
    return `[\n${items.join(",\n")}\n${pad(depth)}]`;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return `{\n${pad(depth)}}`;
    const items = entries.map(([k, v]) =>
      `${pad(depth + 1)}${JSON.stringify(k)}: ${qemuJson(v as Json, depth + 1)}`
    );
    return `{\n${items.join(",\n")}\n${pad(depth)}}`;
  }
  return JSON.stringify(value);
}
