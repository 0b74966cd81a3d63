// Runs a test program under real QEMU and under vmkit, compares the debugcon dumps, bisects differences

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { DATA_BYTES, type Mode } from "./gen.ts";
import {
  assemble,
  buildProgram,
  type Program,
  type ProgramSpec,
  REGS,
  type StartState,
} from "./program.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const MAIN = path.join(ROOT, "cli", "main.ts");

/** Who runs a program: QEMU, or vmkit with one of its CPU tiers. */
export type Runner = "qemu" | "interp" | "js" | "wasm";
/** The vmkit environment of each tier (`js` is the default block translator). */
const TIER_ENV: Record<Exclude<Runner, "qemu">, Record<string, string>> = {
  interp: { VMKIT_JIT: "0", VMKIT_WASM: "0" },
  js: { VMKIT_JIT: "1", VMKIT_WASM: "0" },
  // Regions compiled on the run loop: a short program would end before background
  // compiles are done, and the wasm tier would hardly run.
  wasm: { VMKIT_JIT: "1", VMKIT_WASM: "1", VMKIT_WASM_ASYNC: "0" },
};

/** x87 status word bits C0..C3, undefined after most arithmetic (SDM vol. 1 §8.1.3). */
const FPU_SW_CC = 0x4700;

/** What a dump says, parsed. */
export interface Dump {
  /** "E vector eip errcode" lines, in order. */
  exceptions: string[];
  regs: bigint[];
  flags: number;
  fpuSw: number;
  fpuCw: number;
  excCount: number;
  /** MXCSR at the end (long mode; null when the dump has none). */
  mxcsr: number | null;
  /** XMM0..XMM15 at the end (long mode; empty when the dump has none). */
  xmm: bigint[];
  data: Uint8Array;
  /** The guest reached the end of the dump. */
  complete: boolean;
  /** A stop that is no dump at all: exit status, timeout, nothing printed. */
  problem: string | null;
}

/** Whether `qemu-system-x86_64` and `nasm` are installed (the suite skips without them). */
export function haveTools(): boolean {
  for (const p of ["qemu-system-x86_64", "nasm"]) {
    try {
      new Deno.Command(p, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    } catch {
      return false;
    }
  }
  return true;
}

/** Runs the image at `bin` and returns what it printed on the debugcon port. */
export async function runImage(
  runner: Runner,
  bin: string,
  dir: string,
  timeoutMs = 120_000,
  extraArgs: string[] = [],
): Promise<{ text: string; code: number; timedOut: boolean; stderr: string }> {
  const log = path.join(dir, `${runner}.log`);
  await Deno.remove(log).catch(() => {});
  const machine = [
    "-M",
    "pc",
    "-m",
    "32",
    "-display",
    "none",
    "-serial",
    "none",
    "-monitor",
    "none",
    "-no-reboot",
    "-debugcon",
    `file:${log}`,
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
    "-kernel",
    bin,
    ...extraArgs,
  ];
  const cmd = runner === "qemu"
    ? new Deno.Command("qemu-system-x86_64", {
      args: ["-accel", "tcg", ...machine],
      stdout: "null",
      stderr: "piped",
    })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "system-x86_64", ...machine],
      env: TIER_ENV[runner],
      stdout: "null",
      stderr: "piped",
    });
  const child = cmd.spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = await Deno.readTextFile(log).catch(() => "");
  return { text, code: out.code, timedOut, stderr: new TextDecoder().decode(out.stderr) };
}

/** Parses a dump; registers are hex of the mode's width. */
export function parseDump(text: string, mode: Mode): Dump {
  const d: Dump = {
    exceptions: [],
    regs: [],
    flags: 0,
    fpuSw: 0,
    fpuCw: 0,
    excCount: 0,
    mxcsr: null,
    xmm: [],
    data: new Uint8Array(DATA_BYTES),
    complete: false,
    problem: null,
  };
  let memLines = 0;
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f[0] === "E") d.exceptions.push(line);
    else if (f[0] === "R") {
      for (let i = 1; i <= REGS[mode].length; i++) d.regs.push(BigInt("0x" + f[i]));
      d.flags = parseInt(f[REGS[mode].length + 1].replace("fl=", ""), 16);
    } else if (f[0] === "F") {
      d.fpuSw = parseInt(f[1], 16);
      d.fpuCw = parseInt(f[2], 16);
    } else if (f[0] === "X") d.excCount = parseInt(f[1], 16);
    else if (f[0] === "S") d.mxcsr = parseInt(f[1], 16);
    else if (f[0] === "V" && /^[0-9a-f]{2}$/.test(f[1]) && /^[0-9a-f]{32}$/.test(f[2] ?? "")) {
      d.xmm[parseInt(f[1], 16)] = BigInt("0x" + f[2]);
    } else if (f[0] === "M") {
      const off = parseInt(f[1], 16) & (DATA_BYTES - 1);
      for (let i = 0; i < f[2].length / 2; i++) {
        d.data[off + i] = parseInt(f[2].slice(2 * i, 2 * i + 2), 16);
      }
      memLines++;
    } else if (f[0] === "END") d.complete = memLines === DATA_BYTES / 64;
    else if (f[0] === "FATAL") d.problem = "unexpected exception: " + d.exceptions.at(-1);
  }
  if (!d.complete && d.problem === null) d.problem = "the dump is incomplete";
  return d;
}

