import assert from "node:assert/strict";
import type { DriveConfig } from "../../core/machine.ts";
import { parseBoot } from "./config.ts";
import { defaultDriveId, finishDrives, indexFromBusUnit } from "./drives.ts";

function drive(iface: DriveConfig["interface"], extra: Partial<DriveConfig> = {}): DriveConfig {
  return { id: "", node: null, interface: iface, media: "disk", readOnly: false, ...extra };
}

const summary = (drives: DriveConfig[]) => drives.map((d) => `${d.id}@${d.index}`);

Deno.test("finishDrives() adds the empty CD-ROM at ide1 master unless it is taken or -nodefaults", () => {
  assert.deepEqual(summary(finishDrives([], { defaultCdrom: true })), ["ide1-cd0@2"]);
  assert.deepEqual(summary(finishDrives([], { defaultCdrom: false })), []);
  const cdrom = drive("ide", { index: 2, media: "cdrom", id: "cd" });
  assert.deepEqual(summary(finishDrives([cdrom], { defaultCdrom: true })), ["cd@2"]);
  // Three IDE disks without index take 0, 1 and 2: no room left for the default CD-ROM.
  const three = [drive("ide"), drive("ide"), drive("ide")];
  assert.deepEqual(summary(finishDrives(three, { defaultCdrom: true })), [
    "ide0-hd0@0",
    "ide0-hd1@1",
    "ide1-hd0@2",
  ]);
});

Deno.test("finishDrives() adds the empty floppy0 after the CD-ROM unless unit 0 is taken", () => {
  const both = { defaultCdrom: true, defaultFloppy: true };
  assert.deepEqual(summary(finishDrives([], both)), ["ide1-cd0@2", "floppy0@0"]);
  const b = drive("floppy", { index: 1 });
  assert.deepEqual(summary(finishDrives([b], both)), ["floppy1@1", "ide1-cd0@2", "floppy0@0"]);
  const a = drive("floppy");
  assert.deepEqual(summary(finishDrives([a], both)), ["floppy0@0", "ide1-cd0@2"]);
});

Deno.test("finishDrives() names drives as QEMU does and keeps indexes per interface", () => {
  const drives = [
    drive("virtio"),
    drive("ide", { index: 1, media: "cdrom" }),
    drive("virtio"),
    drive("none"),
    drive("ide"),
  ];
  assert.deepEqual(summary(finishDrives(drives, { defaultCdrom: true })), [
    "virtio0@0",
    "ide0-cd1@1",
    "virtio1@1",
    "none0@0",
    "ide0-hd0@0",
    "ide1-cd0@2",
  ]);
});

Deno.test("finishDrives() refuses two drives on one unit and two drives with one id", () => {
  assert.throws(
    () => finishDrives([drive("ide"), drive("ide", { index: 0 })], { defaultCdrom: false }),
    /drive with bus=0, unit=0 \(index=0\) exists/,
  );
  assert.throws(
    () =>
      finishDrives([drive("none", { id: "a" }), drive("virtio", { id: "a" })], {
        defaultCdrom: false,
      }),
    /Duplicate ID 'a' for drive/,
  );
});

Deno.test("indexFromBusUnit() and defaultDriveId() follow QEMU's two units per IDE bus", () => {
  assert.equal(indexFromBusUnit("ide", 1, 0), 2);
  assert.equal(indexFromBusUnit("ide", undefined, 1), 1);
  assert.equal(indexFromBusUnit("virtio", undefined, 3), 3);
  assert.equal(indexFromBusUnit("ide", undefined, undefined), undefined);
  assert.equal(defaultDriveId(drive("ide", { media: "cdrom" }), 3), "ide1-cd1");
  assert.equal(defaultDriveId(drive("scsi"), 8), "scsi1-hd1");
});

Deno.test("parseBoot() keeps once= apart from order= and refuses a letter given twice", () => {
  assert.deepEqual(parseBoot("order=c,once=d"), { bootOrder: "c", bootOnce: "d" });
  assert.deepEqual(parseBoot("a"), { bootOrder: "a" });
  assert.deepEqual(parseBoot("order=ncbd"), { bootOrder: "ncbd" });
  assert.throws(() => parseBoot("order=cc"), /Boot device 'c' was given twice/);
});
