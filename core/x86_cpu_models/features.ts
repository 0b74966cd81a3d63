// The x86 CPUID feature words and their flag names, as QEMU 7.2 names them (target/i386 feature_word_info)

/** Where a feature word lives: a CPUID output register, or an MSR (which CPUID does not show). */
export interface FeatureWordInfo {
  /** QEMU's name for the word, e.g. `FEAT_1_EDX`, used in warnings as `CPUID.01H:EDX`. */
  readonly key: FeatureWord;
  /** The CPUID leaf, subleaf and register; absent for a word that lives in an MSR. */
  readonly cpuid?: { leaf: number; subleaf?: number; reg: "eax" | "ebx" | "ecx" | "edx" };
  /** The MSR index of a word that lives in an MSR (QEMU's warnings name it). */
  readonly msr?: number;
  /** The flag name of each bit (null: unnamed). */
  readonly names: readonly (string | null)[];
}

/** The feature words a model sets (QEMU's `FeatureWord` enum, the CPUID ones and the named MSR ones). */
export type FeatureWord =
  | "1_EDX"
  | "1_ECX"
  | "7_0_EBX"
  | "7_0_ECX"
  | "7_0_EDX"
  | "7_1_EAX"
  | "8000_0001_EDX"
  | "8000_0001_ECX"
  | "8000_0007_EDX"
  | "8000_0008_EBX"
  | "C000_0001_EDX"
  | "KVM"
  | "KVM_HINTS"
  | "SVM"
  | "XSAVE"
  | "6_EAX"
  | "14_0_ECX"
  | "SGX_12_0_EAX"
  | "SGX_12_0_EBX"
  | "SGX_12_1_EAX"
  | "ARCH_CAPABILITIES"
  | "CORE_CAPABILITY"
  | "PERF_CAPABILITIES"
  | "VMX";

/** Expands a sparse {bit: name} list into 32 slots. */
function named(bits: Record<number, string>): (string | null)[] {
  return Array.from({ length: 32 }, (_, i) => bits[i] ?? null);
}

