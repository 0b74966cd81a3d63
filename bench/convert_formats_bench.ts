// Convert throughput to and from every other image format (vmdk, vdi, vpc, vhdx, qcow), vs qemu-img

import * as path from "node:path";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { writeMixedImage } from "./convert_bench.ts";
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

/** A format measured in both directions, or only as a source (`qcow` is read-only in vmkit). */
interface FormatCase {
  format: string;
  /** Extra `-o` for the target, e.g. a subformat. */
  options?: string;
  /** Label suffix. */
  label?: string;
  fromOnly?: boolean;
}

const CASES: readonly FormatCase[] = [
  { format: "vmdk" },
  { format: "vmdk", options: "subformat=streamOptimized", label: "streamOptimized" },
  { format: "vdi" },
  { format: "vpc" },
  { format: "vhdx" },
  { format: "qcow", fromOnly: true },
];

function vmkitHasFormat(name: string): boolean {
  return BUILTIN_PLUGINS.some((p) => p.kind === "format" && p.name === name);
}

/**
 * For each format both tools have: `raw -> fmt` and `fmt -> raw` in MiB/s of virtual
 * size, each tool's process start-up (the same conversion of a 1 MiB image) subtracted.
 * Source images of the format are written by qemu-img when it is present, so both tools
 * read the same bytes.
 */
export async function convertFormatRows(): Promise<Row[]> {
  const haveQemu = have("qemu-img");
  const { dir, cleanup } = await scratch();
  const bytes = SHORT ? 256 << 20 : 1 << 30;
  const runs = SHORT ? 2 : 5;
  const rows: Row[] = [];
  try {
    const raw = path.join(dir, "src.raw");
    const tinyRaw = path.join(dir, "tiny.raw");
    await writeMixedImage(raw, bytes);
    await writeMixedImage(tinyRaw, 4 << 20);
    const out = path.join(dir, "out");
    const once = (tool: "vmkit" | "qemu", args: string[]) =>
      timed(async () => {
        await Deno.remove(out).catch(() => {});
        if (tool === "vmkit") await vmkit(["img", ...args, out]);
        else await run("qemu-img", [...args, out]);
      });
    const mib = bytes / 2 ** 20;
    for (const c of CASES) {
      if (!vmkitHasFormat(c.format)) continue;
      const name = c.label ? `${c.format} (${c.label})` : c.format;
      const opts = c.options ? ["-o", c.options] : [];
      const src = path.join(dir, `src.${c.format}`);
      const tiny = path.join(dir, `tiny.${c.format}`);
      for (const [from, to] of [[raw, src], [tinyRaw, tiny]]) {
        await Deno.remove(to).catch(() => {});
        if (haveQemu) await run("qemu-img", ["convert", "-O", c.format, ...opts, from, to]);
        else await vmkit(["img", "convert", "-O", c.format, ...opts, from, to]);
      }
      const directions: [string, (s: string, r: string) => string[]][] = [
        [`${name} -> raw`, (s) => ["convert", "-f", c.format, "-O", "raw", s]],
      ];
      if (!c.fromOnly) {
        directions.unshift([
          `raw -> ${name}`,
          (_s, r) => ["convert", "-f", "raw", "-O", c.format, ...opts, r],
        ]);
      }
      for (const [label, args] of directions) {
        const startOurs = await bestOf(runs, () => once("vmkit", args(tiny, tinyRaw)));
        const ours = await bestOf(runs, () => once("vmkit", args(src, raw)));
        let theirs: number | undefined;
        if (haveQemu) {
          const startTheirs = await bestOf(runs, () => once("qemu", args(tiny, tinyRaw)));
          const t = await bestOf(runs, () => once("qemu", args(src, raw)));
          theirs = mib / Math.max(1e-3, t - startTheirs);
        }
        rows.push({
          name: label,
          unit: "MiB/s",
          qemu: theirs,
          vmkit: mib / Math.max(1e-3, ours - startOurs),
          higherIsBetter: true,
        });
      }
    }
    return rows;
  } finally {
    await cleanup();
  }
}

/** The table's title, shared with bench/run.ts. */
export function convertFormatsTitle(): string {
  return `img convert between raw and other formats (${
    SHORT ? "256 MiB" : "1 GiB"
  } of mixed data and zero extents; start-up subtracted)`;
}

if (import.meta.main) {
  printTable(convertFormatsTitle(), await convertFormatRows());
}
