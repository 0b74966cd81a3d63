// Device fuzzer tool: seeded guest I/O against every device of `-M pc`, long runs in watched child processes

/**
 * Usage:
 *   deno run -A tests/fuzz/device_fuzz.ts --ops 1000000 [--seed 1] [--count 200] [--jobs 1]
 *       long run: cases of `--count` operations from seed on, in child processes watched
 *       for a time cap and a memory cap per case; prints operations, devices, crashes,
 *       hangs and peak memory at the end
 *   deno run -A tests/fuzz/device_fuzz.ts --seed 1234 [--count 200]
 *       replays one case in process and prints its operations if it fails
 *   deno run -A tests/fuzz/device_fuzz.ts --replay case.json
 *       runs a saved `{ seed, vga, ops }` case (what a crash report prints)
 *
 * Limits: `--case-ms` (default 20000) and `--case-mib` of host memory growth (default 512).
 */

import {
  type CaseLimits,
  type CaseResult,
  fuzzDevices,
  type FuzzOp,
  runCase,
} from "./device_fuzz_ops.ts";

interface Args {
  ops?: number;
  seed: number;
  count: number;
  replay?: string;
  child: boolean;
  cases: number;
  limits: CaseLimits;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number) => {
    const v = get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new RangeError(`${name} needs a number: got '${v}'`);
    return n;
  };
  return {
    ops: get("--ops") === undefined ? undefined : num("--ops", 0),
    seed: num("--seed", 1),
    count: num("--count", 200),
    replay: get("--replay"),
    child: argv.includes("--child"),
    cases: num("--cases", 100),
    limits: { timeMs: num("--case-ms", 20000), heapBytes: num("--case-mib", 512) * 2 ** 20 },
  };
}

const encoder = new TextEncoder();
function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Prints a failed case so it can be replayed and turned into a regression test. */
export function report(result: CaseResult, count: number): string {
  const f = result.failure!;
  const ops = result.trace.slice(0, f.at + 1);
  return [
    `FAIL seed ${result.seed}: ${f.kind} at operation ${f.at}: ${f.message.split("\n")[0]}`,
    `  replay: deno run -A tests/fuzz/device_fuzz.ts --seed ${result.seed} --count ${count}`,
    `  case: ${JSON.stringify({ seed: result.seed, vga: result.vga, ops })}`,
  ].join("\n");
}

/** The child: runs `cases` cases from `seed`, one RESULT line each. */
async function child(args: Args): Promise<void> {
  for (let i = 0; i < args.cases; i++) {
    const seed = args.seed + i;
    say(`START ${seed}`);
    const r = await runCase(seed, { count: args.count, limits: args.limits });
    if (r.failure) {
      say(`RESULT ${seed} ${r.failure.kind} ${r.ops} ${r.peakRssBytes}`);
      say(`REPORT ${JSON.stringify(report(r, args.count))}`);
    } else {
      say(`RESULT ${seed} ok ${r.ops} ${r.peakRssBytes}`);
    }
  }
}

