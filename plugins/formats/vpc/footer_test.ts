// Tests of the VHD structures: CHS geometry as QEMU chooses it, checksums and sizing rules

import assert from "node:assert/strict";
import {
  createGeometry,
  encodeFooter,
  footerSizeBytes,
  parseFooter,
  probeVpc,
  VHD_DYNAMIC,
  vhdChecksum,
} from "./footer.ts";

Deno.test("createGeometry() rounds up to the smallest geometry that holds the disk", () => {
  // Values from qemu-img 7.2: 100M gets 1004/12/17, 1M gets 31/4/17, 127G 65279/16/255.
  assert.deepEqual(createGeometry(100 << 20, false), {
    geometry: { cylinders: 1004, heads: 12, sectorsPerTrack: 17 },
    sizeBytes: 104865792,
  });
  assert.equal(createGeometry(1 << 20, false).sizeBytes, 1079296);
  assert.equal(createGeometry(1, false).sizeBytes, 34816);
  assert.equal(createGeometry(127 * 2 ** 30, false).geometry.cylinders, 65279);
});

Deno.test("createGeometry() keeps the size past the largest CHS disk and with force_size", () => {
  const max = { cylinders: 65535, heads: 16, sectorsPerTrack: 255 };
  assert.deepEqual(createGeometry(200 * 2 ** 30, false), {
    geometry: max,
    sizeBytes: 200 * 2 ** 30,
  });
  assert.deepEqual(createGeometry(100 << 20, true), { geometry: max, sizeBytes: 100 << 20 });
});

Deno.test("encodeFooter() writes a footer whose checksum verifies and that parses back", () => {
  const footer = encodeFooter({
    dataOffset: 512n,
    timestamp: 1234,
    creatorApp: "qemu",
    originalSizeBytes: 104865792,
    currentSizeBytes: 104865792,
    cylinders: 1004,
    heads: 12,
    sectorsPerTrack: 17,
    diskType: VHD_DYNAMIC,
  });
  assert.equal(probeVpc(footer), 100);
  assert.equal(new DataView(footer.buffer).getUint32(64), vhdChecksum(footer, 64));
  const f = parseFooter(footer);
  assert.equal(f.timestamp, 1234);
  assert.equal(footerSizeBytes(f), 104865792);
});

Deno.test("footerSizeBytes() sizes Hyper-V images by Current Size and others by CHS", () => {
  const base = {
    dataOffset: 512n,
    timestamp: 0,
    originalSizeBytes: 10 << 20,
    currentSizeBytes: 10 << 20,
    cylinders: 302,
    heads: 4,
    sectorsPerTrack: 17,
    diskType: VHD_DYNAMIC,
  };
  assert.equal(footerSizeBytes({ ...base, creatorApp: "win " }), 10 << 20);
  assert.equal(footerSizeBytes({ ...base, creatorApp: "vpc " }), 302 * 4 * 17 * 512);
});
