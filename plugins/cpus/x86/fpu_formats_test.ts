// Tests for the x87 80-bit extended format conversions

import assert from "node:assert/strict";
import { fromExtended, toExtended } from "./fpu_formats.ts";

Deno.test("toExtended() encodes 1.0 with the explicit integer bit and bias 16383", () => {
  assert.deepEqual(toExtended(1), [0, 0x80000000 | 0, 0x3fff]);
  assert.deepEqual(toExtended(-2), [0, 0x80000000 | 0, 0xc000]);
  assert.deepEqual(toExtended(0), [0, 0, 0]);
});

Deno.test("fromExtended() round-trips doubles, infinities and denormal doubles", () => {
  for (const v of [Math.PI, -1e300, 5e-324, 123456789.125, Infinity, -Infinity]) {
    const [lo, hi, se] = toExtended(v);
    assert.equal(fromExtended(lo >>> 0, hi >>> 0, se), v);
  }
  const [lo, hi, se] = toExtended(NaN);
  assert.ok(Number.isNaN(fromExtended(lo >>> 0, hi >>> 0, se)));
});
