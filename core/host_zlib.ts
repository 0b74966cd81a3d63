// The host's zlib (libz.so.1) and libzstd through Deno FFI: the very compressors qemu-img links,
// so a compressed cluster comes out byte for byte as qemu-img writes it

/**
 * Deno's node:zlib is not the system zlib: its deflate picks other matches for the same
 * level, window and memory level, so the bytes (and the file's size) differ from qemu-img's
 * wherever data is not trivially compressible. Formats that must write qemu-img's bytes ask
 * here first and fall back to node:zlib when this answers null: no FFI permission (never
 * asked for, only queried, so no command stops at a prompt), no such library on the host,
 * or a platform whose `z_stream` layout is not the LP64 one written below.
 */

/** zlib's return codes and flush values (zlib.h). */
const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;
const Z_FINISH = 4;
const Z_DEFLATED = 8;
const Z_DEFAULT_STRATEGY = 0;

/** `z_stream` on LP64 hosts (Linux and macOS on x86-64 and arm64): offsets of the fields we set. */
const Z_STREAM_BYTES = 112;
const NEXT_IN = 0;
const AVAIL_IN = 8;
const NEXT_OUT = 24;
const AVAIL_OUT = 32;

const ZLIB_SYMBOLS = {
  zlibVersion: { parameters: [], result: "pointer" },
  deflateInit2_: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "pointer", "i32"],
    result: "i32",
  },
  deflate: { parameters: ["buffer", "i32"], result: "i32" },
  // The same call on Deno's blocking thread pool: clusters compress in parallel.
  deflateAsync: {
    name: "deflate",
    parameters: ["buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  deflateReset: { parameters: ["buffer"], result: "i32" },
} as const;

/** `ZSTD_EndDirective` and `ZSTD_ResetDirective` values (zstd.h). */
const ZSTD_E_END = 2;
const ZSTD_RESET_SESSION_ONLY = 1;
/** `ZSTD_inBuffer` / `ZSTD_outBuffer`: a pointer, a size and a position, 8 bytes each. */
const ZSTD_BUFFER_BYTES = 24;

const ZSTD_SYMBOLS = {
  ZSTD_createCCtx: { parameters: [], result: "pointer" },
  ZSTD_CCtx_reset: { parameters: ["pointer", "i32"], result: "usize" },
  ZSTD_compressStream2: { parameters: ["pointer", "buffer", "buffer", "i32"], result: "usize" },
  ZSTD_compressStream2Async: {
    name: "ZSTD_compressStream2",
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "usize",
    nonblocking: true,
  },
} as const;

/** One compressor: `input` packed into at most `limit` bytes, or null when it does not fit. */
export interface HostCompressor {
  compress(input: Uint8Array, limit: number): Uint8Array | null;
  /**
   * The same on Deno's blocking thread pool, so several clusters compress at once;
   * `input` must stay unchanged until the promise settles.
   */
  compressAsync(input: Uint8Array, limit: number): Promise<Uint8Array | null>;
}

/** What a host compressor could not do: the library's return code, for the message. */
export class HostCompressError extends Error {}

const LIBZ_NAMES: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: ["libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", "/lib64/libz.so.1", "/usr/lib/libz.so.1"],
  darwin: ["libz.1.dylib", "/usr/lib/libz.1.dylib"],
};
const LIBZSTD_NAMES: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: [
    "libzstd.so.1",
    "/lib/x86_64-linux-gnu/libzstd.so.1",
    "/lib64/libzstd.so.1",
    "/usr/lib/libzstd.so.1",
  ],
  darwin: [
    "libzstd.1.dylib",
    "/opt/homebrew/lib/libzstd.1.dylib",
    "/usr/local/lib/libzstd.1.dylib",
  ],
};

let ffiAllowed: boolean | undefined;

function mayUseFfi(): boolean {
  if (ffiAllowed === undefined) {
    ffiAllowed = false;
    const lp64 = Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64";
    if (lp64 && (Deno.build.os === "linux" || Deno.build.os === "darwin")) {
      try {
        // Queried, never requested: a command must not stop at a permission prompt.
        ffiAllowed = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
      } catch {
        // No permission API (a restricted embedder): treat as not allowed.
      }
    }
  }
  return ffiAllowed;
}

function open<S extends Deno.ForeignLibraryInterface>(
  names: string[] | undefined,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] | null {
  if (!mayUseFfi()) return null;
  for (const name of names ?? []) {
    try {
      return Deno.dlopen(name, symbols).symbols;
    } catch {
      // Not at that name; try the next.
    }
  }
  return null;
}

type Libz = Deno.DynamicLibrary<typeof ZLIB_SYMBOLS>["symbols"];
type Libzstd = Deno.DynamicLibrary<typeof ZSTD_SYMBOLS>["symbols"];
let libz: Libz | null | undefined;
let libzstd: Libzstd | null | undefined;

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

