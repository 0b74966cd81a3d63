// ATAPI PACKET protocol and the MMC/SPC commands of the IDE CD-ROM

import {
  ASC_ILLEGAL_OPCODE,
  ASC_INV_FIELD_IN_CMD_PACKET,
  ASC_LOGICAL_BLOCK_OOR,
  ASC_MEDIA_REMOVAL_PREVENTED,
  ASC_MEDIUM_MAY_HAVE_CHANGED,
  ASC_MEDIUM_NOT_PRESENT,
  ASC_SAVING_PARAMETERS_NOT_SUPPORTED,
  ATA_ER_ABRT,
  ATA_SR_DRDY,
  ATA_SR_DRQ,
  ATA_SR_DSC,
  ATA_SR_ERR,
  ATAPI_INT_REASON_CD,
  CD_SECTOR_SIZE,
  DmaKind,
  GPCMD_GET_CONFIGURATION,
  GPCMD_GET_EVENT_STATUS_NOTIFICATION,
  GPCMD_INQUIRY,
  GPCMD_MECHANISM_STATUS,
  GPCMD_MODE_SENSE_10,
  GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL,
  GPCMD_READ_10,
  GPCMD_READ_12,
  GPCMD_READ_CDVD_CAPACITY,
  GPCMD_READ_DISC_INFO,
  GPCMD_READ_TOC_PMA_ATIP,
  GPCMD_REQUEST_SENSE,
  GPCMD_SEEK,
  GPCMD_SET_SPEED,
  GPCMD_START_STOP_UNIT,
  GPCMD_TEST_UNIT_READY,
  SENSE_ILLEGAL_REQUEST,
  SENSE_MEDIUM_ERROR,
  SENSE_NONE,
  SENSE_NOT_READY,
  SENSE_UNIT_ATTENTION,
  Xfer,
} from "./constants.ts";
import type { Drive } from "./drive.ts";
import { IDE_CD_MODEL, IDE_FIRMWARE_REVISION } from "./identify.ts";

/** Commands that report their result even while a UNIT ATTENTION is pending (MMC-3 §4.1.6). */
const ALLOW_UNIT_ATTENTION = new Set([
  GPCMD_INQUIRY,
  GPCMD_REQUEST_SENSE,
  GPCMD_GET_CONFIGURATION,
  GPCMD_GET_EVENT_STATUS_NOTIFICATION,
]);

/** Commands that need a medium in the drive. */
const NEED_MEDIUM = new Set([
  GPCMD_TEST_UNIT_READY,
  GPCMD_READ_CDVD_CAPACITY,
  GPCMD_READ_10,
  GPCMD_READ_12,
  GPCMD_READ_TOC_PMA_ATIP,
  GPCMD_READ_DISC_INFO,
  GPCMD_SEEK,
]);

/** The largest CD (80 minutes of 2048-byte sectors); bigger media are DVDs. */
const CD_MAX_SECTORS = 80 * 60 * 75;
/** MMC-3 profiles. */
const PROFILE_CDROM = 0x0008;
const PROFILE_DVDROM = 0x0010;

/** The PACKET command: wait for the 12-byte command packet (no interrupt, ATA/ATAPI-6 §9.10). */
export function atapiPacketCommand(drive: Drive): void {
  const r = drive.regs;
  r.byteCountLimit = r.lcyl | (r.hcyl << 8);
  r.nsector = (r.nsector & ~7) | ATAPI_INT_REASON_CD;
  r.xfer = Xfer.Packet;
  r.dataPos = 0;
  r.dataEnd = 12;
  r.status = ATA_SR_DRDY | ATA_SR_DRQ;
}

/** The end of an ATAPI PIO block: a received packet, or a data-in block delivered. */
export function atapiBlockEnd(drive: Drive, xfer: number): void {
  if (xfer === Xfer.Packet) executePacket(drive, drive.buffer.slice(0, 12));
  else if (xfer === Xfer.AtapiBuffer) nextBufferBlock(drive);
  else if (xfer === Xfer.AtapiRead) nextReadBlock(drive);
}

