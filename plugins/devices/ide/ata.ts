// ATA commands of the IDE disk (and the ATA commands an ATAPI device answers)

import { DmaOutcome } from "./bus_master.ts";
import {
  ATA_CMD_CHECK_POWER_MODE,
  ATA_CMD_CHECK_POWER_MODE_OLD,
  ATA_CMD_DEVICE_RESET,
  ATA_CMD_FLUSH_CACHE,
  ATA_CMD_FLUSH_CACHE_EXT,
  ATA_CMD_IDENTIFY_DEVICE,
  ATA_CMD_IDENTIFY_PACKET_DEVICE,
  ATA_CMD_IDLE,
  ATA_CMD_IDLE_IMMEDIATE,
  ATA_CMD_IDLE_IMMEDIATE_OLD,
  ATA_CMD_IDLE_OLD,
  ATA_CMD_INITIALIZE_DEVICE_PARAMETERS,
  ATA_CMD_PACKET,
  ATA_CMD_READ_DMA,
  ATA_CMD_READ_DMA_EXT,
  ATA_CMD_READ_DMA_NORETRY,
  ATA_CMD_READ_MULTIPLE,
  ATA_CMD_READ_MULTIPLE_EXT,
  ATA_CMD_READ_NATIVE_MAX_ADDRESS,
  ATA_CMD_READ_NATIVE_MAX_ADDRESS_EXT,
  ATA_CMD_READ_SECTORS,
  ATA_CMD_READ_SECTORS_EXT,
  ATA_CMD_READ_SECTORS_NORETRY,
  ATA_CMD_READ_VERIFY_SECTORS,
  ATA_CMD_READ_VERIFY_SECTORS_EXT,
  ATA_CMD_READ_VERIFY_SECTORS_NORETRY,
  ATA_CMD_SEEK,
  ATA_CMD_SET_FEATURES,
  ATA_CMD_SET_MULTIPLE_MODE,
  ATA_CMD_SLEEP,
  ATA_CMD_SLEEP_OLD,
  ATA_CMD_STANDBY,
  ATA_CMD_STANDBY_IMMEDIATE,
  ATA_CMD_STANDBY_IMMEDIATE_OLD,
  ATA_CMD_STANDBY_OLD,
  ATA_CMD_WRITE_DMA,
  ATA_CMD_WRITE_DMA_EXT,
  ATA_CMD_WRITE_DMA_NORETRY,
  ATA_CMD_WRITE_MULTIPLE,
  ATA_CMD_WRITE_MULTIPLE_EXT,
  ATA_CMD_WRITE_SECTORS,
  ATA_CMD_WRITE_SECTORS_EXT,
  ATA_CMD_WRITE_SECTORS_NORETRY,
  ATA_ER_ABRT,
  ATA_ER_IDNF,
  ATA_SECTOR_SIZE,
  ATA_SR_DRDY,
  ATA_SR_DSC,
  DmaKind,
  MAX_MULT_SECTORS,
  SETFEATURES_WC_OFF,
  SETFEATURES_WC_ON,
  SETFEATURES_XFER,
  Xfer,
} from "./constants.ts";
import type { Drive } from "./drive.ts";
import { identifyDevice, identifyPacketDevice } from "./identify.ts";
import { atapiPacketCommand } from "./atapi.ts";

/** SET FEATURES subcommands accepted without effect (look-ahead, APM, defaults...). */
const SETFEATURES_NOOP = new Set([0x05, 0x42, 0x55, 0x66, 0x85, 0xaa, 0xc2, 0xcc]);

/** The IDENTIFY DEVICE page of a disk drive as it stands now. */
export function diskIdentify(drive: Drive): Uint8Array {
  const r = drive.regs;
  return identifyDevice({
    serial: drive.serial,
    totalSectors: drive.totalSectors,
    geometry: drive.geometry,
    multSectors: r.multSectors,
    writeCache: r.writeCache,
    modes: { mdma: r.mdma, udma: r.udma },
  });
}

