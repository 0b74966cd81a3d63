// Long mode on the interpreter: a program enters 64-bit mode and checks what the SDM says

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { getFlags } from "./flags.ts";
import { findModel } from "./models.ts";
import { readMsr } from "./msr.ts";
import { alu } from "./ops_long.ts";
import { shift64 } from "./ops_long2.ts";
import { assemble, HAVE_NASM, runProgram } from "./test_util.ts";

/** The quadwords testdata/long.asm stores at 0x20000, in order. */
function results(ram: Uint8Array, count: number): bigint[] {
  const v = new DataView(ram.buffer, ram.byteOffset + 0x20000, 8 * count);
  return Array.from({ length: count }, (_, i) => v.getBigUint64(8 * i, true));
}

Deno.test({
  name: "long mode: REX registers, 32-bit writes, RIP-relative, MUL/DIV, CMPXCHG16B, a window " +
    "above 4 GiB, 16-byte gates with IRETQ, #GP for a non-canonical address, compatibility " +
    "mode, CMPXCHG, a null SS, RETFQ, LTR of a 64-bit TSS with IST, SYSCALL/SYSRET",
  ignore: !HAVE_NASM,
  fn() {
    const r = runProgram(assemble("long"), { model: "qemu64", maxInstructions: 200_000 });
    assert.equal(r.exit, RunExit.HaltNoInterrupts);
    const c = r.cpu.core;
    assert.equal(c.code64, true);
    // OUT DX, EAX; OUT imm8, EAX; REP OUTSB.
    assert.deepEqual(r.reports, ["84:64", "88:64", "8c:11", "8c:22"]);
    const got = results(r.ram, 29);
    // FNSTENV after FLD1; EMMS in compatibility mode: the tag word (bytes 8..9) all empty.
    assert.equal(
      new DataView(r.ram.buffer, r.ram.byteOffset).getUint16(0x20000 + 232 + 8, true),
      0xffff,
    );
    assert.deepEqual(got.slice(0, 17), [
      0x12345678n, // a 32-bit write zeroes the upper half
      0xffffffffffff1256n, // 16- and 8-bit writes keep it
      0xffffffffffffff80n, // MOVSX r10, r9b after MOV r9b, sil
      0xffffffff80000000n, // MOVSXD
      12n, // ADD qword [rel x], 7: the immediate follows the displacement
      0x200000001n, // (2^32 + 1)^2: RAX
      1n, // RDX
      0x5555555555555555n, // 2^64 / 3
      1n, // remainder
      1n, // CMPXCHG16B matched: ZF
      3n, // and stored RCX:RBX
      3n, // the mismatch loads RDX:RAX
      3n, // a read through linear 0x120000030000 (PML4 entry 36)
      0x77n, // a write through it, seen at physical 0x30010
      0x33n, // INT3 through a 64-bit interrupt gate, IRETQ back
      0n, // the #GP(0) error code of a non-canonical access
      3n, // SYSCALL from CPL 3 saved RFLAGS (CF set) in R11
    ]);
    const [rcx, cs0, cs3, compat, back, ...rest] = got.slice(17);
    const cmpxchg = rest.slice(0, 4);
    assert.deepEqual(rest.slice(4, 6), [0n, 0x42n]); // MOV SS of a null selector; RETFQ
    // #GP through an IST1 gate: RSP from the TSS (its base above 4 GiB) less six quadwords.
    assert.equal(rest[6], 0x70000n - 48n);
    // Stores through six more windows than the TLB keeps, summed through window 0.
    const dv = new DataView(r.ram.buffer, r.ram.byteOffset);
    assert.equal(dv.getBigUint64(0x20000 + 268, true), 37n + 38n + 39n + 40n + 41n + 42n);
    // REP STOSQ, REP MOVSQ up and REP MOVSD down over page boundaries: the copies' sum,
    // RCX at 0, RDI one element below the destination's start.
    assert.deepEqual(
      [0, 8, 16].map((o) => dv.getBigUint64(0x20000 + 280 + o, true)),
      [0x0102030405060708n * 2n, 0n, 0x44000n - 4n],
    );
    // REP MOVSQ from page 0x40 to page 0x440 (one TLB slot): the source's bytes arrive.
    assert.equal(dv.getBigUint64(0x20000 + 304, true), 0x0102030405060708n);
    // MOV SS with the GDT above 4 GiB, read while the TLB held window 0.
    assert.equal(dv.getBigUint64(0x20000 + 312, true), 0x99n);
    assert.deepEqual(cmpxchg, [
      0x1111111100000005n, // unequal: the register destination is not written
      0x5n, // EAX took it, zero-extended
      0x7n, // equal: EBX went in, zero-extended
      0x4444444400000005n, // and RAX stayed
    ]);
    assert.equal(compat, 0x99n); // ran as 32-bit code in compatibility mode
    // 32-bit writes in compatibility mode leave the upper half (the SDM: undefined; QEMU
    // zero-extends them, vmkit keeps 32-bit code free of the upper halves).
    assert.equal(back, 0xaaaaaaaa00000099n);
    assert.ok(rcx > 0x7c00n && rcx < 0xa000n, `SYSCALL's RCX ${rcx.toString(16)}`);
    assert.equal(cs0, 0x18n);
    assert.equal(cs3, 0x2bn);
  },
});

