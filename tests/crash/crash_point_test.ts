// Crash safety at chosen write boundaries: stop qcow2 after its Nth host write, judge with qemu-img

import assert from "node:assert/strict";
import * as path from "node:path";
import type { BlockNode } from "../../core/block/driver.ts";
import type { BlockGraph } from "../../core/block/graph.ts";
import { commitRanges } from "../../cli/img/commit.ts";
import { HAVE_QEMU_IMG, haveProgram, runCommand, tempDir } from "../test_util.ts";
import { Prng, seedFromEnv } from "../fuzz/prng.ts";
import { checkImage } from "./crash_util.ts";
import { CrashPoint } from "./crash_point.ts";

const HAVE_QEMU_IO = haveProgram("qemu-io");
const ignore = !HAVE_QEMU_IMG || !HAVE_QEMU_IO;
if (ignore) {
  console.log("crash point suite ignored: qemu-img/qemu-io missing (apt-get install qemu-utils)");
}

/** Crash points per scenario and model: VMKIT_CRASH_POINTS, or a default for a normal run. */
const POINTS = Number(Deno.env.get("VMKIT_CRASH_POINTS") ?? "6");
const SEED = seedFromEnv("VMKIT_CRASH_SEED", 0xc0ffee);
const MiB = 1 << 20;
// Small caches force evictions, so the dependency order on eviction is exercised too.
const OPEN_OPTS = {
  "l2-cache-size": 4096,
  "refcount-cache-size": 4096,
  "cache-clean-interval": 0,
};

interface Scenario {
  name: string;
  /** Makes the images (with real QEMU tools); returns the files the run changes. */
  setup(dir: string, rng: Prng): Promise<string[]>;
  /** The work that gets interrupted. */
  run(graph: BlockGraph, dir: string, rng: Prng): Promise<void>;
  /** Raw files with the guest views the first image may show after a crash. */
  views?: string[];
}

async function ok(program: string, args: string[], cwd: string): Promise<void> {
  const r = await runCommand(program, args, { cwd });
  if (r.code !== 0) throw new Error(`${program} ${args.join(" ")}: ${r.stderr}${r.stdout}`);
}

function qemuIo(dir: string, file: string, commands: string[]) {
  return ok("qemu-io", ["-f", "qcow2", ...commands.flatMap((c) => ["-c", c]), file], dir);
}

function scatter(rng: Prng, spanBytes: number, count: number): string[] {
  return Array.from({ length: count }, () => {
    const len = rng.pick([512, 4096, 65536, 200704]);
    const off = Math.floor(rng.int(spanBytes - len) / 512) * 512;
    return `write -P ${rng.range(1, 255)} ${off} ${len}`;
  });
}

async function open(graph: BlockGraph, dir: string, file: string, extra = {}): Promise<BlockNode> {
  return await graph.openImage(path.join(dir, file), {
    format: "qcow2",
    formatOptions: OPEN_OPTS,
    ...extra,
  });
}

/** Random guest writes, zeroes and discards, flushed now and then. */
async function guestWrites(node: BlockNode, rng: Prng, count: number): Promise<void> {
  const size = node.size();
  for (let i = 0; i < count; i++) {
    const len = rng.pick([512, 4096, 12288, 65536, 131072]);
    const off = Math.floor(rng.int(size - len) / 512) * 512;
    const what = rng.int(10);
    if (what === 0) await node.writeZeroes(off, len, { unmap: rng.chance(0.5) });
    else if (what === 1) await node.discard(off, len);
    else await node.write(off, new Uint8Array(len).fill(rng.range(1, 255)));
    if (rng.chance(0.1)) await node.flush();
  }
}

/** `qemu-img create -q -f qcow2 -o OPTIONS FILE SIZE` in `dir`. */
function createQcow2(dir: string, file: string, size: string, options: string): Promise<void> {
  return ok("qemu-img", ["create", "-q", "-f", "qcow2", "-o", options, file, size], dir);
}

/** The work of the write scenarios: 60 guest writes into a.qcow2, then close. */
async function writeAndClose(graph: BlockGraph, dir: string, rng: Prng): Promise<void> {
  const node = await open(graph, dir, "a.qcow2");
  await guestWrites(node, rng, 60);
  await node.close();
}

