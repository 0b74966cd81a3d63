// Crash safety: SIGKILL vmkit at random moments of writing commands, then judge the images with real qemu-img

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, haveProgram, ROOT, runCommand, tempDir } from "../test_util.ts";
import { Prng, seedFromEnv } from "../fuzz/prng.ts";
import {
  checkImage,
  type CheckOutcome,
  denoArgs,
  fileHash,
  isQcow2,
  pool,
  runKilled,
} from "./crash_util.ts";
import { patternOf, slotOrder } from "./flush_writer.ts";

const HAVE_QEMU_IO = haveProgram("qemu-io");
const ignore = !HAVE_QEMU_IMG || !HAVE_QEMU_IO;
if (ignore) {
  console.log("crash suite ignored: qemu-img/qemu-io missing (apt-get install qemu-utils)");
}

/** Trials over all operations: VMKIT_CRASH_TRIALS, or a default that fits a normal test run. */
const TOTAL_TRIALS = Number(Deno.env.get("VMKIT_CRASH_TRIALS") ?? "50");
const SEED = seedFromEnv("VMKIT_CRASH_SEED", 0xc0ffee);
/** Trials run side by side (the machine may have 2 cores). */
const PARALLEL = Number(Deno.env.get("VMKIT_CRASH_PARALLEL") ?? "2");
const WRITER = path.join(ROOT, "tests", "crash", "flush_writer.ts");
const MiB = 1 << 20;

/** An image to judge after the kill, and what must still hold for it. */
interface Judged {
  file: string;
  format: string;
  /** The file may not be an image yet (killed while `convert` created it). */
  mayBeAbsent?: boolean;
  /** Raw files holding every guest view the image may legally show after the crash. */
  sameAsOneOf?: string[];
}

/** One prepared trial: what to run and what to check afterwards. */
interface Prepared {
  /** Deno arguments (vmkit's CLI or the writer script). */
  args: string[];
  images: Judged[];
  /** Files that must come out byte-for-byte unchanged. */
  unchanged?: string[];
  /** Extra check of what the process printed (flushed data); an error text, or null. */
  verify?: (stdout: string, dir: string) => Promise<string | null>;
}

/** A writing operation the suite kills. */
interface CrashOp {
  name: string;
  prepare(dir: string, rng: Prng): Promise<Prepared>;
}

