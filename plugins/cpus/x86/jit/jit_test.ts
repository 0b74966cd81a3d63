// Tests for the block translator: the same guests with translation on and off end identically

import assert from "node:assert/strict";
import { loopGuests } from "../../../../bench/guests/loops.ts";
import { buildDemoGuest } from "../../../../tools/demo_guest.ts";
import { RunExit } from "../../../../core/cpu.ts";
import type { X86Cpu } from "../cpu.ts";
import { assertSameRun, type FlatRun, runFlat } from "./test_util.ts";

/** Where the fake Multiboot information and the command line sit for the bench guests. */
const MBI = 0x7000, CMDLINE = 0x8000, LOADER_NAME = 0x8100;

function multibootSetup(cmdline: string) {
  return (ram: Uint8Array, cpu: X86Cpu) => {
    const text = new TextEncoder();
    ram.set(text.encode(`${cmdline}\0`), CMDLINE);
    ram.set(text.encode("test\0"), LOADER_NAME);
    const mbi = new DataView(ram.buffer, ram.byteOffset + MBI);
    mbi.setUint32(8, 15 * 1024, true); // mem_upper in KiB
    mbi.setUint32(16, CMDLINE, true);
    mbi.setUint32(64, LOADER_NAME, true);
    cpu.core.regs[0] = 0x2badb002;
    cpu.core.regs[3] = MBI;
  };
}

function entryOf(image: Uint8Array): number {
  return new DataView(image.buffer, image.byteOffset).getUint32(28, true);
}

function both(
  code: Uint8Array,
  options: Omit<Parameters<typeof runFlat>[1], "jit">,
): [FlatRun, FlatRun] {
  return [runFlat(code, { ...options, jit: true }), runFlat(code, { ...options, jit: false })];
}

