// Fuzz runner: opens damaged images through the block graph in process and reports how each went

/**
 * Usage: `deno run -A fuzz_runner.ts MANIFEST.json FIRST`
 *
 * The manifest lists cases `{ file, format? }`. From case FIRST on, each is opened
 * read-only (probed when `format` is absent) and exercised as `img info`, `check`,
 * `map` and `convert` would: size, format info, snapshots, block status over the
 * disk, reads of the first {@linkcode READ_ALL_BYTES} and a sample beyond, and check.
 * Per case it prints `START i`, then `RESULT i ok`, `RESULT i error <message>` (a
 * user-facing error: fine) or `RESULT i bug <what>` (anything else: a failure).
 * The parent watches the output, so a hang or a crash of the process names its case.
 */

import { BlockGraph } from "../../core/block/graph.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { errorChainMessage, VmkitError } from "../../core/errors.ts";
import { buildRegistry } from "../../cli/registry.ts";
import { READ_ALL_BYTES } from "./targets.ts";

/** One case of the manifest. */
export interface FuzzCase {
  file: string;
  format?: string;
}

const encoder = new TextEncoder();
function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(`${line.replaceAll("\n", "\\n")}\n`));
}

async function exercise(node: BlockNode): Promise<void> {
  const size = node.size();
  node.formatInfo?.();
  node.snapshots?.();
  node.allocatedBytes();
  // Block status across the disk, as map and convert walk it (bounded for huge sizes).
  let pos = 0;
  for (let steps = 0; pos < size && steps < 4096; steps++) {
    const st = await node.blockStatus(pos, Math.min(size - pos, 2 ** 31));
    if (!(st.bytes > 0)) throw new Error(`blockStatus made no progress at ${pos}`);
    pos += st.bytes;
  }
  const chunk = new Uint8Array(65536);
  for (let at = 0; at < Math.min(size, READ_ALL_BYTES); at += chunk.length) {
    const n = Math.min(chunk.length, size - at);
    await node.read(at, n === chunk.length ? chunk : chunk.subarray(0, n));
  }
  if (size > READ_ALL_BYTES) {
    for (let i = 1; i <= 32; i++) {
      const at = Math.floor(((size - 4096) * i) / 32 / 512) * 512;
      await node.read(Math.max(0, at), chunk.subarray(0, Math.min(4096, size)));
    }
  }
  await node.check?.("none");
}

async function main(args: string[]): Promise<void> {
  const cases = JSON.parse(await Deno.readTextFile(args[0])) as FuzzCase[];
  const first = Number(args[1] ?? "0");
  const graph = new BlockGraph(await buildRegistry());
  for (let i = first; i < cases.length; i++) {
    say(`START ${i}`);
    const c = cases[i];
    try {
      const node = await graph.openImage(c.file, {
        format: c.format,
        readOnly: true,
        forceShare: true,
      });
      try {
        await exercise(node);
      } finally {
        await node.close();
      }
      say(`RESULT ${i} ok`);
    } catch (e) {
      if (e instanceof VmkitError) {
        say(`RESULT ${i} error ${errorChainMessage(e)}`);
      } else {
        const err = e as Error;
        const where = (err?.stack ?? "").split("\n").slice(1, 4).map((l) => l.trim()).join(" < ");
        say(`RESULT ${i} bug ${err?.name}: ${errorChainMessage(e)} @ ${where}`);
      }
    }
  }
  say("END");
}

if (import.meta.main) await main(Deno.args);