/**
 * Executes ATA command `command` on `drive` (the channel has already checked that
 * the drive exists and is not busy).
 */
export function executeAta(drive: Drive, command: number): void {
  const r = drive.regs;
  r.error = 0;
  const cd = drive.kind === "cdrom";
  switch (command) {
    case ATA_CMD_IDENTIFY_DEVICE:
      if (cd) return signatureAbort(drive);
      drive.buffer.set(diskIdentify(drive));
      return drive.pioIn(512);
    case ATA_CMD_IDENTIFY_PACKET_DEVICE:
      if (!cd) return drive.fail();
      drive.buffer.set(identifyPacketDevice(drive.serial, { mdma: r.mdma, udma: r.udma }));
      return drive.pioIn(512);
    case ATA_CMD_PACKET:
      if (!cd) return drive.fail();
      return atapiPacketCommand(drive);
    case ATA_CMD_DEVICE_RESET:
      if (!cd) return drive.fail();
      // No interrupt: the host polls BSY after DEVICE RESET (ATA/ATAPI-6 §8.7).
      return drive.softReset();
    case ATA_CMD_READ_SECTORS:
    case ATA_CMD_READ_SECTORS_NORETRY:
    case ATA_CMD_READ_SECTORS_EXT:
      if (cd) return signatureAbort(drive);
      return startPio(drive, command === ATA_CMD_READ_SECTORS_EXT, false, 1);
    case ATA_CMD_READ_MULTIPLE:
    case ATA_CMD_READ_MULTIPLE_EXT:
      if (cd || !r.multSectors) return drive.fail();
      return startPio(drive, command === ATA_CMD_READ_MULTIPLE_EXT, false, r.multSectors);
    case ATA_CMD_WRITE_SECTORS:
    case ATA_CMD_WRITE_SECTORS_NORETRY:
    case ATA_CMD_WRITE_SECTORS_EXT:
      if (cd) return drive.fail();
      return startPio(drive, command === ATA_CMD_WRITE_SECTORS_EXT, true, 1);
    case ATA_CMD_WRITE_MULTIPLE:
    case ATA_CMD_WRITE_MULTIPLE_EXT:
      if (cd || !r.multSectors) return drive.fail();
      return startPio(drive, command === ATA_CMD_WRITE_MULTIPLE_EXT, true, r.multSectors);
    case ATA_CMD_READ_DMA:
    case ATA_CMD_READ_DMA_NORETRY:
    case ATA_CMD_READ_DMA_EXT:
      if (cd) return drive.fail();
      return startDmaCommand(drive, command === ATA_CMD_READ_DMA_EXT, false);
    case ATA_CMD_WRITE_DMA:
    case ATA_CMD_WRITE_DMA_NORETRY:
    case ATA_CMD_WRITE_DMA_EXT:
      if (cd) return drive.fail();
      return startDmaCommand(drive, command === ATA_CMD_WRITE_DMA_EXT, true);
    case ATA_CMD_READ_VERIFY_SECTORS:
    case ATA_CMD_READ_VERIFY_SECTORS_NORETRY:
    case ATA_CMD_READ_VERIFY_SECTORS_EXT: {
      if (cd) return drive.fail();
      const lba48 = command === ATA_CMD_READ_VERIFY_SECTORS_EXT;
      const range = checkedRange(drive, lba48);
      if (!range) return;
      drive.setTaskFileLba(range.lba + range.count - 1, lba48);
      return drive.complete();
    }
    case ATA_CMD_SEEK:
    case ATA_CMD_INITIALIZE_DEVICE_PARAMETERS:
      // QEMU keeps its own geometry for CHS translation; the parameters are accepted.
      if (cd) return drive.fail();
      return drive.complete();
    case ATA_CMD_STANDBY_IMMEDIATE:
    case ATA_CMD_STANDBY_IMMEDIATE_OLD:
    case ATA_CMD_IDLE_IMMEDIATE:
    case ATA_CMD_IDLE_IMMEDIATE_OLD:
    case ATA_CMD_STANDBY:
    case ATA_CMD_STANDBY_OLD:
    case ATA_CMD_IDLE:
    case ATA_CMD_IDLE_OLD:
    case ATA_CMD_SLEEP:
    case ATA_CMD_SLEEP_OLD:
      if (cd) return drive.fail();
      return drive.complete(0);
    case ATA_CMD_CHECK_POWER_MODE:
    case ATA_CMD_CHECK_POWER_MODE_OLD:
      if (cd) return drive.fail();
      r.nsector = 0xff; // active or idle
      return drive.complete();
    case ATA_CMD_SET_MULTIPLE_MODE: {
      if (cd) return drive.fail();
      const n = r.nsector;
      if (n > MAX_MULT_SECTORS || (n & (n - 1)) !== 0) return drive.fail();
      r.multSectors = n;
      return drive.complete();
    }
    case ATA_CMD_FLUSH_CACHE:
    case ATA_CMD_FLUSH_CACHE_EXT: {
      const node = drive.node;
      if (cd || !node || drive.readOnly) return drive.complete(0);
      return drive.runIo(() => node.flush(), (error) => {
        if (error) drive.fail();
        else drive.complete(0);
      });
    }
    case ATA_CMD_SET_FEATURES:
      return setFeatures(drive);
    case ATA_CMD_READ_NATIVE_MAX_ADDRESS:
    case ATA_CMD_READ_NATIVE_MAX_ADDRESS_EXT: {
      if (cd) return drive.fail();
      const lba48 = command === ATA_CMD_READ_NATIVE_MAX_ADDRESS_EXT;
      const max = drive.totalSectors - 1;
      drive.setTaskFileLba(lba48 ? max : Math.min(max, 0x0fffffff), lba48);
      return drive.complete();
    }
    default:
      return drive.fail();
  }
}

