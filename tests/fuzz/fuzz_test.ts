// Fuzzing: damaged headers and tables of every format must give a clear error, never a crash or hang

import assert from "node:assert/strict";
import * as path from "node:path";
import { buildRegistry } from "../../cli/registry.ts";
import { HAVE_QEMU_IMG, haveProgram, MAIN, ROOT, tempDir } from "../test_util.ts";
import { fileHash, pool } from "../crash/crash_util.ts";
import { mutate } from "./mutate.ts";
import { Prng, seedFromEnv } from "./prng.ts";
import { type BaseImage, type FuzzTarget, makeBase, TARGETS } from "./targets.ts";
import type { FuzzCase } from "./fuzz_runner.ts";

const ignore = !HAVE_QEMU_IMG || !haveProgram("qemu-io");
if (ignore) {
  console.log("fuzz suite ignored: qemu-img/qemu-io missing (apt-get install qemu-utils)");
}

/** Cases in process: VMKIT_FUZZ_CASES, or a short run by default. */
const CASES = Number(Deno.env.get("VMKIT_FUZZ_CASES") ?? "300");
/** One case in this many also goes through the CLI commands. */
const CLI_EVERY = Number(Deno.env.get("VMKIT_FUZZ_CLI_EVERY") ?? "25");
const SEED = seedFromEnv("VMKIT_FUZZ_SEED", 0xf022);
const RUNNER = path.join(ROOT, "tests", "fuzz", "fuzz_runner.ts");
/** A case that makes no progress for this long is a hang. */
const STALL_MS = 20_000;
/** The V8 heap limit of every process, and the resident memory that counts as runaway. */
const HEAP_MB = 512;
const RSS_LIMIT_BYTES = 1536 * 2 ** 20;

/**
 * Cases once found to crash or hang vmkit, pinned by target and case seed so they
 * run in every mode. Each names the bug it caught.
 */
const REGRESSIONS: readonly { target: string; seed: number; bug: string }[] = [];

/** One generated case and how it went. */
interface Planned {
  target: FuzzTarget;
  seed: number;
  file: string;
  format?: string;
  applied: string[];
  hash: string;
}

function caseName(p: Planned): string {
  return `${p.target.name} seed=0x${p.seed.toString(16)} [${p.applied.join("; ")}]`;
}

/** Writes a mutated copy of `base` for `seed`. */
async function plan(
  target: FuzzTarget,
  base: BaseImage,
  dir: string,
  seed: number,
  index: number,
): Promise<Planned> {
  const rng = new Prng(seed);
  const m = mutate(base.bytes, base.regions, rng, {
    count: rng.range(1, 3),
    littleEndian: target.littleEndian,
  });
  const ext = path.extname(base.fileName) || ".img";
  const file = path.join(dir, `case-${index}${ext}`);
  await Deno.writeFile(file, m.bytes);
  return {
    target,
    seed,
    file,
    format: rng.chance(0.5) ? target.format : undefined,
    applied: m.applied,
    hash: await fileHash(file),
  };
}

/** How one runner process went over a range of cases. */
interface RunnerOutcome {
  results: Map<number, string>;
  /** The case in progress when the process hung or died, and why. */
  stuck?: { index: number; why: string };
}

function rssBytes(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs the in-process runner from case `first`, watching for hangs and runaway memory. */
async function runRunner(manifest: string, first: number): Promise<RunnerOutcome> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      `--v8-flags=--max-old-space-size=${HEAP_MB}`,
      RUNNER,
      manifest,
      String(first),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const results = new Map<number, string>();
  let current = -1;
  let lastProgress = performance.now();
  let killedFor: string | undefined;
  const watchdog = setInterval(() => {
    const why = performance.now() - lastProgress > STALL_MS
      ? `no progress for ${STALL_MS} ms (hang)`
      : rssBytes(child.pid) > RSS_LIMIT_BYTES
      ? `resident memory above ${RSS_LIMIT_BYTES >> 20} MiB`
      : undefined;
    if (why && killedFor === undefined) {
      killedFor = why;
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
    }
  }, 250);
  const stderrText = new Response(child.stderr).text();
  let buffered = "";
  const decoder = new TextDecoder();
  let ended = false;
  for await (const chunk of child.stdout) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      lastProgress = performance.now();
      if (line.startsWith("START ")) current = Number(line.slice(6));
      else if (line.startsWith("RESULT ")) {
        const sp = line.indexOf(" ", 7);
        results.set(Number(line.slice(7, sp)), line.slice(sp + 1));
        current = -1;
      } else if (line === "END") ended = true;
    }
  }
  const status = await child.status;
  clearInterval(watchdog);
  const stderr = (await stderrText).trim();
  if (ended) return { results };
  const why = killedFor ??
    `runner exited ${status.code}${status.signal ? ` (${status.signal})` : ""}: ${
      stderr.split("\n").slice(-3).join(" | ")
    }`;
  return { results, stuck: { index: current, why } };
}

/** Runs every case in process, restarting the runner after a case that kills it. */
async function runInProcess(cases: Planned[], dir: string): Promise<Map<number, string>> {
  const manifest = path.join(dir, "manifest.json");
  const list: FuzzCase[] = cases.map((c) => ({ file: c.file, format: c.format }));
  await Deno.writeTextFile(manifest, JSON.stringify(list));
  const all = new Map<number, string>();
  let first = 0;
  while (first < cases.length) {
    const out = await runRunner(manifest, first);
    for (const [i, r] of out.results) all.set(i, r);
    if (!out.stuck) break;
    const at = out.stuck.index >= 0 ? out.stuck.index : first;
    all.set(at, `bug ${out.stuck.why}`);
    first = at + 1;
  }
  return all;
}

