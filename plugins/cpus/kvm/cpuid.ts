// CPUID for a KVM guest: the -cpu model's leaves, limited to what KVM_GET_SUPPORTED_CPUID allows

import type { CpuTopology } from "../../../core/cpu.ts";
import { CPUID_ENTRY_BYTES } from "./_abi.ts";

/** A `-cpu` model as accel=kvm knows it (QEMU 7.2's definitions of the same names). */
export interface KvmCpuModel {
  name: string;
  description: string;
  /** Highest basic leaf and highest extended leaf; absent: the host's. */
  level?: number;
  xlevel?: number;
  family?: number;
  model?: number;
  stepping?: number;
  /** CPUID.1 EDX/ECX and CPUID.80000001h EDX/ECX feature bits; absent: every supported one. */
  edx1?: number;
  ecx1?: number;
  edx81?: number;
  ecx81?: number;
  /** The brand string (leaves 80000002h..4); absent: the host's. */
  modelId?: string;
}

// CPUID.1 EDX bits QEMU's PPRO_FEATURES names: FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP
// PGE CMOV PAT MMX FXSR SSE SSE2 (VME is left to the models that add it).
const PPRO = bits(0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 16, 23, 24, 25, 26);
const VME = bits(1), MTRR = bits(12), MCA = bits(14), PSE36 = bits(17), CLFLUSH = bits(19);
const SSE3 = bits(0), CX16 = bits(13), X2APIC = bits(21), HYPERVISOR = bits(31);
const SYSCALL = bits(11), NX = bits(20), LM = bits(29), LAHF_LM = bits(0);

function bits(...n: number[]): number {
  return n.reduce((a, b) => (a | (1 << b)) >>> 0, 0);
}

/** The models `-accel kvm -cpu help` lists; qemu64 is QEMU's default for x86_64. */
export const KVM_CPU_MODELS: readonly KvmCpuModel[] = [
  {
    name: "qemu64",
    description: "QEMU Virtual CPU version 2.5+",
    level: 0xd,
    xlevel: 0x8000000a,
    family: 15,
    model: 107,
    stepping: 1,
    edx1: PPRO | VME | MTRR | CLFLUSH | MCA | PSE36,
    ecx1: SSE3 | CX16,
    edx81: LM | SYSCALL | NX,
    ecx81: LAHF_LM,
    modelId: "QEMU Virtual CPU version 2.5+",
  },
  {
    name: "qemu32",
    description: "QEMU Virtual CPU version 2.5+",
    level: 4,
    xlevel: 0x80000004,
    family: 6,
    model: 6,
    stepping: 3,
    edx1: PPRO,
    ecx1: SSE3,
    edx81: 0,
    ecx81: 0,
    modelId: "QEMU Virtual CPU version 2.5+",
  },
  {
    name: "kvm64",
    description: "Common KVM processor",
    level: 0xd,
    xlevel: 0x80000008,
    family: 15,
    model: 6,
    stepping: 1,
    edx1: PPRO | VME | MTRR | CLFLUSH | MCA | PSE36,
    ecx1: SSE3 | CX16,
    edx81: LM | SYSCALL | NX,
    ecx81: 0,
    modelId: "Common KVM processor",
  },
  {
    name: "kvm32",
    description: "Common 32-bit KVM processor",
    level: 5,
    xlevel: 0x80000008,
    family: 15,
    model: 6,
    stepping: 1,
    edx1: PPRO | VME | MTRR | CLFLUSH | MCA | PSE36,
    ecx1: SSE3,
    edx81: 0,
    ecx81: 0,
    modelId: "Common 32-bit KVM processor",
  },
  { name: "host", description: "KVM processor with all supported host features" },
  {
    name: "max",
    description: "Enables all features supported by the accelerator in the current host",
  },
];

/** The default model with accel=kvm (qemu-system-x86_64's). */
export const KVM_DEFAULT_MODEL = "qemu64";

/** The CPUID.1 EAX signature of a family/model/stepping (extended fields as Intel's SDM packs them). */
export function signatureOf(family: number, model: number, stepping: number): number {
  const baseFamily = Math.min(family, 15);
  return (stepping & 0xf) | (model & 0xf) << 4 | baseFamily << 8 | ((model >> 4) & 0xf) << 16 |
    (family > 15 ? (family - 15) & 0xff : 0) << 20;
}

