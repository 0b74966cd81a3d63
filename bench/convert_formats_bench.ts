// Convert throughput to and from every other image format (vmdk, vdi, vpc, vhdx, qcow), vs qemu-img

import * as path from "node:path";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { writeMixedImage } from "./convert_bench.ts";
import {
  type ChildTime,
  have,
  median,
  printTable,
  ROOT,
  type Row,
  run,
  scratch,
  SHORT,
  syncDisks,
  timeChild,
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

/** `--formats=vdi,vhdx` measures only those formats (all by default). */
const ONLY = Deno.args.find((a) => a.startsWith("--formats="))?.slice("--formats=".length)
  .split(",");

/**
 * Timed runs of every conversion by each tool; the median is reported. `--runs=N` asks
 * for more on a busy machine, where five medians still move by ±0.3 in the ratio.
 */
const RUNS = Number(Deno.args.find((a) => a.startsWith("--runs="))?.slice("--runs=".length)) ||
  (SHORT ? 5 : 9);
const MAIN = path.join(ROOT, "cli", "main.ts");

/**
 * `--each` prints every timed run (start-up and full, wall and CPU) to stderr: at 1 GiB
 * a run is either fast or several times slower (the VM's free page reporting, see
 * docs/img-performance.md), which a median of a few runs hides.
 */
const EACH = Deno.args.includes("--each");

function vmkitHasFormat(name: string): boolean {
  return BUILTIN_PLUGINS.some((p) => p.kind === "format" && p.name === name);
}

/**
 * For each format both tools have: `raw -> fmt` and `fmt -> raw` in MiB/s of virtual
 * size, by wall clock and by CPU time (user + system), each the median of
 * {@linkcode RUNS} runs with the median start-up (the same conversion of a 4 MiB image)
 * subtracted. Source images of the format are written by qemu-img when it is present,
 * so both tools read the same bytes.
 *
 * Steadiness: the tools take turns (qemu-img, vmkit, then vmkit, qemu-img, ...), so
 * load from other jobs falls on both alike; every run starts after `sync`, so the
 * previous run's dirty pages are not written back (and throttled) inside the next one;
 * outputs are deleted before every run, so neither tool pays for truncating the other's
 * file; and the median, not the best, is reported, with CPU time beside the wall clock
 * because a shared machine disturbs CPU time less.
 *
 * Results, what each change bought, and how noisy the kernel's page-cache copies make
 * them: docs/img-performance.md.
 */
export async function convertFormatRows(): Promise<Row[]> {
  const haveQemu = have("qemu-img");
  const { dir, cleanup } = await scratch();
  const bytes = SHORT ? 256 << 20 : 1 << 30;
  const rows: Row[] = [];
  try {
    const raw = path.join(dir, "src.raw");
    const tinyRaw = path.join(dir, "tiny.raw");
    await writeMixedImage(raw, bytes);
    await writeMixedImage(tinyRaw, 4 << 20);
    // The start-up run writes its own file: deleting the previous full output right
    // before the full run, not before the start-up run, gives both tools the same free
    // memory (see `once`).
    const out = path.join(dir, "out");
    const outTiny = path.join(dir, "out.tiny");
    /**
     * One timed conversion into `target`, deleted first. On a VM with free page
     * reporting (virtio-balloon here), memory freed by that delete is handed back to the
     * host within about two seconds, and the next write into the page cache then pays a
     * host fault per page: measured with qemu-img alone, vmdk -> raw of 256 MiB took
     * 0.10-0.28 s of system time run at once after the delete and 0.44-0.51 s run 2.5 s
     * later. So the delete comes right before the run it frees room for, and only the
     * tool's own start-up lies between them.
     */
    const once = async (
      tool: "vmkit" | "qemu",
      args: string[],
      target = out,
    ): Promise<ChildTime> => {
      await Deno.remove(target).catch(() => {});
      await syncDisks();
      return tool === "vmkit"
        ? await timeChild(Deno.execPath(), ["run", "-A", "--quiet", MAIN, "img", ...args, target])
        : await timeChild("qemu-img", [...args, target]);
    };
    const mib = bytes / 2 ** 20;
    const tools: ("vmkit" | "qemu")[] = haveQemu ? ["qemu", "vmkit"] : ["vmkit"];
    for (const c of CASES) {
      if (!vmkitHasFormat(c.format) || (ONLY && !ONLY.includes(c.format))) continue;
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
        const samples = {
          vmkit: { start: [] as ChildTime[], full: [] as ChildTime[] },
          qemu: { start: [] as ChildTime[], full: [] as ChildTime[] },
        };
        // One untimed run each first, so caches (Deno's, the page cache) are warm.
        for (const tool of tools) await once(tool, args(src, raw));
        for (let i = 0; i < RUNS; i++) {
          const order = i % 2 ? [...tools].reverse() : tools;
          for (const tool of order) {
            samples[tool].start.push(await once(tool, args(tiny, tinyRaw), outTiny));
            samples[tool].full.push(await once(tool, args(src, raw)));
            if (EACH) {
              const [st, full] = [samples[tool].start.at(-1)!, samples[tool].full.at(-1)!];
              console.error(
                `${label} ${tool}: start-up ${st.wall.toFixed(3)} / ${st.cpu.toFixed(3)} s, ` +
                  `full ${full.wall.toFixed(3)} / ${full.cpu.toFixed(3)} s (wall / CPU)`,
              );
            }
          }
        }
        const speed = (tool: "vmkit" | "qemu", m: keyof ChildTime) => {
          const s = samples[tool];
          const t = median(s.full.map((x) => x[m])) - median(s.start.map((x) => x[m]));
          return mib / Math.max(1e-3, t);
        };
        for (const m of ["wall", "cpu"] as const) {
          if (Number.isNaN(speed("vmkit", m))) continue;
          rows.push({
            name: `${label} (${m}, median of ${RUNS})`,
            unit: "MiB/s",
            qemu: haveQemu ? speed("qemu", m) : undefined,
            vmkit: speed("vmkit", m),
            higherIsBetter: true,
          });
        }
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
  } of mixed data and zero extents; medians, start-up subtracted)`;
}

if (import.meta.main) {
  printTable(convertFormatsTitle(), await convertFormatRows());
}
