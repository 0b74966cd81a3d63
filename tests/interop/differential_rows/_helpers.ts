// The differential table's row builders and fixture lists, shared by its row files

import type { DiffCase } from "../differential_table.ts";

/** A row of one command that changes no fixture. */
export const c = (...args: string[]): DiffCase => ({ steps: [args] });
/** A row of several commands in order that may write into its fixtures. */
export const seq = (...steps: string[][]): DiffCase => ({ steps, writes: true });
/** A writing sequence that uses `bench -w` to write into an image. */
export const withBench = (...steps: string[][]): DiffCase => ({
  ...seq(...steps),
  masks: ["bench-time"],
});

export const QCOW2_FIXTURES = [
  "a.qcow2",
  "c4k.qcow2",
  "pre.qcow2",
  "ext.qcow2",
  "snap.qcow2",
  "top.qcow2",
  "mid.qcow2",
  "comp.qcow2",
  "vm.qcow2",
];
export const OTHER_FIXTURES = ["v.vmdk", "so.vmdk", "v.vdi", "v.vpc", "v.vhdx", "v.qcow"];
export const RAW_FIXTURES = [
  "odd.raw",
  "odd2.raw",
  "sparse.raw",
  "hole.raw",
  "empty.raw",
  "islands.raw",
];
export const DAMAGED = ["trunc.qcow2", "badl1.qcow2", "badmagic.qcow2", "bad.vmdk"];