/** One CPUID leaf/subleaf as KVM lays it out. */
interface Entry {
  fn: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

function readEntries(raw: Uint8Array): Entry[] {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Entry[] = [];
  for (let at = 0; at + CPUID_ENTRY_BYTES <= raw.length; at += CPUID_ENTRY_BYTES) {
    out.push({
      fn: v.getUint32(at, true),
      index: v.getUint32(at + 4, true),
      flags: v.getUint32(at + 8, true),
      eax: v.getUint32(at + 12, true),
      ebx: v.getUint32(at + 16, true),
      ecx: v.getUint32(at + 20, true),
      edx: v.getUint32(at + 24, true),
    });
  }
  return out;
}

/** The features a model asks for that the host lacks: QEMU warns about each. */
export interface CpuidResult {
  /** The `struct kvm_cpuid2` buffer for KVM_SET_CPUID2. */
  buffer: Uint8Array;
  /** The CPUID.1 EAX signature (EDX at reset). */
  signature: number;
}

/**
 * Builds the guest's CPUID table: the model's leaves and features, each feature only
 * when KVM supports it, the host's vendor (QEMU advertises the real vendor with KVM so
 * SYSENTER/SYSCALL behave), the HYPERVISOR bit, and this CPU's APIC ID and topology.
 */
export function buildCpuid(
  supported: Uint8Array,
  model: KvmCpuModel,
  cpu: { apicId: number; topology: CpuTopology },
): CpuidResult {
  const host = readEntries(supported);
  const find = (fn: number) => host.find((e) => e.fn === fn);
  const hostLevel = find(0)?.eax ?? 1;
  const hostXlevel = find(0x80000000)?.eax ?? 0x80000000;
  const level = Math.min(model.level ?? hostLevel, hostLevel);
  const xlevel = Math.min(model.xlevel ?? hostXlevel, hostXlevel);
  const perPackage = cpu.topology.cores * cpu.topology.threads * cpu.topology.dies;
  const entries: Entry[] = [];
  const brand = model.modelId ? brandWords(model.modelId) : null;
  for (const e of host) {
    const x = { ...e };
    const basic = x.fn < 0x40000000;
    if (basic && x.fn > level) continue;
    if (x.fn >= 0x80000000 && x.fn > xlevel) continue;
    switch (x.fn) {
      case 0:
        x.eax = level;
        break;
      case 1:
        if (model.family !== undefined) {
          x.eax = signatureOf(model.family, model.model!, model.stepping!);
        }
        x.ebx = (x.ebx & 0xff00) | (Math.min(perPackage, 255) << 16) | (cpu.apicId << 24);
        if (model.edx1 !== undefined) x.edx &= model.edx1;
        x.ecx =
          ((model.ecx1 !== undefined ? x.ecx & (model.ecx1 | X2APIC) : x.ecx) | HYPERVISOR) >>> 0;
        x.edx >>>= 0;
        if (perPackage > 1) x.edx = (x.edx | bits(28)) >>> 0; // HTT: more than one logical CPU
        break;
      case 7:
        if (model.family !== undefined) x.ebx = x.ecx = x.edx = 0;
        break;
      case 0xb:
      case 0x1f:
        x.edx = cpu.apicId;
        break;
      case 0x80000000:
        x.eax = xlevel;
        break;
      case 0x80000001:
        if (model.edx81 !== undefined) x.edx = (x.edx & model.edx81) >>> 0;
        if (model.ecx81 !== undefined) x.ecx = (x.ecx & model.ecx81) >>> 0;
        break;
      case 0x80000002:
      case 0x80000003:
      case 0x80000004:
        if (brand) {
          const at = (x.fn - 0x80000002) * 4;
          [x.eax, x.ebx, x.ecx, x.edx] = brand.slice(at, at + 4);
        }
        break;
    }
    entries.push(x);
  }
  const buffer = new Uint8Array(8 + entries.length * CPUID_ENTRY_BYTES);
  const v = new DataView(buffer.buffer);
  v.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const at = 8 + i * CPUID_ENTRY_BYTES;
    v.setUint32(at, e.fn, true);
    v.setUint32(at + 4, e.index, true);
    v.setUint32(at + 8, e.flags, true);
    v.setUint32(at + 12, e.eax >>> 0, true);
    v.setUint32(at + 16, e.ebx >>> 0, true);
    v.setUint32(at + 20, e.ecx >>> 0, true);
    v.setUint32(at + 24, e.edx >>> 0, true);
  });
  const leaf1 = entries.find((e) => e.fn === 1);
  return { buffer, signature: leaf1?.eax ?? 0x600 };
}

/** A brand string as the 12 dwords of leaves 80000002h..80000004h (NUL padded). */
function brandWords(text: string): number[] {
  const bytes = new Uint8Array(48);
  bytes.set(new TextEncoder().encode(text).subarray(0, 47));
  const v = new DataView(bytes.buffer);
  return Array.from({ length: 12 }, (_, i) => v.getUint32(4 * i, true));
}
