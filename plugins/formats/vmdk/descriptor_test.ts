// Tests of the descriptor text: extent lines, CIDs and the text QEMU writes

import assert from "node:assert/strict";
import {
  formatDescriptor,
  parentFileNameHint,
  parseExtentLines,
  readCid,
  withCid,
} from "./descriptor.ts";
import { probeVmdk } from "./header.ts";

const DESC = `# Disk DescriptorFile
version=1
CID=3266c0d
parentCID=ffffffff
createType="twoGbMaxExtentFlat"

# Extent description
RW 4194304 FLAT "a-f001.vmdk" 0
RDONLY 100 FLAT "ignored.vmdk" 0
RW 2097152 SPARSE "a-s002.vmdk"
RW 8 VMFS "raw.img"

# The Disk Data Base
#DDB

ddb.adapterType = "ide"
`;

Deno.test("parseExtentLines() reads RW lines and skips others, as QEMU does", () => {
  assert.deepEqual(parseExtentLines(DESC), [
    { sectors: 4194304, type: "FLAT", filename: "a-f001.vmdk", flatOffsetSectors: 0 },
    { sectors: 2097152, type: "SPARSE", filename: "a-s002.vmdk", flatOffsetSectors: 0 },
    { sectors: 8, type: "VMFS", filename: "raw.img", flatOffsetSectors: 0 },
  ]);
});

Deno.test("parseExtentLines() refuses a flat extent without its offset", () => {
  assert.throws(
    () => parseExtentLines('createType="monolithicFlat"\nRW 100 FLAT "x.img"\n#end\n'),
    /^ImageFormatError: Invalid extent line: RW 100 FLAT "x.img"$/m,
  );
});

Deno.test("readCid() and withCid() read and replace the hex CIDs", () => {
  assert.equal(readCid(DESC, false), 0x3266c0d);
  assert.equal(readCid(DESC, true), 0xffffffff);
  const updated = withCid(DESC, 0xabc);
  assert.equal(readCid(updated, false), 0xabc);
  assert.equal(updated.replace("CID=abc", "CID=3266c0d"), DESC);
});

Deno.test("parentFileNameHint() reads the quoted backing name", () => {
  assert.equal(parentFileNameHint('parentFileNameHint="../base.vmdk"\n'), "../base.vmdk");
  assert.equal(parentFileNameHint(DESC), undefined);
});

Deno.test("formatDescriptor() writes QEMU's template, 255 heads for SCSI adapters", () => {
  const text = formatDescriptor({
    cid: 0x12,
    parentCid: 0xffffffff,
    createType: "monolithicSparse",
    extentLines: ['RW 2048 SPARSE "x.vmdk"'],
    hwVersion: "4",
    sizeBytes: 100 << 20,
    adapterType: "lsilogic",
    toolsVersion: "2147483647",
  });
  assert.match(text, /^# Disk DescriptorFile\nversion=1\nCID=12\nparentCID=ffffffff\n/);
  assert.match(text, /createType="monolithicSparse"\n\n# Extent description\nRW 2048 SPARSE/);
  assert.match(text, /ddb.geometry.cylinders = "12"\nddb.geometry.heads = "255"\n/);
});

Deno.test("probeVmdk() knows sparse magics and descriptor files after comments", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.equal(probeVmdk(enc("KDMV\x01\x00\x00\x00")), 100);
  assert.equal(probeVmdk(enc("# Disk DescriptorFile\n  \r\nversion=1\r\nCID=1")), 100);
  assert.equal(probeVmdk(enc("# comment\nversion=4\n")), 0);
  assert.equal(probeVmdk(enc("hello world")), 0);
});
