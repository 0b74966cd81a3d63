// `-cpu help` as qemu-system-x86_64 7.2 prints it

import { MODEL_RECORDS } from "./data.ts";
import { allFlagNames } from "./features.ts";

/** QEMU wraps the flag list at 75 columns with a two-space indent. */
const FLAG_LINE_COLUMNS = 75;

/**
 * The whole `-cpu help` text (models, then the recognized flags) as QEMU 7.2 prints it,
 * ending with its empty line. `extra` models (a plugin's own) go in their sorted place.
 */
export function x86CpuHelp(
  extra: ReadonlyArray<{ name: string; description: string }> = [],
): string {
  const lines = ["Available CPUs:"];
  const models: Array<{ name: string; description: string }> = [...MODEL_RECORDS];
  for (const m of extra) {
    // QEMU's order: byte order of names, with base, host and max last.
    const at = models.findIndex((r) => r.name === "base" || r.name > m.name);
    models.splice(at < 0 ? models.length : at, 0, m);
  }
  for (const r of models) {
    lines.push(`x86 ${r.name.padEnd(20)}  ${r.description}`);
  }
  lines.push("", "Recognized CPUID flags:");
  let line = " ";
  for (const name of allFlagNames()) {
    if (line.length + 1 + name.length > FLAG_LINE_COLUMNS) {
      lines.push(line);
      line = " ";
    }
    line += " " + name;
  }
  lines.push(line);
  // QEMU ends the list with an empty line.
  return lines.join("\n") + "\n\n";
}

/**
 * The x86 CPU family: `-cpu help` for every machine whose CPUs are x86. Given the models
 * of the family's backends, it lists QEMU's table plus any model a backend adds beyond it.
 */
export const X86_CPU_FAMILY = {
  name: "x86",
  help(models: ReadonlyArray<{ name: string; description: string; alias?: string }>): string {
    const known = new Set(MODEL_RECORDS.map((r) => r.name));
    return x86CpuHelp(
      models.filter((m) => !known.has(m.name)).map((m) => ({
        name: m.name,
        description: m.alias ? `(alias of ${m.alias})` : m.description,
      })),
    );
  },
};
