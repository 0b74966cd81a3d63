// IDENTIFY (PACKET) DEVICE data and the CHS geometry QEMU gives an IDE disk

import { MAX_MULT_SECTORS } from "./constants.ts";

/** The firmware revision QEMU reports (IDENTIFY words 23-26, INQUIRY revision). */
export const IDE_FIRMWARE_REVISION = "2.5+";
/** The model strings of QEMU's IDE disk and CD-ROM. */
export const IDE_HD_MODEL = "QEMU HARDDISK";
export const IDE_CD_MODEL = "QEMU DVD-ROM";

/** A physical disk geometry. */
export interface ChsGeometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

/** The standard geometry for a size: 16 heads, 63 sectors, 2..16383 cylinders. */
export function chsForSize(totalSectors: number): ChsGeometry {
  let cylinders = Math.floor(totalSectors / (16 * 63));
  if (cylinders > 16383) cylinders = 16383;
  else if (cylinders < 2) cylinders = 2;
  return { cylinders, heads: 16, sectors: 63 };
}

/**
 * The geometry QEMU's `hd_geometry_guess` picks: a partition table whose entries end
 * on a head/sector boundary with at most 16 heads gives that geometry; otherwise the
 * standard one for the size.
 *
 * @param mbr the first 512 bytes of the disk (may be shorter when the disk is tiny)
 */
export function guessGeometry(totalSectors: number, mbr: Uint8Array): ChsGeometry {
  if (mbr.length >= 512 && mbr[510] === 0x55 && mbr[511] === 0xaa) {
    for (let i = 0; i < 4; i++) {
      const entry = 0x1be + 16 * i;
      const endHead = mbr[entry + 5];
      const count = mbr[entry + 12] | (mbr[entry + 13] << 8) | (mbr[entry + 14] << 16) |
        (mbr[entry + 15] << 24);
      if (count === 0 || endHead === 0) continue;
      const heads = endHead + 1;
      const sectors = mbr[entry + 6] & 63;
      if (sectors === 0) continue;
      const cylinders = Math.floor(totalSectors / (heads * sectors));
      if (cylinders < 1 || cylinders > 16383) continue;
      // More than 16 heads means a BIOS translation was in use: keep the physical default.
      if (heads > 16) return chsForSize(totalSectors);
      return { cylinders, heads, sectors };
    }
  }
  return chsForSize(totalSectors);
}

/** Writes `text` space-padded into `words` IDENTIFY words, two characters per word, first in the high byte. */
function putString(data: Uint8Array, word: number, words: number, text: string): void {
  for (let i = 0; i < words * 2; i++) {
    const c = i < text.length ? text.charCodeAt(i) & 0x7f : 0x20;
    data[2 * word + (i ^ 1)] = c;
  }
}

function put(data: Uint8Array, word: number, value: number): void {
  data[2 * word] = value & 0xff;
  data[2 * word + 1] = (value >>> 8) & 0xff;
}

/** What an IDENTIFY DEVICE page describes. */
export interface HdIdentity {
  serial: string;
  totalSectors: number;
  geometry: ChsGeometry;
  /** The sectors per READ/WRITE MULTIPLE block now set (0 = multiple mode off). */
  multSectors: number;
  writeCache: boolean;
  /** Selected transfer mode words as SET FEATURES left them. */
  modes: TransferModes;
}

/** The DMA modes selected in words 62/63/88 (high bytes). */
export interface TransferModes {
  /** Selected multiword DMA mode, or -1. */
  mdma: number;
  /** Selected Ultra DMA mode, or -1. */
  udma: number;
}

/** The transfer modes a drive comes up with: UDMA 5 selected, as QEMU reports. */
export function defaultModes(): TransferModes {
  return { mdma: -1, udma: 5 };
}

function putModes(data: Uint8Array, modes: TransferModes): void {
  put(data, 62, 0x07);
  put(data, 63, 0x07 | (modes.mdma >= 0 ? 0x100 << modes.mdma : 0));
  put(data, 88, 0x3f | (modes.udma >= 0 ? 0x100 << modes.udma : 0));
}

