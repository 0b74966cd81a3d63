// Long mode on the interpreter: a program enters 64-bit mode and checks what the SDM says

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { assemble, HAVE_NASM, runProgram } from "./test_util.ts";

/** The quadwords testdata/long.asm stores at 0x20000, in order. */
function results(ram: Uint8Array, count: number): bigint[] {
  const v = new DataView(ram.buffer, ram.byteOffset + 0x20000, 8 * count);
  return Array.from({ length: count }, (_, i) => v.getBigUint64(8 * i, true));
}

Deno.test({
  name: "long mode: REX registers, 32-bit writes, RIP-relative, MUL/DIV, CMPXCHG16B, a window " +
    "above 4 GiB, 16-byte gates with IRETQ, #GP for a non-canonical address, compatibility " +
    "mode, CMPXCHG, a null SS, RETFQ, SYSCALL/SYSRET",
  ignore: !HAVE_NASM,
  fn() {
    const r = runProgram(assemble("long"), { model: "qemu64", maxInstructions: 200_000 });
    assert.equal(r.exit, RunExit.HaltNoInterrupts);
    const c = r.cpu.core;
    assert.equal(c.code64, true);
    const got = results(r.ram, 28);
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
    assert.deepEqual(rest.slice(4), [0n, 0x42n]); // MOV SS of a null selector; RETFQ
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
    assert.ok(rcx > 0x7c00n && rcx < 0x8000n, `SYSCALL's RCX ${rcx.toString(16)}`);
    assert.equal(cs0, 0x18n);
    assert.equal(cs3, 0x2bn);
  },
});
