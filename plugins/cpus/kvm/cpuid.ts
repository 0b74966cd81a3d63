// CPUID for a KVM guest: the -cpu model's leaves from core/x86_cpu_models.ts, limited to what KVM_GET_SUPPORTED_CPUID allows

import type { CpuTopology } from "../../../core/cpu.ts";
import {
  cpuidLeaf,
  FEATURE_WORDS,
  type FeatureWords,
  resolveX86Cpu,
  X86_64_DEFAULT_MODEL,
  type X86CpuConfig,
  x86ModelNames,
} from "../../../core/x86_cpu_models.ts";
import { CPUID_ENTRY_BYTES } from "./_abi.ts";

/**
 * A `-cpu` choice as accel=kvm builds it: a model of core/x86_cpu_models.ts resolved
 * against the host (`config`), or `host`/`max`, which take every leaf KVM supports.
 */
export interface KvmCpuModel {
  name: string;
  description: string;
  /** The resolved model; absent for `host` and `max`. */
  config?: X86CpuConfig;
  /** QEMU's warnings for the flags the host cannot give the guest. */
  warnings: readonly string[];
}

/** The default model with accel=kvm (qemu-system-x86_64's). */
export const KVM_DEFAULT_MODEL = X86_64_DEFAULT_MODEL;

/** The names `-cpu` takes with accel=kvm: every model QEMU 7.2 lists (`host` and `max` included). */
export function kvmModelNames(): string[] {
  return x86ModelNames();
}

const HYPERVISOR = 1 << 31, X2APIC = 1 << 21, HTT = 1 << 28;
/** Leaves whose subleaf (ECX) selects the answer: KVM_CPUID_FLAG_SIGNIFCANT_INDEX. */
const INDEXED = new Set([
  4,
  7,
  0xb,
  0xd,
  0xf,
  0x10,
  0x12,
  0x14,
  0x17,
  0x18,
  0x1d,
  0x1e,
  0x1f,
  0x8000001d,
]);
const SIGNIFICANT_INDEX = 1;

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

/**
 * The feature words KVM can give a guest (KVM_GET_SUPPORTED_CPUID), plus what QEMU adds
 * itself: the hypervisor bit, and x2APIC (the in-kernel local APIC emulates it).
 */
export function kvmSupportedFeatures(supported: Uint8Array): FeatureWords {
  const host = readEntries(supported);
  const out: Record<string, number> = {};
  for (const w of FEATURE_WORDS) {
    if (!w.cpuid) continue;
    const e = host.find((x) => x.fn === w.cpuid!.leaf && x.index === (w.cpuid!.subleaf ?? 0)) ??
      host.find((x) => x.fn === w.cpuid!.leaf);
    out[w.key] = e ? e[w.cpuid.reg] >>> 0 : 0;
  }
  out["1_ECX"] = (out["1_ECX"] | HYPERVISOR | X2APIC) >>> 0;
  return out;
}

/**
 * Resolves `-cpu` text for accel=kvm: QEMU's model with the user's flags, each flag kept
 * only when KVM supports it (QEMU's "host doesn't support requested feature" warning for
 * the rest), and the host's vendor as QEMU presents it under KVM. `host` and `max` take
 * the host's leaves as they are.
 */
export function resolveKvmModel(text: string, supported: Uint8Array): KvmCpuModel {
  const name = text.split(",")[0];
  if (name === "host" || name === "max") {
    const description = name === "host"
      ? "KVM processor with all supported host features"
      : "Enables all features supported by the accelerator in the current host";
    return { name, description, warnings: [] };
  }
  const leaf0 = readEntries(supported).find((e) => e.fn === 0);
  const hostVendor = leaf0 ? vendorOf(leaf0) : undefined;
  const config = resolveX86Cpu(text, {
    accel: "kvm",
    supported: kvmSupportedFeatures(supported),
    hostVendor,
  });
  return { name, description: config.modelId, config, warnings: config.warnings };
}

/** The vendor string of a leaf 0 entry (EBX, EDX, ECX). */
function vendorOf(e: Entry): string {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  [e.ebx, e.edx, e.ecx].forEach((x, i) => v.setUint32(4 * i, x, true));
  return new TextDecoder().decode(b);
}

