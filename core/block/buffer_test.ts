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

Deno.test("blockAlignedBuffer() starts buffers of 1 MiB and 2 MiB on a page, each usable to its end", () => {
  for (const bytes of [1 << 20, 2 << 20]) {
    const buf = blockAlignedBuffer(bytes);
    assert.equal(buf.length, bytes);
    assert.ok(buf.every((b) => b === 0));
    buf[bytes - 1] = 7;
    assert.equal(buf[bytes - 1], 7);
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
      assert.equal(addressOf(buf) % BUFFER_ALIGNMENT, 0);
    }
  }
});
