// Shared pieces of the side-by-side benchmarks: running both tools, timing, the ratio table

import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = path.join(ROOT, "cli", "main.ts");

/** One row of a comparison: the same work done by real QEMU and by vmkit. */
export interface Row {
  name: string;
  /** What is measured, e.g. `µs/request` or `MiB/s`. */
  unit: string;
  qemu: number | undefined;
  /** Undefined when vmkit cannot do the work yet; `note` then says what it said. */
  vmkit: number | undefined;
  /** A line printed under the row (e.g. why vmkit has no figure). */
  note?: string;
  /** True when a bigger number is better (throughput), false for times. */
  higherIsBetter: boolean;
}

/** True when `--short` was given: CI runs every row on smaller inputs. */
export const SHORT = Deno.args.includes("--short");

const decoder = new TextDecoder();

/** Runs a program; returns stdout, throwing with stderr on failure. */
export async function run(program: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(program, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  }
  return decoder.decode(out.stdout);
}

/** Runs `vmkit ARGS` as a user would (`deno run -A cli/main.ts`). */
export function vmkit(args: string[], cwd?: string): Promise<string> {
  return run(Deno.execPath(), ["run", "-A", "--quiet", MAIN, ...args], cwd);
}

/** True when a program answers `--version`. */
export function have(program: string): boolean {
  try {
    return new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Wall-clock seconds of an async action. */
export async function timed(action: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await action();
  return (performance.now() - t0) / 1000;
}

/** The best (smallest) of `runs` measurements, which filters out noise from other jobs. */
export async function bestOf(runs: number, measure: () => Promise<number>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) best = Math.min(best, await measure());
  return best;
}

/** vmkit's speed relative to QEMU's: above 1 means vmkit is faster. */
export function ratio(row: Row): number | undefined {
  if (row.qemu === undefined || row.vmkit === undefined) return undefined;
  return row.higherIsBetter ? row.vmkit / row.qemu : row.qemu / row.vmkit;
}

/** Prints rows as a fixed-width table with the ratio column. */
export function printTable(title: string, rows: readonly Row[]): void {
  const fmt = (
    n: number | undefined,
  ) => (n === undefined ? "n/a" : n < 10 ? n.toFixed(2) : n.toFixed(1));
  console.log(`\n${title}`);
  console.log(
    `${"row".padEnd(44)} ${"unit".padEnd(12)} ${"qemu".padStart(10)} ${"vmkit".padStart(10)} ${
      "ratio".padStart(7)
    }`,
  );
  for (const r of rows) {
    const q = ratio(r);
    console.log(
      `${r.name.padEnd(44)} ${r.unit.padEnd(12)} ${fmt(r.qemu).padStart(10)} ${
        fmt(r.vmkit).padStart(10)
      } ${(q === undefined ? "n/a" : `${q.toFixed(2)}x`).padStart(7)}`,
    );
    if (r.note) console.log(`  note: ${r.note}`);
  }
}

/** A temporary directory for benchmark images, removed by the returned function. */
export async function scratch(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-bench-" });
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

/** bash, whose `time` reads a child's CPU time. */
const HAVE_BASH = have("bash");

/** Seconds one run of a child took: wall clock, and CPU (user + system) of the child and its children. */
export interface ChildTime {
  wall: number;
  cpu: number;
}

/**
 * Runs `program args` (which must succeed) and returns its {@linkcode ChildTime}, read
 * from bash's `time` so neither this process nor bash's own start counts. CPU time is
 * what other jobs on a shared machine disturb least. Without bash, CPU is NaN.
 */
export async function timeChild(program: string, args: string[], cwd?: string): Promise<ChildTime> {
  if (!HAVE_BASH) {
    const t0 = performance.now();
    await run(program, args, cwd);
    return { wall: (performance.now() - t0) / 1000, cpu: NaN };
  }
  const script = 'TIMEFORMAT="@time %3R %3U %3S"; time "$@" >/dev/null';
  const out = await new Deno.Command("bash", {
    args: ["-c", script, "bash", program, ...args],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = decoder.decode(out.stderr);
  if (!out.success) throw new Error(`${program} ${args.join(" ")} failed: ${err}`);
  const m = err.match(/@time ([\d.]+) ([\d.]+) ([\d.]+)\s*$/);
  if (!m) throw new Error(`no timing from bash for ${program}: ${err}`);
  return { wall: +m[1], cpu: +m[2] + +m[3] };
}

/** The median of a non-empty list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Writes dirty page-cache pages back, so one run's output does not throttle the next run's writes. */
export async function syncDisks(): Promise<void> {
  await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output().catch(() => {});
}
