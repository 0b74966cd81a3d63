// Differential test: CPUID as the x86 interpreter answers it against real QEMU 7.2 TCG, feature flags masked to what vmkit implements
//
// The CPUID dump guest (cpuid_guest.asm) runs under `vmkit system-*` (the interpreter
// plugin) and under `qemu-system-* -accel tcg` with the same `-cpu` and `-smp`. QEMU's
// feature words (leaf 1 and 0x80000001 ECX/EDX) are masked to the interpreter's flags
// (models.ts IMPLEMENTED, plus HTT which QEMU sets from the topology); every other
// register of every leaf must be equal.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { FeatureWord } from "../../core/x86_cpu_models.ts";
import { IMPLEMENTED } from "../../plugins/cpus/x86/models.ts";
import { buildGuest, type CpuidLine, hex, runGuest } from "./guest.ts";

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../cli/main.ts");

/** Leaves 0-4 (leaf 4 subleaves 0-4), the hypervisor leaves, 0x80000000-0x80000008. */
function leaves(): Array<[number, number]> {
  const out: Array<[number, number]> = [[0, 0], [1, 0], [2, 0], [3, 0]];
  for (let s = 0; s <= 4; s++) out.push([4, s]);
  out.push([0x40000000, 0], [0x40000001, 0]);
  for (let leaf = 0x80000000; leaf <= 0x80000008; leaf++) out.push([leaf, 0]);
  return out;
}

interface Case {
  /** `system-x86_64` or `system-i386`. */
  system: string;
  args: string[];
}

const CASES: Case[] = [
  { system: "system-i386", args: [] }, // the default model, qemu32
  { system: "system-x86_64", args: [] }, // the default model, qemu64 (long mode)
  { system: "system-x86_64", args: ["-cpu", "qemu64", "-smp", "2"] },
  { system: "system-x86_64", args: ["-cpu", "qemu32"] },
  { system: "system-x86_64", args: ["-cpu", "pentium3"] },
  { system: "system-x86_64", args: ["-cpu", "qemu32,-apic"] },
  { system: "system-i386", args: ["-cpu", "qemu32", "-smp", "2"] },
  { system: "system-x86_64", args: ["-cpu", "qemu32", "-smp", "4,cores=2,threads=2"] },
];

const HTT = 1 << 28;
/** CPUID.80000001h:ECX CmpLegacy, from the topology like HTT. */
const CMP_LEGACY = 1 << 1;
/** The leaf-1 EDX flags an AMD vendor repeats in CPUID.80000001h:EDX. */
const AMD_ALIASES = 0x0183f3ff;

/** QEMU's answer with the feature words limited to the interpreter's flags. */
function masked(lines: CpuidLine[]): CpuidLine[] {
  const level = lines.find((l) => l.leaf === 0)!.regs[0];
  const top = lines.find((l) => l.leaf === 0x80000000)!.regs[0];
  const xlevel = top >= 0x80000000 ? top : 0;
  const m = (word: FeatureWord) => IMPLEMENTED[word] ?? 0;
  return lines.map((l) => {
    // A leaf past the top is answered as the highest basic leaf (QEMU's clamp).
    const max = l.leaf >= 0x80000000 ? xlevel : l.leaf >= 0x40000000 ? 0x40000001 : level;
    const leaf = l.leaf <= max ? l.leaf : level;
    const [a, b, c, d] = l.regs;
    if (leaf === 1) {
      return { ...l, regs: [a, b, (c & m("1_ECX")) >>> 0, (d & (m("1_EDX") | HTT)) >>> 0] };
    }
    if (leaf === 0x80000001) {
      // An AMD vendor (qemu64) repeats leaf 1's EDX flags here (QEMU's
      // CPUID_EXT2_AMD_ALIASES), and QEMU sets CmpLegacy from the topology as HTT.
      const ecx = c & (m("8000_0001_ECX") | CMP_LEGACY);
      const edx = d & (m("8000_0001_EDX") | (m("1_EDX") & AMD_ALIASES));
      return { ...l, regs: [a, b, ecx >>> 0, edx >>> 0] };
    }
    return l;
  });
}

Deno.test({
  name: "the x86 interpreter's CPUID equals QEMU 7.2 TCG's within the flags it implements",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386", "nasm"),
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vmkit-interp-cpuid-" });
    try {
      const asked = leaves();
      const bin = await buildGuest(asked, dir);
      const differences: string[] = [];
      let compared = 0;
      for (const c of CASES) {
        const label = `${c.system} ${c.args.join(" ")}`;
        const qemuCmd = [`qemu-${c.system}`, "-accel", "tcg"];
        const qemu = await runGuest(qemuCmd, bin, dir, c.args);
        const vmkitCmd = [Deno.execPath(), "run", "-A", "--quiet", MAIN, c.system];
        const vmkit = await runGuest(vmkitCmd, bin, dir, c.args);
        assert.equal(qemu.lines.length, asked.length, `${label}: QEMU answered every leaf`);
        assert.equal(vmkit.lines.length, asked.length, `${label}: vmkit answered every leaf`);
        const want = masked(qemu.lines);
        for (let i = 0; i < asked.length; i++) {
          const q = want[i], v = vmkit.lines[i];
          assert.equal(v.leaf, q.leaf);
          assert.equal(v.subleaf, q.subleaf);
          compared++;
          if (q.regs.some((x, j) => x !== v.regs[j])) {
            differences.push(
              `${label} leaf ${hex(q.leaf)}.${q.subleaf}: QEMU (masked) ${q.regs.map(hex)} ` +
                `vmkit ${v.regs.map(hex)}`,
            );
          }
        }
      }
      console.log(`interpreter_cpuid_test: ${CASES.length} cases, ${compared} leaves compared`);
      assert.deepEqual(differences, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
