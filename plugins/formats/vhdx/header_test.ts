import assert from "node:assert/strict";
import {
  BAT_GUID,
  batGeometry,
  batIndex,
  currentHeaderIndex,
  encodeHeader,
  encodeMetadata,
  encodeRegionTable,
  guidBytes,
  parseHeader,
  parseMetadata,
  parseRegionTable,
  probeVhdx,
  type VhdxHeader,
} from "./header.ts";

function header(seq: number): VhdxHeader {
  return {
    sequenceNumber: seq,
    fileWriteGuid: new Uint8Array(16).fill(1),
    dataWriteGuid: new Uint8Array(16).fill(2),
    logGuid: new Uint8Array(16),
    logVersion: 0,
    version: 1,
    logLength: 1 << 20,
    logOffset: 1 << 20,
  };
}

Deno.test("guidBytes() stores the first three groups little-endian, as the spec's BAT GUID", () => {
  assert.deepEqual(
    Array.from(BAT_GUID.subarray(0, 8)),
    [0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42],
  );
  assert.throws(() => guidBytes("not-a-guid"), RangeError);
});

Deno.test("parseHeader() reads back encodeHeader() and refuses a bad checksum", () => {
  const block = encodeHeader(header(7));
  assert.equal(parseHeader(block)?.sequenceNumber, 7);
  block[100] ^= 1;
  assert.equal(parseHeader(block), null);
});

Deno.test("currentHeaderIndex() picks the valid header with the higher sequence number", () => {
  assert.equal(currentHeaderIndex(header(5), header(6)), 1);
  assert.equal(currentHeaderIndex(header(9), null), 0);
  assert.equal(currentHeaderIndex(header(3), header(3)), 0);
  assert.throws(() => currentHeaderIndex(null, null), /No valid VHDX header found/);
  assert.throws(
    () => currentHeaderIndex(header(3), { ...header(3), logLength: 2 << 20 }),
    /No valid VHDX header found/,
  );
});

Deno.test("parseRegionTable() reads back encodeRegionTable() and checks its checksum", () => {
  const rt = encodeRegionTable({
    bat: { offset: 2 << 20, length: 1 << 20 },
    metadata: { offset: 3 << 20, length: 1 << 20 },
  });
  const r = parseRegionTable(rt);
  assert.deepEqual(r.bat, { offset: 2 << 20, length: 1 << 20 });
  assert.deepEqual(r.metadata, { offset: 3 << 20, length: 1 << 20 });
  rt[40] ^= 1;
  assert.throws(() => parseRegionTable(rt), /checksum/);
});

Deno.test("parseMetadata() reads back encodeMetadata() and refuses a bad block size", () => {
  const md = {
    blockSize: 8 << 20,
    fixed: true,
    hasParent: false,
    virtualDiskSize: 100 << 20,
    logicalSectorSize: 512,
    physicalSectorSize: 4096,
    page83: new Uint8Array(16).fill(9),
  };
  const { table, items } = encodeMetadata(md);
  const region = new Uint8Array(1 << 20);
  region.set(table);
  region.set(items, 64 * 1024);
  const read = (o: number, n: number) => region.slice(o, o + n);
  assert.deepEqual(parseMetadata(table, { offset: 0, length: 1 << 20 }, read), md);
  region[64 * 1024] = 1; // block size 8 MiB + 1
  assert.throws(
    () => parseMetadata(table, { offset: 0, length: 1 << 20 }, read),
    /Invalid VHDX block size/,
  );
});

Deno.test("batGeometry() interleaves a sector bitmap entry after every chunk of payload entries", () => {
  const g = batGeometry(64 * 2 ** 30, 32 << 20, 512);
  assert.equal(g.chunkRatio, 128);
  assert.equal(g.dataBlocks, 2048);
  assert.equal(g.batEntries, 2048 + 15);
  assert.equal(batIndex(g, 127), 127);
  assert.equal(batIndex(g, 128), 129);
  // QEMU's 32-bit arithmetic for an empty disk: a BAT of millions of entries.
  assert.equal(batGeometry(0, 8 << 20, 512).batEntries, 0xffffffff >>> 9);
});

Deno.test("probeVhdx() scores the vhdxfile signature 100 and anything else 0", () => {
  assert.equal(probeVhdx(new TextEncoder().encode("vhdxfile")), 100);
  assert.equal(probeVhdx(new Uint8Array(2048)), 0);
});