function ok(drive: Drive): void {
  drive.regs.error = 0;
  drive.atapiComplete(ATA_SR_DRDY | ATA_SR_DSC);
}

/** CHECK CONDITION: the sense is kept for REQUEST SENSE, the key goes in the error register. */
function checkCondition(drive: Drive, senseKey: number, asc: number, ascq = 0): void {
  const r = drive.regs;
  r.senseKey = senseKey;
  r.asc = asc;
  r.ascq = ascq;
  r.error = senseKey << 4;
  drive.atapiComplete(ATA_SR_DRDY | ATA_SR_ERR);
}

function useDma(drive: Drive): boolean {
  return (drive.regs.feature & 1) !== 0;
}

/** The size of the next DRQ block: the byte count limit, even unless it is the last block. */
function blockBytes(drive: Drive, left: number): number {
  let limit = drive.regs.byteCountLimit;
  if (limit === 0 || limit === 0xffff) limit = 0xfffe;
  return left <= limit ? left : limit & ~1;
}

/** Sends `data` to the host (at most `allocation` bytes), by PIO or DMA. */
function reply(drive: Drive, data: Uint8Array, allocation: number): void {
  const n = Math.min(data.length, allocation);
  if (n === 0) return ok(drive);
  const r = drive.regs;
  drive.buffer.set(data.subarray(0, n));
  r.lba = 0;
  r.left = n;
  if (useDma(drive)) {
    r.dmaKind = DmaKind.AtapiBuffer;
    drive.setBusy();
    return drive.bus.dmaReady(drive);
  }
  nextBufferBlock(drive);
}

function offerBlock(drive: Drive, xfer: number, from: number, bytes: number): void {
  const r = drive.regs;
  r.xfer = xfer;
  r.dataPos = from;
  r.dataEnd = from + bytes;
  drive.atapiDataBlock(bytes);
  r.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
  drive.bus.raiseIrq();
}

function nextBufferBlock(drive: Drive): void {
  const r = drive.regs;
  if (r.left === 0) return ok(drive);
  const n = blockBytes(drive, r.left);
  const from = r.lba;
  r.lba += n;
  r.left -= n;
  offerBlock(drive, Xfer.AtapiBuffer, from, n);
}

function nextReadBlock(drive: Drive): void {
  const r = drive.regs;
  if (r.left === 0) return ok(drive);
  const node = drive.node;
  if (!node || !drive.mediumPresent) {
    return checkCondition(drive, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
  }
  const n = blockBytes(drive, r.left);
  const at = r.lba;
  drive.runIo(() => node.read(at, drive.buffer.subarray(0, n)), (error) => {
    if (error) return checkCondition(drive, SENSE_MEDIUM_ERROR, 0x11);
    r.lba += n;
    r.left -= n;
    offerBlock(drive, Xfer.AtapiRead, 0, n);
  });
}

/** The host buffer of an ATAPI DMA read: a READ(12) of the whole disc moves through it piece by piece. */
export const ATAPI_DMA_CHUNK_BYTES = 128 << 10;

/** Runs a queued ATAPI DMA transfer through the bus master's PRD table. */
export function atapiStartDma(drive: Drive): void {
  const r = drive.regs;
  const bm = drive.bus.busMaster;
  const failed = () => {
    r.error = ATA_ER_ABRT;
    drive.atapiComplete(ATA_SR_DRDY | ATA_SR_ERR);
  };
  if (r.dmaKind === DmaKind.AtapiBuffer) {
    r.dmaKind = DmaKind.None;
    const outcome = bm.scatter(drive.buffer.subarray(0, r.left));
    return drive.finishDma(outcome, () => ok(drive), failed);
  }
  r.dmaKind = DmaKind.None;
  const node = drive.node;
  if (!node) return checkCondition(drive, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
  // A READ(12) may ask for the whole disc: move it through one bounded buffer, a piece
  // at a time, continuing the PRD walk where the previous piece stopped.
  const cursor = bm.cursor();
  const buffer = new Uint8Array(Math.min(r.left, ATAPI_DMA_CHUNK_BYTES));
  const next = (): void => {
    const n = Math.min(r.left, buffer.length);
    const piece = buffer.subarray(0, n);
    drive.runIo(() => node.read(r.lba, piece), (error) => {
      if (error) return checkCondition(drive, SENSE_MEDIUM_ERROR, 0x11);
      r.lba += n;
      r.left -= n;
      const outcome = cursor.scatter(piece, r.left === 0);
      if (outcome === null) return next();
      drive.finishDma(outcome, () => ok(drive), failed);
    });
  };
  next();
}

function be16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function be32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function putBe16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function putBe32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0);
}

