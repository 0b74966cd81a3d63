// CPU models: QEMU 7.2's x86 models (core/x86_cpu_models.ts) limited to the flags this interpreter implements

import {
  featureMask,
  findX86Model,
  resolveX86Cpu,
  type X86CpuConfig,
  x86ModelNames,
  x86Signature,
} from "../../../core/x86_cpu_models.ts";

/** CPUID.1:EDX feature bits. */
export const FEAT_FPU = 1 << 0, FEAT_VME = 1 << 1, FEAT_DE = 1 << 2, FEAT_PSE = 1 << 3;
export const FEAT_TSC = 1 << 4, FEAT_MSR = 1 << 5, FEAT_PAE = 1 << 6, FEAT_MCE = 1 << 7;
export const FEAT_CX8 = 1 << 8, FEAT_APIC = 1 << 9, FEAT_SEP = 1 << 11, FEAT_MTRR = 1 << 12;
export const FEAT_PGE = 1 << 13, FEAT_MCA = 1 << 14, FEAT_CMOV = 1 << 15, FEAT_PAT = 1 << 16;
export const FEAT_PSE36 = 1 << 17;
/** CPUID.80000001h:EDX bits. */
export const EXT_NX = 1 << 20;

/** One CPU model a user can pick with `-cpu`. */
export interface CpuModel {
  readonly name: string;
  readonly description: string;
  /** 2 = 80286 (no CPUID, 286 real-mode quirks), 3 = 386, 4 = 486, 5 = Pentium, 6 = P6. */
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** CPUID.1:EAX and EDX at reset: family, model and stepping with their extended fields. */
  readonly signature: number;
  /** Highest basic CPUID leaf; -1 when the CPU has no CPUID instruction. */
  readonly level: number;
  /** CPUID.1:EDX and CPUID.80000001h:EDX within what the interpreter implements (its checks). */
  readonly features: number;
  readonly extFeatures: number;
  /** The resolved QEMU model CPUID answers from (core's cpuidLeaf); null without CPUID. */
  readonly config: X86CpuConfig | null;
}

/**
 * The CPUID flags this interpreter implements, in QEMU's names: a model's other flags
 * are dropped (with QEMU's "TCG doesn't support requested feature" warning when the user
 * named the model). Grows as the CPU does (mmx, fxsr, sse, sse2, pni, cx16, syscall, lm...).
 */
export const IMPLEMENTED = featureMask([
  "fpu",
  "de",
  "pse",
  "tsc",
  "msr",
  "pae",
  "mce",
  "cx8",
  "apic",
  "sep",
  "mtrr",
  "pge",
  "mca",
  "cmov",
  "pat",
  "pse36",
  "clflush",
  "mmx",
  "fxsr",
  "sse",
  "sse2",
  "pni",
  "nx",
  "hypervisor",
  "cx16",
  "syscall",
  "lm",
  "lahf-lm",
  "pdpe1gb",
]);

/** A model of core/x86_cpu_models.ts as this interpreter runs it. */
function fromConfig(cpu: X86CpuConfig, description: string): CpuModel {
  return {
    name: cpu.name,
    description,
    family: cpu.family,
    model: cpu.model,
    stepping: cpu.stepping,
    signature: x86Signature(cpu.family, cpu.model, cpu.stepping),
    level: cpu.level,
    features: (cpu.features["1_EDX"] ?? 0) | 0,
    extFeatures: (cpu.features["8000_0001_EDX"] ?? 0) | 0,
    config: cpu,
  };
}

/** Every model `-cpu help` lists (QEMU 7.2's), as names the plugin accepts. */
export const CPU_MODELS: readonly { name: string; description: string }[] = x86ModelNames()
  .map((name) => ({ name, description: findX86Model(name)?.description ?? "" }));

/**
 * Resolves `-cpu` text (`Haswell,-hle,+pcid`, or a bare name) to the model this
 * interpreter runs, with QEMU's warnings for the flags it drops.
 *
 * @throws UsageError with QEMU's words for an unknown model, flag or value
 */
export function resolveModel(text: string): { model: CpuModel; warnings: readonly string[] } {
  const cpu = resolveX86Cpu(text, { accel: "tcg", supported: IMPLEMENTED });
  const description = findX86Model(cpu.name)?.description ?? "";
  return { model: fromConfig(cpu, description), warnings: cpu.warnings };
}

/**
 * An 80286-compatible model for the real-mode conformance data: no CPUID, FLAGS bits
 * 12..15 read as zero in real mode, a 10-byte instruction limit. Not listed in help.
 */
export const MODEL_286: CpuModel = {
  name: "286",
  description: "Intel 80286 (real-mode conformance only)",
  family: 2,
  model: 0,
  stepping: 0,
  signature: 0x200,
  level: -1,
  features: 0,
  extFeatures: 0,
  config: null,
};

/**
 * The model of a CPU created without one (unit tests, machines outside the CLI); the CLI
 * passes QEMU's default for the binary: qemu64 for system-x86_64, qemu32 for system-i386.
 */
export const DEFAULT_MODEL = "qemu32";

/**
 * Finds a model by name (including the hidden `286`) or by `-cpu` text with flags
 * (`qemu32,+nx`), its flags limited to what this interpreter implements.
 */
export function findModel(text: string): CpuModel | undefined {
  if (text === MODEL_286.name) return MODEL_286;
  if (!findX86Model(text.split(",")[0])) return undefined;
  return resolveModel(text).model;
}