/** Every feature word with its names, in QEMU 7.2's FeatureWord order (the order of its warnings). */
export const FEATURE_WORDS: readonly FeatureWordInfo[] = [
  {
    key: "1_EDX",
    cpuid: { leaf: 1, reg: "edx" },
    names: named({
      0: "fpu",
      1: "vme",
      2: "de",
      3: "pse",
      4: "tsc",
      5: "msr",
      6: "pae",
      7: "mce",
      8: "cx8",
      9: "apic",
      11: "sep",
      12: "mtrr",
      13: "pge",
      14: "mca",
      15: "cmov",
      16: "pat",
      17: "pse36",
      18: "pn",
      19: "clflush",
      21: "ds",
      22: "acpi",
      23: "mmx",
      24: "fxsr",
      25: "sse",
      26: "sse2",
      27: "ss",
      28: "ht",
      29: "tm",
      30: "ia64",
      31: "pbe",
    }),
  },
  {
    key: "1_ECX",
    cpuid: { leaf: 1, reg: "ecx" },
    names: named({
      0: "pni",
      1: "pclmulqdq",
      2: "dtes64",
      3: "monitor",
      4: "ds-cpl",
      5: "vmx",
      6: "smx",
      7: "est",
      8: "tm2",
      9: "ssse3",
      10: "cid",
      12: "fma",
      13: "cx16",
      14: "xtpr",
      15: "pdcm",
      17: "pcid",
      18: "dca",
      19: "sse4.1",
      20: "sse4.2",
      21: "x2apic",
      22: "movbe",
      23: "popcnt",
      24: "tsc-deadline",
      25: "aes",
      26: "xsave",
      28: "avx",
      29: "f16c",
      30: "rdrand",
      31: "hypervisor",
    }),
  },
  {
    key: "7_0_EBX",
    cpuid: { leaf: 7, subleaf: 0, reg: "ebx" },
    names: named({
      0: "fsgsbase",
      1: "tsc-adjust",
      2: "sgx",
      3: "bmi1",
      4: "hle",
      5: "avx2",
      7: "smep",
      8: "bmi2",
      9: "erms",
      10: "invpcid",
      11: "rtm",
      14: "mpx",
      16: "avx512f",
      17: "avx512dq",
      18: "rdseed",
      19: "adx",
      20: "smap",
      21: "avx512ifma",
      22: "pcommit",
      23: "clflushopt",
      24: "clwb",
      25: "intel-pt",
      26: "avx512pf",
      27: "avx512er",
      28: "avx512cd",
      29: "sha-ni",
      30: "avx512bw",
      31: "avx512vl",
    }),
  },
  {
    key: "7_0_ECX",
    cpuid: { leaf: 7, subleaf: 0, reg: "ecx" },
    names: named({
      1: "avx512vbmi",
      2: "umip",
      3: "pku",
      5: "waitpkg",
      6: "avx512vbmi2",
      8: "gfni",
      9: "vaes",
      10: "vpclmulqdq",
      11: "avx512vnni",
      12: "avx512bitalg",
      14: "avx512-vpopcntdq",
      16: "la57",
      22: "rdpid",
      24: "bus-lock-detect",
      25: "cldemote",
      27: "movdiri",
      28: "movdir64b",
      30: "sgxlc",
      31: "pks",
    }),
  },
  {
    key: "7_0_EDX",
    cpuid: { leaf: 7, subleaf: 0, reg: "edx" },
    names: named({
      2: "avx512-4vnniw",
      3: "avx512-4fmaps",
      4: "fsrm",
      8: "avx512-vp2intersect",
      10: "md-clear",
      14: "serialize",
      16: "tsx-ldtrk",
      19: "arch-lbr",
      22: "amx-bf16",
      23: "avx512-fp16",
      24: "amx-tile",
      25: "amx-int8",
      26: "spec-ctrl",
      27: "stibp",
      29: "arch-capabilities",
      30: "core-capability",
      31: "ssbd",
    }),
  },
  {
    key: "7_1_EAX",
    cpuid: { leaf: 7, subleaf: 1, reg: "eax" },
    names: named({ 4: "avx-vnni", 5: "avx512-bf16" }),
  },
  {
    key: "8000_0001_EDX",
    cpuid: { leaf: 0x80000001, reg: "edx" },
    names: named({
      11: "syscall",
      20: "nx",
      22: "mmxext",
      25: "fxsr-opt",
      26: "pdpe1gb",
      27: "rdtscp",
      29: "lm",
      30: "3dnowext",
      31: "3dnow",
    }),
  },
  {
    key: "8000_0001_ECX",
    cpuid: { leaf: 0x80000001, reg: "ecx" },
    names: named({
      0: "lahf-lm",
      1: "cmp-legacy",
      2: "svm",
      3: "extapic",
      4: "cr8legacy",
      5: "abm",
      6: "sse4a",
      7: "misalignsse",
      8: "3dnowprefetch",
      9: "osvw",
      10: "ibs",
      11: "xop",
      12: "skinit",
      13: "wdt",
      15: "lwp",
      16: "fma4",
      17: "tce",
      19: "nodeid-msr",
      21: "tbm",
      22: "topoext",
      23: "perfctr-core",
      24: "perfctr-nb",
    }),
  },
  {
    key: "8000_0007_EDX",
    cpuid: { leaf: 0x80000007, reg: "edx" },
    names: named({ 8: "invtsc" }),
  },
  {
    key: "8000_0008_EBX",
    cpuid: { leaf: 0x80000008, reg: "ebx" },
    names: named({
      0: "clzero",
      2: "xsaveerptr",
      9: "wbnoinvd",
      12: "ibpb",
      14: "ibrs",
      15: "amd-stibp",
      24: "amd-ssbd",
      25: "virt-ssbd",
      26: "amd-no-ssb",
    }),
  },
  {
    key: "C000_0001_EDX",
    cpuid: { leaf: 0xc0000001, reg: "edx" },
    names: named({
      2: "xstore",
      3: "xstore-en",
      6: "xcrypt",
      7: "xcrypt-en",
      8: "ace2",
      9: "ace2-en",
      10: "phe",
      11: "phe-en",
      12: "pmm",
      13: "pmm-en",
    }),
  },
  {
    key: "KVM",
    cpuid: { leaf: 0x40000001, reg: "eax" },
    names: named({
      0: "kvmclock",
      1: "kvm-nopiodelay",
      2: "kvm-mmu",
      3: "kvmclock",
      4: "kvm-asyncpf",
      5: "kvm-steal-time",
      6: "kvm-pv-eoi",
      7: "kvm-pv-unhalt",
      9: "kvm-pv-tlb-flush",
      11: "kvm-pv-ipi",
      12: "kvm-poll-control",
      13: "kvm-pv-sched-yield",
      14: "kvm-asyncpf-int",
      15: "kvm-msi-ext-dest-id",
      24: "kvmclock-stable-bit",
    }),
  },
  {
    key: "KVM_HINTS",
    cpuid: { leaf: 0x40000001, reg: "edx" },
    names: named({ 0: "kvm-hint-dedicated" }),
  },
  {
    key: "SVM",
    cpuid: { leaf: 0x8000000a, reg: "edx" },
    names: named({
      0: "npt",
      1: "lbrv",
      2: "svm-lock",
      3: "nrip-save",
      4: "tsc-scale",
      5: "vmcb-clean",
      6: "flushbyasid",
      7: "decodeassists",
      10: "pause-filter",
      12: "pfthreshold",
      13: "avic",
      15: "v-vmsave-vmload",
      16: "vgif",
      28: "svme-addr-chk",
    }),
  },
  {
    key: "XSAVE",
    cpuid: { leaf: 0xd, subleaf: 1, reg: "eax" },
    names: named({ 0: "xsaveopt", 1: "xsavec", 2: "xgetbv1", 3: "xsaves", 4: "xfd" }),
  },
  {
    key: "6_EAX",
    cpuid: { leaf: 6, reg: "eax" },
    names: named({ 2: "arat" }),
  },
  {
    key: "ARCH_CAPABILITIES",
    msr: 0x10a,
    names: named({
      0: "rdctl-no",
      1: "ibrs-all",
      2: "rsba",
      3: "skip-l1dfl-vmentry",
      4: "ssb-no",
      5: "mds-no",
      6: "pschange-mc-no",
      7: "tsx-ctrl",
      8: "taa-no",
    }),
  },
  { key: "CORE_CAPABILITY", msr: 0xcf, names: named({ 5: "split-lock-detect" }) },
  { key: "PERF_CAPABILITIES", msr: 0x345, names: named({ 13: "full-width-write" }) },
  {
    key: "14_0_ECX",
    cpuid: { leaf: 0x14, subleaf: 0, reg: "ecx" },
    names: named({ 31: "intel-pt-lip" }),
  },
  {
    key: "SGX_12_0_EAX",
    cpuid: { leaf: 0x12, subleaf: 0, reg: "eax" },
    names: named({ 0: "sgx1", 1: "sgx2" }),
  },
  {
    key: "SGX_12_0_EBX",
    cpuid: { leaf: 0x12, subleaf: 0, reg: "ebx" },
    names: named({ 0: "sgx-exinfo" }),
  },
  {
    key: "SGX_12_1_EAX",
    cpuid: { leaf: 0x12, subleaf: 1, reg: "eax" },
    names: named({
      1: "sgx-debug",
      2: "sgx-mode64",
      4: "sgx-provisionkey",
      5: "sgx-tokenkey",
      7: "sgx-kss",
    }),
  },
];