/** The 512-byte IDENTIFY DEVICE page of an ATA disk (ATA/ATAPI-6 §8.15). */
export function identifyDevice(id: HdIdentity): Uint8Array {
  const d = new Uint8Array(512);
  const { cylinders, heads, sectors } = id.geometry;
  put(d, 0, 0x0040); // fixed device
  put(d, 1, cylinders);
  put(d, 3, heads);
  put(d, 4, 512 * sectors); // obsolete: unformatted bytes per track
  put(d, 5, 512);
  put(d, 6, sectors);
  putString(d, 10, 10, id.serial);
  put(d, 20, 3); // obsolete buffer type: dual ported with read cache
  put(d, 21, 512); // obsolete buffer size in sectors
  put(d, 22, 4); // obsolete ECC bytes
  putString(d, 23, 4, IDE_FIRMWARE_REVISION);
  putString(d, 27, 20, IDE_HD_MODEL);
  put(d, 47, 0x8000 | MAX_MULT_SECTORS);
  put(d, 48, 1); // dword I/O
  put(d, 49, (1 << 11) | (1 << 9) | (1 << 8)); // IORDY, LBA, DMA
  put(d, 51, 0x200); // PIO timing mode 2
  put(d, 52, 0x200);
  put(d, 53, 1 | 2 | 4); // words 54-58, 64-70 and 88 are valid
  put(d, 54, cylinders);
  put(d, 55, heads);
  put(d, 56, sectors);
  const chsCapacity = cylinders * heads * sectors;
  put(d, 57, chsCapacity);
  put(d, 58, chsCapacity >>> 16);
  if (id.multSectors) put(d, 59, 0x100 | id.multSectors);
  const lba28 = Math.min(id.totalSectors, 0x0fffffff);
  put(d, 60, lba28);
  put(d, 61, lba28 >>> 16);
  putModes(d, id.modes);
  put(d, 64, 0x03); // PIO modes 3 and 4
  put(d, 65, 120);
  put(d, 66, 120);
  put(d, 67, 120);
  put(d, 68, 120);
  put(d, 80, 0xf0); // ATA-4 to ATA-7
  put(d, 81, 0x16);
  put(d, 82, (1 << 14) | (1 << 5) | 1); // NOP, write cache, SMART
  put(d, 83, (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10)); // FLUSH CACHE (EXT), 48-bit
  put(d, 84, 1 << 14);
  put(d, 85, (1 << 14) | (id.writeCache ? 1 << 5 : 0) | 1);
  put(d, 86, (1 << 13) | (1 << 12) | (1 << 10));
  put(d, 87, 1 << 14);
  put(d, 93, 1 | (1 << 14) | 0x2000); // 80-conductor cable detected
  const total = id.totalSectors;
  put(d, 100, total);
  put(d, 101, total / 0x10000);
  put(d, 102, total / 0x100000000);
  put(d, 103, total / 0x1000000000000);
  return d;
}

/** The 512-byte IDENTIFY PACKET DEVICE page of an ATAPI CD-ROM (ATA/ATAPI-6 §8.16). */
export function identifyPacketDevice(serial: string, modes: TransferModes): Uint8Array {
  const d = new Uint8Array(512);
  // ATAPI, CD-ROM device type, removable, DRQ within 50 us, 12-byte packets.
  put(d, 0, (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5));
  putString(d, 10, 10, serial);
  put(d, 20, 3);
  put(d, 21, 512);
  put(d, 22, 4);
  putString(d, 23, 4, IDE_FIRMWARE_REVISION);
  putString(d, 27, 20, IDE_CD_MODEL);
  put(d, 48, 1);
  put(d, 49, (1 << 9) | (1 << 8)); // LBA, DMA
  put(d, 53, 7);
  putModes(d, modes);
  put(d, 64, 3);
  put(d, 65, 0xb4);
  put(d, 66, 0xb4);
  put(d, 67, 0x12c);
  put(d, 68, 0xb4);
  put(d, 71, 30); // typical time to release the bus after PACKET, in ns
  put(d, 72, 30);
  put(d, 80, 0x1e); // ATA/ATAPI-1 to 4
  put(d, 82, 1 << 4); // PACKET feature set
  put(d, 93, 1 | (1 << 14) | 0x2000);
  return d;
}

/** Reads a 16-bit IDENTIFY word. */
export function identifyWord(data: Uint8Array, word: number): number {
  return data[2 * word] | (data[2 * word + 1] << 8);
}

/** Reads an IDENTIFY string (`words` words from `word`), trailing spaces removed. */
export function identifyString(data: Uint8Array, word: number, words: number): string {
  let s = "";
  for (let i = 0; i < words * 2; i++) s += String.fromCharCode(data[2 * word + (i ^ 1)]);
  return s.trimEnd();
}
