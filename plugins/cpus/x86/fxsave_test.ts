// FXSAVE / FXRSTOR: the 512-byte image, a round trip, and the alignment fault

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";

function run(code: number[], gpHandler = [0xb3, 0x77, 0xfa, 0xf4]) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  ram.set(code, 0x7c00);
  ram.set(gpHandler, 0x8000); // #GP handler, by default: mov bl, 0x77; cli; hlt
  ram.set([0x00, 0x80, 0x00, 0x00], 13 * 4);
  const cpu = new X86Cpu({ memory, io: new PortIoSpace() }, findModel("qemu32")!);
  cpu.jumpReal(0, 0x7c00);
  assert.equal(cpu.run(1000), RunExit.HaltNoInterrupts);
  return { cpu, ram };
}

/** mov eax, cr4; or eax, 0x200; mov cr4, eax: CR4.OSFXSR, so the image has MXCSR and XMM. */
const OSFXSR = [0x0f, 0x20, 0xe0, 0x66, 0x0d, 0x00, 0x02, 0x00, 0x00, 0x0f, 0x22, 0xe0];
const FNINIT = [0xdb, 0xe3], FLD1 = [0xd9, 0xe8], FLDPI = [0xd9, 0xeb], HALT = [0xfa, 0xf4];
const fx = (reg: number, addr: number) => [0x0f, 0xae, 0x06 | (reg << 3), addr & 0xff, addr >> 8];

Deno.test("FXSAVE writes the x87 state in the SDM's layout, in stack order", () => {
  const { ram, cpu } = run([...OSFXSR, ...FNINIT, ...FLD1, ...FLDPI, ...fx(0, 0x1000), ...HALT]);
  const view = new DataView(ram.buffer, ram.byteOffset + 0x1000, 512);
  assert.equal(view.getUint16(0, true), 0x037f, "FCW");
  assert.equal(view.getUint16(2, true), 0x3000, "FSW with TOP = 6");
  assert.equal(view.getUint8(4), 0xc0, "abridged tags: physical R6 and R7 in use");
  assert.equal(view.getUint32(24, true), 0x1f80, "MXCSR at reset");
  // ST1 = 1.0: mantissa 8000000000000000, exponent 3FFF.
  assert.deepEqual([...ram.subarray(0x1000 + 48, 0x1000 + 58)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x80,
    0xff,
    0x3f,
  ]);
  // ST0 = pi: C90FDAA22168C235 rounded from a double, exponent 4000.
  assert.equal(view.getUint16(32 + 8, true), 0x4000);
  assert.equal(view.getUint32(32 + 4, true), 0xc90fdaa2);
  assert.equal(cpu.registers().ebx & 0xff, 0, "no fault");
});

Deno.test("FXRSTOR brings back what FXSAVE stored, after FNINIT cleared it", () => {
  const { ram } = run([
    ...FNINIT,
    ...FLD1,
    ...FLDPI,
    ...fx(0, 0x1000),
    ...FNINIT,
    ...fx(1, 0x1000),
    ...fx(0, 0x1200),
    ...HALT,
  ]);
  assert.deepEqual([...ram.subarray(0x1200, 0x1200 + 160)], [
    ...ram.subarray(0x1000, 0x1000 + 160),
  ]);
});

Deno.test("FXSAVE to an address that is not 16-byte aligned raises #GP and writes nothing", () => {
  const { ram, cpu } = run([...FNINIT, ...FLD1, ...fx(0, 0x1008), ...HALT]);
  assert.equal(cpu.registers().ebx & 0xff, 0x77, "the #GP handler ran");
  assert.ok(ram.subarray(0x1000, 0x1300).every((b) => b === 0));
});

Deno.test("FXRSTOR of an image with reserved MXCSR bits raises #GP and leaves the FPU as it was", () => {
  // The image at 0x1000 is zeros but MXCSR = 0xFFFFFFFF; FLD1 first, so TOP = 7 and ST0 = 1.0
  // must survive. The #GP handler saves the FPU to 0x1200 before it halts.
  const { ram, cpu } = run(
    [
      ...OSFXSR,
      ...FNINIT,
      ...FLD1,
      ...[0xc7, 0x06, 0x18, 0x10, 0xff, 0xff], // mov word [0x1018], 0xffff
      ...[0xc7, 0x06, 0x1a, 0x10, 0xff, 0xff], // mov word [0x101a], 0xffff
      ...fx(1, 0x1000),
      ...HALT,
    ],
    [0xb3, 0x77, ...fx(0, 0x1200), 0xfa, 0xf4],
  );
  assert.equal(cpu.registers().ebx & 0xff, 0x77, "the #GP handler ran");
  const saved = new DataView(ram.buffer, ram.byteOffset + 0x1200, 512);
  assert.equal(saved.getUint16(2, true), 0x3800, "TOP still 7");
  assert.equal(saved.getUint8(4), 0x80, "R7 still in use");
  assert.deepEqual([...ram.subarray(0x1200 + 32, 0x1200 + 42)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x80,
    0xff,
    0x3f,
  ]);
});
