// Tests of the qcow2 header codec

import assert from "node:assert/strict";
import {
  parseHeader,
  probe,
  QCOW2_INCOMPAT_DIRTY,
  type Qcow2Header,
  serializeHeader,
  unsupportedFeatureMessage,
} from "./header.ts";

function header(overrides: Partial<Qcow2Header> = {}): Qcow2Header {
  return {
    version: 3,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: 16,
    size: 1 << 20,
    cryptMethod: 0,
    l1Size: 1,
    l1TableOffset: 3 << 16,
    refcountTableOffset: 1 << 16,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: 0,
    compressionType: 0,
    unknownHeaderFields: new Uint8Array(0),
    featureTable: [],
    unknownExtensions: [],
    ...overrides,
  };
}

Deno.test("serializeHeader() output parses back with parseHeader()", () => {
  const h = header({
    backingFile: "base.qcow2",
    backingFormat: "qcow2",
    dataFile: "data.raw",
    incompatibleFeatures: QCOW2_INCOMPAT_DIRTY,
    unknownExtensions: [{ type: 0x12345678, data: new Uint8Array([1, 2, 3]) }],
  });
  const back = parseHeader(serializeHeader(h));
  assert.equal(back.backingFile, "base.qcow2");
  assert.equal(back.backingFormat, "qcow2");
  assert.equal(back.dataFile, "data.raw");
  assert.equal(back.incompatibleFeatures, QCOW2_INCOMPAT_DIRTY);
  assert.equal(back.headerLength, 112);
  assert.deepEqual([...back.unknownExtensions[0].data], [1, 2, 3]);
  assert.equal(back.featureTable.length, 8);
  assert.equal(back.featureTable[0].name, "dirty bit");
});

Deno.test("parseHeader() refuses a file without the qcow2 magic", () => {
  assert.throws(() => parseHeader(new Uint8Array(512)), /Image is not in qcow2 format/);
});

Deno.test("parseHeader() refuses an unsupported version and cluster size", () => {
  const buf = serializeHeader(header());
  const v = new DataView(buf.buffer);
  v.setUint32(4, 4);
  assert.throws(() => parseHeader(buf), /Unsupported qcow2 version 4/);
  v.setUint32(4, 3);
  v.setUint32(20, 22);
  assert.throws(() => parseHeader(buf), /Unsupported cluster size: 2\^22/);
});

Deno.test("probe() scores the qcow2 magic 100 and anything else 0", () => {
  assert.equal(probe(serializeHeader(header())), 100);
  assert.equal(probe(new Uint8Array(64)), 0);
});

Deno.test("unsupportedFeatureMessage() names features from the table, then unknown bits in hex", () => {
  const table = [{ type: 0, bit: 6, name: "shiny" }];
  assert.equal(
    unsupportedFeatureMessage(table, (1n << 6n) | (1n << 5n)),
    "Unsupported qcow2 feature(s): shiny, Unknown incompatible feature: 20",
  );
});
