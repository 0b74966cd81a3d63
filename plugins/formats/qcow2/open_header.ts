// qcow2's header as an open reads it: the header cluster, and every check QEMU's
// qcow2_do_open makes on it before it trusts a table offset or size

import { ImageFormatError, NotSupportedError } from "../../../core/errors.ts";
import {
  parseHeader,
  QCOW2_COMPRESSION_TYPE_ZSTD,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_EXTL2,
  QCOW2_INCOMPAT_MASK,
  type Qcow2Header,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_REFTABLE_SIZE,
  unsupportedFeatureMessage,
} from "./header.ts";
import { Layout, type SyncFile } from "./layout.ts";
import { validateTable } from "./snapshot.ts";

/**
 * Reads and checks the header of the image in `file`: unknown or unsupported features,
 * a corrupt image opened for writing (unless `forCheck`), compression type, encryption,
 * subcluster size, and the refcount and L1 tables' places and sizes.
 */
export function readCheckedHeader(
  file: SyncFile,
  readOnly: boolean,
  forCheck: boolean,
): { header: Qcow2Header; layout: Layout } {
  const h = parseHeader(readHeaderCluster(file));
  const cs = 2 ** h.clusterBits;
  const unknown = h.incompatibleFeatures & ~QCOW2_INCOMPAT_MASK;
  if (unknown !== 0n) {
    throw new NotSupportedError(unsupportedFeatureMessage(h.featureTable, unknown));
  }
  if ((h.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n && !readOnly && !forCheck) {
    throw new ImageFormatError("qcow2: Image is corrupt; cannot be opened read/write");
  }
  if (h.refcountOrder > 6) {
    throw new ImageFormatError("Reference count entry width too large; may not exceed 64 bits");
  }
  const compressionBit = (h.incompatibleFeatures & QCOW2_INCOMPAT_COMPRESSION) !== 0n;
  if (h.compressionType > QCOW2_COMPRESSION_TYPE_ZSTD) {
    throw new NotSupportedError(`qcow2: unknown compression type: ${h.compressionType}`);
  }
  if (h.compressionType === 0 && compressionBit) {
    throw new ImageFormatError("qcow2: Compression type incompatible feature bit must not be set");
  }
  if (h.compressionType !== 0 && !compressionBit) {
    throw new ImageFormatError("qcow2: Compression type incompatible feature bit must be set");
  }
  if (h.cryptMethod !== 0) {
    throw new NotSupportedError(`Unsupported encryption method ${h.cryptMethod}`);
  }
  const extendedL2 = (h.incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) !== 0n;
  if (extendedL2 && cs / 32 < 512) {
    throw new ImageFormatError(`Unsupported subcluster size: ${cs / 32}`);
  }
  if (h.refcountTableClusters === 0) {
    throw new ImageFormatError("Image does not contain a reference count table");
  }
  validateTable(
    h.refcountTableOffset,
    h.refcountTableClusters,
    cs,
    QCOW_MAX_REFTABLE_SIZE,
    cs,
    "Reference count table",
  );
  if (h.l1Size > QCOW_MAX_L1_SIZE / 8) throw new ImageFormatError("Active L1 table too large");
  const layout = new Layout(h.clusterBits, h.refcountOrder, extendedL2);
  if (h.l1Size < layout.l1EntriesFor(h.size)) throw new ImageFormatError("L1 table is too small");
  validateTable(h.l1TableOffset, h.l1Size, 8, QCOW_MAX_L1_SIZE, cs, "Active L1 table");
  return { header: h, layout };
}

function readHeaderCluster(file: SyncFile): Uint8Array {
  const probe = new Uint8Array(Math.max(104, Math.min(file.size(), 65536)));
  file.readSync(0, probe);
  const bits = new DataView(probe.buffer).getUint32(20);
  if (bits >= 9 && bits <= 21 && 2 ** bits > probe.length) {
    const full = new Uint8Array(2 ** bits);
    file.readSync(0, full);
    return full;
  }
  return probe;
}
