// qcow2 header and header extensions: read, validate and write cluster 0 (qcow2.txt "Header")

import { ImageFormatError, NotSupportedError } from "../../../core/errors.ts";

/** "QFI\xfb", the first four bytes of every qcow2 image. */
export const QCOW_MAGIC = 0x514649fb;
/** Length of a version 2 header. */
export const QCOW2_V2_HEADER_LENGTH = 72;
/** Length of the version 3 header QEMU writes (104 bytes + compression_type, padded to 8). */
export const QCOW2_V3_HEADER_LENGTH = 112;
/** Smallest and largest cluster_bits QEMU opens (512 B .. 2 MiB). */
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** QEMU's implementation limits (qcow2.h). */
export const QCOW_MAX_L1_SIZE = 0x2000000; // 32 MiB of L1 entries
export const QCOW_MAX_REFTABLE_SIZE = 0x800000; // 8 MiB of refcount table
export const QCOW_MAX_SNAPSHOTS = 65536;
export const QCOW_MAX_SNAPSHOTS_SIZE = 1024 * QCOW_MAX_SNAPSHOTS; // 64 MiB of snapshot table
/** Longest backing file name the spec allows. */
export const QCOW_MAX_BACKING_FILE_SIZE = 1023;

/** Header extension types (qcow2.txt "Header extensions"). */
export const QCOW2_EXT_MAGIC_END = 0;
export const QCOW2_EXT_MAGIC_BACKING_FORMAT = 0xe2792aca;
export const QCOW2_EXT_MAGIC_FEATURE_TABLE = 0x6803f857;
export const QCOW2_EXT_MAGIC_CRYPTO_HEADER = 0x0537be77;
export const QCOW2_EXT_MAGIC_BITMAPS = 0x23852875;
export const QCOW2_EXT_MAGIC_DATA_FILE = 0x44415441;

/** Incompatible feature bits. */
export const QCOW2_INCOMPAT_DIRTY = 1n << 0n;
export const QCOW2_INCOMPAT_CORRUPT = 1n << 1n;
export const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
export const QCOW2_INCOMPAT_COMPRESSION = 1n << 3n;
export const QCOW2_INCOMPAT_EXTL2 = 1n << 4n;
export const QCOW2_INCOMPAT_MASK = 0x1fn;
/** Compatible feature bits. */
export const QCOW2_COMPAT_LAZY_REFCOUNTS = 1n << 0n;
/** Autoclear feature bits. */
export const QCOW2_AUTOCLEAR_BITMAPS = 1n << 0n;
export const QCOW2_AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;
/** Autoclear bits vmkit keeps when it writes: the features it maintains (QEMU's QCOW2_AUTOCLEAR_MASK). */
export const QCOW2_AUTOCLEAR_MASK = QCOW2_AUTOCLEAR_BITMAPS | QCOW2_AUTOCLEAR_DATA_FILE_RAW;

/** compression_type values. */
export const QCOW2_COMPRESSION_TYPE_ZLIB = 0;
export const QCOW2_COMPRESSION_TYPE_ZSTD = 1;

/** The compression type names as `compression_type=` takes them. */
export function compressionTypeName(type: number): string {
  return type === QCOW2_COMPRESSION_TYPE_ZSTD ? "zstd" : "zlib";
}

/** Feature table entry types. */
export const QCOW2_FEAT_TYPE_INCOMPATIBLE = 0;
export const QCOW2_FEAT_TYPE_COMPATIBLE = 1;
export const QCOW2_FEAT_TYPE_AUTOCLEAR = 2;

/** One entry of the feature name table. */
export interface FeatureName {
  type: number;
  bit: number;
  name: string;
}

