import assert from "node:assert/strict";
import {
  encodeQcowHeader,
  l1Entries,
  parseQcowHeader,
  probeQcow,
  type QcowHeader,
} from "./header.ts";

const h: QcowHeader = {
  backingFileOffset: 0,
  backingFileSize: 0,
  mtime: 0,
  sizeBytes: 10 << 20,
  clusterBits: 12,
  l2Bits: 9,
  cryptMethod: 0,
  l1TableOffset: 48,
};

Deno.test("parseQcowHeader() reads back encodeQcowHeader()", () => {
  assert.deepEqual(parseQcowHeader(encodeQcowHeader(h)), h);
  assert.equal(l1Entries(h), 5);
});

Deno.test("parseQcowHeader() refuses what QEMU refuses, in its words", () => {
  assert.throws(() => parseQcowHeader(encodeQcowHeader({ ...h, clusterBits: 17 })), /between 512/);
  assert.throws(() => parseQcowHeader(encodeQcowHeader({ ...h, l2Bits: 5 })), /L2 table size/);
  assert.throws(() => parseQcowHeader(encodeQcowHeader({ ...h, sizeBytes: 1 })), /too small/);
  assert.throws(() => parseQcowHeader(encodeQcowHeader({ ...h, cryptMethod: 2 })), /encryption/);
});

Deno.test("probeQcow() claims version 1 only, so qcow2 images go to qcow2", () => {
  const b = new Uint8Array(2048);
  b.set(encodeQcowHeader(h));
  assert.equal(probeQcow(b), 100);
  b[7] = 2;
  assert.equal(probeQcow(b), 0);
});
