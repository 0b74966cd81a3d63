// `-cpu MODEL[,+feat][,-feat][,feat=on|off][,prop=value]`: find the model, apply the flags, filter for the accelerator

import { UsageError } from "../errors.ts";
import { MODEL_RECORDS } from "./data.ts";
import { canonicalFlag, FEATURE_WORDS, type FeatureWord, findFlag } from "./features.ts";
import type { ModelRecord } from "./types.ts";

/** Feature words as bit masks (a word absent is 0). */
export type FeatureWords = Partial<Record<FeatureWord, number>>;

/** A `-cpu` option resolved for one accelerator: what the guest's CPUID is built from. */
export interface X86CpuConfig {
  /** The model name as typed (`Haswell`), and the concrete model it stands for (`Haswell-v1`). */
  readonly name: string;
  readonly resolvedName: string;
  readonly vendor: string;
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  readonly level: number;
  /** Whether `level=` fixed the level (else QEMU raises it to 0x1F for a topology with dies). */
  readonly levelFixed: boolean;
  readonly xlevel: number;
  readonly xlevel2: number;
  readonly modelId: string;
  /** The flags after `+`/`-`/`=on|off` and after the accelerator's filtering. */
  readonly features: FeatureWords;
  /**
   * Under TCG, the flags after the user's changes before filtering: QEMU 7.2 sizes the XSAVE
   * components (and leaf 7's subleaf count) from these, so TCG lists AVX-512 state in leaf
   * 0xD that it does not offer. Under KVM the same as `features`.
   */
  readonly requested: FeatureWords;
  /** The model's own caches (caches.ts MODEL_CACHES key), or undefined for QEMU's legacy ones. */
  readonly caches?: string;
  readonly accel: "tcg" | "kvm";
  /**
   * QEMU's warnings (its warn_report texts, without the `program: warning: ` prefix): the
   * ambiguous `+feat`/`feat=` mixes, then one per flag the accelerator dropped.
   */
  readonly warnings: readonly string[];
}

/** What to filter against, and how the accelerator is named in warnings. */
export interface ResolveOptions {
  readonly accel: "tcg" | "kvm";
  /**
   * The flags the CPU can present: for TCG, QEMU 7.2's TCG set ({@linkcode tcgFeatures}) when
   * absent, else this mask intersected with it (a CPU backend that implements less passes its
   * own set); for KVM, what KVM_GET_SUPPORTED_CPUID allows (absent: no filtering).
   */
  readonly supported?: FeatureWords;
  /**
   * The vendor string to present instead of the model's: QEMU gives a KVM guest the host's
   * (SYSENTER and SYSCALL in compatibility mode follow the real CPU). `vendor=` still wins.
   */
  readonly hostVendor?: string;
}

const BY_NAME = new Map(MODEL_RECORDS.map((r) => [r.name, r]));

/** Every model name `-cpu help` lists (aliases included), in its order. */
export function x86ModelNames(): string[] {
  return MODEL_RECORDS.map((r) => r.name);
}

/** The concrete record of a model name (following an alias); undefined for an unknown name. */
export function findX86Model(name: string): ModelRecord | undefined {
  let r = BY_NAME.get(name);
  for (let hops = 0; r?.aliasOf && hops < 4; hops++) r = BY_NAME.get(r.aliasOf);
  return r;
}

/** QEMU 7.2's TCG flags (its TCG_*_FEATURES masks), which are exactly what `-cpu max` has under TCG. */
export function tcgFeatures(): FeatureWords {
  return { ...findX86Model("max")!.features };
}

/** One parsed `-cpu` item. */
interface FlagSetting {
  readonly name: string;
  readonly on: boolean;
}

/** Properties besides flags that `-cpu` accepts and CPUID shows. */
const NUMERIC_PROPS = ["family", "model", "stepping", "level", "xlevel", "xlevel2"] as const;
type NumericProp = typeof NUMERIC_PROPS[number];

/** A `-cpu` option split into the model name, the flag settings and the other properties. */
export interface ParsedCpuOption {
  readonly model: string;
  /** `feat=on|off` and bare `feat`, in order (applied first). */
  readonly assigned: readonly FlagSetting[];
  /** `+feat` then `-feat` (QEMU applies every `+` after the assignments, then every `-`). */
  readonly plus: readonly string[];
  readonly minus: readonly string[];
  readonly props: Readonly<Partial<Record<NumericProp | "vendor" | "model-id", string>>>;
  /** `enforce`: a flag the accelerator lacks is an error, not a warning. */
  readonly enforce: boolean;
  /** QEMU's warnings for a flag given both as `+feat`/`-feat` and as `feat=value`. */
  readonly warnings: readonly string[];
}

