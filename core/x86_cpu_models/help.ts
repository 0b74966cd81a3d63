// `-cpu help` as qemu-system-x86_64 7.2 prints it

import { MODEL_RECORDS } from "./data.ts";
import { allFlagNames } from "./features.ts";

/** QEMU wraps the flag list at 75 columns with a two-space indent. */
const FLAG_LINE_COLUMNS = 75;

/** The whole `-cpu help` text (models, then the recognized flags), ending with a newline. */
export function x86CpuHelp(): string {
  const lines = ["Available CPUs:"];
  for (const r of MODEL_RECORDS) {
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
