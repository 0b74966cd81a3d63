// The CPUID instruction's answers for a resolved x86 CPU model, as QEMU 7.2 gives them

import type { CpuTopology } from "../cpu.ts";
import {
  type CacheInfo,
  type CacheSet,
  CPUID2_DESCRIPTORS,
  encodeAmdL1,
  encodeAmdL2L3,
  encodeCacheParameters,
  LEGACY_AMD,
  LEGACY_CPUID2_L2,
  LEGACY_CPUID4,
  MODEL_CACHES,
} from "./caches.ts";
import type { X86CpuConfig } from "./resolve.ts";

/** The CPU asking: its APIC ID, the machine's topology, and the state a few bits follow. */
export interface CpuidContext {
  readonly apicId: number;
  readonly topology: CpuTopology;
  /** CR4 now: OSXSAVE (bit 18) shows in leaf 1 ECX bit 27, PKE (bit 22) in leaf 7 ECX bit 4. */
  readonly cr4?: number;
  /** XCR0 now (leaf 0xD subleaf 0 EBX is the XSAVE area size it needs); 1 when absent. */
  readonly xcr0?: number;
  /** Whether the local APIC is enabled in IA32_APIC_BASE (leaf 1 EDX bit 9 follows it); true when absent. */
  readonly apicEnabled?: boolean;
}

/** EAX, EBX, ECX, EDX. */
export type CpuidRegs = [number, number, number, number];

/** Physical address bits QEMU's TCG offers a 64-bit guest (TCG_PHYS_ADDR_BITS). */
const TCG_PHYS_BITS = 40;
const CPUID_EXT2_AMD_ALIASES = 0x0183f3ff; // leaf 1 EDX bits AMD repeats in 0x80000001 EDX

/** XSAVE state components: [xcr0 bit, size, standard-format offset], SDM vol. 1 §13.4. */
const XSAVE_COMPONENTS: ReadonlyArray<[number, number, number]> = [
  [2, 256, 576], // AVX (YMM_Hi128)
  [3, 64, 960], // MPX BNDREGS
  [4, 64, 1024], // MPX BNDCSR
  [5, 64, 1088], // AVX-512 opmask
  [6, 512, 1152], // AVX-512 ZMM_Hi256
  [7, 1024, 1664], // AVX-512 Hi16_ZMM
  [9, 8, 2688], // PKRU
  [17, 64, 2752], // AMX XTILECFG
  [18, 8192, 2816], // AMX XTILEDATA
];

function bit(word: number | undefined, n: number): boolean {
  return ((word ?? 0) >>> n & 1) === 1;
}

/**
 * The XSAVE components (as an XCR0 mask, low 32 bits) the model's flags enable: from the
 * flags as requested, before the accelerator's filtering, as QEMU 7.2 does; none without XSAVE.
 */
export function xsaveComponents(cpu: X86CpuConfig): number {
  const f = cpu.requested;
  if (!bit(cpu.features["1_ECX"], 26) || !bit(f["1_ECX"], 26)) return 0;
  let mask = 0b11; // x87, SSE
  if (bit(f["1_ECX"], 28)) mask |= 1 << 2;
  if (bit(f["7_0_EBX"], 14)) mask |= 0b11 << 3;
  if (bit(f["7_0_EBX"], 16)) mask |= 0b111 << 5;
  if (bit(f["7_0_ECX"], 3)) mask |= 1 << 9;
  if (bit(f["7_0_EDX"], 24)) mask |= 0b11 << 17;
  return mask >>> 0;
}

/** The XSAVE area bytes for `mask`: the standard layout's end, or the compacted size. */
function xsaveAreaBytes(mask: number, compacted: boolean): number {
  let bytes = 512 + 64; // legacy region and XSAVE header
  for (const [n, size, offset] of XSAVE_COMPONENTS) {
    if (!(mask >>> n & 1)) continue;
    bytes = compacted ? bytes + size : Math.max(bytes, offset + size);
  }
  return bytes;
}