/** An ATA read or IDENTIFY DEVICE sent to a PACKET device: signature, then ABRT (ATA/ATAPI-6 §8.15.7). */
function signatureAbort(drive: Drive): void {
  drive.setSignature();
  drive.fail();
}

function setFeatures(drive: Drive): void {
  const r = drive.regs;
  const sub = r.feature;
  if (sub === SETFEATURES_WC_ON || sub === SETFEATURES_WC_OFF) {
    if (drive.kind === "cdrom") return drive.fail();
    r.writeCache = sub === SETFEATURES_WC_ON;
    return drive.complete();
  }
  if (sub === SETFEATURES_XFER) {
    const mode = r.nsector & 0x07;
    switch (r.nsector >> 3) {
      case 0: // PIO default
      case 1: // PIO flow control mode
        r.mdma = -1;
        r.udma = -1;
        return drive.complete();
      case 4: // multiword DMA
        if (mode > 2) return drive.fail();
        r.mdma = mode;
        r.udma = -1;
        return drive.complete();
      case 8: // Ultra DMA
        if (mode > 5) return drive.fail();
        r.mdma = -1;
        r.udma = mode;
        return drive.complete();
      default:
        return drive.fail();
    }
  }
  if (SETFEATURES_NOOP.has(sub)) return drive.complete();
  drive.fail();
}

/** The LBA and count of a read/write command, or null after failing it with IDNF. */
function checkedRange(drive: Drive, lba48: boolean): { lba: number; count: number } | null {
  const r = drive.regs;
  const count = lba48 ? (r.nsector | (r.hobNsector << 8)) || 65536 : r.nsector || 256;
  const lba = drive.taskFileLba(lba48);
  if (lba < 0 || lba + count > drive.totalSectors || !drive.node) {
    drive.fail(ATA_ER_IDNF);
    return null;
  }
  return { lba, count };
}