/** The problems of one case in the CLI: hang, crash, bug report, several error lines, changed file. */
async function runCli(c: Planned, dir: string): Promise<string[]> {
  const problems: string[] = [];
  const commands: string[][] = [
    ["info", "--output=json", ...(c.format ? ["-f", c.format] : []), c.file],
    ["check", ...(c.format ? ["-f", c.format] : []), c.file],
    ["map", "--output=json", ...(c.format ? ["-f", c.format] : []), c.file],
  ];
  let virtualSize = Infinity;
  for (const args of [...commands, null]) {
    let cmd = args;
    const out = path.join(dir, `out-${path.basename(c.file)}.raw`);
    if (cmd === null) {
      // Converting writes the whole virtual disk: only for sizes a test can afford.
      if (virtualSize > 64 * 2 ** 20) break;
      cmd = ["convert", ...(c.format ? ["-f", c.format] : []), "-O", "raw", c.file, out];
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        `--v8-flags=--max-old-space-size=${HEAP_MB}`,
        MAIN,
        "img",
        ...cmd,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      problems.push(`img ${cmd![0]}: no exit within ${STALL_MS} ms (hang)`);
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
    }, STALL_MS);
    const r = await child.output();
    clearTimeout(timer);
    await Deno.remove(out).catch(() => {});
    const stdout = new TextDecoder().decode(r.stdout);
    const stderr = new TextDecoder().decode(r.stderr).trim();
    if (cmd[0] === "info" && r.code === 0) {
      try {
        virtualSize = JSON.parse(stdout)["virtual-size"];
      } catch {
        problems.push("img info: --output=json printed something that is not JSON");
      }
    }
    if (r.signal) problems.push(`img ${cmd[0]}: killed by ${r.signal}`);
    if (/bug in vmkit|out of memory|panicked/i.test(stderr)) {
      problems.push(`img ${cmd[0]}: ${stderr.split("\n")[0]}`);
    }
    const expectedCodes = cmd[0] === "check" ? [0, 1, 2, 3, 63] : [0, 1];
    if (!r.signal && !expectedCodes.includes(r.code)) {
      problems.push(`img ${cmd[0]}: exit code ${r.code}`);
    }
    if (r.code === 1 && stderr.split("\n").length !== 1) {
      problems.push(
        `img ${cmd[0]}: error is not one line: ${JSON.stringify(stderr.slice(0, 300))}`,
      );
    }
  }
  if (await fileHash(c.file) !== c.hash) {
    problems.push("the image changed although opened read-only");
  }
  return problems;
}

Deno.test({
  name: "fuzz: damaged images of every format give one clear error, never a crash, hang or change",
  ignore,
  sanitizeResources: false,
  async fn() {
    const registry = await buildRegistry();
    const { dir, cleanup } = await tempDir();
    try {
      const targets: { target: FuzzTarget; base: BaseImage; dir: string }[] = [];
      for (const target of TARGETS) {
        if (!registry.get("format", target.format)) {
          console.log(
            `fuzz: skipping ${target.name}: no '${target.format}' format plugin registered`,
          );
          continue;
        }
        const tdir = path.join(dir, target.name);
        await Deno.mkdir(tdir);
        try {
          targets.push({ target, base: await makeBase(target, tdir), dir: tdir });
        } catch (e) {
          console.log(`fuzz: skipping ${target.name}: could not make its image: ${e}`);
        }
      }
      assert.ok(targets.length > 0);
      const planned: Planned[] = [];
      for (const r of REGRESSIONS) {
        const t = targets.find((t) => t.target.name === r.target);
        if (t) planned.push(await plan(t.target, t.base, t.dir, r.seed, planned.length));
      }
      const rng = new Prng(SEED);
      for (let i = 0; i < CASES; i++) {
        const t = targets[i % targets.length];
        planned.push(await plan(t.target, t.base, t.dir, rng.int(2 ** 32), planned.length));
      }
      const results = await runInProcess(planned, dir);
      const failures: string[] = [];
      const counts = { ok: 0, error: 0, bug: 0 };
      for (const [i, c] of planned.entries()) {
        const r = results.get(i) ?? "bug no result";
        const kind = r.split(" ")[0] as keyof typeof counts;
        counts[kind] = (counts[kind] ?? 0) + 1;
        if (kind === "bug") failures.push(`${caseName(c)}: ${r.slice(4)}`);
        if (kind === "error" && r.includes("\\n")) {
          failures.push(`${caseName(c)}: error message spans lines: ${r.slice(6, 300)}`);
        }
        if (await fileHash(c.file) !== c.hash) failures.push(`${caseName(c)}: image changed`);
      }
      const sample = planned.filter((_, i) => i % CLI_EVERY === 0);
      const cli = await pool(sample, 2, async (c) => {
        const p = await runCli(c, path.dirname(c.file));
        return p.map((x) => `${caseName(c)}: ${x}`);
      });
      failures.push(...cli.flat());
      const perTarget = targets.map((t) =>
        `${t.target.name}=${planned.filter((p) => p.target === t.target).length}`
      );
      console.log(
        `fuzz summary: seed=0x${SEED.toString(16)} cases=${planned.length} (${
          perTarget.join(", ")
        }) opened-ok=${counts.ok} clear-errors=${counts.error} bugs=${counts.bug} cli-cases=${sample.length} failures=${failures.length}`,
      );
      assert.deepEqual(failures, []);
    } finally {
      await cleanup();
    }
  },
});