/**
 * The VMX capability flags (QEMU's FEAT_VMX_* words, read through the IA32_VMX_* MSRs, which
 * vmkit does not model): known names for `-cpu` and its help, with no CPUID effect. QEMU 7.2
 * spells `vmx-invept-single-context` twice (its EPT word names bit 41 so by mistake).
 */
export const VMX_FLAGS: readonly string[] = (
  "vmx-activity-hlt vmx-activity-shutdown vmx-activity-wait-sipi vmx-apicv-register " +
  "vmx-apicv-vid vmx-apicv-x2apic vmx-apicv-xapic vmx-cr3-load-noexit vmx-cr3-store-noexit " +
  "vmx-cr8-load-exit vmx-cr8-store-exit vmx-desc-exit vmx-encls-exit vmx-entry-ia32e-mode " +
  "vmx-entry-load-bndcfgs vmx-entry-load-efer vmx-entry-load-pat " +
  "vmx-entry-load-perf-global-ctrl vmx-entry-load-pkrs vmx-entry-load-rtit-ctl " +
  "vmx-entry-noload-debugctl vmx-ept vmx-ept-1gb vmx-ept-2mb vmx-ept-advanced-exitinfo " +
  "vmx-ept-execonly vmx-eptad vmx-eptp-switching vmx-exit-ack-intr vmx-exit-clear-bndcfgs " +
  "vmx-exit-clear-rtit-ctl vmx-exit-load-efer vmx-exit-load-pat " +
  "vmx-exit-load-perf-global-ctrl vmx-exit-load-pkrs vmx-exit-nosave-debugctl " +
  "vmx-exit-save-efer vmx-exit-save-pat vmx-exit-save-preemption-timer vmx-flexpriority " +
  "vmx-hlt-exit vmx-ins-outs vmx-intr-exit vmx-invept vmx-invept-all-context " +
  "vmx-invept-single-context vmx-invept-single-context " +
  "vmx-invept-single-context-noglobals vmx-invlpg-exit vmx-invpcid-exit vmx-invvpid " +
  "vmx-invvpid-all-context vmx-invvpid-single-addr vmx-io-bitmap vmx-io-exit " +
  "vmx-monitor-exit vmx-movdr-exit vmx-msr-bitmap vmx-mtf vmx-mwait-exit vmx-nmi-exit " +
  "vmx-page-walk-4 vmx-page-walk-5 vmx-pause-exit vmx-ple vmx-pml vmx-posted-intr " +
  "vmx-preemption-timer vmx-rdpmc-exit vmx-rdrand-exit vmx-rdseed-exit vmx-rdtsc-exit " +
  "vmx-rdtscp-exit vmx-secondary-ctls vmx-shadow-vmcs vmx-store-lma vmx-true-ctls " +
  "vmx-tsc-offset vmx-tsc-scaling vmx-unrestricted-guest vmx-vintr-pending vmx-vmfunc " +
  "vmx-vmwrite-vmexit-fields vmx-vnmi vmx-vnmi-pending vmx-vpid vmx-wbinvd-exit vmx-xsaves " +
  "vmx-zero-len-inject"
).split(" ");

