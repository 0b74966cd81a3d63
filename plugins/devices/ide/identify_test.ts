import assert from "node:assert/strict";
import {
  chsForSize,
  defaultModes,
  guessGeometry,
  identifyDevice,
  identifyPacketDevice,
  identifyString,
  identifyWord,
} from "./identify.ts";

Deno.test("chsForSize() uses 16 heads and 63 sectors with cylinders clamped to 2..16383", () => {
  assert.deepEqual(chsForSize(8 * 2048), { cylinders: 16, heads: 16, sectors: 63 });
  assert.deepEqual(chsForSize(100), { cylinders: 2, heads: 16, sectors: 63 });
  assert.deepEqual(chsForSize(2 ** 32), { cylinders: 16383, heads: 16, sectors: 63 });
});

Deno.test("guessGeometry() takes heads and sectors from a partition table entry", () => {
  const mbr = new Uint8Array(512);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const e = 0x1be;
  mbr[e + 5] = 3; // end head: 4 heads
  mbr[e + 6] = 32; // end sector
  mbr[e + 12] = 0x00;
  mbr[e + 13] = 0x10; // 4096 sectors
  assert.deepEqual(guessGeometry(4096, mbr), { cylinders: 32, heads: 4, sectors: 32 });
  mbr[511] = 0;
  assert.deepEqual(guessGeometry(4096, mbr), chsForSize(4096));
});

Deno.test("identifyDevice() reports QEMU's strings, geometry and LBA28/LBA48 capacity", () => {
  const total = 0x12345678 + 2 ** 32;
  const d = identifyDevice({
    serial: "QM00001",
    totalSectors: total,
    geometry: { cylinders: 16383, heads: 16, sectors: 63 },
    multSectors: 0,
    writeCache: true,
    modes: defaultModes(),
  });
  assert.equal(identifyString(d, 27, 20), "QEMU HARDDISK");
  assert.equal(identifyString(d, 10, 10), "QM00001");
  assert.equal(identifyString(d, 23, 4), "2.5+");
  assert.equal(identifyWord(d, 1), 16383);
  assert.equal(identifyWord(d, 3), 16);
  assert.equal(identifyWord(d, 6), 63);
  assert.equal(identifyWord(d, 47), 0x8010);
  assert.equal(identifyWord(d, 49) & 0x0300, 0x0300); // LBA and DMA
  assert.equal(identifyWord(d, 60) | (identifyWord(d, 61) << 16), 0x0fffffff);
  assert.equal(identifyWord(d, 83) & (1 << 10), 1 << 10); // 48-bit feature set
  assert.equal(identifyWord(d, 100), 0x5678);
  assert.equal(identifyWord(d, 101), 0x1234);
  assert.equal(identifyWord(d, 102), 1);
  assert.equal(identifyWord(d, 88), 0x3f | (1 << 13)); // UDMA 0-5, 5 selected
  assert.equal(identifyWord(d, 59), 0);
});

Deno.test("identifyPacketDevice() describes a removable ATAPI CD-ROM with 12-byte packets", () => {
  const d = identifyPacketDevice("QM00003", defaultModes());
  assert.equal(identifyWord(d, 0), 0x85c0);
  assert.equal(identifyString(d, 27, 20), "QEMU DVD-ROM");
  assert.equal(identifyString(d, 10, 10), "QM00003");
  assert.equal(identifyWord(d, 49) & 0x0300, 0x0300);
});
