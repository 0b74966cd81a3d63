// Process start-up: `vmkit img info` on a small qcow2 against `qemu-img info` and an empty `deno run`

import * as path from "node:path";
import { have, printTable, ROOT, type Row, scratch, SHORT, vmkit } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
/** Starts per program and measure; the best (smallest) and the median are reported. */
const RUNS = SHORT ? 12 : 40;
/** The goal: `vmkit img info` within this factor of an empty Deno script's start. */
const GOAL_VS_EMPTY_DENO = 2.5;
/** bash's `times` gives a child's CPU time, which other jobs on a shared machine disturb less. */
const HAVE_BASH = have("bash");

type Command = [program: string, args: string[]];
/**
 * `paired`: the median over rounds of this command's time over the empty script's in
 * the same round. The commands take turns, so a round's load falls on all of them;
 * the ratio of two medians, taken apart, moved by ±0.5 between runs of 12 at load 5-10.
 */
type Stat = { best: number; median: number; paired: number };
type Measure = "wall" | "cpu";

const decoder = new TextDecoder();

/** Milliseconds of one start of `program args` (which must succeed): wall, or CPU (user + sys). */
async function startMs([program, args]: Command, cwd: string, measure: Measure): Promise<number> {
  const [exe, argv] = measure === "wall"
    ? [program, args]
    : ["bash", ["-c", '"$@" >/dev/null 2>&1 || exit 1; times', "bash", program, ...args]];
  const t0 = performance.now();
  const out = await new Deno.Command(exe, {
    args: argv,
    cwd,
    stdout: measure === "wall" ? "null" : "piped",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  }
  if (measure === "wall") return wallMs;
  // `times` prints the shell's user/sys, then its children's: "0m0.031s 0m0.012s".
  const children = decoder.decode(out.stdout).trim().split("\n")[1] ?? "";
  const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => +m[1] * 60 + +m[2]);
  return (seconds[0] + seconds[1]) * 1000;
}

/** Best and median of {@linkcode RUNS} starts each, the programs taking turns so load hits all alike. */
async function measureAll(
  commands: Record<string, Command>,
  cwd: string,
): Promise<Record<Measure, Record<string, Stat>>> {
  const measures: Measure[] = HAVE_BASH ? ["wall", "cpu"] : ["wall"];
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(commands)) {
    // One start each first, so Deno's caches are warm before anything is timed.
    await startMs(commands[name], cwd, "wall");
    for (const m of measures) samples[`${m}:${name}`] = [];
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [name, command] of Object.entries(commands)) {
      for (const m of measures) samples[`${m}:${name}`].push(await startMs(command, cwd, m));
    }
  }
  const result: Record<Measure, Record<string, Stat>> = { wall: {}, cpu: {} };
  const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const [key, xs] of Object.entries(samples)) {
    const [m, name] = key.split(":") as [Measure, string];
    const empty = samples[`${m}:empty`];
    result[m][name] = {
      best: Math.min(...xs),
      median: middle(xs),
      paired: empty ? middle(xs.map((x, i) => x / Math.max(empty[i], 1e-3))) : NaN,
    };
  }
  return result;
}

/**
 * The start-up rows: vmkit against qemu-img, and the ratios to an empty `deno run`.
 * Results and what bought them: docs/img-performance.md.
 */
export async function startupRows(): Promise<{ rows: Row[]; notes: string[] }> {
  const { dir, cleanup } = await scratch();
  try {
    const image = path.join(dir, "small.qcow2");
    const empty = path.join(dir, "empty.ts");
    await Deno.writeTextFile(empty, "");
    await vmkit(["img", "create", "-q", "-f", "qcow2", image, "64M"], dir);
    const deno = Deno.execPath();
    const commands: Record<string, Command> = {
      empty: [deno, ["run", "-A", "--quiet", empty]],
      version: [deno, ["run", "-A", "--quiet", MAIN, "--version"]],
      info: [deno, ["run", "-A", "--quiet", MAIN, "img", "info", image]],
    };
    if (have("qemu-img")) commands.qemu = ["qemu-img", ["info", image]];
    const results = await measureAll(commands, dir);
    const rows: Row[] = [];
    const notes: string[] = [];
    for (const [measure, m] of Object.entries(results)) {
      if (!m.info) continue;
      for (const stat of ["best", "median"] as const) {
        rows.push({
          name: `img info, 64 MiB qcow2 (${measure}, ${stat} of ${RUNS})`,
          unit: "ms",
          qemu: m.qemu?.[stat],
          vmkit: m.info[stat],
          higherIsBetter: false,
        });
        notes.push(
          `${measure} ${stat}: empty deno run ${m.empty[stat].toFixed(1)} ms, vmkit --version ${
            m.version[stat].toFixed(1)
          } ms, vmkit img info ${m.info[stat].toFixed(1)} ms = ${
            (m.info[stat] / m.empty[stat]).toFixed(2)
          }x the empty deno run (goal <= ${GOAL_VS_EMPTY_DENO}x)` +
            (m.qemu ? `, ${(m.info[stat] / m.qemu[stat]).toFixed(1)}x qemu-img info` : ""),
        );
      }
      if (m.empty) {
        notes.push(
          `${measure} paired (median of each round's ratio): vmkit img info ${
            m.info.paired.toFixed(2)
          }x the empty deno run` + (m.qemu
            ? `, qemu-img info ${m.qemu.paired.toFixed(2)}x it (vmkit ${
              (m.info.paired / m.qemu.paired).toFixed(1)
            }x qemu-img)`
            : ""),
        );
      }
    }
    return { rows, notes };
  } finally {
    await cleanup();
  }
}

/** Prints the start-up table and its notes (bench/run.ts and a direct run share it). */
export async function printStartup(): Promise<void> {
  const { rows, notes } = await startupRows();
  printTable("Start-up: img info on a small qcow2 (ratio > 1 means vmkit is faster)", rows);
  for (const note of notes) console.log(`  ${note}`);
}

if (import.meta.main) await printStartup();
