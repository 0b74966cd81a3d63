// The differential suite's table: qemu-img command lines run through vmkit and qemu-img 7.2 alike

/**
 * Named rules for differences that are on purpose; docs/img-differences.md gives the
 * reason for each. A case names the rules it needs; nothing else is masked.
 */
export type MaskRule =
  /** Files written with random ids (vmdk CID, vdi/vpc/vhdx UUIDs): compared by content, not bytes. */
  | "random-ids"
  /** Snapshots taken during the case carry the wall-clock time: files compared by content. */
  | "snapshot-clock"
  /** `bench` prints its own run time. */
  | "bench-time"
  /**
   * qemu-img commit (QEMU's mirror job) and convert -W copy in parallel, so clusters are
   * allocated in a different order from run to run: files compared by content.
   */
  | "parallel-allocation"
  /**
   * stdout is the tool's whole `--help` text, which lists what each tool implements
   * (its version line, commands and formats): compared as "this tool's `--help`".
   */
  | "help-text"
  /**
   * qemu-img names a node it made without a name `#block` + a counter + two random
   * digits (QEMU's id_generate): compared as `#blockN`.
   */
  | "node-name"
  /**
   * A vmdk descriptor's `CID=` value is random (QEMU's g_random_int at create and at the
   * first write): files compared byte for byte with that one value masked
   * ({@linkcode maskVmdkCid}).
   */
  | "vmdk-cid";

const latin1 = new TextDecoder("latin1");

/**
 * `bytes` with the value of its vmdk descriptor's one `CID=` line replaced by `*`: in the
 * descriptor sectors a sparse header (`KDMV`) points at (the region keeps its size: the
 * shorter text is followed by zeroes, so every other byte is compared where it stands),
 * or in a file that is all descriptor. A file without exactly one CID line throws: the
 * mask never hides more than it names.
 */
export function maskVmdkCid(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sparse = bytes.length >= 44 && latin1.decode(bytes.subarray(0, 4)) === "KDMV";
  const start = sparse ? Number(v.getBigUint64(28, true)) * 512 : 0;
  const end = sparse ? start + Number(v.getBigUint64(36, true)) * 512 : bytes.length;
  if (end > bytes.length || start >= end) throw new Error("no vmdk descriptor to mask");
  const text = latin1.decode(bytes.subarray(start, end));
  const cid = /^CID=[0-9a-fA-F]+$/gm;
  const found = text.match(cid)?.length ?? 0;
  if (found !== 1) throw new Error(`${found} CID lines in the vmdk descriptor`);
  const masked = Uint8Array.from(text.replace(cid, "CID=*"), (ch) => ch.charCodeAt(0));
  if (!sparse) return masked;
  const out = bytes.slice();
  out.fill(0, start, end);
  out.set(masked, start);
  return out;
}

/** One row: command lines run in order in a fresh copy of the fixtures. */
export interface DiffCase {
  /** Each step is a qemu-img argument list (without `qemu-img`); names are relative. */
  steps: string[][];
  masks?: MaskRule[];
  /**
   * The case writes into fixture files (snapshot, amend, resize, rebase, commit):
   * they are copied for it instead of linked.
   */
  writes?: boolean;
}

const c = (...args: string[]): DiffCase => ({ steps: [args] });
const seq = (...steps: string[][]): DiffCase => ({ steps, writes: true });
/** A writing sequence that uses `bench -w` to write into an image. */
const withBench = (...steps: string[][]): DiffCase => ({ ...seq(...steps), masks: ["bench-time"] });

