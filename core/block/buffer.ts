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

function addressOf(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * A zeroed buffer of `bytes` that starts on a page boundary: a wasm memory of its own,
 * which `isZero` scans with vector instructions (core/block/_zero_scan.ts); where wasm
 * is unavailable, a plain buffer aligned by its address where that can be known (the
 * ffi permission, which positional I/O through libc needs anyway), else a plain one.
 *
 * Why aligned: V8 places a large ArrayBuffer 16 bytes past a page boundary (malloc's
 * header), and the kernel's copy between the page cache and a destination that is not
 * cache-line aligned to its source ran about twice as slow here: `img convert` of a
 * 1 GiB vhdx to raw spent 0.70 s of system time with such buffers and 0.33 s with
 * page-aligned ones (qemu-img, whose buffers are page aligned, 0.33 s).
 *
 * Why not huge pages: buffers of 2 MiB and more used to start on a 2 MiB boundary,
 * advised `MADV_HUGEPAGE`, to take 8 page faults instead of 4096 on first touch. On
 * this VM (virtio-balloon free page reporting) a huge page comes from a 2 MiB free
 * block, which is exactly what the guest hands back to the host, so its zeroing
 * (`folio_zero_user`) took a host fault for each of its 512 pages: 57% of the CPU
 * samples of repeated vdi -> raw conversions, and the conversion's net time 0.34 s
 * against 0.12 s in 4 KiB pages (256 MiB, medians of 7, same run; qemu-img 0.11 s).
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
  const inWasm = wasmBuffer(bytes);
  if (inWasm) return inWasm;
  if (!addressesVisible()) return new Uint8Array(bytes);
  // The padding up to the alignment is wasted on purpose: at most one page.
  const backing = new Uint8Array(bytes + BUFFER_ALIGNMENT);
  const pad = (BUFFER_ALIGNMENT - (addressOf(backing) % BUFFER_ALIGNMENT)) % BUFFER_ALIGNMENT;
  return backing.subarray(pad, pad + bytes);
}
