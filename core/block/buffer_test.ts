import assert from "node:assert/strict";
import { blockAlignedBuffer, BUFFER_ALIGNMENT } from "./buffer.ts";

function addressOf(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

Deno.test("blockAlignedBuffer() returns a zeroed buffer of the asked size that starts on a page", () => {
  const bytes = (2 << 20) + 512;
  const buf = blockAlignedBuffer(bytes);
  assert.equal(buf.length, bytes);
  assert.ok(buf.every((b) => b === 0));
  // The whole range is usable: its first and last bytes keep what is written.
  buf[0] = 1;
  buf[bytes - 1] = 2;
  assert.deepEqual([buf[0], buf[bytes - 1]], [1, 2]);
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
    assert.equal(addressOf(buf) % BUFFER_ALIGNMENT, 0);
  }
});

Deno.test("blockAlignedBuffer() gives a plain buffer below a page", () => {
  const small = blockAlignedBuffer(512);
  assert.equal(small.length, 512);
  assert.equal(small.byteOffset, 0);
  assert.equal(small.buffer.byteLength, 512);
});

Deno.test("blockAlignedBuffer() starts a buffer of 2 MiB or more on a 2 MiB boundary, for huge pages", () => {
  const buf = blockAlignedBuffer(2 << 20);
  assert.equal(buf.length, 2 << 20);
  assert.ok(buf.every((b) => b === 0));
  buf[(2 << 20) - 1] = 7;
  assert.equal(buf[(2 << 20) - 1], 7);
  if (
    Deno.build.os === "linux" && Deno.permissions.querySync({ name: "ffi" }).state === "granted"
  ) {
    assert.equal(addressOf(buf) % (2 << 20), 0);
  }
  // Below 2 MiB a page boundary is enough.
  assert.equal(addressOf(blockAlignedBuffer(1 << 20)) % BUFFER_ALIGNMENT, 0);
});
