// One IDE device (ATA disk or ATAPI CD-ROM): task file registers, PIO data engine and async I/O

import type { BlockIo } from "../../../core/block/backend.ts";
import type { DeviceState } from "../../../core/device.ts";
import { type BusMaster, DmaOutcome } from "./bus_master.ts";
import {
  ATA_DEV_LBA,
  ATA_ER_ABRT,
  ATA_SECTOR_SIZE,
  ATA_SR_BSY,
  ATA_SR_DRDY,
  ATA_SR_DRQ,
  ATA_SR_DSC,
  ATA_SR_ERR,
  ATAPI_INT_REASON_CD,
  ATAPI_INT_REASON_IO,
  CD_SECTOR_SIZE,
  DmaKind,
  SENSE_NONE,
  Xfer,
} from "./constants.ts";
import { chsForSize, type ChsGeometry, guessGeometry } from "./identify.ts";
import { ataBlockEnd, ataStartDma } from "./ata.ts";
import { atapiBlockEnd, atapiStartDma } from "./atapi.ts";

/** What the channel gives its drives. */
export interface DriveBus {
  /** The channel's bus master engine. */
  readonly busMaster: BusMaster;
  /** Asserts the channel's interrupt (INTRQ). */
  raiseIrq(): void;
  /** Tracks host I/O with the event loop (the loop keeps turning while it is in flight). */
  track(promise: Promise<void>): Promise<void>;
  /** A drive has a DMA transfer ready: the channel starts it once the bus master runs. */
  dmaReady(drive: Drive): void;
}

/** The registers and transfer state of a drive, plain numbers for save state. */
export interface DriveRegs {
  [key: string]: number | boolean;
  feature: number;
  hobFeature: number;
  nsector: number;
  hobNsector: number;
  sector: number;
  hobSector: number;
  lcyl: number;
  hobLcyl: number;
  hcyl: number;
  hobHcyl: number;
  select: number;
  status: number;
  error: number;
  xfer: number;
  dataPos: number;
  dataEnd: number;
  /** Next sector (ATA, 512-byte units) or byte offset on the medium (ATAPI). */
  lba: number;
  /** ATA sectors or ATAPI bytes still to transfer. */
  left: number;
  blockSectors: number;
  lba48: boolean;
  multSectors: number;
  writeCache: boolean;
  mdma: number;
  udma: number;
  dmaKind: number;
  /** The ATAPI byte count limit of the current PACKET command. */
  byteCountLimit: number;
  senseKey: number;
  asc: number;
  ascq: number;
  unitAttention: boolean;
  trayOpen: boolean;
  locked: boolean;
  /** A media event GET EVENT STATUS NOTIFICATION has yet to report (0 none, 2 new, 3 removal). */
  mediaEvent: number;
}

function powerOnRegs(): DriveRegs {
  return {
    feature: 0,
    hobFeature: 0,
    nsector: 1,
    hobNsector: 0,
    sector: 1,
    hobSector: 0,
    lcyl: 0,
    hobLcyl: 0,
    hcyl: 0,
    hobHcyl: 0,
    select: 0xa0,
    status: 0,
    error: 1,
    xfer: Xfer.None,
    dataPos: 0,
    dataEnd: 0,
    lba: 0,
    left: 0,
    blockSectors: 1,
    lba48: false,
    multSectors: 0,
    writeCache: true,
    mdma: -1,
    udma: 5,
    dmaKind: DmaKind.None,
    byteCountLimit: 0,
    senseKey: SENSE_NONE,
    asc: 0,
    ascq: 0,
    unitAttention: false,
    trayOpen: false,
    locked: false,
    mediaEvent: 0,
  };
}

/** How a drive is configured. */
export interface DriveOptions {
  kind: "disk" | "cdrom";
  /** The image; null for an empty CD-ROM. */
  node: BlockIo | null;
  serial: string;
  readOnly: boolean;
}

/**
 * One device on an IDE channel. The channel latches register writes into both of its
 * drives and sends commands to the selected one; the command modules (ata.ts,
 * atapi.ts) act through the public state {@linkcode Drive.regs} and the helpers here.
 */
export class Drive {
  /** Task file and transfer state. */
  regs: DriveRegs = powerOnRegs();
  /** The PIO data buffer (a DRQ block at a time, or a whole ATAPI reply). */
  readonly buffer = new Uint8Array(0x20000);
  /** Disk or CD-ROM. */
  readonly kind: "disk" | "cdrom";
  readonly serial: string;
  readonly readOnly: boolean;
  /** The physical geometry (disks; set by {@linkcode init}). */
  geometry: ChsGeometry = { cylinders: 2, heads: 16, sectors: 63 };
  #node: BlockIo | null;
  #bus: DriveBus;
  /** Bumped by resets so that completions of I/O started before are dropped. */
  #generation = 0;
  #pending: Promise<void> = Promise.resolve();
  #ioInFlight = 0;

