// Fingerprints of the generated programs: a change to the generator that must not change
// any seed's program (a refactor) shows the same hashes before and after
//
//   deno run -A tests/cpu_diff/stream_hash.ts [--seeds=1..200] [--n=500] [--mode=pm32,long] [--bytes]
//
// For each mode it prints one sha256 over every seed's item stream (class, instruction and
// lines), and with --bytes one over the nasm-assembled images too (the bytes QEMU runs).

import { createHash } from "node:crypto";
import type { Mode } from "./gen.ts";
import { assemble, buildProgram, generate } from "./program.ts";

function arg(name: string, fallback: string): string {
  const a = Deno.args.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return fallback;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : "true";
}

async function main(): Promise<void> {
  const m = /^(\d+)\.\.(\d+)$/.exec(arg("seeds", "1..200"));
  if (!m) throw new Error("--seeds=A..B");
  const n = Number(arg("n", "500"));
  const modes = arg("mode", "pm32,long").split(",") as Mode[];
  const bytes = arg("bytes", "false") === "true";
  const dir = await Deno.makeTempDir({ prefix: "vmkit-streamhash-" });
  try {
    for (const mode of modes) {
      const items = createHash("sha256"), images = createHash("sha256");
      for (let seed = Number(m[1]); seed <= Number(m[2]); seed++) {
        for (const it of generate(seed, n, mode)) {
          items.update(`${it.cls}\0${it.insn}\0${it.lines.join("\n")}\0${it.undefAfter}\n`);
        }
        if (bytes) {
          const p = buildProgram({ seed, count: n, mode, passes: 1 });
          images.update(await Deno.readFile(await assemble(p.source, dir)));
        }
      }
      console.log(`${mode} seeds ${m[1]}..${m[2]} n=${n}: items ${items.digest("hex")}`);
      if (bytes) {
        console.log(`${mode} seeds ${m[1]}..${m[2]} n=${n}: images ${images.digest("hex")}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
