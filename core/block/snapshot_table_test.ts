import assert from "node:assert/strict";
import { snapshotTable } from "./snapshot_table.ts";

Deno.test("snapshotTable() lays rows out as qemu-img 7.2's snapshot -l, a long tag pushing its row", () => {
  // The rows `qemu-img snapshot -l` printed for these two snapshots (TZ=UTC), copied whole.
  const qemu = [
    "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT",
    "1         averyveryverylongtag1      0 B 2026-12-07 16:56:01 00:00:00.000          0",
    "2         t                     0 B 2026-12-07 16:56:01 00:00:00.000          0",
  ].join("\n");
  // The table prints local time, so the date is made from local fields.
  const dateSec = new Date(2026, 11, 7, 16, 56, 1).getTime() / 1000;
  const table = snapshotTable([
    {
      id: "1",
      name: "averyveryverylongtag1",
      vmStateSize: 0,
      dateSec,
      dateNsec: 0,
      vmClockNs: 0,
      icount: 0,
    },
    { id: "2", name: "t", vmStateSize: 0, dateSec, dateNsec: 0, vmClockNs: 0, icount: 0 },
  ]);
  assert.equal(table, qemu);
});
