// A WebAssembly SIMD zero scan over transfer buffers that live in their own wasm memories

/**
 * Why wasm: `img convert` scans every byte it copies for zero runs, and a vhdx source
 * stores its zeroes as data. JavaScript has no vector loads; the best plain loop (eight
 * 32-bit words OR-ed per step) scanned 512 MiB of zeroes in 80-130 ms here, the
 * 128-bit loop below in 25-30 ms, as qemu-img's SIMD `buffer_is_zero` does. Wasm code
 * can only read its own memory, so a buffer that wants the fast scan is allocated as a
 * wasm memory of its own ({@linkcode wasmBuffer}); any other buffer takes the JS loop.
 *
 * The module, written out by hand (WebAssembly core spec 2.0, binary format §5):
 *
 * ```
 * (import "m" "mem" (memory 0))
 * (func (export "z") (param $p i32) (param $n i32) (result i32) (local $e i32)
 *   e = p + n
 *   while e - p >= 64:                        ;; four 16-byte loads OR-ed, one test
 *     if v128.any_true(load(p) | load(p+16) | load(p+32) | load(p+48)): return 0
 *     p += 64
 *   while p < e:                              ;; the tail, byte by byte
 *     if load8_u(p): return 0
 *     p += 1
 *   return 1)
 * (func (export "f") (param $p i32) (param $n i32) (param $bs i32) (param $want i32)
 *     (result i32) (local $o i32) (local $len i32)
 *   while o < n:                              ;; blocks of bs bytes, the last one shorter
 *     len = bs < n - o ? bs : n - o
 *     data = len >= 16 && v128.any_true(load(p + o)) ? 1 : !z(p + o, len)
 *     if data ^ want: return o                ;; the first block that is (not) all zero
 *     o += len
 *   return n)
 * ```
 *
 * `f` looks at a block's first 16 bytes before scanning it: data almost always shows
 * there, and a call of `z` per 512-byte block cost more than the copy's own user time
 * in a fresh process (wasm runs in V8's baseline tier until it has run a while).
 *
 * Addresses are unsigned (`lt_u`, `ge_u`): a memory may be up to 4 GiB.
 */
// deno-fmt-ignore
const MODULE_BYTES = new Uint8Array([
  // magic "\0asm", version 1
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // type section: 2 types, (i32 i32) -> i32 and (i32 i32 i32 i32) -> i32
  0x01, 0x0f, 0x02, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f,
  // import section: "m" "mem", a memory with min 0 pages and no max
  0x02, 0x0a, 0x01, 0x01, 0x6d, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x00,
  // function section: 2 functions, of types 0 and 1
  0x03, 0x03, 0x02, 0x00, 0x01,
  // export section: "z" = function 0, "f" = function 1
  0x07, 0x09, 0x02, 0x01, 0x7a, 0x00, 0x00, 0x01, 0x66, 0x00, 0x01,
  // code section (0xd7 bytes): 2 bodies
  0x0a, 0xd7, 0x01, 0x02,
  // body of z (0x6f bytes), one i32 local ($e)
  0x6f, 0x01, 0x01, 0x7f,
  0x20, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x02, // e = p + n
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x02, 0x20, 0x00, 0x6b, 0x41, 0xc0, 0x00, 0x49, 0x0d, 0x01, // br_if out: e - p < 64
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, // v128.load p
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x10, 0xfd, 0x50, // v128.load p+16, v128.or
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x20, 0xfd, 0x50, // v128.load p+32, v128.or
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x30, 0xfd, 0x50, // v128.load p+48, v128.or
  0xfd, 0x53, 0x04, 0x40, 0x41, 0x00, 0x0f, 0x0b, // v128.any_true: if, return 0, end
  0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x00, // p += 64
  0x0c, 0x00, 0x0b, 0x0b, // br loop, end loop, end block
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x00, 0x20, 0x02, 0x4f, 0x0d, 0x01, // br_if out: p >= e
  0x20, 0x00, 0x2d, 0x00, 0x00, 0x04, 0x40, 0x41, 0x00, 0x0f, 0x0b, // if load8_u p: return 0
  0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, // p += 1
  0x0c, 0x00, 0x0b, 0x0b, // br loop, end loop, end block
  0x41, 0x01, 0x0b, // return 1, end
  // body of f (0x65 bytes), two i32 locals ($o, $len)
  0x65, 0x01, 0x02, 0x7f,
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x04, 0x20, 0x01, 0x4f, 0x0d, 0x01, // br_if out: o >= n
  0x20, 0x02, 0x20, 0x01, 0x20, 0x04, 0x6b, // bs, n - o
  0x20, 0x02, 0x20, 0x01, 0x20, 0x04, 0x6b, 0x49, // bs < n - o
  0x1b, 0x21, 0x05, // len = select
  0x20, 0x05, 0x41, 0x10, 0x4f, 0x04, 0x7f, // if (result i32) len >= 16
  0x20, 0x00, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x00, 0x00, 0xfd, 0x53, // v128.any_true(load(p + o))
  0x04, 0x7f, 0x41, 0x01, 0x05, // if (result i32): 1, else
  0x20, 0x00, 0x20, 0x04, 0x6a, 0x20, 0x05, 0x10, 0x00, 0x45, 0x0b, // !z(p + o, len), end
  0x05, // else
  0x20, 0x00, 0x20, 0x04, 0x6a, 0x20, 0x05, 0x10, 0x00, 0x45, 0x0b, // !z(p + o, len), end
  0x20, 0x03, 0x73, 0x04, 0x40, 0x20, 0x04, 0x0f, 0x0b, // data ^ want: return o
  0x20, 0x04, 0x20, 0x05, 0x6a, 0x21, 0x04, // o += len
  0x0c, 0x00, 0x0b, 0x0b, // br loop, end loop, end block
  0x20, 0x01, 0x0b, // return n, end
]);