/** A small seeded generator (xorshift32), so failures reproduce. */
function random(seed: number): (n: number) => number {
  let s = seed | 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

const DATA = 0x200000;
/** Registers the random code may change: EAX, EDX, EBX, EBP, EDI (ECX counts, ESI points). */
const DST = [0, 2, 3, 5, 7];
const DST8 = [0, 2, 3, 4, 6, 7];

/**
 * A `setup` that turns paging on with 0..8 MiB identity-mapped through page tables at 3
 * MiB, except page `page`, whose entry is `pte`; CR0 gets `cr0` too (WP, say). No IDT,
 * so a fault escalates to a shutdown that freezes the state at the faulting instruction.
 */
function pagedSetup(page: number, pte: number, cr0: number) {
  const pd = 0x300000, pt = 0x301000;
  return (ram: Uint8Array, cpu: X86Cpu) => {
    const v = new DataView(ram.buffer, ram.byteOffset);
    // 4 MiB pages would need PSE: two page tables, for 0..4 MiB and 4..8 MiB.
    for (let i = 0; i < 2048; i++) v.setUint32(pt + i * 4, i === page ? pte : (i << 12) | 3, true);
    v.setUint32(pd, pt | 3, true);
    v.setUint32(pd + 4, (pt + 0x1000) | 3, true);
    for (let i = 2; i < 1024; i++) v.setUint32(pd + i * 4, 0, true);
    const c = cpu.core;
    c.cr3 = pd;
    c.cr0 |= 0x80000000 | cr0;
    c.idtLimit = 0;
  };
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** One random instruction from the translated subset and a few the interpreter keeps. */
function randomInsn(r: (n: number) => number): number[] {
  const pick = <T>(a: T[]) => a[r(a.length)];
  const modrm = (mod: number, reg: number, rm: number) => (mod << 6) | (reg << 3) | rm;
  const d = () => r(31) * 4 + r(2) * r(4); // [esi + d8], mostly aligned
  const dst = pick(DST), src = r(8), op = r(8), cc = r(16);
  switch (r(30 + 5)) {
    case 0:
      return [op * 8 + 1, modrm(3, src, dst)];
    case 1:
      return [op * 8 + 3, modrm(3, dst, src)];
    case 2:
      return [op * 8, modrm(3, pick(DST8), pick(DST8))];
    case 3:
      return [0x83, modrm(3, op, dst), r(256)];
    case 4:
      return [0x81, modrm(3, op, dst), ...le32(r(0x7fffffff) * (r(2) ? 1 : 3))];
    case 5:
      return r(2) ? [op * 8 + 5, ...le32(r(0xffff) << r(17))] : [op * 8 + 4, r(256)];
    case 6:
      return [op * 8 + 1, modrm(1, src, 6), d()];
    case 7:
      return [op * 8 + 3, modrm(1, dst, 6), d()];
    case 8:
      return [0x80, modrm(1, op, 6), d(), r(256)];
    case 9:
      return [(r(2) ? 0x40 : 0x48) + dst];
    case 10:
      return [0xff, modrm(1, r(2), 6), d()];
    case 11:
      return [0xc1, modrm(3, r(8), dst), r(34)];
    case 12:
      return [r(2) ? 0xd1 : 0xd0, modrm(r(2) ? 1 : 3, pick([4, 5, 7, r(8)]), r(2) ? 6 : dst), d()]
        .slice(0, 3);
    case 13:
      return [0x0f, pick([0xb6, 0xb7, 0xbe, 0xbf]), modrm(1, dst, 6), d()];
    case 14:
      return [0x0f, pick([0xb6, 0xbe]), modrm(3, dst, pick(DST8))];
    case 15:
      return pick([
        [0x8b, modrm(1, dst, 6), d()],
        [0x89, modrm(1, src, 6), d()],
        [0xb8 + dst, ...le32(r(0x7fffffff))],
        [0xb0 + pick(DST8), r(256)],
        [0x88, modrm(1, pick(DST8), 6), d()],
        [0x8a, modrm(1, pick(DST8), 6), d()],
        [0xc7, modrm(1, 0, 6), d(), ...le32(r(0x7fffffff))],
        [0xc6, modrm(1, 0, 6), d(), r(256)],
      ]);
    case 16:
      return [0x8d, modrm(1, dst, 4), (r(4) << 6) | (pick([0, 2, 3, 5, 6, 7]) << 3) | r(8), r(256)];
    case 17:
      return r(2) ? [0x50 + src, 0x58 + dst] : [0x6a, r(256), 0x58 + dst];
    case 18:
      return pick([
        [0x85, modrm(3, src, dst)],
        [0xa9, ...le32(r(0x7fffffff))],
        [0xa8, r(256)],
        [0xf7, modrm(1, 0, 6), d(), ...le32(r(0x7fffffff))],
        [0x84, modrm(1, pick(DST8), 6), d()],
      ]);
    case 19:
      return [r(2) ? 0xf7 : 0xf6, modrm(r(2) ? 3 : 1, 2 + r(2), r(2) ? dst : 6), d()].slice(
        0,
        3,
      );
    case 20:
      return [0x0f, 0x90 + cc, modrm(3, 0, pick(DST8))];
    case 21:
      return pick([[0x99], [0x98], [0x90], [0x87, modrm(3, dst, pick(DST))]]);
    case 22: {
      const next = randomInsn(r);
      return [0x70 + cc, next.length, ...next];
    }
    case 23: // the interpreter's share: IMUL, flags by hand, LAHF, BSWAP, ROL
      return pick([
        [0x0f, 0xaf, modrm(3, dst, src)],
        [0x9c, 0x58 + dst],
        [pick([0xf5, 0xf8, 0xf9])],
        [0x9f],
        [0x0f, 0xc8 + dst],
        [0xc1, modrm(3, 0, dst), 1 + r(31)],
      ]);
    case 24:
      return [0x0f, 0x80 + cc, ...le32(0)];
    case 25: // 16-bit operands (66h)
      return pick([
        [0x66, op * 8 + 1, modrm(3, src, dst)],
        [0x66, op * 8 + 3, modrm(1, dst, 6), d()],
        [0x66, op * 8 + 5, r(256), r(256)],
        [0x66, 0x89, modrm(1, src, 6), d()],
        [0x66, 0x8b, modrm(1, dst, 6), d()],
        [0x66, 0xc1, modrm(3, pick([4, 5, 7]), dst), r(34)],
        [0x66, 0xd1, modrm(1, pick([4, 5, 7]), 6), d()],
        [0x66, 0x81, modrm(3, op, dst), r(256), r(256)],
        [0x66, 0x83, modrm(3, op, dst), r(256)],
        [0x66, 0xb8 + dst, r(256), r(256)],
        [0x66, 0xf7, modrm(3, 2 + r(2), dst)],
        [0x66, (r(2) ? 0x40 : 0x48) + dst],
        [0x66, 0x0f, pick([0xb6, 0xbe]), modrm(3, dst, pick(DST8))],
        [0x66, 0xc7, modrm(1, 0, 6), d(), r(256), r(256)],
      ]);
    case 26: // IMUL and the conditions that read its flags
      return pick([
        [0x0f, 0xaf, modrm(3, dst, src)],
        [0x0f, 0xaf, modrm(1, dst, 6), d()],
        [0x66, 0x0f, 0xaf, modrm(3, dst, src)],
        [0x0f, 0xaf, modrm(3, dst, src), 0x0f, 0x90 + cc, modrm(3, 0, pick(DST8))],
        [0x0f, 0xaf, modrm(3, dst, src), 0x70 + cc, 1, 0x90],
      ]);
    case 27: // MUL, IMUL, DIV, IDIV r/m32 on EDX:EAX, divisors mostly safe (EBX = 3..258)
      return pick([
        [0xf7, modrm(3, 4 + r(2), pick(DST))],
        [0xf7, modrm(1, 4 + r(2), 6), d()],
        [0xbb, ...le32(3 + r(256)), 0x31, 0xd2, 0xf7, modrm(3, 6, 3)],
        [0xbb, ...le32(3 + r(256)), 0x99, 0xf7, modrm(3, 7, 3)],
        [0xbb, ...le32(-3 - r(256)), 0x99, 0xf7, modrm(3, 7, 3)],
        [0x31, 0xd2, 0xf7, modrm(1, 6, 6), d()],
        [0xf7, modrm(3, 4, pick(DST)), 0x0f, 0x90 + cc, modrm(3, 0, pick(DST8))],
      ]);
    case 28: // CMOVcc (32 and 16 bits, register and memory sources), the 16-bit NOP
      return pick([
        [0x0f, 0x40 + cc, modrm(3, dst, src)],
        [0x0f, 0x40 + cc, modrm(1, dst, 6), d()],
        [0x66, 0x0f, 0x40 + cc, modrm(3, dst, src)],
        [0x39, modrm(3, src, dst), 0x0f, 0x40 + cc, modrm(3, dst, src)],
        [0x66, 0x90],
      ]);
    case 29: // shifts by CL (ECX is the loop counter), rotates, SHLD/SHRD, then a condition
      return [
        ...pick([
          [0xd3, modrm(3, pick([0, 1, 4, 5, 7]), dst)],
          [0xd3, modrm(1, pick([0, 1, 4, 5, 7]), 6), d()],
          [0xd2, modrm(3, pick([4, 5, 7]), pick(DST8))],
          [0x66, 0xd3, modrm(3, pick([4, 5, 7]), dst)],
          [0xc1, modrm(3, r(2), dst), r(32)],
          [0xd1, modrm(1, r(2), 6), d()],
          [0x0f, pick([0xa4, 0xac]), modrm(3, src, dst), r(32)],
          [0x0f, pick([0xa5, 0xad]), modrm(3, src, dst)],
          [0x0f, pick([0xa4, 0xac]), modrm(1, src, 6), d(), r(32)],
          [0x0f, pick([0xa5, 0xad]), modrm(1, src, 6), d()],
        ]),
        ...pick([[], [0x0f, 0x90 + cc, modrm(3, 0, pick(DST8))], [0x70 + cc, 1, 0x90], [
          0x0f,
          0x40 + cc,
          modrm(3, dst, src),
        ]]),
      ];
    case 30: { // LOCK'd read-modify-write of memory
      const alu = r(7);
      return pick([
        [0xf0, alu * 8 + 1, modrm(1, src, 6), d()],
        [0xf0, alu * 8, modrm(1, pick(DST8), 6), d()],
        [0xf0, 0x83, modrm(1, alu, 6), d(), r(256)],
        [0xf0, 0xff, modrm(1, r(2), 6), d()],
        [0xf0, 0xf7, modrm(1, 2 + r(2), 6), d()],
        [0x66, 0xf0, alu * 8 + 1, modrm(1, src, 6), d()],
      ]);
    }
    default:
      return [op * 8 + 1, modrm(3, src, dst)];
  }
}

/** `mov esi, DATA; mov ecx, n; loop: <body>; dec ecx; jnz loop; hlt`. */
function randomProgram(seed: number, iterations: number): Uint8Array {
  const r = random(seed);
  const body: number[] = [];
  const count = 5 + r(40);
  for (let i = 0; i < count; i++) body.push(...randomInsn(r));
  // dec ecx; jnz loop (rel32 from the end of the jnz back to the body start)
  body.push(0x49, 0x0f, 0x85, ...le32(-(body.length + 7)));
  return new Uint8Array([0xbe, ...le32(DATA), 0xb9, ...le32(iterations), ...body, 0xf4]);
}

/** Random programs per run; `VMKIT_RANDOM_SEEDS=500` for a longer search by hand. */
const SEEDS = Number(Deno.env.get("VMKIT_RANDOM_SEEDS") ?? 60);

/** The translators under test: JavaScript blocks, and the wasm tier compiling over them. */
const MODES = [
  { name: "the block translator", extra: {}, wasm: false },
  { name: "the wasm tier", extra: { wasmHot: 1 }, wasm: true },
];

for (const mode of MODES) {
  Deno.test(`X86Cpu with ${mode.name} runs every bench loop guest like the interpreter`, () => {
    let wasmRetired = 0;
    for (const guest of loopGuests()) {
      for (const slices of [[100_000], [997, 13, 4096, 1]]) {
        const [jit, interp] = both(guest.image, {
          ...mode.extra,
          entry: entryOf(guest.image),
          slices,
          setup: multibootSetup("exit 700"),
        });
        assert.equal(interp.exits.at(-1), RunExit.HaltNoInterrupts, guest.name);
        assertSameRun(jit, interp, `${guest.name} in slices ${slices}`);
        assert.ok(jit.cpu.blocks!.translated > 0, `${guest.name}: nothing was translated`);
        if (mode.wasm) {
          const w = jit.cpu.blocks!.wasm!;
          assert.equal(w.failed, 0, `${guest.name}: a wasm module did not compile`);
          wasmRetired += w.retired;
        }
      }
    }
    if (mode.wasm) assert.ok(wasmRetired > 10_000, `only ${wasmRetired} instructions ran in wasm`);
  });

  Deno.test(`X86Cpu with ${mode.name} runs the demo guest like the interpreter`, () => {
    const image = buildDemoGuest();
    const [jit, interp] = both(image, {
      ...mode.extra,
      entry: entryOf(image),
      setup: multibootSetup("demo"),
    });
    assertSameRun(jit, interp, "demo guest");
    const text = new TextDecoder().decode(new Uint8Array(jit.output.slice(0, -1)));
    assert.match(text, /Sum of the primes below 10000: 5736396/);
  });

  Deno.test(`X86Cpu with ${mode.name} matches the interpreter on random instruction streams`, () => {
    let translated = 0, wasmRetired = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const code = randomProgram(seed * 7919, 150);
      const r = random(seed);
      const data = Uint8Array.from({ length: 256 }, () => r(256));
      for (const slices of [[1_000_000], [41, 3, 1000]]) {
        const [jit, interp] = both(code, {
          ...mode.extra,
          slices,
          maxInstructions: 200_000,
          setup: (ram, cpu) => {
            ram.set(data, DATA);
            cpu.core.regs.set([
              0x12345678,
              0,
              0x9abcdef0,
              0x0fedcba9,
              0x80000,
              0x55,
              0,
              0x7fffffff,
            ]);
          },
        });
        assertSameRun(jit, interp, `seed ${seed} in slices ${slices}`);
        translated += jit.cpu.blocks!.translated;
        wasmRetired += jit.cpu.blocks!.wasm?.retired ?? 0;
        assert.equal(jit.cpu.blocks!.wasm?.failed ?? 0, 0, "a wasm module did not compile");
      }
    }
    assert.ok(translated > 100, `only ${translated} blocks translated`);
    if (mode.wasm) assert.ok(wasmRetired > 200_000, `only ${wasmRetired} instructions in wasm`);
  });

  Deno.test(`X86Cpu with ${mode.name} runs a loop longer than one translation`, () => {
    // loop: test cl, 1; jnz tail; 1450 x add eax, ecx; tail: 50 x xor ebx, eax; dec ecx;
    // jnz loop; hlt. The branch target and the straight run both pass the size limits.
    const run = Array.from({ length: 1450 }, () => [0x01, 0xc8]).flat();
    const tail = Array.from({ length: 50 }, () => [0x31, 0xc3]).flat();
    const head = [0xf6, 0xc1, 0x01, 0x0f, 0x85, ...le32(run.length)];
    const loop = [...head, ...run, ...tail, 0x49];
    const code = new Uint8Array([...loop, 0x0f, 0x85, ...le32(-(loop.length + 6)), 0xf4]);
    const [jit, interp] = both(code, {
      ...mode.extra,
      slices: [5000, 7, 100_000],
      setup: (_ram, cpu) => void (cpu.core.regs[1] = 300),
    });
    assertSameRun(jit, interp, "long loop");
    if (mode.wasm) assert.ok(jit.cpu.blocks!.wasm!.retired > 0, "nothing ran in wasm");
  });

  Deno.test(`X86Cpu with ${mode.name} sees code the guest rewrites inside a running loop`, () => {
    // loop: add eax, imm32 (at +0); inc dword [loop + 1]; dec ecx; jnz loop; hlt
    const at = 0x100000;
    const code = new Uint8Array([
      0x05,
      ...le32(1), // add eax, 1 (its immediate grows every pass)
      0xff,
      0x05,
      ...le32(at + 1), // inc dword [at + 1]
      0x49, // dec ecx
      0x75,
      0xf2, // jnz at
      0xf4,
    ]);
    const [jit, interp] = both(code, {
      ...mode.extra,
      setup: (_ram, cpu) => void (cpu.core.regs[1] = 300),
    });
    assertSameRun(jit, interp, "self-modifying loop");
    assert.ok(jit.cpu.blocks!.invalidated > 0, "the rewritten block was not dropped");
    assert.equal(interp.registers.eax, (300 * 301) / 2);
  });

  Deno.test(`X86Cpu with ${mode.name} notices RAM rewritten behind the CPU`, () => {
    // A hot loop translated, then the loader rewrites its immediate between runs.
    const code = new Uint8Array([0x05, ...le32(2), 0x49, 0x75, 0xf8, 0xf4]); // add eax,2; dec ecx; jnz
    for (const jit of [true, false]) {
      const run = runFlat(code, {
        ...mode.extra,
        jit,
        setup: (_ram, cpu) => void (cpu.core.regs[1] = 200),
      });
      assert.equal(run.registers.eax, 400);
      run.ram.set(le32(5), 0x100001);
      const c = run.cpu.core;
      c.eip = 0x100000;
      c.regs[1] = 100;
      c.halted = false;
      run.cpu.run(10_000);
      assert.equal(run.cpu.registers().eax, 900, `jit ${jit}`);
    }
  });

  Deno.test(`X86Cpu with ${mode.name} sees code a device rewrites during the guest's port I/O`, () => {
    // loop: add eax, 1 (imm8 at +2); dec ecx; out 0x99, al; jnz loop; hlt. The port's
    // handler rewrites the ADD's immediate in RAM (as DMA would) on the 150th write, in the
    // middle of a slice, while the loop's block is translated and hot.
    const code = new Uint8Array([0x83, 0xc0, 0x01, 0x49, 0xe6, 0x99, 0x75, 0xf8, 0xf4]);
    const runs = [true, false].map((jit) => {
      let writes = 0;
      return runFlat(code, {
        ...mode.extra,
        jit,
        setup: (_ram, cpu) => void (cpu.core.regs[1] = 300),
        ports: (io, ram) =>
          io.register("dma", 0x99, 1, {
            read: () => 0,
            write: () => void (++writes === 150 && (ram[0x100002] = 7)),
          }),
      });
    });
    assertSameRun(runs[0], runs[1], "code rewritten by a port write");
    assert.equal(runs[1].registers.eax, 150 + 150 * 7);
    assert.ok(runs[0].cpu.blocks!.invalidated > 0, "the rewritten block was not dropped");
  });

  Deno.test(`X86Cpu with ${mode.name} raises #DE for a DIV or IDIV the quotient cannot hold`, () => {
    // loop: mov eax, ecx; cdq; idiv ebx; (EBX = 1: no fault) add edi, eax; mul ebx;
    // dec ecx; jnz loop; then div by ESI = 0 (no IDT: #DE escalates to a shutdown with
    // the state frozen at the DIV), and the same for a quotient past 32 bits.
    const body = [0x89, 0xc8, 0x99, 0xf7, 0xfb, 0x01, 0xc7, 0xf7, 0xe3, 0x49];
    const loop = [...body, 0x75, -(body.length + 2) & 0xff];
    for (const [edx, esi] of [[0, 0], [5, 4]]) {
      const tail = [0xba, ...le32(edx), 0xf7, 0xf6, 0xf4]; // mov edx, imm; div esi; hlt
      const code = new Uint8Array([...loop, ...tail]);
      const [jit, interp] = both(code, {
        ...mode.extra,
        slices: [1000, 3],
        setup: (_ram, cpu) => {
          const r = cpu.core.regs;
          r[1] = 500;
          r[3] = 1;
          r[6] = esi;
          cpu.core.idtLimit = 0;
        },
      });
      assertSameRun(jit, interp, `#DE with edx ${edx}, divisor ${esi}`);
      assert.equal(interp.exits.at(-1), RunExit.Shutdown);
      assert.equal(interp.registers.eip, 0x100000 + loop.length + 5, "stopped at the DIV");
      if (mode.wasm) {
        // The loop stays in wasm across its IDIV and MUL: a few entries, not one per pass.
        const w = jit.cpu.blocks!.wasm!;
        assert.ok(
          w.retired > 3000 && w.entries < 100,
          `${w.entries} entries, ${w.retired} in wasm`,
        );
      }
    }
  });

  Deno.test(`X86Cpu with ${mode.name} enters the translation of code a jump reaches on another page`, () => {
    // 0x100000: mov ecx, 500; A: add eax, ecx; inc ebx; jmp B (next page)
    // 0x101000: B: add edx, eax; dec ecx; jnz A; hlt
    const code = new Uint8Array(0x1000 + 10);
    code.set([0xb9, ...le32(500), 0x01, 0xc8, 0x43, 0xe9, ...le32(0x1000 - 0xd)]);
    code.set([0x01, 0xc2, 0x49, 0x0f, 0x85, ...le32(0x5 - 0x1009), 0xf4], 0x1000);
    const [jit, interp] = both(code, { ...mode.extra, slices: [700, 100_000] });
    assertSameRun(jit, interp, "loop across two pages");
    const b = jit.cpu.blocks!;
    const interpreted = jit.retired - b.blockRetired - (b.wasm?.retired ?? 0);
    // Warm-up only: the first instruction after each of the 1 000 page crossings runs
    // translated, not interpreted.
    assert.ok(interpreted < 600, `${interpreted} of ${jit.retired} instructions interpreted`);
  });

  Deno.test(`X86Cpu with ${mode.name} stops at a faulting access with exact state`, () => {
    // Paging on with one page missing: the store loop walks into it; no IDT, so the
    // #PF escalates to a shutdown that freezes the state at the faulting instruction.
    const code = new Uint8Array([
      0xbf,
      ...le32(0x500000), // mov edi, 0x500000
      0x89,
      0x07, // loop: mov [edi], eax
      0x40, // inc eax
      0x81,
      0xc7,
      ...le32(0x1000), // add edi, 4096
      0xeb,
      0xf5, // jmp loop
    ]);
    const [jit, interp] = both(code, {
      ...mode.extra,
      setup: pagedSetup(0x540, 0, 0),
    });
    assertSameRun(jit, interp, "page fault in a block");
    assert.equal(interp.exits.at(-1), RunExit.Shutdown);
    assert.equal(interp.registers.cr2, 0x540000);
  });

  Deno.test(`X86Cpu with ${mode.name} leaves EFLAGS unchanged when a read-modify-write's write faults`, () => {
    // Paging on with CR0.WP and one read-only page: `add [edi], eax` reads it and its
    // write faults; no IDT, so the state freezes at that instruction with the flags of
    // the XOR before it (ZF and PF), not those of the ADD that never completed (SF).
    const code = new Uint8Array([
      0xbf,
      ...le32(0x500000), // mov edi, 0x500000
      0xb8,
      ...le32(0x80000001), // mov eax, 0x80000001
      0x31,
      0xc9, // loop: xor ecx, ecx
      0x01,
      0x07, // add [edi], eax
      0x81,
      0xc7,
      ...le32(0x1000), // add edi, 4096
      0xeb,
      0xf4, // jmp loop
    ]);
    const [jit, interp] = both(code, {
      ...mode.extra,
      // Page 0x540 present and read-only.
      setup: pagedSetup(0x540, (0x540 << 12) | 1, 0x10000),
    });
    assertSameRun(jit, interp, "faulting read-modify-write");
    assert.equal(interp.exits.at(-1), RunExit.Shutdown);
    assert.equal(interp.registers.cr2, 0x540000);
    assert.equal(interp.registers.eip, 0x100000 + 12);
    assert.equal(interp.registers.eflags & 0x8d5, 0x44);
  });

  Deno.test(`X86Cpu with ${mode.name} boots SeaBIOS and the demo guest in as many instructions as the interpreter`, async () => {
    const { runPcKernel } = await import("../../../../tools/demo_guest.ts");
    const { MemoryChardev } = await import("../../../../core/chardev.ts");
    const image = buildDemoGuest();
    const saved = Deno.env.get("VMKIT_JIT"), savedWasm = Deno.env.get("VMKIT_WASM");
    const runs = [];
    try {
      for (const flag of ["1", "0"]) {
        Deno.env.set("VMKIT_JIT", flag);
        Deno.env.set("VMKIT_WASM", mode.wasm ? flag : "0");
        const serial = new MemoryChardev("serial0");
        const run = await runPcKernel(image, { serial, cmdline: "same" });
        runs.push({ exit: run.exit.reason, instructions: run.instructions, text: serial.text() });
      }
    } finally {
      if (saved === undefined) Deno.env.delete("VMKIT_JIT");
      else Deno.env.set("VMKIT_JIT", saved);
      if (savedWasm === undefined) Deno.env.delete("VMKIT_WASM");
      else Deno.env.set("VMKIT_WASM", savedWasm);
    }
    assert.deepEqual(runs[0], runs[1]);
  });
}