const SCENARIOS: Scenario[] = [
  {
    name: "allocating writes, zeroes and discards (512 B clusters: L1 and refcount table growth)",
    async setup(dir) {
      await createQcow2(dir, "a.qcow2", "8M", "cluster_size=512");
      return ["a.qcow2"];
    },
    async run(graph, dir, rng) {
      const node = await open(graph, dir, "a.qcow2");
      await node.truncate(24 * MiB);
      await guestWrites(node, rng, 60);
      await node.close();
    },
  },
  {
    name: "allocating writes with lazy_refcounts (the dirty bit covers lagging refcounts)",
    async setup(dir) {
      await createQcow2(dir, "a.qcow2", "16M", "cluster_size=4k,lazy_refcounts=on");
      return ["a.qcow2"];
    },
    run: (graph, dir, rng) => writeAndClose(graph, dir, rng),
  },
  {
    name: "copy-on-write over an internal snapshot (4 KiB clusters)",
    async setup(dir, rng) {
      await createQcow2(dir, "a.qcow2", "16M", "cluster_size=4k");
      await qemuIo(dir, "a.qcow2", ["write -P 0x5a 0 12M", ...scatter(rng, 16 * MiB, 8)]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      return ["a.qcow2"];
    },
    run: (graph, dir, rng) => writeAndClose(graph, dir, rng),
  },
  {
    name: "snapshot create",
    async setup(dir, rng) {
      await createQcow2(dir, "a.qcow2", "16M", "cluster_size=4k");
      await qemuIo(dir, "a.qcow2", ["write -P 0x33 0 10M", ...scatter(rng, 16 * MiB, 8)]);
      if (rng.chance(0.5)) await ok("qemu-img", ["snapshot", "-c", "old", "a.qcow2"], dir);
      await ok("qemu-img", ["convert", "-O", "raw", "a.qcow2", "view.raw"], dir);
      return ["a.qcow2"];
    },
    async run(graph, dir) {
      const node = await open(graph, dir, "a.qcow2");
      await node.snapshotCreate!("s1");
      await node.close();
    },
    views: ["view.raw"],
  },
  {
    name: "snapshot delete",
    async setup(dir, rng) {
      await createQcow2(dir, "a.qcow2", "16M", "cluster_size=4k");
      await qemuIo(dir, "a.qcow2", ["write -P 0x44 0 10M"]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      await qemuIo(dir, "a.qcow2", scatter(rng, 16 * MiB, 10));
      await ok("qemu-img", ["snapshot", "-c", "s2", "a.qcow2"], dir);
      await qemuIo(dir, "a.qcow2", scatter(rng, 16 * MiB, 6));
      await ok("qemu-img", ["convert", "-O", "raw", "a.qcow2", "view.raw"], dir);
      return ["a.qcow2"];
    },
    async run(graph, dir, rng) {
      const node = await open(graph, dir, "a.qcow2");
      await node.snapshotDelete!(rng.pick(["s1", "s2"]));
      await node.close();
    },
    views: ["view.raw"],
  },
  {
    name: "snapshot apply",
    async setup(dir, rng) {
      await createQcow2(dir, "a.qcow2", "16M", "cluster_size=4k");
      await qemuIo(dir, "a.qcow2", ["write -P 0x55 0 10M", ...scatter(rng, 16 * MiB, 4)]);
      await ok("qemu-img", ["snapshot", "-c", "s1", "a.qcow2"], dir);
      await ok("qemu-img", ["convert", "-O", "raw", "a.qcow2", "s1.raw"], dir);
      await qemuIo(dir, "a.qcow2", scatter(rng, 16 * MiB, 12));
      await ok("qemu-img", ["convert", "-O", "raw", "a.qcow2", "now.raw"], dir);
      return ["a.qcow2"];
    },
    async run(graph, dir) {
      const node = await open(graph, dir, "a.qcow2");
      await node.snapshotApply!("s1");
      await node.close();
    },
    views: ["now.raw", "s1.raw"],
  },
  {
    name: "commit into the base and empty the overlay",
    async setup(dir, rng) {
      await createQcow2(dir, "base.qcow2", "16M", "cluster_size=4k");
      await qemuIo(dir, "base.qcow2", ["write -P 0x66 0 8M"]);
      await ok("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4k,backing_file=base.qcow2,backing_fmt=qcow2",
        "top.qcow2",
      ], dir);
      await qemuIo(dir, "top.qcow2", [...scatter(rng, 16 * MiB, 16), "write -z 1M 1M"]);
      await ok("qemu-img", ["convert", "-O", "raw", "top.qcow2", "view.raw"], dir);
      return ["top.qcow2", "base.qcow2"];
    },
    async run(graph, dir) {
      const top = await open(graph, dir, "top.qcow2", { backingReadWrite: true });
      await commitRanges(top, [top], top.backing!);
      await top.makeEmpty!();
      await top.close();
    },
    views: ["view.raw"],
  },
];

/** Runs `scenario` with the host writes cut after `limit`; returns problems found. */
async function crashAt(
  scenario: Scenario,
  dir: string,
  files: string[],
  limit: number,
  powerLoss: boolean,
  seed: number,
): Promise<string[]> {
  for (const f of files) await Deno.copyFile(path.join(dir, `${f}.orig`), path.join(dir, f));
  const cp = new CrashPoint(limit, { powerLoss });
  const rng = new Prng(seed);
  try {
    await scenario.run(cp.graph(), dir, rng);
  } catch (e) {
    if (!cp.dead) throw e;
  }
  await cp.crash(new Prng(seed ^ limit));
  const where = `${scenario.name}: ${powerLoss ? "power loss" : "kill"} after write ${limit}`;
  const problems: string[] = [];
  for (const f of files) {
    const outcome = await checkImage(path.join(dir, f), "qcow2");
    if (outcome.verdict === "corrupt") {
      problems.push(`${where}: ${f}:\n${outcome.output.slice(0, 1200)}`);
    }
  }
  // Power loss may lose unflushed guest data by design; a kill may not change what the guest sees.
  if (scenario.views && !powerLoss) {
    let same = false;
    for (const raw of scenario.views) {
      const r = await runCommand("qemu-img", [
        "compare",
        "-q",
        "-F",
        "raw",
        path.join(dir, files[0]),
        path.join(dir, raw),
      ]);
      if (r.code === 0) {
        same = true;
        break;
      }
    }
    if (!same) problems.push(`${where}: ${files[0]} reads differently from every allowed view`);
  }
  return problems;
}

for (const [index, scenario] of SCENARIOS.entries()) {
  Deno.test({
    name:
      `crash point: qcow2 '${scenario.name}' stopped after any host write passes qemu-img check`,
    ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const seed = (SEED ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
      const { dir, cleanup } = await tempDir();
      try {
        const files = await scenario.setup(dir, new Prng(seed));
        for (const f of files) await Deno.copyFile(path.join(dir, f), path.join(dir, `${f}.orig`));
        // One full run counts the writes (and must leave clean images).
        const counter = new CrashPoint();
        await scenario.run(counter.graph(), dir, new Prng(seed));
        for (const f of files) {
          const c = await checkImage(path.join(dir, f), "qcow2");
          assert.equal(c.verdict, "clean", `${scenario.name} without a crash:\n${c.output}`);
        }
        const total = counter.writes;
        const pick = new Prng(seed ^ 0x5bd1e995);
        const limits = new Set<number>([0, 1, total - 1]);
        while (limits.size < Math.min(total, POINTS)) limits.add(pick.int(total));
        const problems: string[] = [];
        let runs = 0;
        for (const limit of [...limits].sort((a, b) => a - b)) {
          for (const powerLoss of [false, true]) {
            problems.push(...await crashAt(scenario, dir, files, limit, powerLoss, seed));
            runs++;
          }
        }
        console.log(
          `crash point '${scenario.name}': ${total} host writes, ${runs} crashes (kill and power loss), ${problems.length} problems`,
        );
        assert.deepEqual(problems, []);
      } finally {
        await cleanup();
      }
    },
  });
}
