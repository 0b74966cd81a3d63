import assert from "node:assert/strict";
import { blockAlignedBuffer } from "./buffer.ts";
import { isZero } from "./zero.ts";
import { wasmIsZero } from "./_zero_scan.ts";

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

Deno.test("isZero() scans a blockAlignedBuffer (a wasm memory) to the byte, at any offset and length", () => {
  const buf = blockAlignedBuffer(2 << 20);
  assert.notEqual(wasmIsZero(buf, 0, 1), undefined, "the buffer lives in a wasm memory");
  assert.equal(isZero(buf), true);
  for (const at of [0, 1, 15, 16, 63, 64, 65, 127, 4095, 4096, (2 << 20) - 1]) {
    buf[at] = 0x80;
    assert.equal(isZero(buf), false, `byte ${at}`);
    assert.equal(isZero(buf, 0, at), true, `the bytes before ${at}`);
    if (at < 4000) assert.equal(isZero(buf, at + 1, 4096), true, `the bytes after ${at}`);
    assert.equal(isZero(buf.subarray(at), 0, 1), false, `a view starting at ${at}`);
    buf[at] = 0;
  }
  // Every length from 0 to 200 at an odd start: the vector steps, the tail, and their seam.
  for (let length = 0; length <= 200; length++) {
    buf[7 + length] = 1;
    assert.equal(isZero(buf, 7, length), true, `length ${length}`);
    if (length > 0) {
      buf[7 + length - 1] = 1;
      assert.equal(isZero(buf, 7, length), false, `length ${length}, last byte set`);
      buf[7 + length - 1] = 0;
    }
    buf[7 + length] = 0;
  }
  // A range past the end of the view is judged by the plain loop, never read past the view.
  const view = buf.subarray(0, 100);
  buf[100] = 1;
  assert.equal(isZero(view, 50, 60), false);
  buf[100] = 0;
});
