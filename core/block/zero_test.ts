import assert from "node:assert/strict";
import { isZero } from "./zero.ts";

Deno.test("isZero() finds a single non-zero byte anywhere in an unaligned range", () => {
  const buf = new Uint8Array(1000);
  for (const at of [0, 1, 7, 8, 63, 64, 500, 998, 999]) {
    buf[at] = 0x80;
    assert.equal(isZero(buf), false, `byte ${at}`);
    assert.equal(isZero(buf.subarray(3), 0), at < 3, `unaligned view, byte ${at}`);
    buf[at] = 0;
  }
  assert.equal(isZero(buf), true);
});

Deno.test("isZero() treats the bit pattern of -0.0 as non-zero", () => {
  const buf = new Uint8Array(128);
  buf[7] = 0x80; // little-endian float64 -0.0 in the first word
  assert.equal(isZero(buf), false);
});

Deno.test("isZero() sees every byte of a word-aligned range, through the unrolled steps and the tail", () => {
  const buf = new Uint8Array(4 + 300 + 4);
  for (let at = 4; at < 304; at++) {
    buf[at] = 1;
    assert.equal(isZero(buf, 4, 300), false, `byte ${at}`);
    buf[at] = 0;
  }
  buf[3] = 1;
  buf[304] = 1;
  assert.equal(isZero(buf, 4, 300), true, "bytes outside the range do not count");
});