/** Which qemu-system binary the messages speak for. */
export interface ParseCpuOptions {
  /**
   * `x86_64` (the default) or `i386`: QEMU names a model's type after its binary
   * (`qemu64-x86_64-cpu`, `qemu64-i386-cpu`) and its messages quote that name.
   */
  readonly target?: "x86_64" | "i386";
}

/** Properties QEMU 7.2 declares signed (`family`...) or unsigned (`level`...), as its messages name them. */
const SIGNED_PROPS: readonly string[] = ["family", "model", "stepping"];

/**
 * Splits `-cpu` text as QEMU 7.2 does (`,,` is not special here: QEMU's CPU parser splits on
 * every comma). Throws {@linkcode UsageError} with QEMU's words for an unknown model or flag.
 */
export function parseCpuOption(text: string, options: ParseCpuOptions = {}): ParsedCpuOption {
  const [model, ...items] = text.split(",");
  if (!findX86Model(model)) throw new UsageError(`unable to find CPU model '${model}'`);
  const typeName = `${model}-${options.target ?? "x86_64"}-cpu`;
  const assigned: FlagSetting[] = [];
  const plus: string[] = [], minus: string[] = [];
  const props: Record<string, string> = {};
  const warnings: string[] = [];
  let enforce = false;
  for (const item of items) {
    if (item === "") continue;
    if (item[0] === "+" || item[0] === "-") {
      const name = item.slice(1);
      if (!findFlag(name)) throw new UsageError(`Property '${typeName}.${name}' not found`);
      (item[0] === "+" ? plus : minus).push(canonicalFlag(name));
      continue;
    }
    const eq = item.indexOf("=");
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? "on" : item.slice(eq + 1);
    const where = `can't apply global ${typeName}.${key}=${value}`;
    if ((NUMERIC_PROPS as readonly string[]).includes(key)) {
      if (!/^(0x[0-9a-f]+|\d+)$/i.test(value)) {
        const type = SIGNED_PROPS.includes(key) ? "int64" : "uint64";
        throw new UsageError(`${where}: Parameter '${key}' expects ${type}`);
      }
      props[key] = value;
    } else if (key === "vendor" || key === "model-id") {
      // CPUID spells the vendor in three 4-byte registers: QEMU takes exactly 12 bytes.
      if (key === "vendor" && new TextEncoder().encode(value).length !== 12) {
        throw new UsageError(`${where}: Property '.vendor' doesn't take value '${value}'`);
      }
      props[key] = value;
    } else if (key === "enforce" || key === "check") {
      if (value !== "on" && value !== "off") {
        throw new UsageError(`${where}: Parameter '${key}' expects 'on' or 'off'`);
      }
      // check (on by default) only asks for the warnings, which are always given.
      if (key === "enforce") enforce = value === "on";
    } else if (findFlag(key)) {
      if (value !== "on" && value !== "off") {
        throw new UsageError(`${where}: Parameter '${key}' expects 'on' or 'off'`);
      }
      const name = canonicalFlag(key);
      for (const [sign, list] of [["+", plus], ["-", minus]] as const) {
        if (list.includes(name)) {
          warnings.push(
            `Ambiguous CPU model string. Don't mix both "${sign}${key}" and "${key}=${value}"`,
          );
        }
      }
      assigned.push({ name, on: value === "on" });
    } else {
      throw new UsageError(`${where}: Property '${typeName}.${key}' not found`);
    }
  }
  if (warnings.length > 0) {
    warnings.push(
      "Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions",
    );
  }
  return { model, assigned, plus, minus, props, enforce, warnings };
}

function setFlag(words: Record<string, number>, name: string, on: boolean): void {
  const place = findFlag(name)!;
  if (place.bit < 0) return; // a VMX capability: no CPUID bit
  const mask = 1 << place.bit;
  words[place.word] = ((words[place.word] ?? 0) & ~mask | (on ? mask : 0)) >>> 0;
}

/** Feature words whose presence raises the basic, extended or Centaur level (QEMU's full-cpuid-auto-level). */
function autoLevels(f: FeatureWords): { level: number; xlevel: number; xlevel2: number } {
  let level = 0, xlevel = 0, xlevel2 = 0;
  for (const w of FEATURE_WORDS) {
    if (!w.cpuid || !f[w.key]) continue;
    const leaf = w.cpuid.leaf;
    if (leaf >= 0xc0000000) xlevel2 = Math.max(xlevel2, leaf);
    else if (leaf >= 0x80000000) xlevel = Math.max(xlevel, leaf);
    else if (leaf < 0x40000000) level = Math.max(level, leaf);
  }
  // SVM needs leaf 0x8000000A, Intel PT leaf 0x14.
  if ((f["8000_0001_ECX"] ?? 0) & 1 << 2) xlevel = Math.max(xlevel, 0x8000000a);
  if ((f["7_0_EBX"] ?? 0) & 1 << 25) level = Math.max(level, 0x14);
  return { level, xlevel, xlevel2 };
}