/** The feature name table QEMU 7.2 writes into every v3 image, in its order. */
export const QEMU_FEATURE_TABLE: readonly FeatureName[] = [
  { type: QCOW2_FEAT_TYPE_INCOMPATIBLE, bit: 0, name: "dirty bit" },
  { type: QCOW2_FEAT_TYPE_INCOMPATIBLE, bit: 1, name: "corrupt bit" },
  { type: QCOW2_FEAT_TYPE_INCOMPATIBLE, bit: 2, name: "external data file" },
  { type: QCOW2_FEAT_TYPE_INCOMPATIBLE, bit: 3, name: "compression type" },
  { type: QCOW2_FEAT_TYPE_INCOMPATIBLE, bit: 4, name: "extended L2 entries" },
  { type: QCOW2_FEAT_TYPE_COMPATIBLE, bit: 0, name: "lazy refcounts" },
  { type: QCOW2_FEAT_TYPE_AUTOCLEAR, bit: 0, name: "bitmaps" },
  { type: QCOW2_FEAT_TYPE_AUTOCLEAR, bit: 1, name: "raw external data" },
];

/** A header extension vmkit does not interpret, kept as is when the header is rewritten. */
export interface RawExtension {
  type: number;
  data: Uint8Array;
}

/** The decoded header of a qcow2 image with its extensions. */
export interface Qcow2Header {
  version: number;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  /** Virtual disk size in bytes. */
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  /** Header bytes past the fields vmkit knows (kept on rewrite, as the spec asks). */
  unknownHeaderFields: Uint8Array;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  featureTable: FeatureName[];
  /** The bitmaps extension (bitmaps_store.ts reads and rewrites it). */
  bitmapsExtension?: Uint8Array;
  /** The full disk encryption header pointer, if present. */
  cryptoExtension?: Uint8Array;
  unknownExtensions: RawExtension[];
}

/** Scores a file header for the format probe: 100 for the qcow2 magic and version 2 or 3. */
export function probe(header: Uint8Array): number {
  if (header.length < 8) return 0;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint32(0) !== QCOW_MAGIC) return 0;
  const version = view.getUint32(4);
  return version >= 2 ? 100 : 0;
}

function u64(view: DataView, at: number): number {
  return view.getUint32(at) * 0x100000000 + view.getUint32(at + 4);
}

function putU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x100000000));
  view.setUint32(at + 4, value >>> 0);
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Decodes cluster 0 of an image: the fixed header, the extensions and the
 * backing file name. `buf` holds at least the first cluster (or the whole file
 * when it is smaller). Errors use QEMU's words.
 */
export function parseHeader(buf: Uint8Array): Qcow2Header {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < QCOW2_V2_HEADER_LENGTH || view.getUint32(0) !== QCOW_MAGIC) {
    throw new ImageFormatError("Image is not in qcow2 format");
  }
  const version = view.getUint32(4);
  if (version < 2 || version > 3) {
    throw new NotSupportedError(`Unsupported qcow2 version ${version}`);
  }
  const clusterBits = view.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new ImageFormatError(`Unsupported cluster size: 2^${clusterBits}`);
  }
  const clusterSize = 2 ** clusterBits;
  const h: Qcow2Header = {
    version,
    backingFileOffset: u64(view, 8),
    backingFileSize: view.getUint32(16),
    clusterBits,
    size: u64(view, 24),
    cryptMethod: view.getUint32(32),
    l1Size: view.getUint32(36),
    l1TableOffset: u64(view, 40),
    refcountTableOffset: u64(view, 48),
    refcountTableClusters: view.getUint32(56),
    nbSnapshots: view.getUint32(60),
    snapshotsOffset: u64(view, 64),
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: QCOW2_V2_HEADER_LENGTH,
    compressionType: QCOW2_COMPRESSION_TYPE_ZLIB,
    unknownHeaderFields: new Uint8Array(0),
    featureTable: [],
    unknownExtensions: [],
  };
  if (version >= 3) {
    if (buf.length < 104) throw new ImageFormatError("qcow2 header too short");
    h.incompatibleFeatures = view.getBigUint64(72);
    h.compatibleFeatures = view.getBigUint64(80);
    h.autoclearFeatures = view.getBigUint64(88);
    h.refcountOrder = view.getUint32(96);
    h.headerLength = view.getUint32(100);
    if (h.headerLength < 104) throw new ImageFormatError("qcow2 header too short");
    if (h.headerLength > clusterSize) {
      throw new ImageFormatError("qcow2 header exceeds cluster size");
    }
    if (h.headerLength > buf.length) {
      throw new ImageFormatError("Could not read unknown qcow2 header fields");
    }
    if (h.headerLength > 104) h.compressionType = buf[104];
    if (h.headerLength > QCOW2_V3_HEADER_LENGTH) {
      h.unknownHeaderFields = buf.slice(QCOW2_V3_HEADER_LENGTH, h.headerLength);
    }
  }
  if (h.backingFileOffset > clusterSize) {
    throw new ImageFormatError("Invalid backing file offset");
  }
  parseExtensions(buf, view, h, clusterSize);
  if (h.backingFileOffset !== 0) {
    if (
      h.backingFileSize > QCOW_MAX_BACKING_FILE_SIZE ||
      h.backingFileSize > clusterSize - h.backingFileOffset
    ) {
      throw new ImageFormatError("Backing file name too long");
    }
    h.backingFile = decoder.decode(
      buf.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize),
    );
  }
  return h;
}

