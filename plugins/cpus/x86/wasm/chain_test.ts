// Wasm regions: chaining without a return to JavaScript (trampoline.ts), background compiles

import assert from "node:assert/strict";
import { RunExit } from "../../../../core/cpu.ts";
import { assertSameRun, type FlatRun, runFlat } from "../jit/test_util.ts";
import type { X86Cpu } from "../cpu.ts";

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function both(
  code: Uint8Array,
  options: Omit<Parameters<typeof runFlat>[1], "jit">,
): [FlatRun, FlatRun] {
  return [
    runFlat(code, { ...options, jit: true, wasmHot: 1 }),
    runFlat(code, { ...options, jit: false }),
  ];
}

/** Regions entered by chaining in run `r`. */
function chained(r: FlatRun): number {
  return r.cpu.blocks?.wasm?.chained ?? 0;
}

/** A call from 0x100000's page to a function on the next page, in a counted loop. */
function twoPageLoop(iterations: number): Uint8Array {
  // 0x100000: mov ecx, N; A: call F; dec ecx; jnz A; hlt
  // 0x101000: F: add edx, eax; inc eax; ret
  const code = new Uint8Array(0x1000 + 6);
  code.set([0xb9, ...le32(iterations), 0xe8, ...le32(0x1000 - 0xa), 0x49, 0x75, 0xf8, 0xf4]);
  code.set([0x01, 0xc2, 0x40, 0xc3], 0x1000);
  return code;
}

Deno.test("wasm regions chain across pages and end in the interpreter's state", () => {
  for (const slices of [[100_000], [700, 13, 4096]]) {
    const [jit, interp] = both(twoPageLoop(20_000), {
      slices,
      setup: (_ram, cpu) => void (cpu.core.regs[4] = 0x80000),
    });
    assertSameRun(jit, interp, `two-page loop, slices ${slices}`);
    assert.equal(interp.exits.at(-1), RunExit.HaltNoInterrupts);
    const w = jit.cpu.blocks!.wasm!;
    assert.ok(chained(jit) > 10_000, `${chained(jit)} chained entries, ${w.entries} from JS`);
  }
});

/**
 * Paging on, identity-mapped but for linear page 0x401, which maps to physical 0x500000
 * and then, rewritten by the guest and flushed with INVLPG, to 0x600000: the region
 * chained to at 0x401000 must not outlive the mapping.
 */
function remapGuest(): { code: Uint8Array; setup: (ram: Uint8Array, cpu: X86Cpu) => void } {
  const pd = 0x300000, pt = 0x301000;
  const pte401 = pt + 0x401 * 4;
  const b: number[] = [];
  const loop = (n: number) => {
    b.push(0xb9, ...le32(n)); // mov ecx, n
    const a = 0x400000 + b.length;
    b.push(0xe8, ...le32(0x401000 - (a + 5))); // A: call 0x401000
    b.push(0x49, 0x75, 0xf8); // dec ecx; jnz A
  };
  loop(3000);
  b.push(0xc7, 0x05, ...le32(pte401), ...le32(0x600003)); // mov dword [pte], 0x600003
  b.push(0x0f, 0x01, 0x3d, ...le32(0x401000)); // invlpg [0x401000]
  loop(3000);
  b.push(0xf4);
  const code = new Uint8Array(b);
  return {
    code,
    setup: (ram, cpu) => {
      const v = new DataView(ram.buffer, ram.byteOffset);
      for (let i = 0; i < 2048; i++) {
        v.setUint32(pt + i * 4, i === 0x401 ? 0x500003 : (i << 12) | 3, true);
      }
      v.setUint32(pd, pt | 3, true);
      v.setUint32(pd + 4, (pt + 0x1000) | 3, true);
      for (let i = 2; i < 1024; i++) v.setUint32(pd + i * 4, 0, true);
      ram.set([0x83, 0xc2, 0x01, 0xc3], 0x500000); // add edx, 1; ret
      ram.set([0x81, 0xc2, ...le32(0x100), 0xc3], 0x600000); // add edx, 0x100; ret
      const c = cpu.core;
      c.regs[2] = 0;
      c.regs[4] = 0x380000;
      c.cr3 = pd;
      c.cr0 |= 0x80000000;
      c.idtLimit = 0;
    },
  };
}

Deno.test("a chained region is not entered after INVLPG remaps its page", () => {
  const { code, setup } = remapGuest();
  for (const slices of [[100_000], [997, 5000]]) {
    const [jit, interp] = both(code, { load: 0x400000, slices, setup });
    assertSameRun(jit, interp, `remap, slices ${slices}`);
    assert.equal(interp.registers.edx, 3000 + 3000 * 0x100);
    assert.ok(chained(jit) > 1000, `${chained(jit)} chained entries`);
  }
});

Deno.test("regions compiled in the background are entered once ready, with the same result", async () => {
  const code = twoPageLoop(20_000);
  const setup = (_ram: Uint8Array, cpu: X86Cpu) => void (cpu.core.regs[4] = 0x80000);
  const interp = runFlat(code, { jit: false, setup });
  // The first turns run before any module is ready: JavaScript blocks and the interpreter.
  const jit = runFlat(code, {
    jit: true,
    wasmHot: 1,
    wasmAsync: true,
    setup,
    maxInstructions: 3000,
  });
  const w = jit.cpu.blocks!.wasm!;
  assert.ok(w.regions > 0, "regions were started");
  assert.equal(w.retired, 0, "no region ran before its module was ready");
  await new Promise((resolve) => setTimeout(resolve, 100));
  let exit: number = RunExit.Budget;
  while (exit === RunExit.Budget) exit = jit.cpu.run(10_000);
  assert.equal(exit, interp.exits.at(-1));
  assert.deepEqual(jit.cpu.registers(), interp.registers);
  assert.equal(jit.cpu.instructionsRetired, interp.retired);
  assert.ok(w.retired > 50_000, `${w.retired} instructions in wasm`);
});
