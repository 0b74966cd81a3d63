// Cache descriptions and their CPUID encodings (leaves 2, 4, 0x80000005, 0x80000006, 0x8000001D)

/** One cache level as CPUID describes it. */
export interface CacheInfo {
  readonly type: "data" | "instruction" | "unified";
  readonly level: number;
  readonly sizeBytes: number;
  readonly lineBytes: number;
  readonly ways: number;
  readonly sets: number;
  readonly partitions: number;
  readonly linesPerTag: number;
  readonly selfInit: boolean;
  readonly noInvdSharing: boolean;
  readonly inclusive: boolean;
  readonly complexIndexing: boolean;
}

/** The four caches of a model, as leaves 4 and 0x8000001D list them. */
export interface CacheSet {
  readonly l1d: CacheInfo;
  readonly l1i: CacheInfo;
  readonly l2: CacheInfo;
  readonly l3: CacheInfo;
}

const KiB = 1024, MiB = 1024 * 1024;

function cache(
  type: CacheInfo["type"],
  level: number,
  sizeBytes: number,
  ways: number,
  flags: Partial<CacheInfo> = {},
): CacheInfo {
  const lineBytes = 64, partitions = 1;
  return {
    type,
    level,
    sizeBytes,
    lineBytes,
    ways,
    sets: sizeBytes / (lineBytes * ways * partitions),
    partitions,
    linesPerTag: 1,
    selfInit: false,
    noInvdSharing: false,
    inclusive: false,
    complexIndexing: false,
    ...flags,
  };
}

const SELF = { selfInit: true, noInvdSharing: true };
const L3_FLAGS = { selfInit: true, inclusive: true, complexIndexing: true };

/** QEMU's legacy caches for leaf 4 (Intel layout): 32K L1s, 4M L2, 16M L3. */
export const LEGACY_CPUID4: CacheSet = {
  l1d: cache("data", 1, 32 * KiB, 8, SELF),
  l1i: cache("instruction", 1, 32 * KiB, 8, SELF),
  l2: cache("unified", 2, 4 * MiB, 16, SELF),
  l3: cache("unified", 3, 16 * MiB, 16, L3_FLAGS),
};

/** QEMU's legacy caches for the AMD leaves (0x80000005/6, 0x8000001D): 64K 2-way L1s, 512K L2. */
export const LEGACY_AMD: CacheSet = {
  l1d: cache("data", 1, 64 * KiB, 2, SELF),
  l1i: cache("instruction", 1, 64 * KiB, 2, SELF),
  l2: cache("unified", 2, 512 * KiB, 16),
  l3: LEGACY_CPUID4.l3,
};

/** How QEMU's legacy set describes its L2 to leaf 2: 2 MiB, 8-way. */
export const LEGACY_CPUID2_L2: CacheInfo = cache("unified", 2, 2 * MiB, 8, SELF);

type Descriptor = [
  level: number,
  type: CacheInfo["type"],
  kib: number,
  ways: number,
  line: number,
  code: number,
];

/**
 * Leaf 2's one-byte cache descriptors (SDM vol. 2A, CPUID leaf 02H, table 3-12), the ones
 * a whole cache maps to (sectored and family-dependent entries left out, as QEMU does).
 */
export const CPUID2_DESCRIPTORS: readonly Descriptor[] = [
  [1, "instruction", 8, 4, 32, 0x06],
  [1, "instruction", 16, 4, 32, 0x08],
  [1, "instruction", 32, 4, 64, 0x09],
  [1, "data", 8, 2, 32, 0x0a],
  [1, "data", 16, 4, 32, 0x0c],
  [1, "data", 16, 4, 64, 0x0d],
  [1, "data", 24, 6, 64, 0x0e],
  [2, "unified", 256, 2, 64, 0x1d],
  [2, "unified", 256, 8, 64, 0x21],
  [2, "unified", 1024, 16, 64, 0x24],
  [1, "data", 32, 8, 64, 0x2c],
  [1, "instruction", 32, 8, 64, 0x30],
  [2, "unified", 128, 4, 32, 0x41],
  [2, "unified", 256, 4, 32, 0x42],
  [2, "unified", 512, 4, 32, 0x43],
  [2, "unified", 1024, 4, 32, 0x44],
  [2, "unified", 2048, 4, 32, 0x45],
  [3, "unified", 4096, 4, 64, 0x46],
  [3, "unified", 8192, 8, 64, 0x47],
  [2, "unified", 3072, 12, 64, 0x48],
  [3, "unified", 6144, 12, 64, 0x4a],
  [3, "unified", 8192, 16, 64, 0x4b],
  [3, "unified", 12288, 12, 64, 0x4c],
  [3, "unified", 16384, 16, 64, 0x4d],
  [2, "unified", 6144, 24, 64, 0x4e],
  [1, "data", 16, 8, 64, 0x60],
  [1, "data", 8, 4, 64, 0x66],
  [1, "data", 16, 4, 64, 0x67],
  [1, "data", 32, 4, 64, 0x68],
  [2, "unified", 1024, 4, 64, 0x78],
  [2, "unified", 2048, 8, 64, 0x7d],
  [2, "unified", 512, 2, 64, 0x7f],
  [2, "unified", 512, 8, 64, 0x80],
  [2, "unified", 256, 8, 32, 0x82],
  [2, "unified", 512, 8, 32, 0x83],
  [2, "unified", 1024, 8, 32, 0x84],
  [2, "unified", 2048, 8, 32, 0x85],
  [2, "unified", 512, 4, 64, 0x86],
  [2, "unified", 1024, 8, 64, 0x87],
  [3, "unified", 512, 4, 64, 0xd0],
  [3, "unified", 1024, 4, 64, 0xd1],
  [3, "unified", 2048, 4, 64, 0xd2],
  [3, "unified", 1024, 8, 64, 0xd6],
  [3, "unified", 2048, 8, 64, 0xd7],
  [3, "unified", 4096, 8, 64, 0xd8],
  [3, "unified", 1536, 12, 64, 0xdc],
  [3, "unified", 3072, 12, 64, 0xdd],
  [3, "unified", 6144, 12, 64, 0xde],
  [3, "unified", 2048, 16, 64, 0xe2],
  [3, "unified", 4096, 16, 64, 0xe3],
  [3, "unified", 8192, 16, 64, 0xe4],
  [3, "unified", 12288, 24, 64, 0xea],
  [3, "unified", 18432, 24, 64, 0xeb],
  [3, "unified", 24576, 24, 64, 0xec],
] as Descriptor[];