/** Writes a track address as LBA or as MSF (with the 2-second pregap). */
function putAddress(b: Uint8Array, at: number, lba: number, msf: boolean): void {
  if (!msf) return putBe32(b, at, lba);
  const frames = lba + 150;
  b[at] = 0;
  b[at + 1] = Math.floor(frames / (75 * 60));
  b[at + 2] = Math.floor(frames / 75) % 60;
  b[at + 3] = frames % 75;
}

function ascii(b: Uint8Array, at: number, length: number, text: string): void {
  for (let i = 0; i < length; i++) b[at + i] = i < text.length ? text.charCodeAt(i) : 0x20;
}

/** Executes one command packet. */
export function executePacket(drive: Drive, cdb: Uint8Array): void {
  const r = drive.regs;
  const op = cdb[0];
  if (r.unitAttention && !ALLOW_UNIT_ATTENTION.has(op)) {
    r.unitAttention = false;
    return checkCondition(drive, SENSE_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
  }
  if (NEED_MEDIUM.has(op) && !drive.mediumPresent) {
    return checkCondition(drive, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
  }
  const total = drive.totalSectors;
  switch (op) {
    case GPCMD_TEST_UNIT_READY:
    case GPCMD_SEEK:
    case GPCMD_SET_SPEED:
      return ok(drive);
    case GPCMD_REQUEST_SENSE:
      return reply(drive, requestSense(drive), cdb[4]);
    case GPCMD_INQUIRY:
      if (cdb[1] & 1) {
        return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
      }
      return reply(drive, inquiry(), be16(cdb, 3));
    case GPCMD_READ_CDVD_CAPACITY: {
      const out = new Uint8Array(8);
      putBe32(out, 0, total - 1);
      putBe32(out, 4, CD_SECTOR_SIZE);
      return reply(drive, out, 8);
    }
    case GPCMD_READ_10:
    case GPCMD_READ_12: {
      const lba = be32(cdb, 2);
      const count = op === GPCMD_READ_10 ? be16(cdb, 7) : be32(cdb, 6);
      if (count === 0) return ok(drive);
      if (lba + count > total) {
        return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
      }
      r.lba = lba * CD_SECTOR_SIZE;
      r.left = count * CD_SECTOR_SIZE;
      if (useDma(drive)) {
        r.dmaKind = DmaKind.AtapiRead;
        drive.setBusy();
        return drive.bus.dmaReady(drive);
      }
      return nextReadBlock(drive);
    }
    case GPCMD_MODE_SENSE_10:
      return modeSense(drive, cdb);
    case GPCMD_START_STOP_UNIT: {
      const loadEject = (cdb[4] & 2) !== 0;
      const start = (cdb[4] & 1) !== 0;
      if (loadEject && !start) {
        if (r.locked) {
          return checkCondition(drive, SENSE_NOT_READY, ASC_MEDIA_REMOVAL_PREVENTED, 0x02);
        }
        if (!r.trayOpen && drive.node) r.mediaEvent = 3;
        r.trayOpen = true;
      } else if (loadEject && start) {
        if (r.trayOpen && drive.node) r.mediaEvent = 2;
        r.trayOpen = false;
      }
      return ok(drive);
    }
    case GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL:
      r.locked = (cdb[4] & 1) !== 0;
      return ok(drive);
    case GPCMD_GET_CONFIGURATION:
      return reply(drive, configuration(drive), be16(cdb, 7));
    case GPCMD_READ_TOC_PMA_ATIP:
      return readToc(drive, cdb);
    case GPCMD_GET_EVENT_STATUS_NOTIFICATION:
      if (!(cdb[1] & 1)) {
        // Only polled operation is supported (MMC-3 §6.1.7).
        return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
      }
      return reply(drive, eventStatus(drive, cdb[4]), be16(cdb, 7));
    case GPCMD_READ_DISC_INFO: {
      if (cdb[1] & 7) {
        return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
      }
      const out = new Uint8Array(34);
      putBe16(out, 0, 32);
      out[2] = 0x0e; // last session complete, disc complete
      out[3] = 1; // first track
      out[4] = 1; // sessions
      out[5] = 1; // first track of the last session
      out[6] = 1; // last track of the last session
      out[7] = 0x20; // unrestricted use
      return reply(drive, out, be16(cdb, 7));
    }
    case GPCMD_MECHANISM_STATUS:
      // No changer: an 8-byte header with the current LBA 0 and no slot table.
      return reply(drive, new Uint8Array(8), be16(cdb, 8));
    default:
      return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_ILLEGAL_OPCODE);
  }
}

/** Fixed-format sense data (SPC-3 §4.5.3); a UNIT ATTENTION is cleared once reported. */
function requestSense(drive: Drive): Uint8Array {
  const r = drive.regs;
  const out = new Uint8Array(18);
  let key = r.senseKey;
  let asc = r.asc;
  let ascq = r.ascq;
  if (r.unitAttention) {
    key = SENSE_UNIT_ATTENTION;
    asc = ASC_MEDIUM_MAY_HAVE_CHANGED;
    ascq = 0;
    r.unitAttention = false;
  } else if (key === SENSE_NONE && !drive.mediumPresent) {
    key = SENSE_NOT_READY;
    asc = ASC_MEDIUM_NOT_PRESENT;
  }
  out[0] = 0x70; // current error, fixed format
  out[2] = key;
  out[7] = 10; // additional sense length
  out[12] = asc;
  out[13] = ascq;
  r.senseKey = SENSE_NONE;
  r.asc = r.ascq = 0;
  return out;
}

/** Standard INQUIRY data (SPC-3 §6.4.2) of an ATAPI CD-ROM. */
function inquiry(): Uint8Array {
  const out = new Uint8Array(36);
  out[0] = 0x05; // CD/DVD device
  out[1] = 0x80; // removable
  out[2] = 0x00;
  out[3] = 0x21; // ATAPI transport, response data format 1
  out[4] = 36 - 5;
  ascii(out, 8, 8, "QEMU");
  ascii(out, 16, 16, IDE_CD_MODEL);
  ascii(out, 32, 4, IDE_FIRMWARE_REVISION);
  return out;
}

function modeSense(drive: Drive, cdb: Uint8Array): void {
  const pageControl = cdb[2] >> 6;
  const page = cdb[2] & 0x3f;
  if (pageControl === 3) {
    return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);
  }
  const pages: number[] = [];
  if (page === 0x01 || page === 0x3f) {
    // Read error recovery page: retry count 5.
    pages.push(0x01, 0x06, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00);
  }
  if (page === 0x2a || page === 0x3f) {
    // CD/DVD capabilities and mechanical status page (MMC-3 §6.3.11).
    const caps = new Uint8Array(22);
    caps[0] = 0x2a;
    caps[1] = 20;
    caps[2] = 0x3b; // reads CD-R, CD-RW, DVD-ROM, DVD-R, DVD-RAM
    caps[3] = 0x00; // writes nothing
    caps[4] = 0x71; // audio play, mode 2 form 1 and 2, multi-session
    caps[5] = 0x3f;
    caps[6] = 0x29 | (drive.regs.locked ? 0x02 : 0); // tray, eject, lock (and its state)
    putBe16(caps, 8, 706); // maximum read speed in kB/s (4x)
    putBe16(caps, 10, 256); // volume levels
    putBe16(caps, 12, 2048); // buffer size in KiB
    putBe16(caps, 14, 706); // current read speed
    pages.push(...caps);
  }
  if (pages.length === 0) {
    return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
  }
  const out = new Uint8Array(8 + pages.length);
  putBe16(out, 0, out.length - 2);
  out.set(pages, 8);
  reply(drive, out, be16(cdb, 7));
}

