// Differential rows: convert, create and dd

import type { DiffCase } from "../differential_table.ts";
import { c, OTHER_FIXTURES, QCOW2_FIXTURES, RAW_FIXTURES, seq } from "./_helpers.ts";

/** Rows of the differential table (convert, create and dd), keyed by group. */
export const WRITE_ROWS: Record<string, DiffCase[]> = {
  convert: [
    ...[...QCOW2_FIXTURES, ...OTHER_FIXTURES, ...RAW_FIXTURES].map((f) =>
      c("convert", "-O", "raw", f, "out.raw")
    ),
    ...["a.qcow2", "c4k.qcow2", "top.qcow2", "odd.raw", "sparse.raw", "v.vdi"].map((f) =>
      c("convert", "-O", "qcow2", f, "out.qcow2")
    ),
    c("convert", "-O", "qcow2", "-o", "cluster_size=4096", "a.qcow2", "out.qcow2"),
    c("convert", "-O", "qcow2", "-o", "compat=0.10", "c4k.qcow2", "out.qcow2"),
    c("convert", "-c", "-O", "qcow2", "a.qcow2", "out.qcow2"),
    c("convert", "-S", "0", "-O", "raw", "sparse.raw", "out.raw"),
    // Where -S leaves holes in a raw target (sector runs, aligned as qemu-img aligns them)
    ...["512", "1536", "3072", "4096", "6144", "64k"].map((size) =>
      seq(["convert", "-S", size, "-O", "raw", "islands.raw", "out.raw"], [
        "map",
        "--output=json",
        "-f",
        "raw",
        "out.raw",
      ])
    ),
    // vdi, vpc, vhdx and raw copy on the main thread through synchronous I/O: the holes
    // they leave in a raw target, and in their own format from a raw source with zero
    // islands; writethrough takes the asynchronous path
    ...["v.vdi", "v.vpc", "v.vhdx"].flatMap((f) =>
      ["0", "3072"].map((size) =>
        seq(["convert", "-S", size, "-O", "raw", f, "out.raw"], [
          "map",
          "--output=json",
          "-f",
          "raw",
          "out.raw",
        ])
      )
    ),
    ...["vdi", "vpc", "vhdx"].map((fmt): DiffCase => ({
      ...seq(["convert", "-S", "1536", "-O", fmt, "islands.raw", `out.${fmt}`], [
        "map",
        "--output=json",
        `out.${fmt}`,
      ]),
      masks: ["random-ids"],
    })),
    seq(["convert", "-t", "writethrough", "-O", "raw", "v.vpc", "out.raw"], [
      "map",
      "--output=json",
      "-f",
      "raw",
      "out.raw",
    ]),
    c("convert", "-O", "raw", "sparse.raw", "odd.raw", "out.raw"),
    c("convert", "-B", "base.raw", "-F", "raw", "-O", "qcow2", "mid.qcow2", "out.qcow2"),
    { ...c("convert", "-O", "vmdk", "sparse.raw", "out.vmdk"), masks: ["random-ids"] },
    { ...c("convert", "-O", "vdi", "a.qcow2", "out.vdi"), masks: ["random-ids"] },
    { ...c("convert", "-O", "vpc", "a.qcow2", "out.vpc"), masks: ["random-ids"] },
    { ...c("convert", "-O", "vhdx", "a.qcow2", "out.vhdx"), masks: ["random-ids"] },
    c("convert", "-O", "qcow2", "-o", "preallocation=metadata", "sparse.raw", "out.qcow2"),
    // -l / snapshot.id / snapshot.name, and the error paths qemu-img reports
    c("convert", "-O", "raw", "-l", "first", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "2", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.name=second", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.id=1", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.id=1,snapshot.name=second", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.name=1", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.foo=1", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "nosuch", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "first", "snap.qcow2", "a.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "snapshot.name=first", "snap.qcow2", "a.qcow2", "out.raw"),
    c("convert", "-O", "raw", "-l", "first", "-f", "raw", "odd.raw", "out.raw"),
    c("convert", "-O", "qcow2", "-l", "vsnap", "vm.qcow2", "out.qcow2"),
    c("convert", "-s", "first", "-O", "raw", "snap.qcow2", "out.raw"),
    c("convert", "-O", "raw", "nosuch.qcow2", "out.raw"),
    c("convert", "-O", "nosuch", "a.qcow2", "out.raw"),
    c("convert", "-O", "raw", "trunc.qcow2", "out.raw"),
    c("convert", "-O", "raw", "badl1.qcow2", "out.raw"),
  ],
  create: [
    c("create", "-f", "qcow2", "new.qcow2", "1G"),
    c("create", "-f", "qcow2", "new.qcow2", "1000"),
    c("create", "-f", "qcow2", "-o", "cluster_size=4096,lazy_refcounts=on", "new.qcow2", "64M"),
    c("create", "-f", "qcow2", "-o", "compat=0.10", "new.qcow2", "64M"),
    c("create", "-f", "qcow2", "-o", "extended_l2=on", "new.qcow2", "64M"),
    c("create", "-f", "qcow2", "-o", "preallocation=metadata", "new.qcow2", "8M"),
    c("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "new.qcow2"),
    c("create", "-f", "qcow2", "-b", "a.qcow2", "new.qcow2"),
    c("create", "-f", "raw", "new.raw", "1000"),
    c("create", "-f", "raw", "new.raw", "1x"),
    c("create", "-f", "qcow2", "new.qcow2", "-1"),
    c("create", "-f", "qcow2", "-o", "cluster_size=1000", "new.qcow2", "1M"),
    c("create", "-f", "nosuch", "new.img", "1M"),
    { ...c("create", "-f", "vdi", "new.vdi", "1000"), masks: ["random-ids"] },
    { ...c("create", "-f", "vmdk", "new.vmdk", "1G"), masks: ["random-ids"] },
    { ...c("create", "-f", "vpc", "new.vpc", "10M"), masks: ["random-ids"] },
    { ...c("create", "-f", "vhdx", "new.vhdx", "10M"), masks: ["random-ids"] },
    c("create", "-f", "qcow2", "-o", "help"),
    c("create", "-f", "raw", "-o", "help"),
    c("create", "-q", "-f", "qcow2", "new.qcow2", "1M"),
  ],
  dd: [
    c(
      "dd",
      "-f",
      "raw",
      "-O",
      "raw",
      "bs=3000",
      "skip=2",
      "count=100",
      "if=odd2.raw",
      "of=out.raw",
    ),
    c("dd", "-O", "qcow2", "bs=3000", "skip=2", "count=10", "if=odd2.raw", "of=out.qcow2"),
    c("dd", "bs=3000", "count=10", "if=odd.raw", "of=out.raw"),
    c("dd", "bs=3000", "skip=2", "if=odd.raw", "of=out.raw"),
    c("dd", "bs=64k", "if=a.qcow2", "of=out.raw"),
    c("dd", "bs=1M", "count=2", "if=top.qcow2", "of=out.raw"),
    c("dd", "bs=0", "if=a.qcow2", "of=out.raw"),
    c("dd", "if=a.qcow2"),
    c("dd", "bogus=1", "if=a.qcow2", "of=out.raw"),
  ],
};