function warningFor(accel: string, word: FeatureWord, bit: number): string {
  const w = FEATURE_WORDS.find((x) => x.key === word)!;
  const who = accel === "tcg" ? "TCG" : "host";
  const where = w.cpuid
    ? `CPUID.${
      w.cpuid.leaf.toString(16).toUpperCase().padStart(2, "0")
    }H:${w.cpuid.reg.toUpperCase()}`
    : `MSR(${w.msr!.toString(16).toUpperCase().padStart(2, "0")}H)`;
  return `${who} doesn't support requested feature: ${where}.${w.names[bit]} [bit ${bit}]`;
}

/**
 * Resolves a `-cpu` option for an accelerator: the model's facts, the flags after the user's
 * changes, the levels raised for the flags present, and, under TCG (or with a `supported`
 * mask), the flags the accelerator cannot present dropped with one QEMU warning each
 * (`-cpu max` and `host` drop silently: they ask for whatever is there).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveX86Cpu } from "./resolve.ts";
 * const cpu = resolveX86Cpu("Haswell,-avx2", { accel: "tcg" });
 * assert.equal(cpu.resolvedName, "Haswell-v1");
 * assert.equal((cpu.features["7_0_EBX"]! >> 5) & 1, 0);
 * assert.ok(cpu.warnings.some((w) => w.includes("CPUID.07H:EBX.hle [bit 4]")));
 * ```
 */
export function resolveX86Cpu(text: string, options: ResolveOptions): X86CpuConfig {
  const parsed = parseCpuOption(text);
  let record = findX86Model(parsed.model)!;
  const everything = record.name === "host" || (record.name === "max" && options.accel === "kvm");
  if (record.name === "host") {
    if (options.accel === "tcg") throw new UsageError("CPU model 'host' requires KVM or HVF");
    record = { ...findX86Model("max")!, name: "host" };
  }
  // host, and max under KVM, ask for every flag the accelerator has.
  const words: Record<string, number> = everything
    ? { ...options.supported }
    : { ...record.features };
  for (const a of parsed.assigned) setFlag(words, a.name, a.on);
  for (const p of parsed.plus) setFlag(words, p, true);
  for (const m of parsed.minus) setFlag(words, m, false);
  const auto = autoLevels(words);
  const requested = { ...words };
  const num = (k: NumericProp, fallback: number) =>
    parsed.props[k] !== undefined ? Number(parsed.props[k]) : fallback;
  const warnings: string[] = [...parsed.warnings];
  const quiet = everything || record.name === "max" || record.name === "base";
  const limit = options.accel === "tcg"
    ? intersect(tcgFeatures(), options.supported)
    : options.supported;
  if (limit) {
    for (const w of FEATURE_WORDS) {
      const asked = words[w.key] ?? 0;
      const dropped = (asked & ~(limit[w.key] ?? 0)) >>> 0;
      if (!dropped) continue;
      words[w.key] = (asked & ~dropped) >>> 0;
      if (quiet) continue;
      for (let bit = 0; bit < 32; bit++) {
        if (dropped & (1 << bit)) warnings.push(warningFor(options.accel, w.key, bit));
      }
    }
  }
  if (parsed.enforce && warnings.length > parsed.warnings.length) {
    const who = options.accel === "tcg" ? "TCG" : "host";
    // QEMU prints the per-flag warnings first; the error names the missing flags instead.
    const missing = warnings.slice(parsed.warnings.length).map((w) => w.slice(w.indexOf(": ") + 2));
    throw new UsageError(`${who} doesn't support requested features: ${missing.join(", ")}`);
  }
  return {
    name: parsed.model,
    resolvedName: record.name,
    vendor: parsed.props.vendor ?? options.hostVendor ?? record.vendor ?? "",
    family: num("family", record.family ?? 0),
    model: num("model", record.model ?? 0),
    stepping: num("stepping", record.stepping ?? 0),
    level: num("level", Math.max(record.level ?? 0, auto.level)),
    levelFixed: parsed.props.level !== undefined,
    xlevel: num("xlevel", Math.max(record.xlevel ?? 0, auto.xlevel)),
    xlevel2: num("xlevel2", Math.max(record.xlevel2 ?? 0, auto.xlevel2)),
    modelId: parsed.props["model-id"] ?? record.modelId ?? "",
    features: words,
    // KVM lists only the XSAVE state the host has: there the filtered flags size it.
    requested: options.accel === "tcg" ? requested : { ...words },
    caches: record.caches,
    accel: options.accel,
    warnings,
  };
}

function intersect(a: FeatureWords, b: FeatureWords | undefined): FeatureWords {
  if (!b) return a;
  const out: Record<string, number> = {};
  for (const w of FEATURE_WORDS) out[w.key] = ((a[w.key] ?? 0) & (b[w.key] ?? 0)) >>> 0;
  return out;
}
