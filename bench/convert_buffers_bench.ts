// Kernel copy cost by transfer-buffer placement: V8's default, page aligned, wasm memory, 2 MiB huge pages

import { writeMixedImage } from "./convert_bench.ts";
import { scratch, SHORT } from "./bench_util.ts";
import { blockAlignedBuffer } from "../core/block/buffer.ts";
import * as path from "node:path";

/**
 * Reads a cached file in 2 MiB `pread`s, as `img convert` does, into buffers placed
 * four ways, and writes it back out the same way; prints the best of several passes
 * per placement, in ms per GiB.
 *
 * - `default`: `new Uint8Array(2 MiB)`, which V8 places 16 bytes past a page.
 * - `page`: the same over-allocated and offset to a page boundary.
 * - `wasm`: `blockAlignedBuffer()`, a wasm memory of its own (what convert uses).
 * - `huge`: offset to a 2 MiB boundary and advised `MADV_HUGEPAGE` before the first
 *   touch (the `hugepage-idea` branch).
 *
 * Results and the decision they led to: docs/img-performance.md.
 */
const CHUNK = 2 << 20;
const MADV_HUGEPAGE = 14;

const LIBC_SYMBOLS = {
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  madvise: { parameters: ["buffer", "usize", "i32"], result: "i32" },
} as const;

let libcSymbols: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] | undefined;
/** libc, opened when the bench runs (not when a module imports this one). */
function libc() {
  return libcSymbols ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
}

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

function addressOf(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

function aligned(alignment: number, advise: boolean): Uint8Array {
  const backing = new Uint8Array(CHUNK + alignment);
  const pad = (alignment - (addressOf(backing) % alignment)) % alignment;
  const buf = backing.subarray(pad, pad + CHUNK);
  if (advise) libc().madvise(buf, BigInt(CHUNK), MADV_HUGEPAGE);
  return buf;
}

const PLACEMENTS: Record<string, () => Uint8Array> = {
  default: () => new Uint8Array(CHUNK),
  page: () => aligned(4096, false),
  wasm: () => blockAlignedBuffer(CHUNK),
  huge: () => aligned(CHUNK, true),
};

/** One pass: read all of `src` (and with `dst`, write it there), chunk by chunk. */
function pass(buf: Uint8Array, src: number, bytes: number, dst: number | null): number {
  const t0 = performance.now();
  for (let at = 0; at < bytes; at += CHUNK) {
    libc().pread(src, buf, BigInt(CHUNK), BigInt(at));
    if (dst !== null) libc().pwrite(dst, buf, BigInt(CHUNK), BigInt(at));
  }
  return performance.now() - t0;
}

if (import.meta.main) {
  const { dir, cleanup } = await scratch();
  const bytes = SHORT ? 256 << 20 : 1 << 30;
  const passes = SHORT ? 5 : 9;
  try {
    const file = path.join(dir, "src.raw");
    const out = path.join(dir, "out.raw");
    await writeMixedImage(file, bytes);
    const src = libc().open(cString(file), 0, 0);
    const perGiB = (ms: number) => (ms * (1 << 30)) / bytes;
    console.log(
      `pread/pwrite of a cached ${bytes >> 20} MiB file in 2 MiB chunks, best of ${passes}`,
    );
    console.log("placement  address%4096  read ms/GiB  read+write ms/GiB");
    const best: Record<string, [number, number]> = {};
    for (const name of Object.keys(PLACEMENTS)) best[name] = [Infinity, Infinity];
    const bufs = Object.fromEntries(Object.entries(PLACEMENTS).map(([k, f]) => [k, f()]));
    for (const buf of Object.values(bufs)) buf.fill(1);
    pass(bufs.default, src, bytes, null); // warm the page cache
    // Placements take turns, so load from other jobs falls on each alike.
    for (let i = 0; i < passes; i++) {
      for (const name of Object.keys(PLACEMENTS)) {
        best[name][0] = Math.min(best[name][0], pass(bufs[name], src, bytes, null));
        // O_WRONLY | O_CREAT | O_TRUNC: a fresh file every pass, as convert writes one.
        const dst = libc().open(cString(out), 0o1 | 0o100 | 0o1000, 0o644);
        best[name][1] = Math.min(best[name][1], pass(bufs[name], src, bytes, dst));
        libc().close(dst);
      }
    }
    for (const name of Object.keys(PLACEMENTS)) {
      const [r, rw] = best[name];
      console.log(
        `${name.padEnd(10)} ${String(addressOf(bufs[name]) % 4096).padStart(12)}  ${
          perGiB(r).toFixed(0).padStart(11)
        }  ${perGiB(rw).toFixed(0).padStart(17)}`,
      );
    }
    libc().close(src);
  } finally {
    await cleanup();
  }
}
