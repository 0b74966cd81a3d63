// qcow2 L2 cache: 4 KiB reads at queue depth 1 and 32, 100% / 25% / ~6% L2 coverage, vs qemu-img bench

import * as path from "node:path";
import { have, printTable, type Row, run, scratch, SHORT, vmkit } from "./bench_util.ts";

/** Virtual size of the benchmark image: 16 L2 tables of 512 MiB each with 64 KiB clusters. */
const IMAGE_BYTES = 8 * 2 ** 30;
/** Full L2 coverage for 8 GiB at 64 KiB clusters: 131072 entries of 8 bytes. */
const FULL_L2_BYTES = 1 << 20;

interface Scenario {
  name: string;
  l2CacheBytes: number;
  depth: number;
  /** Bytes between consecutive requests. */
  step: number;
}

// A cache smaller than full coverage holds 4 KiB slices of L2 tables (QEMU's rule), and one
// slice maps 512 clusters = 32 MiB. A step of one slice's reach plus 4 KiB visits all 256
// slices in turn, so a cache of fewer slices misses on every request (LRU on a cycle),
// while full coverage hits on every request once warm.
const SLICE_REACH = 32 * 2 ** 20;
const STRIDE = SLICE_REACH + 4096;

const SCENARIOS: Scenario[] = [
  { name: "QD1, 100% L2 coverage (warm)", l2CacheBytes: FULL_L2_BYTES, depth: 1, step: STRIDE },
  { name: "QD32, 100% L2 coverage (warm)", l2CacheBytes: FULL_L2_BYTES, depth: 32, step: STRIDE },
  { name: "QD1, 25% L2 coverage", l2CacheBytes: FULL_L2_BYTES / 4, depth: 1, step: STRIDE },
  { name: "QD32, 25% L2 coverage", l2CacheBytes: FULL_L2_BYTES / 4, depth: 32, step: STRIDE },
  { name: "QD1, ~6% L2 coverage", l2CacheBytes: 65536, depth: 1, step: STRIDE },
  { name: "QD32, ~6% L2 coverage", l2CacheBytes: 65536, depth: 32, step: STRIDE },
];

function secondsOf(output: string): number {
  const m = /Run completed in ([\d.]+) seconds/.exec(output);
  if (!m) throw new Error(`no timing in bench output: ${output}`);
  return Number(m[1]);
}

function benchArgs(image: string, s: Scenario, count: number): string[] {
  return [
    "bench",
    "--image-opts",
    "-c",
    String(count),
    "-d",
    String(s.depth),
    "-s",
    "4K",
    "-S",
    String(s.step),
    `driver=qcow2,file.filename=${image},l2-cache-size=${s.l2CacheBytes}`,
  ];
}

/** Runs every scenario with both tools; returns rows in µs per request. */
export async function qcow2L2CacheRows(): Promise<Row[]> {
  const { dir, cleanup } = await scratch();
  const count = SHORT ? 20000 : 200000;
  const haveQemu = have("qemu-img");
  try {
    const image = path.join(dir, "big.qcow2");
    // Metadata preallocation gives every cluster an L2 entry, so each read is an L2 lookup.
    const create = [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-o",
      "preallocation=metadata",
      image,
      String(IMAGE_BYTES),
    ];
    if (haveQemu) await run("qemu-img", create);
    else await vmkit(["img", ...create]);
    const rows: Row[] = [];
    for (const s of SCENARIOS) {
      const ours = secondsOf(await vmkit(["img", ...benchArgs(image, s, count)]));
      const theirs = haveQemu
        ? secondsOf(await run("qemu-img", benchArgs(image, s, count)))
        : undefined;
      rows.push({
        name: s.name,
        unit: "µs/request",
        qemu: theirs === undefined ? undefined : (theirs * 1e6) / count,
        vmkit: (ours * 1e6) / count,
        higherIsBetter: false,
      });
    }
    return rows;
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  printTable(
    "qcow2 L2 cache: 4 KiB reads (8 GiB image, metadata preallocated)",
    await qcow2L2CacheRows(),
  );
}