function parseExtensions(
  buf: Uint8Array,
  view: DataView,
  h: Qcow2Header,
  clusterSize: number,
): void {
  // Extensions run from the end of the header to the backing file name (or the cluster end).
  const end = h.backingFileOffset !== 0 ? h.backingFileOffset : Math.min(clusterSize, buf.length);
  let at = h.headerLength;
  while (at + 8 <= end) {
    const type = view.getUint32(at);
    const len = view.getUint32(at + 4);
    at += 8;
    if (type === QCOW2_EXT_MAGIC_END) return;
    if (len > end - at) throw new ImageFormatError("Header extension too large");
    const data = buf.subarray(at, at + len);
    switch (type) {
      case QCOW2_EXT_MAGIC_BACKING_FORMAT:
        if (len >= 16) {
          throw new ImageFormatError(`ERROR: ext_backing_format: len=${len} too large (>=16)`);
        }
        h.backingFormat = decoder.decode(data);
        break;
      case QCOW2_EXT_MAGIC_FEATURE_TABLE:
        for (let i = 0; i + 48 <= len; i += 48) {
          const nameBytes = data.subarray(i + 2, i + 48);
          const nul = nameBytes.indexOf(0);
          h.featureTable.push({
            type: data[i],
            bit: data[i + 1],
            name: decoder.decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)),
          });
        }
        break;
      case QCOW2_EXT_MAGIC_DATA_FILE:
        h.dataFile = decoder.decode(data);
        break;
      case QCOW2_EXT_MAGIC_BITMAPS:
        h.bitmapsExtension = data.slice();
        break;
      case QCOW2_EXT_MAGIC_CRYPTO_HEADER:
        h.cryptoExtension = data.slice();
        break;
      default:
        h.unknownExtensions.push({ type, data: data.slice() });
    }
    at += (len + 7) & ~7;
  }
}

/**
 * QEMU's refusal of unknown incompatible features, naming each by the image's
 * feature name table: `Unsupported qcow2 feature(s): name, Unknown incompatible feature: 20`.
 */
export function unsupportedFeatureMessage(table: readonly FeatureName[], mask: bigint): string {
  const parts: string[] = [];
  for (const f of table) {
    if (f.type === QCOW2_FEAT_TYPE_INCOMPATIBLE && (mask & (1n << BigInt(f.bit))) !== 0n) {
      parts.push(f.name.slice(0, 46));
      mask &= ~(1n << BigInt(f.bit));
    }
  }
  if (mask !== 0n) parts.push(`Unknown incompatible feature: ${mask.toString(16)}`);
  return `Unsupported qcow2 feature(s): ${parts.join(", ")}`;
}

function pushExtension(out: number[], type: number, data: Uint8Array): void {
  const head = new Uint8Array(8);
  const v = new DataView(head.buffer);
  v.setUint32(0, type);
  v.setUint32(4, data.length);
  out.push(...head, ...data);
  while (out.length % 8 !== 0) out.push(0);
}

/**
 * Encodes a header as the whole first cluster, as QEMU's `qcow2_update_header`
 * lays it out: fixed fields, then the backing format, data file, crypto, feature
 * table (v3), bitmaps and unknown extensions, the end marker, then the backing
 * file name. `backingFileOffset`/`backingFileSize` and `headerLength` are filled in.
 *
 * @throws ImageFormatError when everything does not fit in one cluster.
 */