const WASM_PAGE_BYTES = 65536;
/**
 * Larger buffers stay plain: every wasm memory reserves its own address range (several
 * GiB of it on 64-bit hosts), and a transfer this large gains nothing from the scan.
 */
const MAX_WASM_BUFFER_BYTES = 1 << 30;

type ScanFn = (address: number, bytes: number) => number;
type FindFn = (address: number, bytes: number, block: number, want: number) => number;

let module: WebAssembly.Module | null | undefined;
/** The scan of each wasm memory handed out, by its ArrayBuffer. */
const scans = new WeakMap<ArrayBufferLike, { z: ScanFn; f: FindFn }>();

function scanModule(): WebAssembly.Module | null {
  if (module === undefined) {
    try {
      module = new WebAssembly.Module(MODULE_BYTES);
    } catch {
      // No wasm here (a jitless engine, or no SIMD): every buffer stays plain.
      module = null;
    }
  }
  return module;
}

/**
 * A zeroed buffer of `bytes` in a wasm memory of its own, whose zero scan
 * {@linkcode wasmIsZero} runs in wasm; null where wasm is unavailable or `bytes` is
 * outside the useful range. The buffer starts on a page (a wasm memory is mapped on
 * its own) and never moves: its memory is never grown.
 */
export function wasmBuffer(bytes: number): Uint8Array | null {
  if (bytes <= 0 || bytes > MAX_WASM_BUFFER_BYTES) return null;
  const mod = scanModule();
  if (!mod) return null;
  try {
    const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(mod, { m: { mem } });
    scans.set(mem.buffer, { z: instance.exports.z as ScanFn, f: instance.exports.f as FindFn });
    return new Uint8Array(mem.buffer, 0, bytes);
  } catch {
    // Out of address space for another memory: a plain buffer works the same.
    return null;
  }
}

/**
 * True or false when `buf` lives in a memory from {@linkcode wasmBuffer} and
 * `buf[start, start+length)` is (or is not) all zero; undefined for any other buffer.
 */
export function wasmIsZero(buf: Uint8Array, start: number, length: number): boolean | undefined {
  const scan = scans.get(buf.buffer);
  // A range outside the view is left to the caller's own loop, which never reads past it.
  if (scan === undefined || start < 0 || length < 0 || start + length > buf.length) {
    return undefined;
  }
  return scan.z(buf.byteOffset + start, length) === 1;
}

/**
 * For a buffer from {@linkcode wasmBuffer}: the offset, from `start`, of the first block
 * of `buf[start, start+length)` (blocks of `block` bytes from `start`, the last one
 * shorter) that is all zero when `wantZero` (not all zero otherwise), or `length` when
 * none is; undefined for any other buffer. One call scans a whole transfer, where a
 * call per 4 KiB block cost ~70 us per 2 MiB before V8 optimized the calling loop.
 */
export function wasmFindBlock(
  buf: Uint8Array,
  start: number,
  length: number,
  block: number,
  wantZero: boolean,
): number | undefined {
  const scan = scans.get(buf.buffer);
  if (
    scan === undefined || start < 0 || length < 0 || start + length > buf.length || block < 1
  ) return undefined;
  return scan.f(buf.byteOffset + start, length, block, wantZero ? 1 : 0);
}
