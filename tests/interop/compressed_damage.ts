// Damages one compressed cluster of an image qemu-img wrote (qcow2, qcow, vmdk streamOptimized), for the tests that read past it

/** The formats whose clusters qemu-img can write compressed, with how to find one. */
export type CompressedFormat = "qcow2" | "qcow" | "vmdk";

/**
 * The file offset of guest cluster `index`'s compressed data. The image is expected to
 * hold that cluster compressed (qemu-img `convert -c`, or a streamOptimized vmdk).
 */
export function compressedClusterOffset(
  bytes: Uint8Array,
  format: CompressedFormat,
  index: number,
): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (format === "vmdk") {
    // A grain is a sector-aligned marker (lba u64, size u32, little endian) followed by
    // its zlib stream (which starts 0x78); grains are 128 sectors by default.
    for (let at = 0; at + 13 <= bytes.length; at += 512) {
      const lba = Number(v.getBigUint64(at, true));
      const size = v.getUint32(at + 8, true);
      if (lba === index * 128 && size > 0 && size <= 0x20000 && bytes[at + 12] === 0x78) {
        return at + 12;
      }
    }
    throw new Error(`no compressed grain for cluster ${index}`);
  }
  // qcow2 and qcow: the header's L1 table offset at 40; one L2 table covers the
  // images these tests write, so L1 entry 0 leads to the cluster's entry.
  const clusterBits = format === "qcow2" ? v.getUint32(20) : bytes[32];
  const l1 = Number(v.getBigUint64(40));
  const l2 = Number(v.getBigUint64(l1) & 0x00fffffffffffe00n);
  const entry = v.getBigUint64(l2 + 8 * index);
  // qcow2: bit 62 marks a compressed cluster, the offset takes the low 62-(bits-8) bits;
  // qcow: bit 63, and the low 63-bits bits.
  const flag = format === "qcow2" ? 62n : 63n;
  const offsetBits = format === "qcow2" ? 62n - BigInt(clusterBits - 8) : 63n - BigInt(clusterBits);
  if (((entry >> flag) & 1n) === 0n) throw new Error(`cluster ${index} is not compressed`);
  return Number(entry & ((1n << offsetBits) - 1n));
}

/**
 * Overwrites the first 64 bytes of cluster `index`'s compressed data with 0xff: a raw
 * deflate stream then starts with a reserved block type, a zlib stream with a bad
 * header, a zstd frame with a bad magic, so the cluster cannot be read at all.
 */
export function damageCompressedCluster(
  file: string,
  format: CompressedFormat,
  index: number,
): void {
  const bytes = Deno.readFileSync(file);
  const at = compressedClusterOffset(bytes, format, index);
  bytes.fill(0xff, at, at + 64);
  Deno.writeFileSync(file, bytes);
}