/** size_t results come back as number or, past 2^53 (zstd's error codes), as bigint. */
function sizeResult(r: number | bigint): bigint {
  return typeof r === "bigint" ? r : BigInt(r);
}

/** One z_stream, reset between uses: deflateReset leaves the state a fresh deflateInit2 would. */
class DeflateStream {
  readonly bytes = new Uint8Array(new ArrayBuffer(Z_STREAM_BYTES));
  readonly view = new DataView(this.bytes.buffer);

  constructor(lib: Libz, level: number, windowBits: number, memLevel: number) {
    const r = lib.deflateInit2_(
      this.bytes,
      level,
      Z_DEFLATED,
      windowBits,
      memLevel,
      Z_DEFAULT_STRATEGY,
      lib.zlibVersion(),
      Z_STREAM_BYTES,
    );
    if (r !== Z_OK) throw new HostCompressError(`deflateInit2 failed: ${r}`);
  }

  /** Points the stream at `input` and a fresh output buffer of `limit` bytes. */
  arm(input: Uint8Array, limit: number): Uint8Array {
    const out = new Uint8Array(limit);
    this.view.setBigUint64(NEXT_IN, address(input), true);
    this.view.setUint32(AVAIL_IN, input.length, true);
    this.view.setBigUint64(NEXT_OUT, address(out), true);
    this.view.setUint32(AVAIL_OUT, limit, true);
    return out;
  }

  /** What one `deflate(Z_FINISH)` returning `r` produced into `out`. */
  result(r: number | bigint, out: Uint8Array): Uint8Array | null {
    const produced = out.length - this.view.getUint32(AVAIL_OUT, true);
    if (r === Z_STREAM_END) return out.subarray(0, produced);
    // The output did not fit in `limit`: the caller stores the data uncompressed.
    if (r === Z_OK || r === Z_BUF_ERROR) return null;
    throw new HostCompressError(`deflate failed: ${r}`);
  }
}

/** One zstd context with its in/out buffer descriptors. */
class ZstdStream {
  readonly cctx: Deno.PointerValue;
  readonly input = new Uint8Array(new ArrayBuffer(ZSTD_BUFFER_BYTES));
  readonly output = new Uint8Array(new ArrayBuffer(ZSTD_BUFFER_BYTES));

  constructor(lib: Libzstd) {
    this.cctx = lib.ZSTD_createCCtx();
    if (this.cctx === null) throw new HostCompressError("ZSTD_createCCtx failed");
  }

  arm(input: Uint8Array, limit: number): Uint8Array {
    const out = new Uint8Array(limit);
    const iv = new DataView(this.input.buffer);
    const ov = new DataView(this.output.buffer);
    iv.setBigUint64(0, address(input), true);
    iv.setBigUint64(8, BigInt(input.length), true);
    iv.setBigUint64(16, 0n, true);
    ov.setBigUint64(0, address(out), true);
    ov.setBigUint64(8, BigInt(limit), true);
    ov.setBigUint64(16, 0n, true);
    return out;
  }

  /**
   * One ZSTD_compressStream2(ZSTD_e_end) call compresses the whole input into one frame
   * when the output fits; it returns the bytes still to flush (0 once the frame is
   * complete) or an error code (a huge size_t).
   */
  result(r: number | bigint, out: Uint8Array): Uint8Array | null {
    const left = sizeResult(r);
    const pos = Number(new DataView(this.output.buffer).getBigUint64(16, true));
    if (left === 0n) return out.subarray(0, pos);
    if (left > BigInt(out.length - pos)) return null;
    throw new HostCompressError(`ZSTD_compressStream2 left ${left} bytes unflushed`);
  }
}

/** A stream a {@linkcode Pooled} compressor lends out: armed for one call, then read. */
interface Stream {
  arm(input: Uint8Array, limit: number): Uint8Array;
  result(r: number | bigint, out: Uint8Array): Uint8Array | null;
}

/** What one library call on a stream is, both ways, and how a stream is made and reset. */
interface StreamCalls<S extends Stream> {
  make(): S;
  reset(stream: S): void;
  call(stream: S): number | bigint;
  callAsync(stream: S): Promise<number | bigint>;
}

/** A compressor over a pool of streams: one per cluster compressing at once. */
class Pooled<S extends Stream> implements HostCompressor {
  readonly #calls: StreamCalls<S>;
  readonly #idle: S[] = [];

  constructor(calls: StreamCalls<S>) {
    this.#calls = calls;
    // The first stream is made now, so a library that cannot make one is found out here.
    this.#idle.push(calls.make());
  }

