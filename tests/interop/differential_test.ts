// Differential suite: every row of differential_table.ts through vmkit and qemu-img 7.2, compared byte for byte

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, haveProgram, runCommand, runTool, tempDir } from "../test_util.ts";
import { buildFixtures } from "./differential_fixtures.ts";
import {
  DIFF_TABLE,
  type DiffCase,
  FIXTURE_DEPENDENCIES,
  type MaskRule,
  maskVmdkCid,
} from "./differential_table.ts";

const ignore = !HAVE_QEMU_IMG || !haveProgram("qemu-io");
const NEEDS = ignore
  ? " (ignored: qemu-img and qemu-io are not installed; apt-get install qemu-utils)"
  : "";

/** Cases run at once; each runs both tools side by side. */
const JOBS = Number(Deno.env.get("VMKIT_DIFF_JOBS") ?? "4");

/** What one tool did in one step. */
interface StepResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What one tool left behind: its step results and the files it wrote. */
interface SideResult {
  steps: StepResult[];
  /** Files new or changed since the copy, by name. */
  written: Map<string, Uint8Array>;
}

function caseName(group: string, row: DiffCase): string {
  return `${group}: ${row.steps.map((s) => `qemu-img ${s.join(" ")}`).join(" && ")}`;
}

/** The fixtures a row names (as arguments or `if=`/`of=` operands), with their backing files. */
function neededFixtures(row: DiffCase, available: ReadonlySet<string>): string[] {
  const names = new Set<string>();
  const add = (name: string) => {
    if (!available.has(name) || names.has(name)) return;
    names.add(name);
    for (const dep of FIXTURE_DEPENDENCIES[name] ?? []) add(dep);
  };
  for (const step of row.steps) {
    for (const arg of step) add(arg.replace(/^(if|of)=/, ""));
  }
  return [...names];
}

/** Links (or, for a writing case, copies) the fixtures a row needs into `dir`. */
async function populate(
  fixtures: string,
  names: string[],
  dir: string,
  copy: boolean,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  if (names.length === 0) return;
  // cp keeps holes, so map and `disk size` see the same files.
  const r = await runCommand("cp", [
    copy ? "-a" : "-al",
    ...names.map((n) => path.join(fixtures, n)),
    dir,
  ]);
  if (r.code !== 0) throw new Error(`cp: ${r.stderr}`);
}

function fingerprint(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of Deno.readDirSync(dir)) {
    const st = Deno.statSync(path.join(dir, e.name));
    out.set(e.name, `${st.size}:${st.mtime?.getTime()}`);
  }
  return out;
}

async function runSide(
  program: "qemu-img" | "vmkit",
  row: DiffCase,
  fixtures: { dir: string; names: string[] },
  dir: string,
): Promise<SideResult> {
  await populate(fixtures.dir, fixtures.names, dir, row.writes === true);
  const before = fingerprint(dir);
  const steps: StepResult[] = [];
  // With "help-text", stdout that is this tool's own `--help` text reads as "$HELP".
  const help = row.masks?.includes("help-text")
    ? (await runTool(program, ["--help"], dir)).stdout
    : undefined;
  for (const args of row.steps) {
    const r = await runTool(program, args, dir);
    steps.push({
      code: r.code,
      stdout: help !== undefined && r.stdout === help
        ? "$HELP"
        : normalise(r.stdout, dir, row.masks),
      stderr: normalise(r.stderr, dir, row.masks),
    });
  }
  const written = new Map<string, Uint8Array>();
  for (const [name, print] of fingerprint(dir)) {
    if (before.get(name) !== print) written.set(name, Deno.readFileSync(path.join(dir, name)));
  }
  return { steps, written };
}

