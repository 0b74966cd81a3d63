// Differential rows: odd sizes, damaged files and vmdk streamOptimized bytes

import type { DiffCase } from "../differential_table.ts";
import { c, seq } from "./_helpers.ts";

/** Rows of the differential table (odd sizes, damaged files and vmdk streamOptimized bytes), keyed by group. */
export const ODD_ROWS: Record<string, DiffCase[]> = {
  // Where qcow2 puts clusters and what compressed clusters hold, byte for byte: the
  // compressors qemu-img links, refcount blocks placed as alloc_refcount_block places
  // them (512-byte and 1 KiB clusters reach new refcount ranges every few hundred KiB),
  // the refcount table grown as qcow2_refcount_area grows it, preallocation as
  // qcow2_co_truncate and preallocate_co lay it out.
  "odd sizes and damaged files": [
    c("info", "odd2.raw"),
    c("compare", "odd.raw", "odd.raw"),
    c("convert", "-O", "qcow2", "odd2.raw", "out.qcow2"),
    c("map", "--output=json", "hole.raw"),
    c("check", "trunc.qcow2"),
    c("convert", "-O", "raw", "badmagic.qcow2", "out.raw"),
    c("info", "--output=json", "bad.vmdk"),
  ],
  // Every grain deflated by zlib's compress() as qemu-img does (core/host_zlib.ts): the
  // files are qemu-img's byte for byte but for the random CID.
  "vmdk streamOptimized bytes": [
    ...[
      "text.raw",
      "noise.raw",
      "islands.raw",
      "sparse.raw",
      "odd2.raw",
      "a.qcow2",
      "snap.qcow2",
      "v.vmdk",
      "so.vmdk",
    ].map((f): DiffCase => ({
      ...c("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", f, "out.vmdk"),
      masks: ["vmdk-cid"],
    })),
    {
      ...c("convert", "-c", "-O", "vmdk", "-o", "subformat=streamOptimized", "text.raw", "o.vmdk"),
      masks: ["vmdk-cid"],
    },
    {
      ...c(
        "convert",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized,adapter_type=lsilogic,hwversion=6",
        "islands.raw",
        "out.vmdk",
      ),
      masks: ["vmdk-cid"],
    },
    // info of a vmdk each tool wrote: only the CID (random) is masked, in the file and in
    // `info`'s human and JSON output.
    ...[[], ["-o", "subformat=streamOptimized"]].map((
      o,
    ): DiffCase => ({
      ...seq(
        ["create", "-f", "vmdk", ...o, "new.vmdk", "3M"],
        ["info", "new.vmdk"],
        ["info", "--output=json", "new.vmdk"],
      ),
      masks: ["vmdk-cid"],
    })),
    {
      ...seq(
        ["convert", "-O", "vmdk", "-o", "subformat=streamOptimized", "text.raw", "out.vmdk"],
        ["convert", "-O", "raw", "out.vmdk", "back.raw"],
        ["compare", "text.raw", "back.raw"],
      ),
      masks: ["vmdk-cid"],
    },
  ],
};