async function ok(program: string, args: string[], cwd: string): Promise<string> {
  const r = await runCommand(program, args, { cwd });
  if (r.code !== 0) throw new Error(`${program} ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Creates a qcow2 image with real qemu-img. */
function create(dir: string, file: string, size: string, opts: string[] = []) {
  const o = opts.length ? ["-o", opts.join(",")] : [];
  return ok("qemu-img", ["create", "-q", "-f", "qcow2", ...o, file, size], dir);
}

/** Runs qemu-io commands on an image in one process. */
function qemuIo(dir: string, file: string, commands: string[]) {
  return ok("qemu-io", ["-f", "qcow2", ...commands.flatMap((c) => ["-c", c]), file], dir);
}

/** Random writes (and a few zero writes) over the first `spanBytes` of an image. */
function scatter(rng: Prng, spanBytes: number, count: number): string[] {
  const cmds: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = rng.pick([4096, 65536, 196608, MiB]);
    const off = Math.floor(rng.int(Math.max(1, spanBytes - len)) / 512) * 512;
    cmds.push(
      rng.chance(0.15) ? `write -z ${off} ${len}` : `write -P ${rng.range(1, 255)} ${off} ${len}`,
    );
  }
  return cmds;
}

/** The guest view of an image as a raw file (with real qemu-img). */
async function snapshotRaw(dir: string, file: string, name: string): Promise<string> {
  const out = path.join(dir, name);
  await ok("qemu-img", ["convert", "-O", "raw", file, out], dir);
  return out;
}

/** Image creation options a trial picks: small clusters stress the metadata paths. */
function imageOpts(rng: Prng, allowLazy = true): string[] {
  const opts = [`cluster_size=${rng.pick(["4k", "4k", "64k", "512"])}`];
  if (allowLazy && rng.chance(0.25)) opts.push("lazy_refcounts=on");
  return opts;
}

/** A raw source of `bytes` with random runs of data, zeroes written out and holes. */
async function mixedRaw(file: string, bytes: number, rng: Prng): Promise<void> {
  const f = await Deno.open(file, { create: true, write: true, truncate: true });
  try {
    await f.truncate(bytes);
    for (let pos = 0; pos < bytes;) {
      const run = Math.min(bytes - pos, rng.pick([4096, 65536, 300000, MiB, 3 * MiB]));
      const kind = rng.int(3);
      if (kind !== 2) {
        const chunk = new Uint8Array(run);
        if (kind === 0) crypto.getRandomValues(chunk.subarray(0, Math.min(run, 65536)));
        if (kind === 0 && run > 65536) chunk.fill(rng.range(1, 255), 65536);
        await f.seek(pos, Deno.SeekMode.Start);
        await f.write(chunk);
      }
      pos += run;
    }
  } finally {
    f.close();
  }
}

const OPS: CrashOp[] = [
  {
    name: "convert -O qcow2",
    async prepare(dir, rng) {
      await mixedRaw(path.join(dir, "src.raw"), 16 * MiB, rng);
      const compress = rng.chance(0.2) ? ["-c"] : [];
      const cs = rng.pick(["4k", "64k", "64k"]);
      return {
        args: denoArgs([
          "img",
          "convert",
          ...compress,
          "-O",
          "qcow2",
          "-o",
          `cluster_size=${cs}`,
          "src.raw",
          "dst.qcow2",
        ]),
        images: [{ file: "dst.qcow2", format: "qcow2", mayBeAbsent: true }],
        unchanged: ["src.raw"],
      };
    },
  },
  {
    name: "bench -w",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "256M", imageOpts(rng));
      const step = rng.pick(["12k", "36k", "68k"]);
      return {
        args: denoArgs(["img", "bench", "-w", "-c", "20000", "-d", "4", "-S", step, "a.qcow2"]),
        images: [{ file: "a.qcow2", format: "qcow2" }],
      };
    },
  },
  {
    name: "bench -w --flush-interval",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "256M", imageOpts(rng));
      const every = rng.pick([1, 4, 16, 64]);
      // Flushes cost fsyncs: fewer requests when they come often keeps runs alike.
      const count = 200 + 40 * every;
      return {
        args: denoArgs([
          "img",
          "bench",
          "-w",
          "-c",
          String(count),
          "-d",
          "4",
          `--flush-interval=${every}`,
          "-S",
          rng.pick(["20k", "68k"]),
          "a.qcow2",
        ]),
        images: [{ file: "a.qcow2", format: "qcow2" }],
      };
    },
  },
  {
    name: "bench -w over a snapshot (copy-on-write)",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "32M", imageOpts(rng));
      await qemuIo(dir, "a.qcow2", ["write -P 0x5a 0 24M", ...scatter(rng, 24 * MiB, 8)]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      return {
        args: denoArgs([
          "img",
          "bench",
          "-w",
          "-c",
          "800",
          "-d",
          "4",
          "-S",
          rng.pick(["4k", "20k"]),
          "-o",
          "512",
          "a.qcow2",
        ]),
        images: [{ file: "a.qcow2", format: "qcow2" }],
      };
    },
  },
  {
    name: "snapshot -c",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "48M", imageOpts(rng));
      await qemuIo(dir, "a.qcow2", ["write -P 0x33 0 32M", ...scatter(rng, 48 * MiB, 12)]);
      if (rng.chance(0.5)) await ok("qemu-img", ["snapshot", "-c", "old", "a.qcow2"], dir);
      const view = await snapshotRaw(dir, "a.qcow2", "view.raw");
      return {
        args: denoArgs(["img", "snapshot", "-c", "s1", "a.qcow2"]),
        images: [{ file: "a.qcow2", format: "qcow2", sameAsOneOf: [view] }],
      };
    },
  },
  {
    name: "snapshot -d",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "48M", imageOpts(rng, false));
      await qemuIo(dir, "a.qcow2", ["write -P 0x44 0 32M"]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      await qemuIo(dir, "a.qcow2", scatter(rng, 48 * MiB, 12));
      await ok("qemu-img", ["snapshot", "-c", "s2", "a.qcow2"], dir);
      await qemuIo(dir, "a.qcow2", scatter(rng, 48 * MiB, 6));
      const view = await snapshotRaw(dir, "a.qcow2", "view.raw");
      return {
        args: denoArgs(["img", "snapshot", "-d", rng.pick(["s1", "s2"]), "a.qcow2"]),
        images: [{ file: "a.qcow2", format: "qcow2", sameAsOneOf: [view] }],
      };
    },
  },
  {
    name: "snapshot -a",
    async prepare(dir, rng) {
      await create(dir, "a.qcow2", "48M", imageOpts(rng, false));
      await qemuIo(dir, "a.qcow2", ["write -P 0x55 0 32M", ...scatter(rng, 48 * MiB, 6)]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      const before = await snapshotRaw(dir, "a.qcow2", "s1.raw");
      await qemuIo(dir, "a.qcow2", scatter(rng, 48 * MiB, 16));
      const now = await snapshotRaw(dir, "a.qcow2", "now.raw");
      return {
        args: denoArgs(["img", "snapshot", "-a", "s1", "a.qcow2"]),
        images: [{ file: "a.qcow2", format: "qcow2", sameAsOneOf: [now, before] }],
      };
    },
  },
  {
    name: "commit",
    async prepare(dir, rng) {
      await create(dir, "base.qcow2", "32M", imageOpts(rng));
      await qemuIo(dir, "base.qcow2", ["write -P 0x66 0 24M", ...scatter(rng, 32 * MiB, 6)]);
      await create(dir, "top.qcow2", "32M", [
        ...imageOpts(rng),
        "backing_file=base.qcow2",
        "backing_fmt=qcow2",
      ]);
      await qemuIo(dir, "top.qcow2", scatter(rng, 32 * MiB, 24));
      const view = await snapshotRaw(dir, "top.qcow2", "view.raw");
      return {
        args: denoArgs(["img", "commit", "top.qcow2"]),
        images: [
          { file: "top.qcow2", format: "qcow2", sameAsOneOf: [view] },
          { file: "base.qcow2", format: "qcow2" },
        ],
      };
    },
  },
  {
    name: "flushed writes survive (qcow2)",
    async prepare(dir, rng) {
      const backing = rng.chance(0.3);
      if (backing) {
        await create(dir, "base.qcow2", "32M", ["cluster_size=64k"]);
        await qemuIo(dir, "base.qcow2", ["write -P 0xee 0 32M"]);
      }
      await create(dir, "a.qcow2", "32M", [
        ...imageOpts(rng),
        ...(backing ? ["backing_file=base.qcow2", "backing_fmt=qcow2"] : []),
      ]);
      return flushedWriter(rng, "a.qcow2", "qcow2", 32 * MiB);
    },
  },
];

/** A trial of the flush writer: every block reported flushed must read back intact. */
function flushedWriter(rng: Prng, file: string, format: string, sizeBytes: number): Prepared {
  const seed = rng.int(2 ** 31);
  const batch = rng.pick([1, 4, 16]);
  // Every batch costs a flush: fewer blocks when batches are small keeps runs alike.
  const count = 150 + 30 * batch;
  const block = rng.pick([512, 4096, 12288]);
  const stride = block + rng.pick([0, 4096, 65536]);
  const shift = rng.pick([0, 512, 3072]);
  const slots = Math.floor((sizeBytes - shift - block) / stride) + 1;
  const n = Math.min(count, slots);
  const params = [seed, n, batch, block, stride, shift].map(String);
  return {
    args: denoArgs({ script: WRITER, args: [file, format, ...params] }),
    images: [{ file, format }],
    async verify(stdout, dir) {
      const flushed = [...stdout.matchAll(/^FLUSHED (\d+)$/gm)].map((m) => Number(m[1]));
      const done = flushed.length ? flushed[flushed.length - 1] : 0;
      if (done === 0) return null;
      const order = slotOrder(seed, n, slots);
      const reads = order.slice(0, done).map((slot, i) =>
        `read -q -P ${patternOf(i)} ${slot * stride + shift} ${block}`
      );
      // A few hundred reads per qemu-io process keeps the command line short.
      for (let i = 0; i < reads.length; i += 400) {
        const r = await runCommand(
          "qemu-io",
          ["-r", "-f", format, ...reads.slice(i, i + 400).flatMap((c) => ["-c", c]), file],
          { cwd: dir },
        );
        const text = `${r.stdout}${r.stderr}`;
        if (r.code !== 0 || /verification failed|error/i.test(text)) {
          return `flushed block lost after FLUSHED ${done}: ${
            text.split("\n").slice(0, 4).join(" | ")
          }`;
        }
      }
      return null;
    },
  };
}

/** The totals of one operation's trials. */
interface OpTally {
  trials: number;
  killed: number;
  finished: number;
  leaks: number;
  dirtyRepaired: number;
  absent: number;
  corruptions: number;
  failures: string[];
}

const tallies = new Map<string, OpTally>();

/** Runs one trial: prepare, kill after `delayMs`, judge every image. */
async function trial(op: CrashOp, seed: number, delayMs: number, tally: OpTally): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    const rng = new Prng(seed);
    const prep = await op.prepare(dir, rng);
    const hashes = new Map<string, string>();
    for (const f of prep.unchanged ?? []) hashes.set(f, await fileHash(path.join(dir, f)));
    const run = await runKilled(prep.args, dir, delayMs);
    tally.trials++;
    if (run.killed) tally.killed++;
    else tally.finished++;
    const where = `${op.name} seed=0x${seed.toString(16)} delay=${delayMs.toFixed(0)}ms`;
    if (!run.killed && run.code !== 0) {
      tally.failures.push(`${where}: exited ${run.code} without a kill: ${run.stderr.trim()}`);
      return;
    }
    for (const [f, h] of hashes) {
      if (await fileHash(path.join(dir, f)) !== h) tally.failures.push(`${where}: ${f} changed`);
    }
    for (const img of prep.images) {
      const file = path.join(dir, img.file);
      if (img.mayBeAbsent && !isQcow2(file)) {
        tally.absent++;
        continue;
      }
      const outcome: CheckOutcome = await checkImage(file, img.format);
      if (outcome.verdict === "leaks") tally.leaks++;
      if (outcome.verdict === "dirty-repaired") tally.dirtyRepaired++;
      if (outcome.verdict === "corrupt") {
        tally.corruptions++;
        tally.failures.push(`${where}: ${img.file} corrupt:\n${outcome.output.slice(0, 1500)}`);
        continue;
      }
      if (img.sameAsOneOf) {
        let same = false;
        for (const raw of img.sameAsOneOf) {
          const r = await runCommand("qemu-img", ["compare", "-q", "-F", "raw", file, raw]);
          if (r.code === 0) same = true;
          if (same) break;
        }
        if (!same) {
          tally.failures.push(`${where}: ${img.file} reads differently from every allowed view`);
        }
      }
    }
    if (prep.verify) {
      const problem = await prep.verify(run.stdout, dir);
      if (problem) tally.failures.push(`${where}: ${problem}`);
    }
  } finally {
    await cleanup();
  }
}

/** Measures how long an uninterrupted run of `op` and a bare start of vmkit take, in ms. */
async function measure(op: CrashOp, seed: number): Promise<{ runMs: number; startMs: number }> {
  const { dir, cleanup } = await tempDir();
  try {
    const prep = await op.prepare(dir, new Prng(seed));
    const start = await runKilled(denoArgs(["img", "--version"]), dir, Infinity);
    const run = await runKilled(prep.args, dir, Infinity);
    assert.equal(run.code, 0, `${op.name} failed without a kill: ${run.stderr}`);
    for (const img of prep.images) {
      const c = await checkImage(path.join(dir, img.file), img.format);
      assert.equal(
        c.verdict,
        "clean",
        `${op.name} left ${img.file} unclean without a kill:\n${c.output}`,
      );
    }
    if (prep.verify) assert.equal(await prep.verify(run.stdout, dir), null);
    return { runMs: run.elapsedMs, startMs: start.elapsedMs };
  } finally {
    await cleanup();
  }
}

const perOp = Math.max(1, Math.ceil(TOTAL_TRIALS / OPS.length));

for (const [opIndex, op] of OPS.entries()) {
  Deno.test({
    name: `crash: SIGKILL during '${op.name}' leaves images that qemu-img check accepts`,
    ignore,
    sanitizeResources: false,
    async fn() {
      const base = (SEED ^ Math.imul(opIndex + 1, 0x9e3779b1)) >>> 0;
      const { runMs, startMs } = await measure(op, base);
      // Kill moments spread over the whole run, from just before the command starts working.
      const rng = new Prng(base);
      const from = Math.min(startMs * 0.8, runMs * 0.5);
      const plan = Array.from({ length: perOp }, () => ({
        seed: rng.int(2 ** 32),
        delayMs: from + rng.next() * Math.max(1, runMs - from),
      }));
      const tally: OpTally = {
        trials: 0,
        killed: 0,
        finished: 0,
        leaks: 0,
        dirtyRepaired: 0,
        absent: 0,
        corruptions: 0,
        failures: [],
      };
      tallies.set(op.name, tally);
      await pool(plan, PARALLEL, (p) => trial(op, p.seed, p.delayMs, tally));
      console.log(
        `crash '${op.name}': ${tally.trials} trials (run ${runMs.toFixed(0)} ms, start ${
          startMs.toFixed(0)
        } ms), ${tally.killed} killed, ${tally.finished} finished, ${tally.leaks} with leaks, ${tally.dirtyRepaired} dirty+repaired, ${tally.absent} not yet created, ${tally.corruptions} corrupt`,
      );
      assert.deepEqual(tally.failures, []);
    },
  });
}

Deno.test({
  name: "crash: summary of every operation (prints the totals)",
  ignore,
  fn() {
    let trials = 0;
    let leaks = 0;
    let corrupt = 0;
    let killed = 0;
    const parts: string[] = [];
    for (const [name, t] of tallies) {
      trials += t.trials;
      leaks += t.leaks;
      corrupt += t.corruptions;
      killed += t.killed;
      parts.push(`${name}=${t.trials}`);
    }
    console.log(
      `crash summary: seed=0x${
        SEED.toString(16)
      } trials=${trials} killed=${killed} leaks=${leaks} corruptions=${corrupt} (${
        parts.join(", ")
      })`,
    );
  },
});