Deno.test("shift64 on int32 halves matches a BigInt model (result, CF, OF) for every count", () => {
  const c = new X86Cpu(
    { memory: new AddressSpace(), io: new PortIoSpace() },
    findModel("qemu64")!,
  ).core;
  const M = (1n << 64n) - 1n;
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) | 0);
  for (let i = 0; i < 3000; i++) {
    const lo = rnd(), hi = i % 7 === 0 ? lo >> 31 : rnd();
    const n = 1 + (i % 63);
    const a = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const N = BigInt(n);
    for (const op of [0, 1, 4, 5, 7]) {
      let r: bigint, cf: number, of: number;
      if (op === 0 || op === 1) {
        r = op === 0 ? ((a << N) | (a >> (64n - N))) & M : ((a >> N) | (a << (64n - N))) & M;
        const top = Number(r >> 63n);
        cf = op === 0 ? Number(r & 1n) : top;
        of = op === 0 ? top ^ cf : top ^ Number((r >> 62n) & 1n);
      } else if (op === 4) {
        const src = (a << (N - 1n)) & M;
        r = (src << 1n) & M;
        cf = Number(src >> 63n);
        of = Number((src ^ r) >> 63n);
      } else {
        const v = op === 7 ? BigInt.asIntN(64, a) : a;
        const src = BigInt.asUintN(64, v >> (N - 1n));
        r = BigInt.asUintN(64, (op === 7 ? BigInt.asIntN(64, src) : src) >> 1n);
        cf = Number(src & 1n);
        of = Number((src ^ r) >> 63n);
      }
      const rl = shift64(c, op, lo, hi, n);
      const got = (BigInt(c.tHi >>> 0) << 32n) | BigInt(rl >>> 0);
      const flags = getFlags(c);
      assert.equal(got, r, `op ${op} of ${a.toString(16)} by ${n}`);
      assert.equal(flags & 1, cf, `CF of op ${op} by ${n}`);
      assert.equal((flags >> 11) & 1, of, `OF of op ${op} by ${n}`);
    }
  }
});

Deno.test("RDMSR of the microcode revision gives QEMU's per-vendor value (qemu64 is AMD)", () => {
  const core = (model: string) =>
    new X86Cpu({ memory: new AddressSpace(), io: new PortIoSpace() }, findModel(model)!).core;
  assert.deepEqual(readMsr(core("qemu64"), 0x8b), [0x01000065, 0]);
  assert.deepEqual(readMsr(core("Haswell"), 0x8b), [0, 1]);
});

Deno.test("64-bit ADD/ADC/SUB/SBB/CMP flags from the halves match a BigInt model", () => {
  const c = new X86Cpu(
    { memory: new AddressSpace(), io: new PortIoSpace() },
    findModel("qemu64")!,
  ).core;
  const M = (1n << 64n) - 1n;
  const u = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  let seed = 777;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) | 0);
  const edge = [0, -1, 1, 0x7fffffff, -0x80000000];
  const pick = () => (rnd() & 3) === 0 ? edge[(rnd() >>> 0) % edge.length] : rnd();
  for (let i = 0; i < 4000; i++) {
    const alo = pick(), ahi = pick(), blo = pick(), bhi = pick();
    for (const op of [0, 2, 3, 5, 7]) {
      const cin = i & 1;
      c.flags = 2 | cin;
      c.lzMask = 0;
      const a = u(alo, ahi), b = u(blo, bhi);
      const sub = op === 3 || op === 5 || op === 7;
      const carry = op === 2 || op === 3 ? BigInt(cin) : 0n;
      const wide = sub ? a - b - carry : a + b + carry;
      const r = wide & M;
      const rl = alu(c, op, 64, alo, ahi, blo, bhi);
      const got = u(rl, c.tHi);
      assert.equal(got, op === 7 ? a : r, `op ${op}`);
      const f = getFlags(c);
      const sa = BigInt.asIntN(64, a), sb = BigInt.asIntN(64, b);
      const sw = sub ? sa - sb - carry : sa + sb + carry;
      assert.equal(f & 1, wide < 0n || wide > M ? 1 : 0, `CF op ${op}`);
      assert.equal((f >> 11) & 1, sw !== BigInt.asIntN(64, r) ? 1 : 0, `OF op ${op}`);
      assert.equal((f >> 6) & 1, r === 0n ? 1 : 0, `ZF op ${op}`);
      assert.equal((f >> 7) & 1, Number(r >> 63n), `SF op ${op}`);
      assert.equal((f >> 4) & 1, Number(((a ^ b ^ r) >> 4n) & 1n), `AF op ${op}`);
    }
  }
});