function bitsFor(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

function stringWords(text: string, bytes: number): number[] {
  const b = new Uint8Array(bytes);
  b.set(new TextEncoder().encode(text).subarray(0, bytes));
  const v = new DataView(b.buffer);
  return Array.from({ length: bytes / 4 }, (_, i) => v.getUint32(4 * i, true));
}

/** The CPUID.1 EAX signature of a family/model/stepping (extended fields as the SDM packs them). */
export function x86Signature(family: number, model: number, stepping: number): number {
  return ((stepping & 0xf) | (model & 0xf) << 4 | Math.min(family, 15) << 8 |
    ((model >> 4) & 0xf) << 16 | (family > 15 ? (family - 15) & 0xff : 0) << 20) >>> 0;
}

/** The vendor string as leaf 0's EBX, EDX, ECX. */
function vendorWords(vendor: string): [number, number, number] {
  const [b, d, c] = stringWords(vendor, 12);
  return [b, d, c];
}

/** Whether the leaf is served, or clamped to the highest basic leaf as QEMU does (Intel's rule). */
function effectiveLeaf(cpu: X86CpuConfig, level: number, leaf: number): number {
  if (leaf >= 0xc0000000) return cpu.xlevel2 > 0 && leaf <= cpu.xlevel2 ? leaf : level;
  if (leaf >= 0x80000000) return leaf <= cpu.xlevel ? leaf : level;
  if (leaf >= 0x40000000) return leaf <= 0x40000001 ? leaf : level;
  return leaf <= level ? leaf : level;
}

/** The highest basic leaf: the model's, raised to 0x1F (V2 extended topology) when there are dies. */
export function basicLevel(cpu: X86CpuConfig, topology: CpuTopology): number {
  return cpu.levelFixed || topology.dies < 2 ? cpu.level : Math.max(cpu.level, 0x1f);
}

/**
 * The registers CPUID returns for `leaf`/`subleaf` on `cpu` as QEMU 7.2 answers them
 * (cpu_x86_cpuid in target/i386/cpu.c): vendor, signature, feature words, topology (leaves
 * 1, 4, 0xB, 0x1F, 0x80000008, 0x8000001D), caches, XSAVE layout, the brand string, the
 * hypervisor leaves (`TCGTCGTCGTCG` under TCG, `KVMKVMKVM` under KVM), and leaves past the
 * top answered as the highest basic leaf. Leaves QEMU only fills for features TCG drops
 * (SGX 0x12, Intel PT 0x14, AMX 0x1D/0x1E, SEV 0x8000001F, the PMU's 0xA) read as zero.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveX86Cpu } from "./resolve.ts";
 * import { cpuidLeaf } from "./cpuid.ts";
 * const cpu = resolveX86Cpu("qemu64", { accel: "tcg" });
 * const topology = { sockets: 1, dies: 1, cores: 1, threads: 1 };
 * assert.deepEqual(cpuidLeaf(cpu, { apicId: 0, topology }, 0x80000008, 0), [0x3028, 0, 0, 0]);
 * ```
 */
export function cpuidLeaf(
  cpu: X86CpuConfig,
  ctx: CpuidContext,
  leaf: number,
  subleaf: number,
): CpuidRegs {
  const t = ctx.topology;
  const level = basicLevel(cpu, t);
  leaf = effectiveLeaf(cpu, level, leaf >>> 0);
  subleaf >>>= 0;
  const f = cpu.features;
  // QEMU 7.2 counts cores per die: with dies, leaves 1, 4 and 0x80000008 describe one die.
  const logical = t.cores * t.threads;
  const threadBits = bitsFor(t.threads);
  const coreBits = bitsFor(t.cores);
  const pkgBits = threadBits + coreBits + bitsFor(t.dies);
  const isAmd = cpu.vendor === "AuthenticAMD";
  const signature = x86Signature(cpu.family, cpu.model, cpu.stepping);
  const amdCaches: CacheSet = cpu.caches ? MODEL_CACHES[cpu.caches] : LEGACY_AMD;
  const cpuid4Caches: CacheSet = cpu.caches ? MODEL_CACHES[cpu.caches] : LEGACY_CPUID4;
  switch (leaf) {
    case 0: {
      const [b, d, c] = vendorWords(cpu.vendor);
      return [level, b, c, d];
    }
    case 1: {
      const ebx = (ctx.apicId & 0xff) << 24 | (logical > 1 ? (logical & 0xff) << 16 : 0) |
        8 << 8; // CLFLUSH line size in quadwords: 64 bytes
      let ecx = f["1_ECX"] ?? 0;
      if (bit(ecx, 26) && ctx.cr4 !== undefined && bit(ctx.cr4, 18)) ecx |= 1 << 27;
      let edx = f["1_EDX"] ?? 0;
      if (logical > 1) edx |= 1 << 28;
      if (ctx.apicEnabled === false) edx &= ~(1 << 9);
      return [signature, ebx >>> 0, ecx >>> 0, edx >>> 0];
    }
    case 2: {
      // QEMU's x-vendor-cpuid-only: AMD reads zeros in leaves 2 and 4 (Hygon does not).
      if (isAmd) return [0, 0, 0, 0];
      const c = cpuid4Caches;
      // The legacy set describes its L2 to leaf 2 as 2 MiB 8-way (QEMU's legacy_l2_cache_cpuid2).
      const l2 = cpu.caches ? c.l2 : LEGACY_CPUID2_L2;
      const d = (x: CacheInfo) => descriptorOf(x);
      return [1, 0, d(c.l3), (d(c.l1d) << 16 | d(c.l1i) << 8 | d(l2)) >>> 0];
    }
    case 4: {
      if (isAmd) return [0, 0, 0, 0];
      const levels = [cpuid4Caches.l1d, cpuid4Caches.l1i, cpuid4Caches.l2, cpuid4Caches.l3];
      if (subleaf > 3) return [0, 0, 0, 0];
      const sharing = subleaf < 2 ? 1 : subleaf === 2 ? t.threads : 1 << (threadBits + coreBits);
      const r = encodeCacheParameters(levels[subleaf], sharing);
      r[0] = (r[0] | (t.cores - 1) << 26) >>> 0;
      return r as CpuidRegs;
    }
    case 5:
      // MONITOR/MWAIT: no line sizes, the extensions and interrupt-break bits.
      return [0, 0, 3, 0];
    case 6:
      return [f["6_EAX"] ?? 0, 0, 0, 0];
    case 7: {
      // The highest subleaf follows the flags as requested (QEMU sets it before filtering).
      const maxSub = cpu.requested["7_1_EAX"] ? 1 : 0;
      if (subleaf === 0) {
        let ecx = f["7_0_ECX"] ?? 0;
        if (bit(ecx, 3) && ctx.cr4 !== undefined && bit(ctx.cr4, 22)) ecx |= 1 << 4;
        return [maxSub, f["7_0_EBX"] ?? 0, ecx >>> 0, f["7_0_EDX"] ?? 0];
      }
      if (subleaf === 1) return [f["7_1_EAX"] ?? 0, 0, 0, 0];
      return [0, 0, 0, 0];
    }
    case 0xb:
    case 0x1f: {
      if (leaf === 0x1f && t.dies < 2) return [0, 0, 0, 0];
      // [shift to the next level's ID, logical CPUs at this level, level type]
      const levels: Array<[number, number, number]> = leaf === 0xb
        ? [[threadBits, t.threads, 1], [pkgBits, logical, 2]]
        : [[threadBits, t.threads, 1], [threadBits + coreBits, logical, 2], [
          pkgBits,
          logical * t.dies,
          5,
        ]];
      const l = levels[subleaf];
      const ecx = subleaf & 0xff;
      if (!l) return [0, 0, ecx, ctx.apicId >>> 0];
      return [l[0], l[1] & 0xffff, (ecx | l[2] << 8) >>> 0, ctx.apicId >>> 0];
    }
    case 0xd: {
      const comps = xsaveComponents(cpu);
      if (!comps) return [0, 0, 0, 0];
      if (subleaf === 0) {
        const xcr0 = ctx.xcr0 ?? 1;
        return [comps, xsaveAreaBytes(xcr0 & comps, false), xsaveAreaBytes(comps, false), 0];
      }
      if (subleaf === 1) return [f.XSAVE ?? 0, xsaveAreaBytes(comps, true), 0, 0];
      const c = XSAVE_COMPONENTS.find(([n]) => n === subleaf);
      if (c && comps >>> subleaf & 1) return [c[1], c[2], 0, 0];
      return [0, 0, 0, 0];
    }
    case 0x40000000: {
      const sig = stringWords(cpu.accel === "tcg" ? "TCGTCGTCGTCG" : "KVMKVMKVM", 12);
      return [0x40000001, sig[0], sig[1], sig[2]];
    }
    case 0x40000001:
      return cpu.accel === "kvm" ? [f.KVM ?? 0, 0, 0, f.KVM_HINTS ?? 0] : [0, 0, 0, 0];
    case 0x80000000: {
      const [b, d, c] = vendorWords(cpu.vendor);
      return [cpu.xlevel, b, c, d];
    }
    case 0x80000001: {
      let ecx = f["8000_0001_ECX"] ?? 0;
      let edx = f["8000_0001_EDX"] ?? 0;
      if (isAmd) {
        edx = edx & ~CPUID_EXT2_AMD_ALIASES | (f["1_EDX"] ?? 0) & CPUID_EXT2_AMD_ALIASES;
        if (logical > 1) ecx |= 1 << 1; // CmpLegacy
      }
      return [signature, 0, ecx >>> 0, edx >>> 0];
    }
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const w = stringWords(cpu.modelId, 48);
      const at = (leaf - 0x80000002) * 4;
      return [w[at], w[at + 1], w[at + 2], w[at + 3]];
    }
    case 0x80000005:
      // L1 TLBs (2M/4M and 4K pages: fully associative, 255 entries), then the L1 caches.
      return [0x01ff01ff, 0x01ff01ff, encodeAmdL1(amdCaches.l1d), encodeAmdL1(amdCaches.l1i)];
    case 0x80000006: {
      // L2 TLBs: 4K pages 4-way, 512 entries; 2M pages none.
      const [ecx, edx] = encodeAmdL2L3(amdCaches.l2, amdCaches.l3);
      return [0, 0x42004200, ecx, edx];
    }
    case 0x80000007:
      return [0, 0, 0, f["8000_0007_EDX"] ?? 0];
    case 0x80000008: {
      let eax: number;
      if (bit(f["8000_0001_EDX"], 29)) {
        eax = TCG_PHYS_BITS | (bit(f["7_0_ECX"], 16) ? 57 : 48) << 8;
      } else {
        eax = bit(f["1_EDX"], 17) ? 36 : 32;
      }
      const ecx = logical > 1 ? pkgBits << 12 | (logical - 1) : 0;
      return [eax, f["8000_0008_EBX"] ?? 0, ecx >>> 0, 0];
    }
    case 0x8000000a:
      // SVM revision 1 with 16 ASIDs.
      return bit(f["8000_0001_ECX"], 2) ? [1, 0x10, 0, f.SVM ?? 0] : [0, 0, 0, 0];
    case 0x8000001d: {
      const levels = [amdCaches.l1d, amdCaches.l1i, amdCaches.l2, amdCaches.l3];
      if (subleaf > 3) return [0, 0, 0, 0];
      const sharing = subleaf < 3 ? t.threads : coresInComplex(t.cores) * t.threads;
      return encodeCacheParameters(levels[subleaf], sharing) as CpuidRegs;
    }
    case 0xc0000000:
      return [cpu.xlevel2, 0, 0, 0];
    case 0xc0000001:
      return [signature, 0, 0, f["C000_0001_EDX"] ?? 0];
    default:
      return [0, 0, 0, 0];
  }
}

/** A cache's leaf 2 descriptor byte; 0xFF ("use leaf 4") when the SDM's table has none. */
function descriptorOf(c: CacheInfo): number {
  const at = CPUID2_DESCRIPTORS.findIndex((d) =>
    d[0] === c.level && d[1] === c.type && d[2] === c.sizeBytes / 1024 && d[3] === c.ways &&
    d[4] === c.lineBytes
  );
  return at < 0 ? 0xff : CPUID2_DESCRIPTORS[at][5];
}

/**
 * Cores sharing an L3 in AMD's leaf 0x8000001D: up to 4 cores form one complex, else the
 * cores spread over nodes of two complexes (at most 8 cores a node; 3 nodes round up to 4).
 */
function coresInComplex(cores: number): number {
  if (cores <= 4) return cores;
  let nodes = Math.ceil(cores / 8);
  if (nodes === 3) nodes = 4;
  return Math.ceil(cores / (nodes * 2));
}
