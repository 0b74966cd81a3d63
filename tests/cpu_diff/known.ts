// The known vmkit differences (known_differences.json): which generated items the short run leaves out

import { fileURLToPath } from "node:url";

/** One known difference: where it shows, what QEMU and vmkit give, and the issue it belongs to. */
export interface KnownDifference {
  id: string;
  issue: number;
  /** The instruction class it excludes, and a regular expression on the instruction text. */
  cls: string;
  pattern: string;
  /** The tiers it shows on ("interp", "js", "wasm"). */
  tiers: string[];
  summary: string;
  seed: number;
  index: number;
  insn: string;
  expected: string;
  actual: string;
  reproducer: string;
}

/** The entries of known_differences.json beside this file. */
export function loadKnown(): KnownDifference[] {
  const file = fileURLToPath(new URL("./known_differences.json", import.meta.url));
  return JSON.parse(Deno.readTextFileSync(file)).differences as KnownDifference[];
}

/** A filter for the generator that leaves out every item a known difference names. */
export function excludeKnown(
  known: KnownDifference[],
): (cls: string, insn: string) => boolean {
  const rules = known.map((k) => ({ cls: k.cls, re: new RegExp(k.pattern) }));
  return (cls, insn) => rules.some((r) => r.cls === cls && r.re.test(insn));
}