function rssOf(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds a process has used (user + system), from /proc; 0 when unknown. */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

interface Totals {
  ops: number;
  cases: number;
  crashes: number;
  hangs: number;
  memory: number;
  peakRss: number;
  reports: string[];
}

/**
 * Runs one child for up to `cases` cases from `seed`; the parent kills it when a case
 * passes the time cap or its RSS passes the memory cap (a case that allocates without
 * bound is caught before the host is), and records that case. Returns the next seed.
 */
async function supervise(args: Args, seed: number, cases: number, totals: Totals): Promise<number> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL(import.meta.url).pathname,
      "--child",
      "--seed",
      String(seed),
      "--cases",
      String(cases),
      "--count",
      String(args.count),
      "--case-ms",
      String(args.limits.timeMs),
      "--case-mib",
      String(args.limits.heapBytes / 2 ** 20),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let current = seed;
  let started = performance.now();
  let startedCpu = 0;
  let next = seed;
  // Set from the watchdog timer (an object, so the compiler does not narrow it to null).
  const watch: { killed: "hang" | "memory" | null } = { killed: null };
  const baseRss = { value: 0 };
  const watchdog = setInterval(() => {
    const rss = rssOf(proc.pid);
    if (rss > totals.peakRss) totals.peakRss = rss;
    if (baseRss.value === 0) baseRss.value = rss;
    if (watch.killed) return;
    // A hang is judged by the CPU time the case used, so a machine shared with other
    // jobs does not make a slow case look stuck; wall time backs it up at ten times.
    const cpuMs = (cpuSecondsOf(proc.pid) - startedCpu) * 1000;
    const wallMs = performance.now() - started;
    if (cpuMs > 2 * args.limits.timeMs || wallMs > 10 * args.limits.timeMs) {
      watch.killed = "hang";
    } else if (rss - baseRss.value > 2 * args.limits.heapBytes + (512 << 20)) {
      watch.killed = "memory";
    }
    if (watch.killed) {
      try {
        proc.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }, 200);
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of proc.stdout) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const [word, a, b, c, d] = line.split(" ");
      if (word === "START") {
        current = Number(a);
        started = performance.now();
        startedCpu = cpuSecondsOf(proc.pid);
      } else if (word === "RESULT") {
        totals.cases++;
        totals.ops += Number(c);
        if (Number(d) > totals.peakRss) totals.peakRss = Number(d);
        if (b === "crash") totals.crashes++;
        if (b === "hang") totals.hangs++;
        if (b === "memory") totals.memory++;
        next = Number(a) + 1;
      } else if (word === "REPORT") {
        const text = JSON.parse(line.slice(7)) as string;
        totals.reports.push(text);
        console.error(text);
      }
    }
  }
  clearInterval(watchdog);
  const status = await proc.status;
  const killed = watch.killed;
  if (killed || (!status.success && next <= current)) {
    // The case in progress did not finish: record it against its seed.
    totals.cases++;
    const kind = killed ?? "crash";
    if (kind === "hang") totals.hangs++;
    else if (kind === "memory") totals.memory++;
    else totals.crashes++;
    const text =
      `FAIL seed ${current}: ${kind} (child ${killed ? "killed" : `exited ${status.code}`})\n` +
      `  replay: deno run -A tests/fuzz/device_fuzz.ts --seed ${current} --count ${args.count}`;
    totals.reports.push(text);
    console.error(text);
    return current + 1;
  }
  return next;
}

async function longRun(args: Args): Promise<number> {
  const totals: Totals = {
    ops: 0,
    cases: 0,
    crashes: 0,
    hangs: 0,
    memory: 0,
    peakRss: 0,
    reports: [],
  };
  const devices = await fuzzDevices();
  const t0 = performance.now();
  let seed = args.seed;
  const perChild = 200;
  while (totals.ops < args.ops!) {
    const left = Math.ceil((args.ops! - totals.ops) / args.count);
    seed = await supervise(args, seed, Math.min(perChild, left), totals);
    const s = (performance.now() - t0) / 1000;
    say(
      `progress: ${totals.ops} operations, ${totals.cases} cases, ${totals.crashes} crashes, ` +
        `${totals.hangs} hangs, ${totals.memory} memory, ${s.toFixed(0)} s`,
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  say("");
  say(`device fuzz: seeds ${args.seed}..${seed - 1}, ${args.count} operations per case`);
  say(`  operations ${totals.ops} in ${totals.cases} cases, ${seconds.toFixed(0)} s`);
  say(`  devices (${devices.length}): ${devices.join(", ")}`);
  say(`  crashes ${totals.crashes}, hangs ${totals.hangs}, unbounded memory ${totals.memory}`);
  say(`  peak child RSS ${(totals.peakRss / 2 ** 20).toFixed(0)} MiB`);
  for (const r of totals.reports) say(r);
  return totals.crashes + totals.hangs + totals.memory === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  if (args.child) {
    await child(args);
    return 0;
  }
  if (args.ops !== undefined) return await longRun(args);
  let result: CaseResult;
  let count = args.count;
  if (args.replay) {
    const saved = JSON.parse(await Deno.readTextFile(args.replay)) as {
      seed: number;
      vga?: "std" | "cirrus";
      ops: FuzzOp[];
    };
    count = saved.ops.length;
    result = await runCase(saved.seed, { ops: saved.ops, vga: saved.vga, limits: args.limits });
  } else {
    result = await runCase(args.seed, { count, limits: args.limits });
  }
  if (result.failure) {
    say(report(result, count));
    return 1;
  }
  say(`seed ${args.seed}: ${result.ops} operations, no failure`);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
