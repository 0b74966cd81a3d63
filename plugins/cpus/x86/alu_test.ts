// Tests for the integer helpers: lazy flags, shifts, 64-bit multiply and divide

import assert from "node:assert/strict";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { arith, div64, idiv64, imul32, mul32, shift, shiftDouble } from "./alu.ts";
import { getFlags } from "./flags.ts";
import { findModel } from "./models.ts";
import { CF, CpuCore, FAULT, OF, PF, SF, ZF } from "./state.ts";

function core(): CpuCore {
  return new CpuCore(new AddressSpace(), new PortIoSpace(), findModel("qemu32")!);
}

Deno.test("arith() derives CF, OF, SF, ZF and PF lazily for ADD, SUB and ADC", () => {
  const c = core();
  assert.equal(arith(c, 0, 0x7f, 1, 8), 0x80);
  assert.equal(getFlags(c) & (CF | OF | SF | ZF), OF | SF);
  assert.equal(arith(c, 5, 0, 1, 32), -1);
  assert.equal(getFlags(c) & (CF | OF | SF | ZF | PF), CF | SF | PF);
  arith(c, 0, -1, 1, 32); // sets CF
  assert.equal(arith(c, 2, 0xffff, 0, 16), 0); // ADC carries in
  assert.equal(getFlags(c) & (CF | ZF), CF | ZF);
});

Deno.test("shift() rotates and shifts with the count already masked", () => {
  const c = core();
  assert.equal(shift(c, 0, 0x81, 1, 8), 0x03); // ROL
  assert.equal(getFlags(c) & CF, CF);
  assert.equal(shift(c, 7, 0x80000000 | 0, 31, 32), -1); // SAR
  assert.equal(shift(c, 3, 0x01, 1, 8), 0x00); // RCR moves bit 0 into CF
  assert.equal(getFlags(c) & CF, CF);
  assert.equal(shiftDouble(c, true, 0x1234, 0xabcd, 4, 16), 0x234a);
});

Deno.test("mul32() and imul32() give exact 64-bit products", () => {
  const hi = new Int32Array(1);
  assert.equal(mul32(-1, -1, hi) >>> 0, 1);
  assert.equal(hi[0] >>> 0, 0xfffffffe);
  assert.equal(imul32(-1, -1, hi), 1);
  assert.equal(hi[0], 0);
  assert.equal(imul32(0x40000000, 4, hi), 0);
  assert.equal(hi[0], 1);
});

Deno.test("div64() and idiv64() divide exactly and raise #DE on overflow", () => {
  const c = core();
  const out = new Float64Array(2);
  div64(c, 0x12345678, 0x9abcdef0 | 0, 0xffffffff | 0, out);
  const n = 0x123456789abcdef0n;
  assert.equal(out[0], Number(n / 0xffffffffn));
  assert.equal(out[1], Number(n % 0xffffffffn));
  idiv64(c, -1, -7, 2, out);
  assert.deepEqual([out[0], out[1]], [-3, -1]);
  assert.throws(() => div64(c, 1, 0, 1, out), (e) => e === FAULT && c.excVector === 0);
  assert.throws(() => idiv64(c, -1, 0x80000000 | 0, -1, out), (e) => e === FAULT);
});