  compress(input: Uint8Array, limit: number): Uint8Array | null {
    const stream = this.#idle.pop() ?? this.#calls.make();
    try {
      const out = stream.arm(input, limit);
      return stream.result(this.#calls.call(stream), out);
    } finally {
      this.#calls.reset(stream);
      this.#idle.push(stream);
    }
  }

  async compressAsync(input: Uint8Array, limit: number): Promise<Uint8Array | null> {
    const stream = this.#idle.pop() ?? this.#calls.make();
    try {
      const out = stream.arm(input, limit);
      return stream.result(await this.#calls.callAsync(stream), out);
    } finally {
      this.#calls.reset(stream);
      this.#idle.push(stream);
    }
  }
}

function rawDeflater(lib: Libz, level: number, windowBits: number, memLevel: number) {
  return new Pooled<DeflateStream>({
    make: () => new DeflateStream(lib, level, windowBits, memLevel),
    reset: (stream) => lib.deflateReset(stream.bytes),
    call: (stream) => lib.deflate(stream.bytes, Z_FINISH),
    callAsync: (stream) => lib.deflateAsync(stream.bytes, Z_FINISH),
  });
}

function zstdCompressorOf(lib: Libzstd) {
  return new Pooled<ZstdStream>({
    make: () => new ZstdStream(lib),
    // A frame left unfinished must not leak into the next cluster's.
    reset: (stream) => lib.ZSTD_CCtx_reset(stream.cctx, ZSTD_RESET_SESSION_ONLY),
    call: (s) => lib.ZSTD_compressStream2(s.cctx, s.output, s.input, ZSTD_E_END),
    callAsync: (s) => lib.ZSTD_compressStream2Async(s.cctx, s.output, s.input, ZSTD_E_END),
  });
}

const deflaters = new Map<string, HostCompressor | null>();

/**
 * A raw deflate (`windowBits` negative, as zlib takes it) by the host's zlib, or null
 * where it cannot be had. `compress(input, limit)` runs `deflate(Z_FINISH)` once into
 * `limit` bytes: null when the stream does not end within them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostDeflater } from "./host_zlib.ts";
 *
 * const d = hostDeflater(-1, -12, 9);
 * if (d !== null) {
 *   assert.ok(d.compress(new Uint8Array(65536), 65535)!.length < 100);
 *   assert.equal(d.compress(crypto.getRandomValues(new Uint8Array(4096)), 4095), null);
 * }
 * ```
 */
export function hostDeflater(
  level: number,
  windowBits: number,
  memLevel: number,
): HostCompressor | null {
  const key = `${level}/${windowBits}/${memLevel}`;
  if (deflaters.has(key)) return deflaters.get(key)!;
  if (libz === undefined) libz = open(LIBZ_NAMES[Deno.build.os], ZLIB_SYMBOLS);
  let d: HostCompressor | null = null;
  if (libz !== null) {
    try {
      d = rawDeflater(libz, level, windowBits, memLevel);
    } catch {
      // A zlib whose z_stream is not the one above answers Z_VERSION_ERROR: do without it.
    }
  }
  deflaters.set(key, d);
  return d;
}

let zstdCompressor: HostCompressor | null | undefined;

/**
 * The host's libzstd at its default level (what `ZSTD_createCCtx` starts with, as QEMU
 * uses it), one frame per call, or null where it cannot be had.
 */
export function hostZstd(): HostCompressor | null {
  if (zstdCompressor !== undefined) return zstdCompressor;
  if (libzstd === undefined) libzstd = open(LIBZSTD_NAMES[Deno.build.os], ZSTD_SYMBOLS);
  zstdCompressor = null;
  if (libzstd !== null) {
    try {
      zstdCompressor = zstdCompressorOf(libzstd);
    } catch {
      // No context (out of memory): do without it.
    }
  }
  return zstdCompressor;
}

/** zlib.h's `Z_DEFAULT_COMPRESSION`, `MAX_WBITS` and `DEF_MEM_LEVEL`: what `compress()` uses. */
const COMPRESS_LEVEL = -1;
const COMPRESS_WINDOW_BITS = 15;
const COMPRESS_MEM_LEVEL = 8;

/**
 * zlib's `compress()` by the host's zlib: a zlib-wrapped stream (header and Adler-32) at
 * the default level, window and memory level, as `deflateInit` sets them up, or null where
 * the library cannot be had (the caller then uses node:zlib's `deflateSync`, which takes
 * the same parameters but picks other matches). One `deflate(Z_FINISH)` over the whole
 * input gives the bytes `compress()` gives: it too hands zlib all the input and all the
 * room at once when both fit in a `uInt`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostCompress } from "./host_zlib.ts";
 *
 * const z = hostCompress();
 * if (z !== null) {
 *   const out = z.compress(new Uint8Array(65536).fill(7), 131072)!;
 *   assert.equal(out[0], 0x78); // zlib header: deflate, 32 KiB window
 * }
 * ```
 */
export function hostCompress(): HostCompressor | null {
  return hostDeflater(COMPRESS_LEVEL, COMPRESS_WINDOW_BITS, COMPRESS_MEM_LEVEL);
}