/** The models with caches of their own (QEMU's `cache_info` of EPYC and its successors). */
export const MODEL_CACHES: Readonly<Record<string, CacheSet>> = {
  "epyc": {
    l1d: cache("data", 1, 32 * KiB, 8, SELF),
    l1i: cache("instruction", 1, 64 * KiB, 4, SELF),
    l2: cache("unified", 2, 512 * KiB, 8),
    l3: cache("unified", 3, 8 * MiB, 16, L3_FLAGS),
  },
  "epyc-rome": {
    l1d: cache("data", 1, 32 * KiB, 8, SELF),
    l1i: cache("instruction", 1, 32 * KiB, 8, SELF),
    l2: cache("unified", 2, 512 * KiB, 8),
    l3: cache("unified", 3, 16 * MiB, 16, L3_FLAGS),
  },
  "epyc-milan": {
    l1d: cache("data", 1, 32 * KiB, 8, SELF),
    l1i: cache("instruction", 1, 32 * KiB, 8, SELF),
    l2: cache("unified", 2, 512 * KiB, 8),
    l3: cache("unified", 3, 32 * MiB, 16, L3_FLAGS),
  },
};

const TYPE_CODE = { data: 1, instruction: 2, unified: 3 } as const;

/**
 * The deterministic cache parameters of leaf 4 and leaf 0x8000001D (SDM vol. 2A, CPUID
 * leaf 04H): EAX with the sharing count in bits 25:14, EBX geometry, ECX sets, EDX flags.
 */
export function encodeCacheParameters(c: CacheInfo, sharingIds: number): number[] {
  const eax = TYPE_CODE[c.type] | c.level << 5 | (c.selfInit ? 1 << 8 : 0) |
    (sharingIds - 1) << 14;
  const ebx = (c.lineBytes - 1) | (c.partitions - 1) << 12 | (c.ways - 1) << 22;
  const edx = (c.noInvdSharing ? 1 : 0) | (c.inclusive ? 2 : 0) | (c.complexIndexing ? 4 : 0);
  return [eax >>> 0, ebx >>> 0, c.sets - 1, edx];
}

/** An L1 cache in leaf 0x80000005 ECX/EDX: size in KiB, ways, lines per tag, line size. */
export function encodeAmdL1(c: CacheInfo): number {
  return ((c.sizeBytes / KiB) << 24 | c.ways << 16 | c.linesPerTag << 8 | c.lineBytes) >>> 0;
}

/** AMD's 4-bit associativity code of leaf 0x80000006 (APM vol. 3, CPUID Fn8000_0006). */
function amdWays(ways: number): number {
  const codes: Record<number, number> = {
    0: 0,
    1: 1,
    2: 2,
    4: 4,
    8: 6,
    16: 8,
    32: 0xa,
    48: 0xb,
    64: 0xc,
    96: 0xd,
    128: 0xe,
  };
  return codes[ways] ?? 0;
}

/** Leaf 0x80000006 ECX (L2: size in KiB) and EDX (L3: size in 512 KiB units). */
export function encodeAmdL2L3(l2: CacheInfo, l3: CacheInfo | null): [number, number] {
  const ecx = (l2.sizeBytes / KiB) << 16 | amdWays(l2.ways) << 12 | l2.linesPerTag << 8 |
    l2.lineBytes;
  const edx = l3
    ? (l3.sizeBytes / (512 * KiB)) << 18 | amdWays(l3.ways) << 12 | l3.linesPerTag << 8 |
      l3.lineBytes
    : 0;
  return [ecx >>> 0, edx >>> 0];
}