/** One difference between the expected (QEMU) and the actual (vmkit) dump. */
export interface Difference {
  what: string;
  expected: string;
  actual: string;
}

function h(v: number | bigint, digits = 8): string {
  return v.toString(16).padStart(digits, "0");
}

/**
 * The differences between two dumps. EFLAGS bits in `undefinedFlags` and the x87
 * condition codes are masked; everything else must be equal.
 */
export function compareDumps(
  qemu: Dump,
  vmkit: Dump,
  mode: Mode,
  undefinedFlags: number,
): Difference[] {
  const out: Difference[] = [];
  if (qemu.problem !== null || vmkit.problem !== null) {
    if (qemu.problem !== vmkit.problem) {
      out.push({ what: "run", expected: qemu.problem ?? "ok", actual: vmkit.problem ?? "ok" });
    }
  }
  const n = Math.max(qemu.exceptions.length, vmkit.exceptions.length);
  for (let i = 0; i < n; i++) {
    if (qemu.exceptions[i] !== vmkit.exceptions[i]) {
      out.push({
        what: `exception #${i}`,
        expected: qemu.exceptions[i] ?? "none",
        actual: vmkit.exceptions[i] ?? "none",
      });
      break;
    }
  }
  if (qemu.excCount !== vmkit.excCount) {
    out.push({
      what: "exceptions",
      expected: String(qemu.excCount),
      actual: String(vmkit.excCount),
    });
  }
  const digits = mode === "long" ? 16 : 8;
  REGS[mode].forEach((r, i) => {
    if (qemu.regs[i] !== vmkit.regs[i] && qemu.regs[i] !== undefined) {
      out.push({
        what: r,
        expected: h(qemu.regs[i], digits),
        actual: h(vmkit.regs[i] ?? -1n, digits),
      });
    }
  });
  const keep = ~undefinedFlags >>> 0;
  if (((qemu.flags ^ vmkit.flags) & keep) !== 0) {
    out.push({
      what: `eflags (mask ${h(keep)})`,
      expected: h(qemu.flags & keep),
      actual: h(vmkit.flags & keep),
    });
  }
  if (((qemu.fpuSw ^ vmkit.fpuSw) & ~FPU_SW_CC & 0xffff) !== 0) {
    out.push({ what: "fpu sw", expected: h(qemu.fpuSw, 4), actual: h(vmkit.fpuSw, 4) });
  }
  if (qemu.fpuCw !== vmkit.fpuCw) {
    out.push({ what: "fpu cw", expected: h(qemu.fpuCw, 4), actual: h(vmkit.fpuCw, 4) });
  }
  if (qemu.mxcsr !== vmkit.mxcsr) {
    out.push({
      what: "mxcsr",
      expected: qemu.mxcsr === null ? "none" : h(qemu.mxcsr),
      actual: vmkit.mxcsr === null ? "none" : h(vmkit.mxcsr),
    });
  }
  for (let i = 0; i < Math.max(qemu.xmm.length, vmkit.xmm.length); i++) {
    if (qemu.xmm[i] !== vmkit.xmm[i]) {
      out.push({
        what: `xmm${i}`,
        expected: qemu.xmm[i] === undefined ? "none" : h(qemu.xmm[i], 32),
        actual: vmkit.xmm[i] === undefined ? "none" : h(vmkit.xmm[i], 32),
      });
    }
  }
  for (let i = 0; i < DATA_BYTES; i += 8) {
    let differs = false;
    for (let j = i; j < i + 8; j++) differs ||= qemu.data[j] !== vmkit.data[j];
    if (differs) {
      const hexOf = (b: Uint8Array) => [...b.subarray(i, i + 8)].map((x) => h(x, 2)).join("");
      out.push({
        what: `data +${h(i, 3)}`,
        expected: hexOf(qemu.data),
        actual: hexOf(vmkit.data),
      });
    }
  }
  return out;
}

/** The result of one program on QEMU and on one vmkit tier. */
export interface Comparison {
  program: Program;
  qemu: Dump;
  vmkit: Dump;
  diffs: Difference[];
}

/** A cache of QEMU dumps by program source (bisection asks for the same prefix on every tier). */
const qemuCache = new Map<string, Dump>();

/** Builds, assembles and runs one program on QEMU and on `tier`, and compares. */
export async function compareProgram(
  spec: ProgramSpec,
  tier: Exclude<Runner, "qemu">,
  dir: string,
): Promise<Comparison> {
  const program = buildProgram(spec);
  const bin = await assemble(program.source, dir);
  let qemu = qemuCache.get(program.source);
  if (qemu === undefined) {
    qemu = dumpOf(await runImage("qemu", bin, dir), spec.mode);
    if (qemuCache.size > 256) qemuCache.clear();
    qemuCache.set(program.source, qemu);
  }
  // Both sides on their default CPU: qemu64 for system-x86_64.
  const vmkit = dumpOf(await runImage(tier, bin, dir), spec.mode);
  return {
    program,
    qemu,
    vmkit,
    diffs: compareDumps(qemu, vmkit, spec.mode, program.undefinedAtEnd),
  };
}

