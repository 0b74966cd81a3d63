// Crash-test driver: writes numbered patterns through the block layer, flushing and reporting as it goes

/**
 * Usage: `deno run -A flush_writer.ts IMAGE FORMAT SEED COUNT BATCH BLOCK STRIDE SHIFT`
 *
 * Writes COUNT blocks of BLOCK bytes; block `i` goes to slot `slots[i]` (a seeded
 * permutation) at byte `slot * STRIDE + SHIFT` and is filled with {@linkcode patternOf}(i).
 * Blocks are issued BATCH at a time concurrently; after each batch the backend is
 * flushed and `FLUSHED n` is printed: blocks `0..n-1` are then durable, and must read
 * back intact after the process is killed at any later moment.
 */

import { BlockBackend } from "../../core/block/backend.ts";
import { BlockGraph } from "../../core/block/graph.ts";
import { buildRegistry } from "../../cli/registry.ts";
import { Prng } from "../fuzz/prng.ts";

/** The fill byte of block `i` (never zero, so a lost write cannot pass for data). */
export function patternOf(i: number): number {
  return 1 + (i % 250);
}

/** The slot order the writer uses for `count` blocks out of `slots` with `seed`. */
export function slotOrder(seed: number, count: number, slots: number): number[] {
  const order = Array.from({ length: slots }, (_, i) => i);
  const rng = new Prng(seed);
  for (let i = slots - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, count);
}

async function main(args: string[]): Promise<void> {
  const [image, format, seedText, countText, batchText, blockText, strideText, shiftText] = args;
  const seed = Number(seedText);
  const count = Number(countText);
  const batch = Number(batchText);
  const block = Number(blockText);
  const stride = Number(strideText);
  const shift = Number(shiftText);
  const graph = new BlockGraph(await buildRegistry());
  const root = await graph.openImage(image, { format, readOnly: false });
  const backend = new BlockBackend(root);
  const slots = Math.floor((backend.size() - shift - block) / stride) + 1;
  const order = slotOrder(seed, count, slots);
  const encoder = new TextEncoder();
  for (let done = 0; done < count;) {
    const n = Math.min(batch, count - done);
    const writes: Promise<void>[] = [];
    for (let i = done; i < done + n; i++) {
      const data = new Uint8Array(block).fill(patternOf(i));
      writes.push(backend.write(order[i] * stride + shift, data));
    }
    await Promise.all(writes);
    await backend.flush();
    done += n;
    Deno.stdout.writeSync(encoder.encode(`FLUSHED ${done}\n`));
  }
  await backend.close();
  Deno.stdout.writeSync(encoder.encode("DONE\n"));
}

if (import.meta.main) await main(Deno.args);
