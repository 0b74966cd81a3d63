// Tests of cluster compression

import assert from "node:assert/strict";
import { loadZlib } from "../../../core/zlib.ts";
import { compressCluster, decompressCluster, zstdFrameLength } from "./compress.ts";

await loadZlib();

const data = new Uint8Array(65536).map((_, i) => (i >> 7) & 0xff);

Deno.test("compressCluster() output decompresses with trailing bytes after it", () => {
  for (const type of [0, 1]) {
    const packed = compressCluster(type, data, 65536)!;
    const padded = new Uint8Array(packed.length + 300).fill(0x55);
    padded.set(packed);
    assert.deepEqual(new Uint8Array(decompressCluster(type, padded, 65536)), data);
  }
});

Deno.test("compressCluster() returns null when the data does not shrink", () => {
  const noise = new Uint8Array(4096).map(() => Math.floor(Math.random() * 256));
  assert.equal(compressCluster(0, noise, 4096), null);
  assert.equal(compressCluster(1, noise, 4096), null);
});

Deno.test("zstdFrameLength() measures exactly one frame", () => {
  const packed = compressCluster(1, data, 65536)!;
  const two = new Uint8Array(packed.length * 2);
  two.set(packed);
  two.set(packed, packed.length);
  assert.equal(zstdFrameLength(two, 0), packed.length);
});
