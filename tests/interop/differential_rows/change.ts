// Differential rows: snapshot, amend, resize, rebase, commit and bench

import type { DiffCase } from "../differential_table.ts";
import { c, seq } from "./_helpers.ts";

/** Rows of the differential table (snapshot, amend, resize, rebase, commit and bench), keyed by group. */
export const CHANGE_ROWS: Record<string, DiffCase[]> = {
  snapshot: [
    c("snapshot", "-l", "snap.qcow2"),
    c("snapshot", "-l", "vm.qcow2"),
    c("snapshot", "-l", "a.qcow2"),
    c("snapshot", "-l", "odd.raw"),
    seq(["snapshot", "-a", "first", "snap.qcow2"], ["check", "snap.qcow2"]),
    seq(["snapshot", "-d", "second", "snap.qcow2"], ["snapshot", "-l", "snap.qcow2"]),
    seq(["snapshot", "-d", "nosuch", "snap.qcow2"]),
    seq(["snapshot", "-a", "nosuch", "snap.qcow2"]),
    {
      ...seq(["snapshot", "-c", "third", "a.qcow2"], ["check", "a.qcow2"]),
      masks: ["snapshot-clock"],
    },
  ],
  amend: [
    seq(["amend", "-o", "compat=0.10", "a.qcow2"], ["info", "a.qcow2"]),
    seq(["amend", "-o", "lazy_refcounts=on", "a.qcow2"], ["check", "a.qcow2"]),
    seq(["amend", "-o", "cluster_size=4096", "a.qcow2"]),
    seq(["amend", "-o", "help", "-f", "qcow2"]),
    seq(["amend", "-o", "size=8M", "a.qcow2"], ["info", "a.qcow2"]),
  ],
  resize: [
    seq(["resize", "a.qcow2", "8M"], ["info", "a.qcow2"]),
    seq(["resize", "--shrink", "a.qcow2", "-1M"], ["info", "a.qcow2"]),
    seq(["resize", "--shrink", "a.qcow2", "2M"], ["check", "a.qcow2"]),
    seq(["resize", "-f", "raw", "odd.raw", "1500"]),
    seq(["resize", "-f", "raw", "odd.raw", "+1K"]),
    seq(["resize", "snap.qcow2", "16M"]),
  ],
  rebase: [
    seq(["rebase", "-u", "-b", "base.raw", "-F", "raw", "top.qcow2"], ["info", "top.qcow2"]),
    seq(["rebase", "-b", "base.raw", "-F", "raw", "top.qcow2"], ["map", "top.qcow2"]),
    seq(["rebase", "-b", "", "top.qcow2"], ["check", "top.qcow2"]),
  ],
  commit: [
    {
      // No `check` after it: its fragmentation count follows the allocation order too.
      ...seq(["commit", "top.qcow2"], ["compare", "mid.qcow2", "top.qcow2"]),
      masks: ["parallel-allocation"],
    },
    seq(["commit", "-d", "mid.qcow2"], ["compare", "mid.qcow2", "top.qcow2"]),
  ],
  bench: [
    { steps: [["bench", "-c", "100", "a.qcow2"]], masks: ["bench-time"] },
    {
      steps: [["bench", "-w", "-c", "10", "-s", "4k", "a.qcow2"], ["check", "a.qcow2"]],
      masks: ["bench-time"],
      writes: true,
    },
    // A request of the first batch runs past the end (extended L2 and plain): qemu-img
    // exits before the other requests reach the file, so the file keeps its length.
    ...[["-o", "extended_l2=on"], []].map((o): DiffCase => ({
      ...seq(
        ["create", "-f", "qcow2", ...o, "e.qcow2", "1M"],
        ["bench", "-w", "-c", "40", "-s", "100k", "-S", "300k", "e.qcow2"],
        ["bench", "-w", "-c", "5", "-s", "4k", "-o", "2M", "e.qcow2"],
        ["check", "e.qcow2"],
      ),
      masks: ["bench-time"],
    })),
    // -U with a writing command: refused, the image untouched.
    c("bench", "-w", "-c", "1", "-U", "a.qcow2"),
    c("snapshot", "-c", "s9", "-U", "a.qcow2"),
  ],
};
