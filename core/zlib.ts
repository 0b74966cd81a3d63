// node:zlib on demand: formats inflate compressed clusters with it, but loading Node's
// compatibility layer costs more than all the rest of a `vmkit img info` start-up

import { InvariantError } from "./errors.ts";

/** The node:zlib module. */
export type Zlib = typeof import("node:zlib");
/** node:zlib's options type. */
export type ZlibOptions = import("node:zlib").ZlibOptions;

let zlib: Zlib | undefined;

/** True once {@linkcode loadZlib} has finished, so {@linkcode zlibSync} may be called. */
export function zlibLoaded(): boolean {
  return zlib !== undefined;
}

/**
 * Loads node:zlib once. A format awaits it on its async path before the synchronous
 * code that inflates or deflates, which then calls {@linkcode zlibSync}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadZlib, zlibSync } from "./zlib.ts";
 *
 * await loadZlib();
 * const packed = zlibSync().deflateRawSync(new Uint8Array(4096));
 * assert.equal(zlibSync().inflateRawSync(packed).length, 4096);
 * ```
 */
export async function loadZlib(): Promise<Zlib> {
  // A string literal, so `deno compile` and `deno info` see the module.
  zlib ??= await import("node:zlib");
  return zlib;
}

/** node:zlib, which {@linkcode loadZlib} must have loaded. */
export function zlibSync(): Zlib {
  if (zlib === undefined) throw new InvariantError("node:zlib used before loadZlib()");
  return zlib;
}
