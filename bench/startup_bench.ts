// Process start-up: `vmkit img info` on a small qcow2 against `qemu-img info` and an empty `deno run`

import * as path from "node:path";
import { have, printTable, ROOT, type Row, scratch, SHORT, vmkit } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
/** Starts per program; the best (smallest) and the median are reported. */
const RUNS = SHORT ? 12 : 40;
/** The goal: `vmkit img info` within this factor of an empty Deno script's start. */
const GOAL_VS_EMPTY_DENO = 2.5;

/** Wall milliseconds of one start of `program args`, which must succeed. */
async function startMs(program: string, args: string[], cwd: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(program, { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

/** Best and median of {@linkcode RUNS} starts, the programs taking turns so load hits all alike. */
async function measure(
  commands: Record<string, [string, string[]]>,
  cwd: string,
): Promise<Record<string, { best: number; median: number }>> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(commands)) {
    samples[name] = [];
    // One start each first, so Deno's caches are warm before anything is timed.
    await startMs(commands[name][0], commands[name][1], cwd);
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [name, [program, args]] of Object.entries(commands)) {
      samples[name].push(await startMs(program, args, cwd));
    }
  }
  const result: Record<string, { best: number; median: number }> = {};
  for (const [name, xs] of Object.entries(samples)) {
    xs.sort((a, b) => a - b);
    result[name] = { best: xs[0], median: xs[Math.floor(xs.length / 2)] };
  }
  return result;
}

/** The start-up rows: vmkit against qemu-img, and the ratios to an empty `deno run`. */
export async function startupRows(): Promise<{ rows: Row[]; notes: string[] }> {
  const { dir, cleanup } = await scratch();
  try {
    const image = path.join(dir, "small.qcow2");
    const empty = path.join(dir, "empty.ts");
    await Deno.writeTextFile(empty, "");
    const deno = Deno.execPath();
    const haveQemuImg = have("qemu-img");
    await vmkit(["img", "create", "-q", "-f", "qcow2", image, "64M"], dir);
    const commands: Record<string, [string, string[]]> = {
      empty: [deno, ["run", "-A", "--quiet", empty]],
      version: [deno, ["run", "-A", "--quiet", MAIN, "--version"]],
      info: [deno, ["run", "-A", "--quiet", MAIN, "img", "info", image]],
    };
    if (haveQemuImg) commands.qemu = ["qemu-img", ["info", image]];
    const m = await measure(commands, dir);
    const rows: Row[] = [];
    for (const stat of ["best", "median"] as const) {
      rows.push({
        name: `img info, 64 MiB qcow2 (${stat} of ${RUNS})`,
        unit: "ms wall",
        qemu: m.qemu?.[stat],
        vmkit: m.info[stat],
        higherIsBetter: false,
      });
    }
    const notes = (["best", "median"] as const).map((stat) => {
      const vsEmpty = m.info[stat] / m.empty[stat];
      return `${stat}: empty deno run ${m.empty[stat].toFixed(1)} ms, vmkit --version ${
        m.version[stat].toFixed(1)
      } ms, vmkit img info ${m.info[stat].toFixed(1)} ms = ${vsEmpty.toFixed(2)}x the empty ` +
        `deno run (goal <= ${GOAL_VS_EMPTY_DENO}x)` +
        (m.qemu ? `, ${(m.info[stat] / m.qemu[stat]).toFixed(1)}x qemu-img info` : "");
    });
    return { rows, notes };
  } finally {
    await cleanup();
  }
}

/** Prints the start-up table and its notes (bench/run.ts and a direct run share it). */
export async function printStartup(): Promise<void> {
  const { rows, notes } = await startupRows();
  printTable(
    "Start-up: img info on a small qcow2 (wall ms; ratio > 1 means vmkit is faster)",
    rows,
  );
  for (const note of notes) console.log(`  ${note}`);
}

if (import.meta.main) await printStartup();