function startPio(drive: Drive, lba48: boolean, write: boolean, blockSectors: number): void {
  const range = checkedRange(drive, lba48);
  if (!range) return;
  if (write && drive.readOnly) return drive.fail();
  const r = drive.regs;
  r.lba = range.lba;
  r.left = range.count;
  r.lba48 = lba48;
  r.blockSectors = blockSectors;
  if (write) drive.pioOut(Math.min(r.left, blockSectors) * ATA_SECTOR_SIZE, Xfer.AtaWrite);
  else readBlock(drive);
}

/** Reads the next DRQ block of a PIO read, then offers it with an interrupt. */
function readBlock(drive: Drive): void {
  const r = drive.regs;
  const node = drive.node!;
  const bytes = Math.min(r.left, r.blockSectors) * ATA_SECTOR_SIZE;
  const at = r.lba * ATA_SECTOR_SIZE;
  drive.runIo(() => node.read(at, drive.buffer.subarray(0, bytes)), (error) => {
    if (error) return drive.fail();
    drive.pioIn(bytes, Xfer.AtaRead);
  });
}

/** The end of a PIO DRQ block of an ATA read or write. */
export function ataBlockEnd(drive: Drive, xfer: number): void {
  const r = drive.regs;
  const sectors = r.dataEnd / ATA_SECTOR_SIZE;
  if (xfer === Xfer.AtaRead) {
    advance(drive, sectors);
    if (r.left > 0) return readBlock(drive);
    r.xfer = Xfer.None;
    // The last block needs no interrupt: INTRQ came before its data (ATA/ATAPI-6 §9.5).
    r.status = ATA_SR_DRDY | ATA_SR_DSC;
    return;
  }
  const node = drive.node!;
  const data = drive.buffer.slice(0, r.dataEnd);
  drive.runIo(() => node.write(r.lba * ATA_SECTOR_SIZE, data), (error) => {
    if (error) return drive.fail();
    advance(drive, sectors);
    if (r.left > 0) {
      drive.pioOut(Math.min(r.left, r.blockSectors) * ATA_SECTOR_SIZE, Xfer.AtaWrite);
      drive.bus.raiseIrq();
    } else {
      drive.complete();
    }
  });
}

function advance(drive: Drive, sectors: number): void {
  const r = drive.regs;
  r.lba += sectors;
  r.left -= sectors;
  drive.setTaskFileLba(r.lba, r.lba48);
}

function startDmaCommand(drive: Drive, lba48: boolean, write: boolean): void {
  const range = checkedRange(drive, lba48);
  if (!range) return;
  if (write && drive.readOnly) return drive.fail();
  const r = drive.regs;
  r.lba = range.lba;
  r.left = range.count;
  r.lba48 = lba48;
  r.dmaKind = write ? DmaKind.AtaWrite : DmaKind.AtaRead;
  // The drive stays busy until the bus master has moved the data.
  drive.setBusy();
  drive.bus.dmaReady(drive);
}

/** Runs a queued ATA DMA transfer through the bus master's PRD table. */
export function ataStartDma(drive: Drive): void {
  const r = drive.regs;
  const node = drive.node!;
  const bm = drive.bus.busMaster;
  const data = new Uint8Array(r.left * ATA_SECTOR_SIZE);
  const at = r.lba * ATA_SECTOR_SIZE;
  const sectors = r.left;
  const done = (outcome: DmaOutcome) =>
    drive.finishDma(outcome, () => {
      advance(drive, sectors);
      drive.complete();
    }, () => drive.fail(ATA_ER_ABRT));
  if (r.dmaKind === DmaKind.AtaRead) {
    r.dmaKind = DmaKind.None;
    drive.runIo(() => node.read(at, data), (error) => {
      if (error) return drive.fail();
      done(bm.scatter(data));
    });
    return;
  }
  r.dmaKind = DmaKind.None;
  const outcome = bm.gather(data);
  if (outcome === DmaOutcome.Fault || outcome === DmaOutcome.Short) return done(outcome);
  drive.runIo(() => node.write(at, data), (error) => {
    if (error) return drive.fail();
    done(outcome);
  });
}