export function serializeHeader(h: Qcow2Header): Uint8Array {
  const clusterSize = 2 ** h.clusterBits;
  const buf = new Uint8Array(clusterSize);
  const view = new DataView(buf.buffer);
  const headerLength = h.version >= 3
    ? QCOW2_V3_HEADER_LENGTH + h.unknownHeaderFields.length
    : QCOW2_V2_HEADER_LENGTH;
  h.headerLength = h.version >= 3 ? headerLength : QCOW2_V2_HEADER_LENGTH;
  const ext: number[] = [];
  if (h.backingFormat) {
    pushExtension(ext, QCOW2_EXT_MAGIC_BACKING_FORMAT, encoder.encode(h.backingFormat));
  }
  if (h.dataFile !== undefined) {
    pushExtension(ext, QCOW2_EXT_MAGIC_DATA_FILE, encoder.encode(h.dataFile));
  }
  if (h.cryptoExtension) pushExtension(ext, QCOW2_EXT_MAGIC_CRYPTO_HEADER, h.cryptoExtension);
  // QEMU 7.2 leaves the feature table out of images with clusters of 4 KiB or less
  // (observed with qemu-img create); matching it keeps our images byte-identical.
  const backingBytes = h.backingFile !== undefined ? encoder.encode(h.backingFile).length : 0;
  const tableFits =
    headerLength + ext.length + 8 + 48 * QEMU_FEATURE_TABLE.length + 8 + backingBytes <
      clusterSize;
  if (h.version >= 3 && tableFits && clusterSize > 4096) {
    const table = new Uint8Array(48 * QEMU_FEATURE_TABLE.length);
    QEMU_FEATURE_TABLE.forEach((f, i) => {
      table[i * 48] = f.type;
      table[i * 48 + 1] = f.bit;
      table.set(encoder.encode(f.name), i * 48 + 2);
    });
    pushExtension(ext, QCOW2_EXT_MAGIC_FEATURE_TABLE, table);
  }
  if (h.bitmapsExtension) pushExtension(ext, QCOW2_EXT_MAGIC_BITMAPS, h.bitmapsExtension);
  for (const u of h.unknownExtensions) pushExtension(ext, u.type, u.data);
  ext.push(0, 0, 0, 0, 0, 0, 0, 0); // end of the extension area
  const backing = h.backingFile !== undefined ? encoder.encode(h.backingFile) : undefined;
  const backingOffset = headerLength + ext.length;
  if (backingOffset + (backing?.length ?? 0) > clusterSize) {
    throw new ImageFormatError("Header extension too large");
  }
  view.setUint32(0, QCOW_MAGIC);
  view.setUint32(4, h.version);
  h.backingFileOffset = backing ? backingOffset : 0;
  h.backingFileSize = backing ? backing.length : 0;
  putU64(view, 8, h.backingFileOffset);
  view.setUint32(16, h.backingFileSize);
  view.setUint32(20, h.clusterBits);
  putU64(view, 24, h.size);
  view.setUint32(32, h.cryptMethod);
  view.setUint32(36, h.l1Size);
  putU64(view, 40, h.l1TableOffset);
  putU64(view, 48, h.refcountTableOffset);
  view.setUint32(56, h.refcountTableClusters);
  view.setUint32(60, h.nbSnapshots);
  putU64(view, 64, h.snapshotsOffset);
  if (h.version >= 3) {
    view.setBigUint64(72, h.incompatibleFeatures);
    view.setBigUint64(80, h.compatibleFeatures);
    view.setBigUint64(88, h.autoclearFeatures);
    view.setUint32(96, h.refcountOrder);
    view.setUint32(100, headerLength);
    buf[104] = h.compressionType;
    buf.set(h.unknownHeaderFields, QCOW2_V3_HEADER_LENGTH);
  }
  buf.set(ext, headerLength);
  if (backing) buf.set(backing, backingOffset);
  return buf;
}

/** Encodes a 64-bit big-endian field as 8 bytes (for single-field header updates). */
export function encodeU64(value: number): Uint8Array {
  const b = new Uint8Array(8);
  putU64(new DataView(b.buffer), 0, value);
  return b;
}
