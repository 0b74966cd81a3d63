// QEMU 7.2's x86 CPU models: the `-cpu` names, their facts, `-cpu help`, and the CPUID a guest sees
//
// One table for every x86 CPU backend. A backend resolves the user's `-cpu` text once
// (resolveX86Cpu), then answers each CPUID instruction with cpuidLeaf; a backend that
// implements less than QEMU's TCG passes the flags it does implement as `supported`
// (build the mask with featureMask) and the rest are dropped with QEMU's warning.

import type { CpuTopology } from "./cpu.ts";
import { FEATURE_WORDS, findFlag } from "./x86_cpu_models/features.ts";
import type { FeatureWords, X86CpuConfig } from "./x86_cpu_models/resolve.ts";

export {
  type CpuidContext,
  cpuidLeaf,
  type CpuidRegs,
  x86Signature,
  xsaveComponents,
} from "./x86_cpu_models/cpuid.ts";
export { X86_CPU_FAMILY, x86CpuHelp } from "./x86_cpu_models/help.ts";
export {
  FEATURE_WORDS,
  type FeatureWord,
  type FeatureWordInfo,
  findFlag,
} from "./x86_cpu_models/features.ts";
export {
  type FeatureWords,
  findX86Model,
  parseCpuOption,
  type ParsedCpuOption,
  type ResolveOptions,
  resolveX86Cpu,
  tcgFeatures,
  type X86CpuConfig,
  x86ModelNames,
} from "./x86_cpu_models/resolve.ts";
export type { ModelRecord } from "./x86_cpu_models/types.ts";

/** The model `qemu-system-x86_64` gives a guest without `-cpu`. */
export const X86_64_DEFAULT_MODEL = "qemu64";
/** The model `qemu-system-i386` gives a guest without `-cpu`. */
export const I386_DEFAULT_MODEL = "qemu32";

/**
 * Feature words with the named flags set (any spelling `-cpu` accepts), e.g. what an
 * interpreter implements. Throws a RangeError for a name QEMU does not know.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { featureMask } from "./x86_cpu_models.ts";
 * assert.deepEqual(featureMask(["fpu", "sse4_1", "lm"]), {
 *   "1_EDX": 1,
 *   "1_ECX": 1 << 19,
 *   "8000_0001_EDX": 1 << 29,
 * });
 * ```
 */
export function featureMask(names: readonly string[]): FeatureWords {
  const out: Record<string, number> = {};
  for (const name of names) {
    const place = findFlag(name);
    if (!place) throw new RangeError(`Unknown x86 CPU flag '${name}'`);
    if (place.bit < 0) continue;
    out[place.word] = ((out[place.word] ?? 0) | 1 << place.bit) >>> 0;
  }
  return out;
}

/** The names of the flags set in `words`, in QEMU's word order (for messages and tests). */
export function flagNames(words: FeatureWords): string[] {
  const out: string[] = [];
  for (const w of FEATURE_WORDS) {
    const v = words[w.key] ?? 0;
    for (let bit = 0; bit < 32; bit++) {
      const name = w.names[bit];
      if (v >>> bit & 1 && name !== null && !out.includes(name)) out.push(name);
    }
  }
  return out;
}

/**
 * QEMU's warnings about a topology the model cannot describe (warn_report texts): an AMD
 * CPU with several threads per core and no TOPOEXT.
 */
export function topologyWarnings(cpu: X86CpuConfig, topology: CpuTopology): string[] {
  const topoext = (cpu.features["8000_0001_ECX"] ?? 0) >>> 22 & 1;
  if (cpu.vendor !== "AuthenticAMD" || topology.threads < 2 || topoext) return [];
  return [
    `This family of AMD CPU doesn't support hyperthreading(${topology.threads})\n` +
    "Please configure -smp options properly or try enabling topoext feature.",
  ];
}
