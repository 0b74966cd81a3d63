// CLI of the CPU differential harness: many seeds on QEMU and vmkit, a summary, the first differing instruction per seed
//
//   deno run -A tests/cpu_diff/run.ts --seeds=1..200 --n=2000 [--passes=60] [--tiers=js,wasm]
//     [--mode=pm32|long] [--include-known] [--out=DIR] [--jobs=1]
//
// --mode=long builds the long-mode variant (REX, 64-bit operands, RIP-relative addressing,
// CMPXCHG16B, SSE/SSE2 with XMM0..15 and MXCSR in the dump). Alone it checks that QEMU runs
// each program to a whole dump, the same dump twice; --vmkit-long compares with vmkit's tiers
// instead, as in 32-bit mode (vmkit runs long mode in its interpreter on every tier):
//   deno run -A tests/cpu_diff/run.ts --mode=long --vmkit-long --seeds=1..500 --n=2000 --tiers=interp

import { bisect, checkOnQemu, compareProgram, type Finding, type Runner } from "./harness.ts";
import { excludeKnown, loadKnown } from "./known.ts";
import type { Mode } from "./gen.ts";

function arg(name: string, fallback: string): string {
  const a = Deno.args.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return fallback;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : "true";
}

function seedsOf(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(",")) {
    const m = /^(\d+)(?:\.\.(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`--seeds: expected N or A..B, got '${part}'`);
    const a = Number(m[1]), b = Number(m[2] ?? m[1]);
    for (let s = a; s <= b; s++) out.push(s);
  }
  return out;
}

/** Summary of one tier's run. */
interface TierResult {
  tier: string;
  seeds: number;
  equal: number;
  findings: Finding[];
  errors: string[];
}

async function main(): Promise<number> {
  const seeds = seedsOf(arg("seeds", "1..10"));
  const n = Number(arg("n", "500"));
  const passes = Number(arg("passes", "60"));
  const mode = arg("mode", "pm32") as Mode;
  const tiers = arg("tiers", "js,wasm").split(",") as Exclude<Runner, "qemu">[];
  const jobs = Math.max(1, Number(arg("jobs", "1")));
  const includeKnown = arg("include-known", "false") === "true";
  const out = arg("out", "");
  const known = loadKnown();
  const exclude = includeKnown ? undefined : excludeKnown(known);
  if (mode !== "pm32" && mode !== "long") throw new Error("--mode is pm32 or long");
  console.log(
    `cpu-diff: seeds ${seeds[0]}..${seeds.at(-1)} (${seeds.length}), n=${n}, passes=${passes}, ` +
      `mode=${mode}, tiers=${tiers.join(",")}, ` +
      (includeKnown ? "known differences included" : `${known.length} known differences left out`),
  );
  if (out) await Deno.mkdir(out, { recursive: true });
  if (mode === "long" && arg("vmkit-long", "false") !== "true") {
    return await qemuOnly(seeds, n, passes);
  }
  const results: TierResult[] = [];
  const t0 = performance.now();
  for (const tier of tiers) {
    const r: TierResult = { tier, seeds: 0, equal: 0, findings: [], errors: [] };
    let next = 0;
    const worker = async () => {
      const dir = await Deno.makeTempDir({ prefix: "vmkit-cpudiff-" });
      try {
        while (next < seeds.length) {
          const seed = seeds[next++];
          const spec = { seed, count: n, mode, passes, exclude };
          try {
            const c = await compareProgram(spec, tier, dir);
            r.seeds++;
            if (r.seeds % 10 === 0) {
              const s = ((performance.now() - t0) / 1000).toFixed(0);
              console.log(`[${tier}] ${r.seeds} seeds done, ${r.findings.length} differ (${s} s)`);
            }
            if (c.diffs.length === 0) {
              r.equal++;
              continue;
            }
            const f = await bisect(spec, tier, dir);
            r.findings.push(f);
            report(f);
            if (out && f.reproducer) {
              await Deno.writeTextFile(
                `${out}/${tier}-seed${seed}-item${f.index}.asm`,
                f.reproducer.source,
              );
            }
          } catch (e) {
            r.errors.push(`seed ${seed}: ${e instanceof Error ? e.message : e}`);
            console.log(
              `seed ${seed} [${tier}]: harness error: ${e instanceof Error ? e.message : e}`,
            );
          }
        }
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
    results.push(r);
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  console.log(`\nsummary (${secs} s):`);
  for (const r of results) {
    const byClass = new Map<string, number>();
    for (const f of r.findings) byClass.set(f.cls, (byClass.get(f.cls) ?? 0) + 1);
    console.log(
      `  ${r.tier}: ${r.seeds} seeds, ${r.seeds * n} generated instructions ` +
        `(${r.seeds * n * passes} executed), ${r.equal} equal, ${r.findings.length} differ` +
        (byClass.size
          ? ` (first difference by class: ${[...byClass].map(([c, k]) => `${c} ${k}`).join(", ")})`
          : "") +
        (r.errors.length ? `, ${r.errors.length} harness errors` : ""),
    );
  }
  return results.every((r) => r.findings.length === 0 && r.errors.length === 0) ? 0 : 1;
}

/** The long-mode builder checked on QEMU alone. */
async function qemuOnly(seeds: number[], n: number, passes: number): Promise<number> {
  console.log("vmkit comparison skipped (no --vmkit-long): QEMU alone, each program twice");
  const dir = await Deno.makeTempDir({ prefix: "vmkit-cpudiff-" });
  let bad = 0;
  try {
    for (const seed of seeds) {
      const problem = await checkOnQemu({ seed, count: n, mode: "long", passes }, dir);
      if (problem !== null) {
        bad++;
        console.log(`seed ${seed}: ${problem}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  console.log(
    `summary: ${seeds.length} long-mode programs, ${
      seeds.length - bad
    } ran to a whole dump on QEMU, the same dump twice`,
  );
  return bad === 0 ? 0 : 1;
}

function report(f: Finding): void {
  console.log(
    `seed ${f.seed} [${f.tier}]: first difference at item ${f.index} (${f.cls}): ${f.insn}`,
  );
  console.log(`    lines: ${f.lines.join(" ; ")}`);
  for (const d of f.diffs.slice(0, 4)) {
    console.log(`    ${d.what}: qemu ${d.expected}, vmkit ${d.actual}`);
  }
  if (f.reproducer) {
    const d = f.reproducer.diffs[0];
    console.log(
      `    reproduced alone from QEMU's state before it (${f.reproducer.passes} pass${
        f.reproducer.passes > 1 ? "es" : ""
      }): ${d.what}: qemu ${d.expected}, vmkit ${d.actual}`,
    );
  } else console.log("    not reproduced alone: replay the seed's prefix");
}

if (import.meta.main) Deno.exit(await main());