function readToc(drive: Drive, cdb: Uint8Array): void {
  const msf = (cdb[1] & 2) !== 0;
  let format = cdb[2] & 0x0f;
  if (format === 0) format = cdb[9] >> 6; // the older field in the control byte
  const allocation = be16(cdb, 7);
  const total = drive.totalSectors;
  if (format === 0) {
    const start = cdb[6];
    if (start > 1 && start !== 0xaa) {
      return checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
    }
    const tracks = start <= 1 ? 2 : 1;
    const out = new Uint8Array(4 + 8 * tracks);
    putBe16(out, 0, out.length - 2);
    out[2] = 1; // first track
    out[3] = 1; // last track
    let at = 4;
    if (start <= 1) {
      out[at + 1] = 0x14; // ADR 1, data track
      out[at + 2] = 1;
      putAddress(out, at + 4, 0, msf);
      at += 8;
    }
    out[at + 1] = 0x14;
    out[at + 2] = 0xaa; // lead-out
    putAddress(out, at + 4, total, msf);
    return reply(drive, out, allocation);
  }
  if (format === 1) {
    // Multi-session information: one session starting at track 1.
    const out = new Uint8Array(12);
    putBe16(out, 0, 10);
    out[2] = 1;
    out[3] = 1;
    out[5] = 0x14;
    out[6] = 1;
    putAddress(out, 8, 0, msf);
    return reply(drive, out, allocation);
  }
  checkCondition(drive, SENSE_ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
}

/** GET CONFIGURATION: the header, the profile list and the core feature (MMC-3 §5.3). */
function configuration(drive: Drive): Uint8Array {
  const out = new Uint8Array(8 + 12 + 12);
  const present = drive.mediumPresent;
  const dvd = drive.totalSectors > CD_MAX_SECTORS;
  const current = present ? (dvd ? PROFILE_DVDROM : PROFILE_CDROM) : 0;
  putBe32(out, 0, out.length - 4);
  putBe16(out, 6, current);
  // Feature 0: profile list, DVD-ROM then CD-ROM.
  out[8 + 2] = 0x03; // persistent, current
  out[8 + 3] = 8;
  putBe16(out, 12, PROFILE_DVDROM);
  out[14] = current === PROFILE_DVDROM ? 1 : 0;
  putBe16(out, 16, PROFILE_CDROM);
  out[18] = current === PROFILE_CDROM ? 1 : 0;
  // Feature 1: core, ATAPI physical interface.
  putBe16(out, 20, 0x0001);
  out[22] = 0x0b; // version 2, persistent, current
  out[23] = 8;
  putBe32(out, 24, 2); // ATAPI
  out[28] = 1; // device busy event reporting
  return out;
}

/** Polled GET EVENT STATUS NOTIFICATION: the media class, or "no event available". */
function eventStatus(drive: Drive, classes: number): Uint8Array {
  const r = drive.regs;
  if (!(classes & 0x10)) {
    const out = new Uint8Array(4);
    putBe16(out, 0, 2);
    out[2] = 0x80; // NEA
    out[3] = 0x10; // supports the media class
    return out;
  }
  const out = new Uint8Array(8);
  putBe16(out, 0, 6);
  out[2] = 0x04; // media class
  out[3] = 0x10;
  out[4] = r.mediaEvent;
  out[5] = (drive.mediumPresent ? 0x02 : 0) | (r.trayOpen ? 0x01 : 0);
  r.mediaEvent = 0;
  return out;
}
