// The short differential run: generated x86 programs on real QEMU and on each vmkit CPU tier, dumps compared

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { CF, DATA_BYTES, Generator, OF, STATUS } from "./gen.ts";
import {
  checkOnQemu,
  compareDumps,
  compareProgram,
  type Dump,
  haveTools,
  parseDump,
  runImage,
  type Runner,
} from "./harness.ts";
import { excludeKnown, loadKnown } from "./known.ts";
import { assemble, buildProgram } from "./program.ts";

const HAVE = haveTools();
const NEEDS = HAVE
  ? ""
  : " (ignored: qemu-system-x86_64 or nasm is missing; apt-get install qemu-system-x86 nasm)";

/** The short run: a few seeds, small N; known differences (known_differences.json) left out. */
const SHORT_SEEDS = [1, 2];
const SHORT_N = 300;

async function shortRun(tier: Exclude<Runner, "qemu">, passes: number): Promise<void> {
  const exclude = excludeKnown(loadKnown());
  const dir = await Deno.makeTempDir({ prefix: "vmkit-cpudiff-" });
  try {
    const failures: string[] = [];
    for (const seed of SHORT_SEEDS) {
      const c = await compareProgram(
        { seed, count: SHORT_N, mode: "pm32", passes, exclude },
        tier,
        dir,
      );
      assert.equal(c.qemu.problem, null, `QEMU did not finish seed ${seed}: ${c.qemu.problem}`);
      if (c.diffs.length > 0) {
        failures.push(
          `seed ${seed}: ${
            c.diffs.slice(0, 3).map((d) => `${d.what}: qemu ${d.expected}, vmkit ${d.actual}`).join(
              "; ",
            )
          }` +
            ` (replay: deno run -A tests/cpu_diff/run.ts --seeds=${seed} --n=${SHORT_N} --passes=${passes} --tiers=${tier})`,
        );
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "cpu_diff: generated 32-bit programs end the same on QEMU and the vmkit interpreter" +
    NEEDS,
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  fn: () => shortRun("interp", 2),
});

Deno.test({
  name: "cpu_diff: generated 32-bit programs end the same on QEMU and vmkit's block translator" +
    NEEDS,
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  fn: () => shortRun("js", 60),
});

Deno.test({
  name: "cpu_diff: generated 32-bit programs end the same on QEMU and vmkit's wasm tier" + NEEDS,
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  fn: () => shortRun("wasm", 300),
});

Deno.test({
  name:
    "cpu_diff: a long-mode program with REX, RIP-relative and SSE/SSE2 items runs to its dump on QEMU in 64-bit mode, the same dump twice" +
    NEEDS,
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vmkit-cpudiff-" });
    try {
      const spec = { seed: 7, count: 200, mode: "long" as const, passes: 3 };
      const p = buildProgram(spec);
      const classes = new Set(p.items.map((it) => it.cls));
      for (const c of ["rex", "rip", "sse"]) assert.ok(classes.has(c), `no ${c} item in seed 7`);
      const r = await runImage("qemu", await assemble(p.source, dir), dir);
      const d = parseDump(r.text, "long");
      assert.equal(d.problem, null, r.text.slice(0, 500));
      assert.equal(d.regs.length, 13);
      // 32-bit code cannot hold a register value above 4 GiB: the body ran in 64-bit mode.
      assert.ok(d.regs.some((v) => v > 0xffffffffn), d.regs.map((v) => v.toString(16)).join(" "));
      assert.equal(d.exceptions.length, Math.min(d.excCount, 64));
      assert.equal(d.xmm.length, 16);
      assert.notEqual(d.mxcsr, null);
      // Every exception comes from an item that faults on purpose (else FATAL above):
      // #DE, #BP, #UD (UD2), #GP (a misaligned MOVAPS/MOVDQA) and #PF.
      for (const e of d.exceptions) assert.match(e, /^E (00|03|06|0d|0e) /);
      // The same program again: the same dump (checkOnQemu does both for run.ts --mode=long).
      assert.equal(await checkOnQemu(spec, dir), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cpu_diff: generated long-mode programs end the same on QEMU and the vmkit interpreter" +
    NEEDS,
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const exclude = excludeKnown(loadKnown());
    const dir = await Deno.makeTempDir({ prefix: "vmkit-cpudiff-" });
    try {
      const failures: string[] = [];
      for (const seed of [7, ...SHORT_SEEDS]) {
        const c = await compareProgram(
          { seed, count: SHORT_N, mode: "long", passes: 3, exclude },
          "interp",
          dir,
        );
        assert.equal(c.qemu.problem, null, `QEMU did not finish seed ${seed}: ${c.qemu.problem}`);
        if (c.diffs.length > 0) {
          failures.push(
            `seed ${seed}: ${
              c.diffs.slice(0, 3).map((d) => `${d.what}: qemu ${d.expected}, vmkit ${d.actual}`)
                .join("; ")
            } (replay: deno run -A tests/cpu_diff/run.ts --mode=long --vmkit-long --seeds=${seed}` +
              ` --n=${SHORT_N} --passes=3 --tiers=interp)`,
          );
        }
      }
      assert.deepEqual(failures, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Generator gives the same stream for a seed, whatever the length asked", () => {
  const a = new Generator(42, "pm32"), b = new Generator(42, "pm32");
  const xs = Array.from({ length: 200 }, () => a.next());
  const ys = Array.from({ length: 100 }, () => b.next());
  assert.deepEqual(xs.slice(0, 100), ys);
  const other = new Generator(43, "pm32");
  assert.notDeepEqual(xs.slice(0, 50), Array.from({ length: 50 }, () => other.next()));
});

Deno.test("Generator puts a CMP before a flag reader whose flags an earlier item left undefined", () => {
  const g = new Generator(5, "pm32");
  let undef = CF; // the body's start
  let readers = 0, guarded = 0;
  for (let i = 0; i < 3000; i++) {
    const it = g.next();
    if (it.reads !== 0) readers++;
    if (it.reads & undef) {
      assert.match(it.lines[0], /^cmp /, `${it.insn} after undefined ${undef.toString(16)}`);
      guarded++;
    }
    undef = it.undefAfter;
    assert.equal(undef & ~STATUS, 0);
  }
  assert.ok(readers > 100 && guarded > 10, `${readers} readers, ${guarded} guarded`);
});

Deno.test("compareDumps() masks the undefined EFLAGS bits and the x87 condition codes only", () => {
  const base = (): Dump => ({
    exceptions: ["E 00 00100120 00000000"],
    regs: [1n, 2n, 3n, 4n, 5n, 6n, 7n, 0x70000n],
    flags: 0x202,
    fpuSw: 0,
    fpuCw: 0x37f,
    excCount: 1,
    mxcsr: null,
    xmm: [],
    data: new Uint8Array(DATA_BYTES),
    complete: true,
    problem: null,
  });
  const q = base(), v = base();
  v.flags = 0x202 | OF;
  v.fpuSw = 0x4100;
  assert.deepEqual(compareDumps(q, v, "pm32", OF), []);
  assert.equal(compareDumps(q, v, "pm32", 0).length, 1);
  v.data[100] = 1;
  v.fpuSw = 0x20;
  assert.deepEqual(compareDumps(q, v, "pm32", OF).map((d) => d.what), ["fpu sw", "data +060"]);
});

Deno.test("compareDumps() reports a differing XMM register and MXCSR of a long-mode dump", () => {
  const base = (): Dump => ({
    exceptions: [],
    regs: Array.from({ length: 13 }, (_, i) => BigInt(i)),
    flags: 0x202,
    fpuSw: 0,
    fpuCw: 0x37f,
    excCount: 0,
    mxcsr: 0x1f80,
    xmm: Array.from({ length: 16 }, (_, i) => BigInt(i) << 64n),
    data: new Uint8Array(DATA_BYTES),
    complete: true,
    problem: null,
  });
  const q = base(), v = base();
  assert.deepEqual(compareDumps(q, v, "long", 0), []);
  v.xmm[9] ^= 1n << 127n;
  v.mxcsr = 0x1fa0;
  assert.deepEqual(compareDumps(q, v, "long", 0).map((d) => d.what), ["mxcsr", "xmm9"]);
  v.xmm.length = 15;
  assert.ok(compareDumps(q, v, "long", 0).some((d) => d.what === "xmm15" && d.actual === "none"));
});

Deno.test("Generator: rex and rip items come in long mode only, sse in both, with the flags tracked", () => {
  const long = new Generator(11, "long"), pm32 = new Generator(11, "pm32");
  const seen = new Set<string>(), seen32 = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const it = long.next();
    seen.add(it.cls);
    assert.equal(it.undefAfter & ~STATUS, 0);
    const it32 = pm32.next();
    seen32.add(it32.cls);
    assert.ok(!["rex", "rip"].includes(it32.cls));
    // 32-bit SSE items name XMM0..7 only, no REX registers, no RIP-relative operands.
    if (it32.cls === "sse") {
      assert.doesNotMatch(it32.lines.join(";"), /xmm(8|9|1\d)|\br\d+d?\b|\brel\b|\br[a-d]x\b/);
    }
  }
  for (const c of ["rex", "rip", "sse"]) assert.ok(seen.has(c), c);
  assert.ok(seen32.has("sse"));
});
