import assert from "node:assert/strict";
import { blockAlignedBuffer } from "./buffer.ts";
import { findBlock, isZero } from "./zero.ts";
import { wasmFindBlock, wasmIsZero } from "./_zero_scan.ts";

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

Deno.test("findBlock() finds the first zero or non-zero block alike in wasm and in the JS loop", () => {
  const wasm = blockAlignedBuffer(64 << 10);
  const plain = new Uint8Array(64 << 10);
  assert.notEqual(
    wasmFindBlock(wasm, 0, 1, 1, true),
    undefined,
    "the buffer lives in a wasm memory",
  );
  assert.equal(wasmFindBlock(plain, 0, 1, 1, true), undefined);
  // Data in blocks 1, 2 and 5 (of 4 KiB), and one byte in the short last block.
  for (const buf of [wasm, plain]) {
    buf.fill(0);
    for (const at of [4096, 2 * 4096 + 4095, 5 * 4096 + 17, buf.length - 1]) buf[at] = 1;
  }
  const cases: [number, number, number, boolean, number][] = [
    // start, length, block, wantZero, expected
    [0, 65536, 4096, false, 4096],
    [4096, 65536 - 4096, 4096, true, 2 * 4096],
    [3 * 4096, 65536 - 3 * 4096, 4096, false, 2 * 4096],
    [6 * 4096, 65536 - 6 * 4096, 4096, false, 65536 - 6 * 4096 - 4096],
    [6 * 4096, 65536 - 6 * 4096 - 1, 4096, false, 65536 - 6 * 4096 - 1], // none: the length
    [0, 10000, 3000, false, 3000], // a block grid that is not 4 KiB: byte 4096 is in the second
    [60000, 5536, 4096, false, 4096], // the short last block (1440 bytes) holds the last byte
    [7, 0, 4096, true, 0],
    // Blocks shorter than the 16 bytes f looks at first: scanned whole.
    [4080, 32, 8, false, 16],
    [4095, 3, 1, false, 1],
    [4096, 24, 8, true, 8],
    // Data past a block's first 16 bytes, and a zero block after data.
    [8192 + 4095 - 100, 200, 64, false, 64],
    [4096, 8192, 512, true, 512],
  ];
  for (const [start, length, block, wantZero, expected] of cases) {
    for (const buf of [wasm, plain]) {
      assert.equal(
        findBlock(buf, start, length, block, wantZero),
        expected,
        `${
          buf === wasm ? "wasm" : "js"
        }: start ${start} length ${length} block ${block} ${wantZero}`,
      );
    }
  }
});
