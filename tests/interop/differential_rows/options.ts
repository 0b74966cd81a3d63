// Differential rows: every option qemu-img documents

import type { DiffCase } from "../differential_table.ts";
import { c, seq } from "./_helpers.ts";

/** Rows of the differential table (every option qemu-img documents), keyed by group. */
export const OPTIONS_ROWS: Record<string, DiffCase[]> = {
  "documented options": [
    c("info", "--image-opts", "driver=qcow2,file.filename=a.qcow2"),
    c("map", "--image-opts", "--output=json", "driver=qcow2,file.filename=c4k.qcow2"),
    {
      ...c("convert", "-W", "-m", "2", "-O", "qcow2", "a.qcow2", "out.qcow2"),
      masks: ["parallel-allocation"],
    },
    c("convert", "-m", "0", "-O", "raw", "a.qcow2", "out.raw"),
    c("convert", "-C", "-c", "-O", "qcow2", "a.qcow2", "out.qcow2"),
    c("convert", "-S", "32M", "-O", "raw", "a.qcow2", "out.raw"),
    c("convert", "-t", "writeback", "-T", "none", "-O", "raw", "c4k.qcow2", "out.raw"),
    c("convert", "-U", "-p", "-q", "-O", "raw", "snap.qcow2", "out.raw"),
    c("convert", "-m", "99", "-O", "raw", "a.qcow2", "out.raw"),
    c("convert", "-S", "1000", "-O", "raw", "a.qcow2", "out.raw"),
    c("convert", "-c", "-S", "0", "-O", "qcow2", "a.qcow2", "out.qcow2"),
    c("convert", "--target-is-zero", "-O", "raw", "a.qcow2", "out.raw"),
    // -n into an existing image smaller than the source
    seq(["convert", "-n", "-O", "raw", "a.qcow2", "odd2.raw"]),
    seq(["convert", "-n", "--target-is-zero", "-O", "raw", "sparse.raw", "odd.raw"]),
    c("create", "-u", "-f", "qcow2", "-b", "nosuch.qcow2", "-F", "qcow2", "new.qcow2", "1M"),
    c("create", "-f", "qcow2", "-b", "nosuch.qcow2", "-F", "qcow2", "new.qcow2"),
    c("check", "-U", "--output=json", "-f", "qcow2", "c4k.qcow2"),
    c("compare", "-U", "-f", "qcow2", "-F", "qcow2", "a.qcow2", "vm.qcow2"),
    c("measure", "--output=json", "-O", "qcow2", "-o", "cluster_size=2M", "--size", "10G"),
    c("snapshot", "-l", "-U", "snap.qcow2"),
    c("create", "-u", "-f", "qcow2", "-b", "nosuch.qcow2", "new.qcow2", "1M"),
    { ...seq(["snapshot", "-c", "", "a.qcow2"]), masks: ["snapshot-clock"] },
    c("info", "--output=json", "--backing-chain", "-U", "mid.qcow2"),
  ],
  "qcow2 allocation and compression": [
    ...[
      [],
      ["-o", "compression_type=zstd"],
      ["-o", "cluster_size=512"],
      ["-o", "cluster_size=1024,compression_type=zstd"],
      ["-o", "cluster_size=2M"],
      ["-o", "refcount_bits=1,cluster_size=4096"],
      ["-o", "extended_l2=on"],
    ].map((o) => c("convert", "-c", "-O", "qcow2", ...o, "text.raw", "out.qcow2")),
    ...[
      "cluster_size=512",
      "cluster_size=1024",
      "cluster_size=512,refcount_bits=64",
      "cluster_size=1024,refcount_bits=2",
      "cluster_size=512,refcount_bits=1,lazy_refcounts=on",
    ].flatMap((o) => [
      c("convert", "-O", "qcow2", "-o", o, "text.raw", "out.qcow2"),
      c("convert", "-O", "qcow2", "-o", o, "noise.raw", "out.qcow2"),
      c("convert", "-O", "qcow2", "-o", o, "sparse.raw", "out.qcow2"),
    ]),
    c("convert", "-c", "-O", "qcow2", "-o", "cluster_size=512", "noise.raw", "out.qcow2"),
    // The end of a compressed stream is aligned with a backing file too; compression never
    // overwrites an allocated cluster (EIO, and nothing after it is written)
    c("convert", "-c", "-O", "qcow2", "-B", "a.qcow2", "-F", "qcow2", "text.raw", "out.qcow2"),
    seq(["convert", "-n", "-c", "-O", "qcow2", "text.raw", "a.qcow2"], ["check", "a.qcow2"]),
    seq(
      ["create", "-f", "qcow2", "-o", "cluster_size=1024", "new.qcow2", "4M"],
      ["convert", "-n", "-O", "qcow2", "odd2.raw", "new.qcow2"],
      ["convert", "-n", "-c", "-O", "qcow2", "text.raw", "new.qcow2"],
      ["check", "new.qcow2"],
    ),
    ...["cluster_size=512", "cluster_size=1024", "cluster_size=2M", "extended_l2=on"].flatMap((o) =>
      ["metadata", "falloc", "full"].flatMap((pre) => [
        c("create", "-f", "qcow2", "-o", `${o},preallocation=${pre}`, "new.qcow2", "5000000"),
        c("create", "-f", "qcow2", "-o", `${o},preallocation=${pre}`, "new.qcow2", "70000"),
      ])
    ),
    c(
      "convert",
      "-O",
      "qcow2",
      "-o",
      "cluster_size=512,preallocation=full",
      "text.raw",
      "out.qcow2",
    ),
    c("create", "-f", "qcow2", "-o", "cluster_size=512", "new.qcow2", "64G"),
    c("create", "-f", "qcow2", "-o", "cluster_size=512", "new.qcow2", "200G"),
    ...["falloc", "full", "metadata"].map((pre) =>
      seq(
        ["convert", "-O", "qcow2", "-o", "extended_l2=on", "odd2.raw", "out.qcow2"],
        ["resize", `--preallocation=${pre}`, "out.qcow2", "+3000320"],
        ["check", "out.qcow2"],
        ["compare", "odd2.raw", "out.qcow2"],
      )
    ),
    // A new refcount width: blocks and table laid out as qcow2_change_refcount_order walks
    ...["1", "64"].map((bits) =>
      seq(["amend", "-o", `refcount_bits=${bits}`, "a.qcow2"], ["check", "a.qcow2"])
    ),
    ...[["512", "64"], ["1024", "4"], ["1024", "1"]].map(([cs, bits]) =>
      seq(
        ["convert", "-O", "qcow2", "-o", `cluster_size=${cs}`, "text.raw", "out.qcow2"],
        ["amend", "-o", `refcount_bits=${bits}`, "out.qcow2"],
        ["check", "out.qcow2"],
      )
    ),
    // Zero writes set the zero flag on unallocated clusters too, allocating their L2
    // tables (zero_in_l2_slice); a shrink allocates them for the discard, then drops
    // refcount blocks that count nothing (qcow2_shrink_reftable)
    ...[["cluster_size=512"], [], ["compat=0.10"], ["extended_l2=on"]].map((o) =>
      seq(
        ["create", "-f", "qcow2", ...(o.length ? ["-o", ...o] : []), "new.qcow2", "4M"],
        ["convert", "-n", "-O", "qcow2", "sparse.raw", "new.qcow2"],
        ["map", "--output=json", "new.qcow2"],
      )
    ),
    seq(
      ["convert", "-O", "qcow2", "-o", "cluster_size=1024", "text.raw", "out.qcow2"],
      ["resize", "--shrink", "out.qcow2", "1M"],
      ["check", "out.qcow2"],
    ),
    seq(
      ["create", "-f", "qcow2", "-o", "cluster_size=1024,refcount_bits=1", "new.qcow2", "20M"],
      ["resize", "--shrink", "new.qcow2", "100k"],
      ["check", "new.qcow2"],
    ),
    // A shrink truncates the file only when that makes it shorter: compressed data
    // ending inside the last cluster in use leaves the file as it is, unaligned
    ...["3150848", "3M"].map((size) =>
      seq(
        ["convert", "-c", "-O", "qcow2", "text.raw", "c.qcow2"],
        ["resize", "--shrink", "c.qcow2", size],
        ["check", "c.qcow2"],
      )
    ),
    // rebase writes runs of differing sectors, each run allocated at once
    {
      ...seq(
        ["convert", "-O", "qcow2", "-o", "cluster_size=512", "sparse.raw", "b.qcow2"],
        [
          "create",
          "-f",
          "qcow2",
          "-o",
          "cluster_size=512",
          "-b",
          "b.qcow2",
          "-F",
          "qcow2",
          "t.qcow2",
        ],
        ["bench", "-w", "-d", "1", "-c", "60", "-s", "3k", "-S", "40k", "--pattern=7", "t.qcow2"],
        ["rebase", "-b", "text.raw", "-F", "raw", "t.qcow2"],
        ["check", "t.qcow2"],
      ),
      masks: ["bench-time"],
    },
    // Writes of one request each (-d 1): qemu-img's 64 parallel requests complete in an
    // order of their own (docs/img-differences.md, parallel-allocation).
    ...["512", "1024"].map((cs): DiffCase => ({
      ...seq(
        ["create", "-f", "qcow2", "-o", `cluster_size=${cs}`, "new.qcow2", "20M"],
        ["bench", "-w", "-d", "1", "-c", "2000", "-s", "4k", "-S", "12k", "new.qcow2"],
        ["check", "new.qcow2"],
      ),
      masks: ["bench-time"],
    })),
    // qemu-img 7.2 wraps bench offsets modulo the image size: a request then runs past
    // the end and fails.
    seq(
      ["convert", "-O", "qcow2", "-o", "cluster_size=1024", "text.raw", "out.qcow2"],
      ["bench", "-w", "-d", "1", "-c", "1300", "-s", "4k", "-S", "12k", "out.qcow2"],
      ["check", "out.qcow2"],
    ),
  ],
};
