// Convert throughput: raw->qcow2, qcow2->raw, raw->qcow2 -c (zlib, zstd) on mixed data/zero extents, vs qemu-img

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

/**
 * Runs the three conversions with both tools; returns rows in MiB/s of virtual size.
 * Each tool's process start-up (the same conversion of a 1 MiB image) is measured
 * separately, reported as its own row, and subtracted, so the rows compare the copy
 * itself. Outputs are deleted before every run so neither tool pays for truncating
 * the other's file.
 */
export async function convertRows(): Promise<Row[]> {
  const { dir, cleanup } = await scratch();
  const bytes = SHORT ? 256 << 20 : 1 << 30;
  const haveQemu = have("qemu-img");
  const runs = SHORT ? 2 : 3;
  try {
    const make = async (name: string, size: number) => {
      const raw = path.join(dir, `${name}.raw`);
      await writeMixedImage(raw, size);
      const qcow2 = path.join(dir, `${name}.qcow2`);
      if (haveQemu) await run("qemu-img", ["convert", "-O", "qcow2", raw, qcow2]);
      else await vmkit(["img", "convert", "-O", "qcow2", raw, qcow2]);
      return { raw, qcow2 };
    };
    const big = await make("src", bytes);
    const tiny = await make("tiny", 1 << 20);
    const cases: [string, (src: { raw: string; qcow2: string }) => string[]][] = [
      ["raw -> qcow2", (s) => ["convert", "-f", "raw", "-O", "qcow2", s.raw]],
      ["qcow2 -> raw", (s) => ["convert", "-f", "qcow2", "-O", "raw", s.qcow2]],
      ["raw -> qcow2 -c (zlib)", (s) => ["convert", "-c", "-f", "raw", "-O", "qcow2", s.raw]],
      [
        "raw -> qcow2 -c (zstd)",
        (s) => ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", s.raw],
      ],
    ];
    const out = path.join(dir, "out");
    const once = (tool: "vmkit" | "qemu", args: string[]) =>
      timed(async () => {
        await Deno.remove(out).catch(() => {});
        if (tool === "vmkit") await vmkit(["img", ...args, out]);
        else await run("qemu-img", [...args, out]);
      });
    const rows: Row[] = [];
    const startup = { vmkit: Infinity, qemu: Infinity };
    for (const [, args] of cases) {
      startup.vmkit = Math.min(startup.vmkit, await bestOf(runs, () => once("vmkit", args(tiny))));
      if (haveQemu) {
        startup.qemu = Math.min(
          startup.qemu,
          await bestOf(runs, () => once("qemu", args(tiny))),
        );
      }
    }
    rows.push({
      name: "process start-up (convert of 1 MiB)",
      unit: "ms",
      qemu: haveQemu ? startup.qemu * 1000 : undefined,
      vmkit: startup.vmkit * 1000,
      higherIsBetter: false,
    });
    const mib = bytes / 2 ** 20;
    for (const [name, args] of cases) {
      const ours = await bestOf(runs, () => once("vmkit", args(big)));
      const theirs = haveQemu ? await bestOf(runs, () => once("qemu", args(big))) : undefined;
      rows.push({
        name,
        unit: "MiB/s",
        qemu: theirs === undefined ? undefined : mib / Math.max(1e-3, theirs - startup.qemu),
        vmkit: mib / Math.max(1e-3, ours - startup.vmkit),
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
