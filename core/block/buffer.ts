// Transfer buffers for large block I/O, aligned as QEMU's qemu_blockalign aligns them

import { wasmBuffer } from "./_zero_scan.ts";

/** The alignment of {@linkcode blockAlignedBuffer}: a host page, which every cache line divides. */
export const BUFFER_ALIGNMENT = 4096;

let canLocate: boolean | undefined;

/** True when a buffer's address can be read (`Deno.UnsafePointer.of` needs the ffi permission). */
function addressesVisible(): boolean {
  if (canLocate === undefined) {
    try {
      // query, never request: a command must not stop at a permission prompt for this.
      canLocate = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
    } catch {
      canLocate = false;
    }
  }
  return canLocate;
}

/** A transparent huge page on x86-64 and arm64 (with 4 KiB base pages). */
const HUGE_PAGE_BYTES = 2 << 20;
/** `madvise` advice on Linux: back this range with transparent huge pages. */
const MADV_HUGEPAGE = 14;

type Madvise = (address: Uint8Array, bytes: bigint, advice: number) => number;
let madviseFn: Madvise | null | undefined;

/** libc's `madvise` through FFI, loaded on first use; null off Linux or without FFI. */
function madvise(): Madvise | null {
  if (madviseFn !== undefined) return madviseFn;
  madviseFn = null;
  if (Deno.build.os !== "linux" || !addressesVisible()) return madviseFn;
  for (const path of ["libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]) {
    try {
      const lib = Deno.dlopen(path, {
        madvise: { parameters: ["buffer", "usize", "i32"], result: "i32" },
      });
      madviseFn = lib.symbols.madvise as Madvise;
      break;
    } catch {
      // Not at that path; try the next.
    }
  }
  return madviseFn;
}

function addressOf(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * `bytes` of `memory` (a fresh, untouched mapping) from its first 2 MiB boundary,
 * advised to use transparent huge pages; the memory holds `bytes` plus one huge page.
 */
function hugePageAligned(memory: Uint8Array, bytes: number, advise: Madvise): Uint8Array {
  const pad = (HUGE_PAGE_BYTES - (addressOf(memory) % HUGE_PAGE_BYTES)) % HUGE_PAGE_BYTES;
  const buf = memory.subarray(pad, pad + bytes);
  // Advice only: where THP is off the range keeps 4 KiB pages, which work the same.
  advise(buf, BigInt(Math.floor(bytes / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES), MADV_HUGEPAGE);
  return buf;
}

/**
 * A zeroed buffer of `bytes` that starts on a page boundary: a wasm memory of its own,
 * which `isZero` scans with vector instructions (core/block/_zero_scan.ts); where wasm
 * is unavailable, a plain buffer aligned by its address where that can be known (the
 * ffi permission, which positional I/O through libc needs anyway), else a plain one.
 * From 2 MiB up, with FFI on Linux, the wasm buffer starts on a 2 MiB boundary and is
 * advised to use transparent huge pages (`madvise(MADV_HUGEPAGE)`).
 *
 * Why aligned: V8 places a large ArrayBuffer 16 bytes past a page boundary (malloc's
 * header), and the kernel's copy between the page cache and a destination that is not
 * cache-line aligned to its source ran about twice as slow here: `img convert` of a
 * 1 GiB vhdx to raw spent 0.70 s of system time with such buffers and 0.33 s with
 * page-aligned ones (qemu-img, whose buffers are page aligned, 0.33 s).
 *
 * Why huge pages: not for the copies (bench/convert_buffers_bench.ts: the same within
 * noise as page-aligned 4 KiB pages) but for the first touch. A convert's eight 2 MiB
 * buffers take 4096 page faults in 4 KiB pages, 13-19 ms on this VM (nested paging),
 * against 2.5-6 ms in eight huge pages: a fixed cost a 256 MiB conversion felt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blockAlignedBuffer } from "./buffer.ts";
 * const buf = blockAlignedBuffer(3 << 20);
 * assert.equal(buf.length, 3 << 20);
 * assert.ok(buf.every((b) => b === 0));
 * ```
 */
export function blockAlignedBuffer(bytes: number): Uint8Array {
  if (bytes < BUFFER_ALIGNMENT) return new Uint8Array(bytes);
  const advise = bytes >= HUGE_PAGE_BYTES ? madvise() : null;
  const inWasm = wasmBuffer(advise ? bytes + HUGE_PAGE_BYTES : bytes);
  if (inWasm) return advise ? hugePageAligned(inWasm, bytes, advise) : inWasm;
  if (!addressesVisible()) return new Uint8Array(bytes);
  // The padding up to the alignment is wasted on purpose: at most one page.
  const backing = new Uint8Array(bytes + BUFFER_ALIGNMENT);
  const pad = (BUFFER_ALIGNMENT - (addressOf(backing) % BUFFER_ALIGNMENT)) % BUFFER_ALIGNMENT;
  return backing.subarray(pad, pad + bytes);
}