  constructor(bus: DriveBus, options: DriveOptions) {
    this.#bus = bus;
    this.kind = options.kind;
    this.#node = options.node;
    this.serial = options.serial;
    this.readOnly = options.readOnly || options.kind === "cdrom";
    this.geometry = chsForSize(this.totalSectors);
  }

  /** Reads the boot sector to pick the disk geometry as QEMU does. */
  async init(): Promise<void> {
    if (this.kind !== "disk" || !this.#node) return;
    const mbr = new Uint8Array(Math.min(512, this.#node.size()));
    if (mbr.length > 0) await this.#node.read(0, mbr);
    this.geometry = guessGeometry(this.totalSectors, mbr);
  }

  /** The image, or null when a CD-ROM has no medium. */
  get node(): BlockIo | null {
    return this.#node;
  }

  /** True when the medium can be read (a disk, or a CD-ROM with a disc and the tray closed). */
  get mediumPresent(): boolean {
    return this.#node !== null && !this.regs.trayOpen;
  }

  /** Sectors of the medium: 512-byte for a disk, 2048-byte for a CD-ROM. */
  get totalSectors(): number {
    const size = this.#node?.size() ?? 0;
    return Math.floor(size / (this.kind === "disk" ? ATA_SECTOR_SIZE : CD_SECTOR_SIZE));
  }

  /** The bus this drive sits on. */
  get bus(): DriveBus {
    return this.#bus;
  }

  /** Resolves when I/O in flight (and I/O its completion started) has completed. */
  async settled(): Promise<void> {
    for (;;) {
      const pending = this.#pending;
      await pending;
      if (pending === this.#pending) return;
    }
  }

  /** Power-on or hard reset. */
  reset(): void {
    const keep = this.regs;
    this.regs = powerOnRegs();
    this.regs.trayOpen = keep.trayOpen;
    this.#generation++;
    this.setSignature();
  }

  /** The effect of SRST or DEVICE RESET: registers, signature, and status per device type. */
  softReset(): void {
    const r = this.regs;
    this.#generation++;
    r.xfer = Xfer.None;
    r.dmaKind = DmaKind.None;
    r.dataPos = r.dataEnd = 0;
    r.multSectors = 0;
    r.error = 1; // diagnostic passed
    this.setSignature();
  }

  /**
   * Puts the device signature in the task file (ATA/ATAPI-6 §9.12): LBA mid/high
   * 0x14/0xEB for a PACKET device, 0/0 for an ATA device. An ATAPI device comes up
   * without DRDY; an ATA device with DRDY and DSC.
   */
  setSignature(): void {
    const r = this.regs;
    r.nsector = r.sector = 1;
    r.select &= ~0x4f;
    if (this.kind === "cdrom") {
      r.lcyl = 0x14;
      r.hcyl = 0xeb;
      r.status = 0;
    } else {
      r.lcyl = r.hcyl = 0;
      r.status = ATA_SR_DRDY | ATA_SR_DSC;
    }
  }

  /** Marks the drive busy (command accepted, I/O to follow). */
  setBusy(): void {
    this.regs.status = ATA_SR_DRDY | ATA_SR_BSY;
  }

  /**
   * Runs async host I/O with the drive busy; `done` gets null or the error, unless a
   * reset came in between.
   */
  runIo(op: () => Promise<void>, done: (error: unknown) => void): void {
    const generation = this.#generation;
    this.setBusy();
    let promise: Promise<void>;
    try {
      promise = op();
    } catch (error) {
      promise = Promise.reject(error);
    }
    this.#ioInFlight++;
    const finished = promise.then(
      () => generation === this.#generation && done(null),
      (error) => generation === this.#generation && done(error ?? new Error("I/O error")),
    ).then(() => {}).finally(() => this.#ioInFlight--);
    this.#pending = this.#bus.track(finished);
  }

  /** Completes a command without data: ready, and an interrupt. */
  complete(extraStatus = ATA_SR_DSC): void {
    const r = this.regs;
    r.xfer = Xfer.None;
    r.status = ATA_SR_DRDY | extraStatus;
    this.#bus.raiseIrq();
  }

  /** Fails the command with `error` bits (ABRT by default) and an interrupt. */
  fail(error = ATA_ER_ABRT): void {
    const r = this.regs;
    r.xfer = Xfer.None;
    r.dmaKind = DmaKind.None;
    r.error = error;
    r.status = ATA_SR_DRDY | ATA_SR_ERR;
    this.#bus.raiseIrq();
  }

  /** Starts a device-to-host PIO transfer of `length` bytes from the buffer, with an interrupt. */
  pioIn(length: number, xfer: number = Xfer.BufferIn): void {
    const r = this.regs;
    r.xfer = xfer;
    r.dataPos = 0;
    r.dataEnd = length;
    r.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
    this.#bus.raiseIrq();
  }

  /** Asks for `length` bytes from the host into the buffer (no interrupt: the first DRQ of a write). */
  pioOut(length: number, xfer: number): void {
    const r = this.regs;
    r.xfer = xfer;
    r.dataPos = 0;
    r.dataEnd = length;
    r.status = ATA_SR_DRDY | ATA_SR_DSC | ATA_SR_DRQ;
  }

  /** True while the data port moves data toward the host. */
  #dataIn(): boolean {
    const x = this.regs.xfer;
    return x === Xfer.BufferIn || x === Xfer.AtaRead || x === Xfer.AtapiBuffer ||
      x === Xfer.AtapiRead;
  }

  /** A data port read (2 or 4 bytes; 1 moves one byte). */
  readData(size: 1 | 2 | 4): number {
    const r = this.regs;
    if (!(r.status & ATA_SR_DRQ) || !this.#dataIn()) return 0;
    const p = r.dataPos;
    if (p + size > r.dataEnd) return 0;
    const b = this.buffer;
    let v = b[p];
    if (size >= 2) v |= b[p + 1] << 8;
    if (size === 4) v = (v | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    r.dataPos = p + size;
    if (r.dataPos >= r.dataEnd) this.#endOfBlock();
    return v;
  }

  /** A data port write. */
  writeData(size: 1 | 2 | 4, value: number): void {
    const r = this.regs;
    if (!(r.status & ATA_SR_DRQ) || this.#dataIn() || r.xfer === Xfer.None) return;
    const p = r.dataPos;
    if (p + size > r.dataEnd) return;
    for (let i = 0; i < size; i++) this.buffer[p + i] = (value >>> (8 * i)) & 0xff;
    r.dataPos = p + size;
    if (r.dataPos >= r.dataEnd) this.#endOfBlock();
  }

  #endOfBlock(): void {
    const r = this.regs;
    r.status &= ~ATA_SR_DRQ;
    const xfer = r.xfer;
    if (xfer === Xfer.BufferIn) {
      r.xfer = Xfer.None;
      r.status = ATA_SR_DRDY | ATA_SR_DSC;
      return;
    }
    if (xfer === Xfer.AtaRead || xfer === Xfer.AtaWrite) ataBlockEnd(this, xfer);
    else atapiBlockEnd(this, xfer);
  }

  /** The LBA the task file addresses (48-bit, 28-bit LBA or CHS); -1 for a bad CHS address. */
  taskFileLba(lba48: boolean): number {
    const r = this.regs;
    if (lba48) {
      return r.sector + r.lcyl * 0x100 + r.hcyl * 0x10000 + r.hobSector * 0x1000000 +
        r.hobLcyl * 0x100000000 + r.hobHcyl * 0x10000000000;
    }
    if (r.select & ATA_DEV_LBA) {
      return r.sector | (r.lcyl << 8) | (r.hcyl << 16) | ((r.select & 0x0f) << 24);
    }
    const { heads, sectors } = this.geometry;
    const cylinder = r.lcyl | (r.hcyl << 8);
    const head = r.select & 0x0f;
    if (r.sector === 0 || r.sector > sectors || head >= heads) return -1;
    return (cylinder * heads + head) * sectors + r.sector - 1;
  }

  /** Writes an address back to the task file in the addressing mode of the command. */
  setTaskFileLba(lba: number, lba48: boolean): void {
    const r = this.regs;
    if (lba48) {
      r.sector = lba & 0xff;
      r.lcyl = (lba >>> 8) & 0xff;
      r.hcyl = (lba >>> 16) & 0xff;
      r.hobSector = Math.floor(lba / 0x1000000) & 0xff;
      r.hobLcyl = Math.floor(lba / 0x100000000) & 0xff;
      r.hobHcyl = Math.floor(lba / 0x10000000000) & 0xff;
    } else if (r.select & ATA_DEV_LBA) {
      r.sector = lba & 0xff;
      r.lcyl = (lba >>> 8) & 0xff;
      r.hcyl = (lba >>> 16) & 0xff;
      r.select = (r.select & 0xf0) | ((lba >>> 24) & 0x0f);
    } else {
      const { heads, sectors } = this.geometry;
      const cylinder = Math.floor(lba / (heads * sectors));
      const rest = lba % (heads * sectors);
      r.lcyl = cylinder & 0xff;
      r.hcyl = (cylinder >> 8) & 0xff;
      r.select = (r.select & 0xf0) | Math.floor(rest / sectors);
      r.sector = (rest % sectors) + 1;
    }
  }

  /** Sets the ATAPI interrupt reason and byte count for a data-in DRQ block. */
  atapiDataBlock(bytes: number): void {
    const r = this.regs;
    r.nsector = (r.nsector & ~7) | ATAPI_INT_REASON_IO;
    r.lcyl = bytes & 0xff;
    r.hcyl = (bytes >> 8) & 0xff;
  }

  /** Ends an ATAPI command: status, interrupt reason "command complete", interrupt. */
  atapiComplete(status: number): void {
    const r = this.regs;
    r.xfer = Xfer.None;
    r.dmaKind = DmaKind.None;
    r.nsector = (r.nsector & ~7) | ATAPI_INT_REASON_IO | ATAPI_INT_REASON_CD;
    r.status = status;
    this.#bus.raiseIrq();
  }

  /** Runs the DMA transfer this drive queued, now that the bus master is started. */
  startDma(): void {
    const kind = this.regs.dmaKind;
    if (kind === DmaKind.AtaRead || kind === DmaKind.AtaWrite) ataStartDma(this);
    else if (kind !== DmaKind.None) atapiStartDma(this);
  }

  /**
   * Ends a DMA transfer from the outcome of the PRD walk: a fault is an error (ABRT and
   * the bus master's Error bit); a PRD table too short leaves the drive without an
   * interrupt, as QEMU does; otherwise `ok` completes the command.
   */
  finishDma(outcome: DmaOutcome, ok: () => void, failed: () => void): void {
    const bm = this.#bus.busMaster;
    bm.finish(outcome);
    const r = this.regs;
    r.dmaKind = DmaKind.None;
    if (outcome === DmaOutcome.Fault) {
      failed();
      bm.interrupt();
    } else if (outcome === DmaOutcome.Short) {
      r.status = ATA_SR_DRDY | ATA_SR_DSC;
    } else {
      ok();
      bm.interrupt();
    }
  }

  /** Saves registers and buffer. */
  saveState(): DeviceState {
    return { regs: { ...this.regs }, buffer: this.buffer.slice(), geometry: { ...this.geometry } };
  }

  /** Restores {@linkcode saveState} output; I/O that was in flight is not resumed. */
  loadState(state: DeviceState): void {
    this.#generation++;
    this.regs = { ...(state.regs as DriveRegs) };
    this.buffer.set(state.buffer as Uint8Array);
    this.geometry = { ...(state.geometry as unknown as ChsGeometry) };
  }

  /** Host I/O of a command still running (savevm waits for none: see migrationBlocker). */
  get ioInFlight(): number {
    return this.#ioInFlight;
  }

  // --- the tray, as the monitor's eject and change see it (RemovableMedium) ---

  get trayOpen(): boolean {
    return this.regs.trayOpen;
  }

  get locked(): boolean {
    return this.regs.locked;
  }

  get inserted(): boolean {
    return this.#node !== null;
  }

  /** Opens the tray unless the guest locked it (then asks the guest to eject); `force` unlocks. */
  openTray(force: boolean): boolean {
    const r = this.regs;
    if (r.locked && !force) {
      r.mediaEvent = 1; // eject request
      return false;
    }
    r.locked = false;
    if (!r.trayOpen) {
      r.trayOpen = true;
      if (this.#node) r.mediaEvent = 3; // media removal
    }
    return true;
  }

  /** Puts a medium in the open tray, or takes it out (null). */
  setMedium(node: BlockIo | null): void {
    this.#node = node;
  }

  /** Closes the tray; with a medium in, the guest sees UNIT ATTENTION and a new-media event. */
  closeTray(): void {
    const r = this.regs;
    if (!r.trayOpen) return;
    r.trayOpen = false;
    if (this.#node) {
      r.unitAttention = true;
      r.mediaEvent = 2; // new media
    }
  }

  /** Changes the CD-ROM medium (null ejects); the guest sees UNIT ATTENTION next. */
  changeMedium(node: BlockIo | null): void {
    this.#node = node;
    const r = this.regs;
    r.trayOpen = false;
    r.unitAttention = node !== null;
    r.mediaEvent = node !== null ? 2 : 3;
  }
}
