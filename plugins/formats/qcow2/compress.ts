// qcow2 compressed clusters: zlib raw deflate (window 2^12, as QEMU) and zstd frames

import { IoError, NotSupportedError } from "../../../core/errors.ts";
import { type HostCompressor, hostDeflater, hostZstd } from "../../../core/host_zlib.ts";
import { loadZlib, zlibLoaded, zlibSync } from "../../../core/zlib.ts";
import { QCOW2_COMPRESSION_TYPE_ZLIB, QCOW2_COMPRESSION_TYPE_ZSTD } from "./header.ts";

// QEMU deflates with deflateInit2(Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
// Z_DEFAULT_STRATEGY): raw deflate, 4 KiB window, memory level 9 (qcow2-threads.c).
const ZLIB_WINDOW_BITS = 12;
const ZLIB_MEM_LEVEL = 9;
const Z_DEFAULT_COMPRESSION = -1;
const ZSTD_MAGIC = 0xfd2fb528;

interface ZstdApi {
  zstdCompressSync(data: Uint8Array): Uint8Array;
  zstdDecompressSync(data: Uint8Array, options?: { maxOutputLength?: number }): Uint8Array;
}

function zstd(): ZstdApi {
  const api = zlibSync() as unknown as Partial<ZstdApi>;
  if (typeof api.zstdCompressSync !== "function" || typeof api.zstdDecompressSync !== "function") {
    throw new NotSupportedError("zstd compression is not available in this runtime");
  }
  return api as ZstdApi;
}

export { compressionTypeName } from "./header.ts";

/** The host library QEMU links for `type` (docs/img-differences.md), or null. */
function hostCompressor(type: number): HostCompressor | null {
  if (type === QCOW2_COMPRESSION_TYPE_ZLIB) {
    return hostDeflater(Z_DEFAULT_COMPRESSION, -ZLIB_WINDOW_BITS, ZLIB_MEM_LEVEL);
  }
  return type === QCOW2_COMPRESSION_TYPE_ZSTD ? hostZstd() : null;
}

/** True when {@linkcode compressCluster} needs node:zlib (`loadZlib()`) for `type`. */
export function compressNeedsZlib(type: number): boolean {
  return hostCompressor(type) === null;
}

/**
 * Compresses one cluster. Returns null when the result would not be smaller than the
 * cluster: like QEMU, the output may take at most `clusterSize - 1` bytes, and a cluster
 * that does not fit is written uncompressed. The host's zlib or libzstd (what qemu-img
 * links) is used where FFI can reach it, so the bytes are qemu-img's; otherwise node:zlib
 * (after `loadZlib()`), which packs the same data into other bytes.
 */
export function compressCluster(
  type: number,
  data: Uint8Array,
  clusterSize: number,
): Uint8Array | null {
  const limit = clusterSize - 1;
  const host = hostCompressor(type);
  if (host !== null) {
    try {
      return host.compress(data, limit);
    } catch (e) {
      throw new IoError("Could not compress cluster: Input/output error", { cause: e });
    }
  }
  let out: Uint8Array;
  if (type === QCOW2_COMPRESSION_TYPE_ZLIB) {
    out = zlibSync().deflateRawSync(data, {
      windowBits: ZLIB_WINDOW_BITS,
      level: 6,
      memLevel: ZLIB_MEM_LEVEL,
    });
  } else if (type === QCOW2_COMPRESSION_TYPE_ZSTD) {
    out = zstd().zstdCompressSync(data);
  } else {
    throw new NotSupportedError(`qcow2: unknown compression type: ${type}`);
  }
  return out.length <= limit ? new Uint8Array(out.buffer, out.byteOffset, out.length) : null;
}

/**
 * {@linkcode compressCluster} off the main thread where the host library is used, so
 * several clusters compress at once; `data` must stay unchanged until it settles.
 */
export async function compressClusterAsync(
  type: number,
  data: Uint8Array,
  clusterSize: number,
): Promise<Uint8Array | null> {
  const host = hostCompressor(type);
  if (host === null) {
    if (!zlibLoaded()) await loadZlib();
    return compressCluster(type, data, clusterSize);
  }
  try {
    return await host.compressAsync(data, clusterSize - 1);
  } catch (e) {
    throw new IoError("Could not compress cluster: Input/output error", { cause: e });
  }
}

/**
 * Decompresses one cluster (after `loadZlib()`) from `input` (which may run past the compressed
 * data: the tail of the last sector belongs to nobody or to the next cluster).
 */
export function decompressCluster(
  type: number,
  input: Uint8Array,
  clusterSize: number,
): Uint8Array {
  let out: Uint8Array;
  try {
    if (type === QCOW2_COMPRESSION_TYPE_ZLIB) {
      out = zlibSync().inflateRawSync(input, { windowBits: ZLIB_WINDOW_BITS });
    } else if (type === QCOW2_COMPRESSION_TYPE_ZSTD) {
      out = zstdFrames(input, clusterSize);
    } else {
      throw new NotSupportedError(`qcow2: unknown compression type: ${type}`);
    }
  } catch (e) {
    if (e instanceof NotSupportedError) throw e;
    throw new IoError("Could not decompress cluster: Input/output error", { cause: e });
  }
  if (out.length < clusterSize) {
    throw new IoError("Could not decompress cluster: Input/output error");
  }
  return out.length === clusterSize ? out : out.subarray(0, clusterSize);
}

// Decodes zstd frames one after another until a cluster's worth of output exists;
// each frame is cut out exactly so the trailing bytes are never parsed.
function zstdFrames(input: Uint8Array, clusterSize: number): Uint8Array {
  const api = zstd();
  const parts: Uint8Array[] = [];
  let produced = 0;
  let at = 0;
  while (produced < clusterSize) {
    const len = zstdFrameLength(input, at);
    const out = api.zstdDecompressSync(input.subarray(at, at + len));
    parts.push(out);
    produced += out.length;
    at += len;
  }
  if (parts.length === 1) return parts[0];
  const joined = new Uint8Array(produced);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  return joined;
}

/** The byte length of the zstd frame at `at` (RFC 8878 §3.1.1). */
export function zstdFrameLength(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (at + 6 > buf.length || view.getUint32(at, true) !== ZSTD_MAGIC) {
    throw new IoError("Not a zstd frame");
  }
  const fhd = buf[at + 4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  let p = at + 5;
  if (!singleSegment) p++; // Window_Descriptor
  p += [0, 1, 2, 4][dictFlag];
  p += fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag];
  for (;;) {
    if (p + 3 > buf.length) throw new IoError("Truncated zstd frame");
    const header = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
    const last = header & 1;
    const blockType = (header >> 1) & 3;
    const size = header >>> 3;
    p += 3 + (blockType === 1 ? 1 : size);
    if (last) break;
  }
  if (checksum) p += 4;
  if (p > buf.length) throw new IoError("Truncated zstd frame");
  return p - at;
}