/** The temp directory becomes `$DIR`; masks named by the row apply. */
function normalise(text: string, dir: string, masks: readonly MaskRule[] = []): string {
  let t = text.replaceAll(dir, "$DIR");
  if (masks.includes("node-name")) t = t.replace(/#block\d+/g, "#blockN");
  // A vmdk's CID in `info` (human and JSON) is the random value the file carries.
  if (masks.includes("vmdk-cid")) t = t.replace(/^(\s+cid: |\s+"cid": )\d+/gm, "$1N");
  if (masks.includes("bench-time")) {
    t = t.replace(/Run completed in [0-9.]+ seconds\./g, "Run completed in N seconds.");
  }
  return t;
}

/** Files both tools wrote must be equal byte for byte, or by content where a mask says so. */
async function compareFiles(
  row: DiffCase,
  ours: SideResult,
  theirs: SideResult,
  dirs: { ours: string; theirs: string },
): Promise<void> {
  assert.deepEqual(
    [...ours.written.keys()].sort(),
    [...theirs.written.keys()].sort(),
    "the same files are written",
  );
  const byContent = row.masks?.some((m) =>
    m === "random-ids" || m === "snapshot-clock" || m === "parallel-allocation"
  );
  for (const [name, bytes] of theirs.written) {
    const mine = ours.written.get(name)!;
    if (!byContent) {
      // "vmdk-cid" masks the random CID of the vmdk files written (not raw back-conversions).
      const mask = row.masks?.includes("vmdk-cid") && name.endsWith(".vmdk")
        ? maskVmdkCid
        : (b: Uint8Array) => b;
      assert.ok(
        equalBytes(mask(mine), mask(bytes)),
        `${name} is byte for byte what qemu-img wrote`,
      );
      continue;
    }
    // Ids or clocks differ by design: the real qemu-img must find the same guest data
    // and a clean image.
    const cmp = await runCommand("qemu-img", [
      "compare",
      path.join(dirs.ours, name),
      path.join(dirs.theirs, name),
    ]);
    assert.equal(cmp.code, 0, `${name}: qemu-img compare: ${cmp.stdout}${cmp.stderr}`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Runs `work` over `items` with at most `jobs` at once, keeping the order of results. */
async function pool<T, R>(items: T[], jobs: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, jobs) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]);
      }
    }),
  );
  return results;
}

Deno.test({
  name: `differential: vmkit img and qemu-img agree on every row of the table${NEEDS}`,
  ignore,
  async fn(t) {
    const { dir, cleanup } = await tempDir();
    try {
      const fixtures = path.join(dir, "fixtures");
      await Deno.mkdir(fixtures);
      await buildFixtures(fixtures);
      const fixturePrint = fingerprint(fixtures);
      const available = new Set(fixturePrint.keys());
      // VMKIT_DIFF_FILTER=text runs only the rows whose name contains it.
      const filter = Deno.env.get("VMKIT_DIFF_FILTER") ?? "";
      const rows = Object.entries(DIFF_TABLE).flatMap(([group, list]) =>
        list.map((row, i) => ({ group, row, index: i }))
      ).filter(({ group, row }) => caseName(group, row).includes(filter));
      const outcomes = await pool(rows, JOBS, async ({ group, row, index }) => {
        const base = path.join(dir, `${group.replaceAll(" ", "_")}-${index}`);
        const dirs = { ours: path.join(base, "v"), theirs: path.join(base, "q") };
        try {
          const needed = { dir: fixtures, names: neededFixtures(row, available) };
          const [ours, theirs] = await Promise.all([
            runSide("vmkit", row, needed, dirs.ours),
            runSide("qemu-img", row, needed, dirs.theirs),
          ]);
          for (let s = 0; s < row.steps.length; s++) {
            const label = `step ${s + 1} (${row.steps[s].join(" ")})`;
            assert.equal(ours.steps[s].stdout, theirs.steps[s].stdout, `${label}: stdout`);
            assert.equal(ours.steps[s].stderr, theirs.steps[s].stderr, `${label}: stderr`);
            assert.equal(ours.steps[s].code, theirs.steps[s].code, `${label}: exit code`);
          }
          await compareFiles(row, ours, theirs, dirs);
          return { name: caseName(group, row), error: undefined };
        } catch (e) {
          return { name: caseName(group, row), error: e };
        } finally {
          await Deno.remove(base, { recursive: true }).catch(() => {});
        }
      });
      for (const o of outcomes) {
        await t.step(o.name, () => {
          if (o.error) throw o.error;
        });
      }
      // Read-only cases share the fixtures through hard links: none may have changed them.
      assert.deepEqual(fingerprint(fixtures), fixturePrint, "no case changed an input file");
    } finally {
      await cleanup();
    }
  },
});
