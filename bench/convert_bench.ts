// Convert throughput: raw->qcow2, qcow2->raw, raw->qcow2 -c on mixed data/zero extents, vs qemu-img

import * as path from "node:path";
import {
  bestOf,
  have,
  printTable,
  type Row,
  run,
  scratch,
  SHORT,
  timed,
  vmkit,
} from "./bench_util.ts";

/**
 * Writes a raw image of `bytes` where each 4 MiB holds 1 MiB of random bytes,
 * 1 MiB of text (compressible), and a 2 MiB hole.
 */
export async function writeMixedImage(file: string, bytes: number): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  try {
    await f.truncate(bytes);
    const random = new Uint8Array(1 << 20);
    const text = new TextEncoder().encode("vmkit convert benchmark line 0123456789\n".repeat(26215))
      .subarray(0, 1 << 20);
    for (let at = 0; at < bytes; at += 4 << 20) {
      for (let i = 0; i < random.length; i += 65536) {
        crypto.getRandomValues(random.subarray(i, i + 65536));
      }
      await f.seek(at, Deno.SeekMode.Start);
      await f.write(random);
      await f.write(text);
    }
  } finally {
    f.close();
  }
}

/** Runs the three conversions with both tools; returns rows in MiB/s of virtual size. */
export async function convertRows(): Promise<Row[]> {
  const { dir, cleanup } = await scratch();
  const bytes = SHORT ? 256 << 20 : 1 << 30;
  const haveQemu = have("qemu-img");
  const runs = SHORT ? 1 : 3;
  try {
    const src = path.join(dir, "src.raw");
    await writeMixedImage(src, bytes);
    const srcQcow2 = path.join(dir, "src.qcow2");
    if (haveQemu) await run("qemu-img", ["convert", "-O", "qcow2", src, srcQcow2]);
    else await vmkit(["img", "convert", "-O", "qcow2", src, srcQcow2]);
    const cases: [string, string[]][] = [
      ["raw -> qcow2", ["convert", "-f", "raw", "-O", "qcow2", src]],
      ["qcow2 -> raw", ["convert", "-f", "qcow2", "-O", "raw", srcQcow2]],
      ["raw -> qcow2 -c (zlib)", ["convert", "-c", "-f", "raw", "-O", "qcow2", src]],
    ];
    const rows: Row[] = [];
    for (const [name, args] of cases) {
      const out = (who: string) => path.join(dir, `out-${who}`);
      const ours = await bestOf(runs, () => timed(() => vmkit(["img", ...args, out("vmkit")])));
      const theirs = haveQemu
        ? await bestOf(runs, () => timed(() => run("qemu-img", [...args, out("qemu")])))
        : undefined;
      const mib = bytes / 2 ** 20;
      rows.push({
        name,
        unit: "MiB/s",
        qemu: theirs === undefined ? undefined : mib / theirs,
        vmkit: mib / ours,
        higherIsBetter: true,
      });
    }
    return rows;
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  printTable(
    `img convert throughput (${SHORT ? "256 MiB" : "1 GiB"} of mixed data and zero extents)`,
    await convertRows(),
  );
}