function dumpOf(
  r: { text: string; code: number; timedOut: boolean; stderr: string },
  mode: Mode,
): Dump {
  const d = parseDump(r.text, mode);
  if (r.timedOut) d.problem = "timed out";
  else if (d.problem === "the dump is incomplete") {
    d.problem = `stopped with exit status ${r.code} before the dump ended` +
      (r.stderr.trim() ? `: ${r.stderr.trim().split("\n").slice(-3).join(" / ")}` : "");
  }
  return d;
}

/** QEMU's state after the first `count` items of a seed, run once (a reproducer's start). */
export async function qemuStateBefore(
  spec: ProgramSpec,
  count: number,
  dir: string,
): Promise<StartState | null> {
  const program = buildProgram({ ...spec, count, passes: 1 });
  const bin = await assemble(program.source, dir);
  const d = dumpOf(await runImage("qemu", bin, dir), spec.mode);
  if (d.problem !== null) return null;
  return {
    regs: d.regs.filter((_, i) => REGS[spec.mode][i] !== "esp" && REGS[spec.mode][i] !== "rsp"),
    flags: d.flags & 0xcd7 | 0x2,
    data: d.data,
    // SSE items start from QEMU's XMM registers and MXCSR too.
    xmm: d.xmm.length > 0 ? d.xmm : undefined,
    mxcsr: d.mxcsr ?? undefined,
  };
}

/** The first differing item of a seed and its smallest reproducer found. */
export interface Finding {
  seed: number;
  tier: Exclude<Runner, "qemu">;
  index: number;
  cls: string;
  insn: string;
  lines: string[];
  diffs: Difference[];
  /** A one-instruction program from QEMU's state before the item that still differs, if any. */
  reproducer: { source: string; passes: number; diffs: Difference[] } | null;
}

/**
 * Bisects the instruction stream of a differing seed: the shortest prefix that still
 * differs ends in the first differing item. Then tries that item alone, started from
 * the state QEMU reached before it, once and with the spec's passes.
 */
export async function bisect(
  spec: ProgramSpec,
  tier: Exclude<Runner, "qemu">,
  dir: string,
): Promise<Finding> {
  let lo = 0, hi = spec.count;
  let last: Comparison | null = null;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    const c = await compareProgram({ ...spec, count: mid }, tier, dir);
    if (c.diffs.length > 0) {
      hi = mid;
      last = c;
    } else lo = mid;
  }
  if (last === null || last.program.items.length !== hi) {
    last = await compareProgram({ ...spec, count: hi }, tier, dir);
  }
  const index = hi - 1;
  const item = last.program.items[index];
  let reproducer: Finding["reproducer"] = null;
  const state = await qemuStateBefore(spec, index, dir);
  if (state !== null) {
    for (const passes of [1, spec.passes]) {
      const c = await compareProgram({ ...spec, single: index, state, passes }, tier, dir);
      if (c.diffs.length > 0) {
        reproducer = { source: c.program.source, passes, diffs: c.diffs };
        break;
      }
      if (passes === spec.passes) break;
    }
  }
  return {
    seed: spec.seed,
    tier,
    index,
    cls: item.cls,
    insn: item.insn,
    lines: item.lines,
    diffs: last.diffs,
    reproducer,
  };
}

/**
 * Runs a program on QEMU alone, twice, and says what is wrong with it, or null: the check
 * of the builder itself (the long-mode variant, which vmkit cannot run yet). The program
 * must run to a whole dump (no exception outside the items that fault on purpose, which
 * would end it with FATAL), and QEMU's two dumps must be equal (nothing in the dump
 * depends on the host or the time).
 */
export async function checkOnQemu(spec: ProgramSpec, dir: string): Promise<string | null> {
  const program = buildProgram(spec);
  const bin = await assemble(program.source, dir);
  const first = dumpOf(await runImage("qemu", bin, dir), spec.mode);
  if (first.problem !== null) return first.problem;
  if (first.regs.length !== REGS[spec.mode].length) {
    return `${first.regs.length} registers in the dump`;
  }
  if (spec.mode === "long" && (first.xmm.length !== 16 || first.mxcsr === null)) {
    return `the dump has ${first.xmm.length} XMM registers and ${
      first.mxcsr === null ? "no" : "an"
    } MXCSR`;
  }
  const second = dumpOf(await runImage("qemu", bin, dir), spec.mode);
  const diffs = compareDumps(first, second, spec.mode, 0);
  if (diffs.length > 0) {
    const d = diffs[0];
    return `QEMU's dump differs between two runs: ${d.what}: ${d.expected} then ${d.actual}`;
  }
  return null;
}