const QCOW2_FIXTURES = [
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
const OTHER_FIXTURES = ["v.vmdk", "so.vmdk", "v.vdi", "v.vpc", "v.vhdx", "v.qcow"];
const RAW_FIXTURES = ["odd.raw", "odd2.raw", "sparse.raw", "hole.raw", "empty.raw", "islands.raw"];
const DAMAGED = ["trunc.qcow2", "badl1.qcow2", "badmagic.qcow2", "bad.vmdk"];

/** Fixtures that name others as backing files: a case using one gets them too. */
export const FIXTURE_DEPENDENCIES: Record<string, string[]> = {
  "top.qcow2": ["mid.qcow2", "base.raw"],
  "mid.qcow2": ["base.raw"],
};

/** The table, grouped by subcommand. */
export const DIFF_TABLE: Record<string, DiffCase[]> = {
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
  ],
  bitmap: [
    // Made, listed and checked; then a writer (bench -w) dirties the enabled bitmaps,
    // and every action rewrites the bitmaps in QEMU's cluster order.
    withBench(
      ["bitmap", "--add", "a.qcow2", "b0"],
      ["info", "a.qcow2"],
      ["info", "--output=json", "a.qcow2"],
      ["check", "a.qcow2"],
      ["bitmap", "--add", "-g", "128k", "--disable", "a.qcow2", "b1"],
      ["bench", "-w", "-c", "4", "-s", "4k", "-S", "1M", "-o", "64k", "a.qcow2"],
      ["check", "--output=json", "a.qcow2"],
      ["bitmap", "--merge", "b0", "a.qcow2", "b1"],
      ["bitmap", "--enable", "a.qcow2", "b1"],
      ["bench", "-w", "-c", "3", "-s", "8k", "-S", "128k", "-o", "2M", "a.qcow2"],
      ["bitmap", "--enable", "--clear", "a.qcow2", "b0"],
      ["bitmap", "--add", "--merge", "b1", "--disable", "a.qcow2", "b2"],
      ["bitmap", "--remove", "a.qcow2", "b1"],
      ["info", "a.qcow2"],
      ["check", "a.qcow2"],
    ),
    withBench(
      ["bitmap", "--add", "-g", "512", "c4k.qcow2", "small"],
      ["bitmap", "--add", "--granularity=2M", "c4k.qcow2", "big"],
      ["bench", "-w", "-c", "5", "-s", "1k", "-S", "3k", "-o", "1000", "c4k.qcow2"],
      ["info", "--output=json", "c4k.qcow2"],
      ["check", "c4k.qcow2"],
      ["bitmap", "--remove", "c4k.qcow2", "small"],
      ["bitmap", "--remove", "c4k.qcow2", "big"],
      // No `info` here: the holes punched in 4 KiB clusters make ext4's block count (`disk
      // size`) vary from run to run, for qemu-img as for vmkit.
      ["check", "c4k.qcow2"],
    ),
    // Merging from another image, and the sizes that refuse it
    withBench(
      ["bitmap", "--add", "a.qcow2", "src"],
      ["bench", "-w", "-c", "4", "-s", "4k", "-S", "1M", "-o", "64k", "a.qcow2"],
      ["create", "-f", "qcow2", "new.qcow2", "4M"],
      ["bitmap", "--add", "-g", "1M", "new.qcow2", "dst"],
      ["bitmap", "--merge", "src", "-b", "a.qcow2", "-F", "qcow2", "new.qcow2", "dst"],
      ["bitmap", "--merge", "src", "-b", "a.qcow2", "-F", "raw", "new.qcow2", "dst"],
      ["bitmap", "--add", "snap.qcow2", "x"],
      ["bitmap", "--merge", "x", "--source-file=snap.qcow2", "new.qcow2", "dst"],
      ["check", "new.qcow2"],
    ),
    // What other commands do with bitmaps
    withBench(
      ["bitmap", "--add", "a.qcow2", "b0"],
      ["bitmap", "--add", "--disable", "a.qcow2", "b1"],
      ["bench", "-w", "-c", "4", "-s", "4k", "-S", "1M", "-o", "64k", "a.qcow2"],
      ["measure", "-O", "qcow2", "a.qcow2"],
      ["measure", "-O", "qcow2", "--output=json", "a.qcow2"],
      ["convert", "--bitmaps", "-O", "qcow2", "a.qcow2", "out.qcow2"],
      ["info", "out.qcow2"],
      ["check", "out.qcow2"],
      ["convert", "--bitmaps", "-O", "raw", "a.qcow2", "out.raw"],
      ["convert", "--bitmaps", "-O", "qcow2", "-o", "compat=0.10", "a.qcow2", "out2.qcow2"],
      ["convert", "--bitmaps", "-O", "qcow2", "a.qcow2", "a.qcow2", "out3.qcow2"],
      ["convert", "--bitmaps", "-f", "raw", "-O", "qcow2", "odd.raw", "out4.qcow2"],
      ["convert", "--skip-broken-bitmaps", "-O", "qcow2", "a.qcow2", "out5.qcow2"],
      ["resize", "a.qcow2", "8M"],
      ["resize", "--shrink", "a.qcow2", "2M"],
      ["info", "a.qcow2"],
      ["check", "a.qcow2"],
      ["snapshot", "-a", "nosuch", "a.qcow2"],
      ["amend", "-o", "compat=0.10", "a.qcow2"],
      ["info", "a.qcow2"],
      ["check", "a.qcow2"],
    ),
    // Refusals, in qemu-img's words and exit codes
    ...[
      ["a.qcow2", "b0"],
      ["--add", "a.qcow2"],
      ["--add", "a.qcow2", "b0", "extra"],
      ["-g", "64k", "--remove", "a.qcow2", "b0"],
      ["-g", "1x", "--add", "a.qcow2", "b0"],
      ["-g", "1000", "--add", "a.qcow2", "b0"],
      ["-g", "256", "--add", "a.qcow2", "b0"],
      ["-g", "4G", "--add", "a.qcow2", "b0"],
      ["-g", "4T", "--add", "a.qcow2", "b0"],
      ["-F", "raw", "--merge", "x", "a.qcow2", "b0"],
      ["-b", "odd.raw", "--add", "a.qcow2", "b0"],
      ["--remove", "a.qcow2", "nosuch"],
      ["--clear", "a.qcow2", "nosuch"],
      ["--enable", "a.qcow2", "nosuch"],
      ["--disable", "a.qcow2", "nosuch"],
      ["--merge", "nosuch", "a.qcow2", "b0"],
      ["--bogus", "a.qcow2", "b0"],
      ["-Z", "a.qcow2", "b0"],
      ["-q", "--add", "a.qcow2", "b0"],
      ["--merge"],
      ["-g"],
      ["--add", "nosuch.qcow2", "b0"],
      ["--add", "a.qcow2", ""],
      ["--add", "--image-opts", "driver=qcow2,file.filename=a.qcow2", "b0"],
      ["--add", "-f", "qcow2", "a.qcow2", "b0"],
    ].map((args) => seq(["bitmap", ...args])),
    { ...seq(["bitmap", "--add", "badmagic.qcow2", "b0"]), masks: ["node-name"] },
    { ...seq(["bitmap", "--add", "-f", "raw", "odd.raw", "b0"]), masks: ["node-name"] },
    { ...seq(["bitmap", "--add", "vm.qcow2", "x".repeat(1024)]), masks: ["node-name"] },
    {
      ...seq(["create", "-f", "qcow2", "-o", "compat=0.10", "new.qcow2", "1M"], [
        "bitmap",
        "--add",
        "new.qcow2",
        "b0",
      ]),
      masks: ["node-name"],
    },
    {
      ...seq(
        ["create", "-f", "qcow2", "new.qcow2", "1P"],
        [
          "bitmap",
          "--add",
          "-g",
          "512",
          "new.qcow2",
          "b0",
        ],
        ["bitmap", "--add", "-g", "2G", "new.qcow2", "b1"],
        ["info", "new.qcow2"],
      ),
      masks: ["node-name"],
    },
    seq(["bitmap", "--add", "a.qcow2", "b0"], ["bitmap", "--add", "a.qcow2", "b0"]),
  ],
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
  // Where qcow2 puts clusters and what compressed clusters hold, byte for byte: the
  // compressors qemu-img links, refcount blocks placed as alloc_refcount_block places
  // them (512-byte and 1 KiB clusters reach new refcount ranges every few hundred KiB),
  // the refcount table grown as qcow2_refcount_area grows it, preallocation as
  // qcow2_co_truncate and preallocate_co lay it out.
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
