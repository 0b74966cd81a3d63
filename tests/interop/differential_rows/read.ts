// Differential rows: info, map, check, compare and measure

import type { DiffCase } from "../differential_table.ts";
import { c, DAMAGED, OTHER_FIXTURES, QCOW2_FIXTURES, RAW_FIXTURES, seq } from "./_helpers.ts";

/** Rows of the differential table (info, map, check, compare and measure), keyed by group. */
export const READ_ROWS: Record<string, DiffCase[]> = {
  info: [
    ...[...QCOW2_FIXTURES, ...OTHER_FIXTURES, ...RAW_FIXTURES].flatMap((f) => [
      c("info", f),
      c("info", "--output=json", f),
    ]),
    c("info", "--backing-chain", "top.qcow2"),
    c("info", "--backing-chain", "--output=json", "top.qcow2"),
    c("info", "-f", "raw", "a.qcow2"),
    c("info", "-f", "qcow2", "odd.raw"),
    c("info", "-U", "snap.qcow2"),
    // -U beside force-share=off conflicts; locking=off and force-share=on are options too.
    c("info", "-U", "--image-opts", "driver=qcow2,file.filename=a.qcow2,force-share=off"),
    c("info", "--image-opts", "driver=qcow2,file.filename=a.qcow2,force-share=on"),
    c("info", "--image-opts", "driver=qcow2,file.filename=a.qcow2,file.locking=off"),
    c("map", "--image-opts", "driver=raw,file.filename=odd.raw,file.locking=on"),
    c("info", "--output=xml", "a.qcow2"),
    c("info", "nosuch.qcow2"),
    c("info"),
    ...DAMAGED.map((f) => c("info", f)),
  ],
  map: [
    ...[...QCOW2_FIXTURES, ...RAW_FIXTURES, "v.vmdk", "v.vdi", "v.vpc", "v.vhdx"].flatMap((f) => [
      c("map", f),
      c("map", "--output=json", f),
    ]),
    c("map", "--output=json", "-s", "100k", "-l", "1M", "top.qcow2"),
    c("map", "--start-offset=65537", "--max-length=5", "top.qcow2"),
    c("map", "--output=json", "-s", "10M", "top.qcow2"),
    c("map", "-s", "1x", "top.qcow2"),
    c("map", "-l", "-5", "top.qcow2"),
    c("map", "--output=json", "-f", "raw", "top.qcow2"),
    c("map", "badl1.qcow2"),
  ],
  check: [
    ...[...QCOW2_FIXTURES, "v.vmdk", "v.vdi", "v.vhdx", "v.vpc", "odd.raw"].flatMap((f) => [
      c("check", f),
      c("check", "--output=json", f),
    ]),
    ...DAMAGED.map((f) => c("check", f)),
    c("check", "--output=json", "badl1.qcow2"),
    c("check", "-q", "a.qcow2"),
    // -U is for readers: a repair with it is refused before the image opens.
    c("check", "-r", "all", "-U", "a.qcow2"),
    c("check", "--image-opts", "driver=qcow2,file.filename=a.qcow2,file.locking=off"),
    c("check", "-r", "nonsense", "a.qcow2"),
    // Repairs write: the freed clusters are discarded (holes) as QEMU's update_refcount does.
    ...["leaks", "all"].flatMap((mode) => [
      seq(["check", "-r", mode, "badl1.qcow2"], ["check", "badl1.qcow2"]),
      seq(["check", "-r", mode, "--output=json", "badl1.qcow2"]),
      seq(["check", "-r", mode, "trunc.qcow2"]),
    ]),
  ],
  compare: [
    c("compare", "a.qcow2", "a.qcow2"),
    c("compare", "sparse.raw", "v.vmdk"),
    c("compare", "sparse.raw", "v.vdi"),
    c("compare", "sparse.raw", "comp.qcow2"),
    c("compare", "-s", "sparse.raw", "v.vhdx"),
    c("compare", "sparse.raw", "vm.qcow2"),
    c("compare", "a.qcow2", "c4k.qcow2"),
    c("compare", "odd.raw", "odd2.raw"),
    c("compare", "-s", "odd.raw", "hole.raw"),
    c("compare", "top.qcow2", "mid.qcow2"),
    c("compare", "-f", "qcow2", "-F", "raw", "top.qcow2", "base.raw"),
    c("compare", "-q", "a.qcow2", "snap.qcow2"),
    c("compare", "a.qcow2"),
  ],
  measure: [
    c("measure", "--size", "1G"),
    c("measure", "-O", "qcow2", "--size", "1G"),
    c("measure", "-O", "qcow2", "--size", "1000"),
    c("measure", "-O", "qcow2", "-o", "preallocation=full", "--size", "100M"),
    c("measure", "-O", "qcow2", "-o", "preallocation=full", "a.qcow2"),
    c("measure", "-O", "qcow2", "-o", "preallocation=falloc", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-o", "preallocation=metadata", "snap.qcow2"),
    c("measure", "-O", "qcow2", "--output=json", "top.qcow2"),
    c("measure", "-O", "qcow2", "-o", "cluster_size=4096", "c4k.qcow2"),
    c("measure", "-O", "qcow2", "odd.raw"),
    c("measure", "-O", "qcow2", "-l", "first", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-l", "1", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-l", "snapshot.name=second", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-l", "snapshot.name=1", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-l", "nosuch", "snap.qcow2"),
    c("measure", "-O", "qcow2", "-l", "first", "--size", "1G"),
    c("measure", "-O", "qcow2", "-l", "first", "-f", "raw", "odd.raw"),
    c("measure", "-O", "vdi", "a.qcow2"),
    c("measure", "--size", "1G", "a.qcow2"),
    c("measure"),
    // qemu-img 7.2's measure leaves bad options to glibc's getopt: its line, then the
    // full help on stdout, exit 0.
    ...[
      ["-Z"],
      ["-UZq"],
      ["--bogus=1"],
      ["--size"],
      ["-f"],
      ["--o=x"],
      ["--force-share=1"],
      ["--s"],
      ["-O", "qcow2", "a.qcow2", "--nosuch"],
    ].map((args) => ({ steps: [["measure", ...args]], masks: ["help-text" as const] })),
  ],
};