/** The guest's CPUID table for KVM_SET_CPUID2, and the CPUID.1 EAX signature (EDX at reset). */
export interface CpuidResult {
  /** The `struct kvm_cpuid2` buffer for KVM_SET_CPUID2. */
  buffer: Uint8Array;
  /** The CPUID.1 EAX signature (EDX at reset). */
  signature: number;
}

/**
 * Builds the guest's CPUID table. A named model's leaves come from core's cpuidLeaf() with
 * this CPU's APIC ID and topology; the KVM paravirtual leaves (0x40000000...) and the
 * leaves of SGX, Intel PT, AMX and SEV come from the host when the model keeps their flag.
 * `host`/`max` take KVM's table as it is, with this CPU's APIC ID, topology and the
 * hypervisor bit.
 */
export function buildCpuid(
  supported: Uint8Array,
  model: KvmCpuModel,
  cpu: { apicId: number; topology: CpuTopology },
): CpuidResult {
  const host = readEntries(supported);
  const entries = model.config ? modelEntries(model.config, host, cpu) : hostEntries(host, cpu);
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

/** Leaves filled from the host when the model keeps the flag that announces them. */
function hostLeafWanted(fn: number, c: X86CpuConfig): boolean {
  const f = c.features;
  switch (fn) {
    case 0x12:
      return ((f["7_0_EBX"] ?? 0) >>> 2 & 1) === 1; // sgx
    case 0x14:
      return ((f["7_0_EBX"] ?? 0) >>> 25 & 1) === 1; // intel-pt
    case 0x1d:
    case 0x1e:
      return ((f["7_0_EDX"] ?? 0) >>> 24 & 1) === 1; // amx-tile
    default:
      return fn >= 0x40000000 && fn < 0x40000100; // KVM's paravirtual leaves
  }
}

function modelEntries(
  c: X86CpuConfig,
  host: Entry[],
  cpu: { apicId: number; topology: CpuTopology },
): Entry[] {
  const entries: Entry[] = [];
  const ctx = { apicId: cpu.apicId, topology: cpu.topology };
  const add = (fn: number, index: number) => {
    const [eax, ebx, ecx, edx] = cpuidLeaf(c, ctx, fn, index);
    entries.push({ fn, index, flags: INDEXED.has(fn) ? SIGNIFICANT_INDEX : 0, eax, ebx, ecx, edx });
  };
  const level = cpuidLeaf(c, ctx, 0, 0)[0];
  for (let fn = 0; fn <= level; fn++) {
    if (hostLeafWanted(fn, c)) continue;
    const subleaves = fn === 4 || fn === 0x1f
      ? 5
      : fn === 7
      ? 2
      : fn === 0xb
      ? 3
      : fn === 0xd
      ? 64
      : 1;
    for (let i = 0; i < subleaves; i++) {
      if (fn === 0xd && i > 1 && cpuidLeaf(c, ctx, fn, i)[0] === 0) continue;
      add(fn, i);
    }
  }
  for (let fn = 0x80000000; fn <= c.xlevel; fn++) {
    for (let i = 0; i < (fn === 0x8000001d ? 5 : 1); i++) add(fn, i);
  }
  for (let fn = 0xc0000000; c.xlevel2 >= 0xc0000000 && fn <= c.xlevel2; fn++) add(fn, 0);
  for (const e of host) {
    if (hostLeafWanted(e.fn, c) && (e.fn >= 0x40000000 || e.fn <= level)) entries.push({ ...e });
  }
  return entries;
}

function hostEntries(host: Entry[], cpu: { apicId: number; topology: CpuTopology }): Entry[] {
  const t = cpu.topology;
  const logical = t.cores * t.threads;
  const entries: Entry[] = [];
  for (const e of host) {
    const x = { ...e };
    switch (x.fn) {
      case 1:
        x.ebx = (x.ebx & 0xff00) | (Math.min(logical, 255) << 16) | (cpu.apicId << 24);
        x.ecx = (x.ecx | HYPERVISOR) >>> 0;
        if (logical > 1) x.edx = (x.edx | HTT) >>> 0;
        break;
      case 0xb:
      case 0x1f:
        x.edx = cpu.apicId;
        break;
    }
    entries.push(x);
  }
  return entries;
}
