import assert from "node:assert/strict";
import { memoryStore } from "../../../core/block/test_util.ts";
import {
  type BitmapDirEntry,
  BME_FLAG_AUTO,
  BME_FLAG_IN_USE,
  decodeTableEntry,
  encodeBitmapsExtension,
  encodeBitmapTable,
  encodeDirectory,
  parseBitmapsExtension,
  readBitmapTable,
  readDirectory,
} from "./bitmaps.ts";
import type { SyncFile } from "./layout.ts";

const CS = 65536;
const DISK = 64 << 20;

function file(bytes = 8 * CS): SyncFile {
  const store = memoryStore(bytes);
  return { ...store, node: undefined as never, size: () => store.bytes().length };
}

const entries: BitmapDirEntry[] = [
  { tableOffset: 4 * CS, tableSize: 1, flags: BME_FLAG_AUTO, granularityBits: 16, name: "b0" },
  { tableOffset: 5 * CS, tableSize: 1, flags: BME_FLAG_IN_USE, granularityBits: 17, name: "nüm" },
];

Deno.test("parseBitmapsExtension() refuses what QEMU refuses, in its words", () => {
  const ok = { nbBitmaps: 2, directorySize: 64, directoryOffset: 6 * CS };
  assert.deepEqual(parseBitmapsExtension(encodeBitmapsExtension(ok), CS), ok);
  const bad = (ext: Partial<typeof ok>, message: RegExp) =>
    assert.throws(
      () => parseBitmapsExtension(encodeBitmapsExtension({ ...ok, ...ext }), CS),
      message,
    );
  bad({ nbBitmaps: 0 }, /^Error: found bitmaps extension with zero bitmaps$|zero bitmaps/);
  bad(
    { nbBitmaps: 65536 },
    /Image has 65536 bitmaps, exceeding the QEMU supported maximum of 65535/,
  );
  bad({ directoryOffset: 6 * CS + 8 }, /invalid bitmap directory offset/);
  bad(
    { directorySize: 2 ** 32 },
    /bitmap directory size \(4294967296\) exceeds the maximum supported size \(67107840\)/,
  );
  assert.throws(() => parseBitmapsExtension(new Uint8Array(16), CS), /Invalid extension length/);
  const reserved = encodeBitmapsExtension(ok);
  reserved[7] = 1;
  assert.throws(() => parseBitmapsExtension(reserved, CS), /Reserved field is not zero/);
});

Deno.test("readDirectory() reads back what encodeDirectory() wrote", () => {
  const f = file();
  const dir = encodeDirectory(entries);
  assert.equal(dir.length, 32 + 32);
  f.writeSync(6 * CS, dir);
  const ext = { nbBitmaps: 2, directorySize: dir.length, directoryOffset: 6 * CS };
  assert.deepEqual(readDirectory(f, ext, CS, DISK), entries);
});

Deno.test("readDirectory() refuses a broken directory as QEMU's bitmap_list_load", () => {
  const f = file();
  const dir = encodeDirectory(entries);
  f.writeSync(6 * CS, dir);
  const at = (ext: object) => ({
    nbBitmaps: 2,
    directorySize: dir.length,
    directoryOffset: 6 * CS,
    ...ext,
  });
  assert.throws(() => readDirectory(f, at({ nbBitmaps: 1 }), CS, DISK), /More bitmaps found/);
  assert.throws(() => readDirectory(f, at({ nbBitmaps: 3 }), CS, DISK), /Less bitmaps found/);
  assert.throws(
    () => readDirectory(f, at({ directorySize: 40 }), CS, DISK),
    /Broken bitmap directory/,
  );
  // Out of the file: zeroes, an entry of no name that fails the constraints.
  assert.throws(
    () => readDirectory(f, at({ directoryOffset: 2 ** 40 }), CS, DISK),
    /^.*Bitmap '' doesn't satisfy the constraints$/,
  );
  // A table too small for the disk, unless the bitmap is in use.
  assert.throws(() => readDirectory(f, at({}), CS, 2 ** 40), /Bitmap 'b0' doesn't satisfy/);
  const extra = dir.slice();
  extra[23] = 8;
  f.writeSync(6 * CS, extra);
  assert.throws(() => readDirectory(f, at({}), CS, DISK), /Bitmap extra data is not supported/);
});

Deno.test("decodeTableEntry() refuses reserved bits and unaligned or flagged offsets", () => {
  assert.deepEqual(decodeTableEntry(0, 0, CS), { offset: 0, allOnes: false });
  assert.deepEqual(decodeTableEntry(0, 1, CS), { offset: 0, allOnes: true });
  assert.deepEqual(decodeTableEntry(0, 3 * CS, CS), { offset: 3 * CS, allOnes: false });
  assert.equal(decodeTableEntry(0x01000000, 0, CS), undefined);
  assert.equal(decodeTableEntry(0, 2, CS), undefined);
  assert.equal(decodeTableEntry(0, 3 * CS + 512, CS), undefined);
  assert.equal(decodeTableEntry(0, 3 * CS + 1, CS), undefined);
});

Deno.test("readBitmapTable() reads only the part inside the file", () => {
  const f = file();
  f.writeSync(4 * CS, encodeBitmapTable([0, 7 * CS, 0]));
  assert.deepEqual(readBitmapTable(f, { tableOffset: 4 * CS, tableSize: 3 }, CS), [
    [1, { offset: 7 * CS, allOnes: false }],
  ]);
  // A table of the largest size past the end of the file costs nothing.
  assert.deepEqual(readBitmapTable(f, { tableOffset: 2 ** 40, tableSize: 0x8000000 }, CS), []);
});
