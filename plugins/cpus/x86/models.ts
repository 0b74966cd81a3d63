// CPU models: CPUID vendor, family and feature bits as QEMU reports them

/** CPUID.1:EDX feature bits. */
export const FEAT_FPU = 1 << 0, FEAT_VME = 1 << 1, FEAT_DE = 1 << 2, FEAT_PSE = 1 << 3;
export const FEAT_TSC = 1 << 4, FEAT_MSR = 1 << 5, FEAT_PAE = 1 << 6, FEAT_MCE = 1 << 7;
export const FEAT_CX8 = 1 << 8, FEAT_APIC = 1 << 9, FEAT_SEP = 1 << 11, FEAT_MTRR = 1 << 12;
export const FEAT_PGE = 1 << 13, FEAT_MCA = 1 << 14, FEAT_CMOV = 1 << 15, FEAT_PAT = 1 << 16;
export const FEAT_PSE36 = 1 << 17;
/** Several logical processors per package (with CPUID.1:EBX[23:16]). */
export const FEAT_HTT = 1 << 28;
/** CPUID.80000001h:EDX bits. */
export const EXT_NX = 1 << 20;

/** One CPU model a user can pick with `-cpu`. */
export interface CpuModel {
  readonly name: string;
  readonly description: string;
  /** 12-character vendor string (`GenuineIntel`). */
  readonly vendor: string;
  /** 2 = 80286 (no CPUID, 286 real-mode quirks), 3 = 386, 4 = 486, 5 = Pentium, 6 = P6. */
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** Highest basic CPUID leaf; -1 when the CPU has no CPUID instruction. */
  readonly level: number;
  /** Highest extended leaf (0x8000000x) or 0. */
  readonly xlevel: number;
  readonly features: number;
  readonly featuresEcx: number;
  readonly extFeatures: number;
  readonly extFeaturesEcx: number;
  /** The brand string of leaves 0x80000002..4. */
  readonly modelId: string;
}

const P6_FEATURES = FEAT_FPU | FEAT_DE | FEAT_PSE | FEAT_TSC | FEAT_MSR | FEAT_PAE | FEAT_MCE |
  FEAT_CX8 | FEAT_APIC | FEAT_SEP | FEAT_MTRR | FEAT_PGE | FEAT_MCA | FEAT_CMOV | FEAT_PAT |
  FEAT_PSE36;

/** The models `-cpu help` lists, in QEMU's spelling; features limited to what we emulate. */
export const CPU_MODELS: readonly CpuModel[] = [
  {
    name: "qemu32",
    description: "QEMU Virtual CPU version 2.5+",
    vendor: "GenuineIntel",
    family: 6,
    model: 6,
    stepping: 3,
    level: 4,
    xlevel: 0x80000004,
    features: P6_FEATURES,
    featuresEcx: 0,
    extFeatures: EXT_NX,
    extFeaturesEcx: 0,
    modelId: "QEMU Virtual CPU version 2.5+",
  },
  {
    name: "pentium",
    description: "",
    vendor: "GenuineIntel",
    family: 5,
    model: 4,
    stepping: 3,
    level: 1,
    xlevel: 0,
    features: FEAT_FPU | FEAT_DE | FEAT_PSE | FEAT_TSC | FEAT_MSR | FEAT_MCE | FEAT_CX8,
    featuresEcx: 0,
    extFeatures: 0,
    extFeaturesEcx: 0,
    modelId: "",
  },
  {
    name: "486",
    description: "",
    vendor: "GenuineIntel",
    family: 4,
    model: 8,
    stepping: 0,
    level: 1,
    xlevel: 0,
    features: FEAT_FPU | FEAT_PSE,
    featuresEcx: 0,
    extFeatures: 0,
    extFeaturesEcx: 0,
    modelId: "",
  },
];

/**
 * An 80286-compatible model for the real-mode conformance data: no CPUID, FLAGS bits
 * 12..15 read as zero in real mode, a 10-byte instruction limit. Not listed in help.
 */
export const MODEL_286: CpuModel = {
  name: "286",
  description: "Intel 80286 (real-mode conformance only)",
  vendor: "GenuineIntel",
  family: 2,
  model: 0,
  stepping: 0,
  level: -1,
  xlevel: 0,
  features: 0,
  featuresEcx: 0,
  extFeatures: 0,
  extFeaturesEcx: 0,
  modelId: "",
};

/** The model used when `-cpu` is not given. */
export const DEFAULT_MODEL = "qemu32";

/** Finds a model by name (including the hidden `286`). */
export function findModel(name: string): CpuModel | undefined {
  if (name === MODEL_286.name) return MODEL_286;
  return CPU_MODELS.find((m) => m.name === name);
}