/**
 * Other spellings QEMU 7.2 accepts for a flag (besides `_` for `-`, which it always accepts).
 */
export const FLAG_ALIASES: Readonly<Record<string, string>> = {
  "sse3": "pni",
  "pclmuldq": "pclmulqdq",
  "sse4-1": "sse4.1",
  "sse4-2": "sse4.2",
  "xd": "nx",
  "ffxsr": "fxsr-opt",
  "i64": "lm",
};

/** A flag's place: its word and bit (VMX flags have no bit here). */
export interface FlagPlace {
  readonly word: FeatureWord;
  readonly bit: number;
}

const PLACES = new Map<string, FlagPlace>();
for (const w of FEATURE_WORDS) {
  w.names.forEach((n, bit) => {
    // kvmclock names two bits; QEMU's property sets the first (bit 0) and the model tables set both.
    if (n !== null && !PLACES.has(n)) PLACES.set(n, { word: w.key, bit });
  });
}

/**
 * Finds a flag by any spelling QEMU accepts (`sse4_1`, `sse4-1`, `sse4.1`); undefined for an
 * unknown name, `{ word: "VMX", bit: -1 }` for a VMX capability.
 */
export function findFlag(name: string): FlagPlace | undefined {
  const n = name.replaceAll("_", "-");
  const canonical = FLAG_ALIASES[n] ?? n;
  if (PLACES.has(canonical)) return PLACES.get(canonical);
  if (VMX_FLAGS.includes(canonical)) return { word: "VMX", bit: -1 };
  return undefined;
}

/** The canonical name of a flag spelling (the one `-cpu help` lists). */
export function canonicalFlag(name: string): string {
  const n = name.replaceAll("_", "-");
  return FLAG_ALIASES[n] ?? n;
}

/** Every flag name `-cpu help` lists, sorted with duplicates as QEMU 7.2 prints them. */
export function allFlagNames(): string[] {
  const names: string[] = [];
  for (const w of FEATURE_WORDS) for (const n of w.names) if (n !== null) names.push(n);
  names.push(...VMX_FLAGS);
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
