// One IDE channel: command block and control registers, device selection, INTRQ and bus master

import type { DeviceState } from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import { executeAta } from "./ata.ts";
import { BusMaster, type BusMasterState } from "./bus_master.ts";
import {
  ATA_CMD_DEVICE_RESET,
  ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC,
  ATA_DC_HOB,
  ATA_DC_NIEN,
  ATA_DC_SRST,
  ATA_DEV_DEV,
  ATA_SR_BSY,
  ATA_SR_DRQ,
} from "./constants.ts";
import { Drive, type DriveBus, type DriveOptions } from "./drive.ts";

/** Command block register offsets (ATA/ATAPI-6 §7.1). */
export const ATA_REG_DATA = 0;
export const ATA_REG_ERROR_FEATURE = 1;
export const ATA_REG_NSECTOR = 2;
export const ATA_REG_SECTOR = 3;
export const ATA_REG_LCYL = 4;
export const ATA_REG_HCYL = 5;
export const ATA_REG_SELECT = 6;
export const ATA_REG_STATUS_COMMAND = 7;

/** How a channel reaches the machine. */
export interface ChannelHost {
  /** Guest memory for bus master DMA. */
  memory: AddressSpace;
  /** The channel's interrupt line (ISA IRQ 14 or 15). */
  irq: IrqLine | null;
  /** Tracks async host I/O with the event loop; identity when there is no loop. */
  track?(promise: Promise<void>): Promise<void>;
}

/**
 * An IDE channel with up to two devices. Register writes reach both devices, reads
 * and commands the selected one; a channel with no device reads as zeroes, and an
 * absent device 1 reads status 0, as on QEMU.
 */
export class IdeChannel implements DriveBus {
  readonly busMaster: BusMaster;
  /** Device 0 and device 1 (null when absent). */
  readonly drives: [Drive | null, Drive | null] = [null, null];
  #host: ChannelHost;
  /** The selected device (DEV bit of the device register). */
  #unit = 0;
  #control = 0;
  /** INTRQ as the devices drive it; the line follows it unless nIEN masks it. */
  #irqPending = false;

  constructor(host: ChannelHost) {
    this.#host = host;
    this.busMaster = new BusMaster(host.memory, () => this.#busMasterStarted());
  }

  /** Attaches a device at `unit` (0 master, 1 slave). */
  attach(unit: 0 | 1, options: DriveOptions): Drive {
    const drive = new Drive(this, options);
    this.drives[unit] = drive;
    drive.reset();
    return drive;
  }

  /** The selected device, or null when it is absent. */
  get selected(): Drive | null {
    return this.drives[this.#unit];
  }

  /** True while INTRQ is asserted (whether or not nIEN masks the line). */
  get irqPending(): boolean {
    return this.#irqPending;
  }

  /** The device control register (nIEN, SRST, HOB) as last written. */
  get control(): number {
    return this.#control;
  }

  track(promise: Promise<void>): Promise<void> {
    return this.#host.track ? this.#host.track(promise) : promise;
  }

  raiseIrq(): void {
    this.#irqPending = true;
    if (!(this.#control & ATA_DC_NIEN)) this.busMaster.interrupt();
    this.#updateLine();
  }

  #lowerIrq(): void {
    this.#irqPending = false;
    this.#updateLine();
  }

  #updateLine(): void {
    this.#host.irq?.set(this.#irqPending && !(this.#control & ATA_DC_NIEN));
  }

  dmaReady(drive: Drive): void {
    if (this.busMaster.started) drive.startDma();
  }

  #busMasterStarted(): void {
    for (const d of this.drives) if (d && d.regs.dmaKind !== 0) return d.startDma();
  }

  /** Resolves when I/O in flight on either device has completed (for tests). */
  async settled(): Promise<void> {
    for (const d of this.drives) if (d) await d.settled();
  }

  #noDevices(): boolean {
    return this.drives[0] === null && this.drives[1] === null;
  }

  /** A read of the command block at `reg` (0..7). */
  read(reg: number, size: 1 | 2 | 4): number {
    const drive = this.selected;
    if (reg === ATA_REG_DATA) return drive ? drive.readData(size) : 0;
    if (this.#noDevices()) return 0;
    const hob = (this.#control & ATA_DC_HOB) !== 0;
    // Register writes reach both devices, so an absent selected device reads back the
    // shadow registers of the one that is present (device 1 alone, e.g. a CD at index=1).
    const r = (drive ?? this.drives[0] ?? this.drives[1]!).regs;
    switch (reg) {
      case ATA_REG_ERROR_FEATURE:
        if (!drive) return 0;
        return hob ? r.hobFeature : r.error;
      case ATA_REG_NSECTOR:
        return hob ? r.hobNsector : r.nsector;
      case ATA_REG_SECTOR:
        return hob ? r.hobSector : r.sector;
      case ATA_REG_LCYL:
        return hob ? r.hobLcyl : r.lcyl;
      case ATA_REG_HCYL:
        return hob ? r.hobHcyl : r.hcyl;
      case ATA_REG_SELECT:
        return r.select;
      default:
        // Reading status acknowledges the interrupt (ATA/ATAPI-6 §5.2.11).
        this.#lowerIrq();
        return drive ? r.status : 0;
    }
  }

  /** The alternate status register (no interrupt acknowledge). */
  readAltStatus(): number {
    if (this.#noDevices()) return 0;
    return this.selected?.regs.status ?? 0;
  }

  /** A write of the command block at `reg`. */
  write(reg: number, size: 1 | 2 | 4, value: number): void {
    if (reg === ATA_REG_DATA) {
      this.selected?.writeData(size, value);
      return;
    }
    const v = value & 0xff;
    // Writing a command block register clears HOB (ATA/ATAPI-6 §7.8).
    this.#control &= ~ATA_DC_HOB;
    if (reg === ATA_REG_STATUS_COMMAND) return this.#command(v);
    for (const d of this.drives) {
      if (!d) continue;
      const r = d.regs;
      switch (reg) {
        case ATA_REG_ERROR_FEATURE:
          r.hobFeature = r.feature;
          r.feature = v;
          break;
        case ATA_REG_NSECTOR:
          r.hobNsector = r.nsector;
          r.nsector = v;
          break;
        case ATA_REG_SECTOR:
          r.hobSector = r.sector;
          r.sector = v;
          break;
        case ATA_REG_LCYL:
          r.hobLcyl = r.lcyl;
          r.lcyl = v;
          break;
        case ATA_REG_HCYL:
          r.hobHcyl = r.hcyl;
          r.hcyl = v;
          break;
        case ATA_REG_SELECT:
          r.select = v | 0xa0;
          break;
      }
    }
    if (reg === ATA_REG_SELECT) this.#unit = (v & ATA_DEV_DEV) ? 1 : 0;
  }

  #command(command: number): void {
    const drive = this.selected;
    // Commands to an absent device 1 are ignored.
    if (!drive) return;
    if (drive.regs.status & (ATA_SR_BSY | ATA_SR_DRQ)) {
      // Only DEVICE RESET may interrupt a PACKET device that is busy.
      if (command !== ATA_CMD_DEVICE_RESET || drive.kind !== "cdrom") return;
    }
    this.#lowerIrq();
    if (command === ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC) {
      // Both devices run their diagnostics; device 0 reports (ATA/ATAPI-6 §8.11).
      for (const d of this.drives) d?.softReset();
      this.raiseIrq();
      return;
    }
    executeAta(drive, command);
  }

  /** A write of the device control register. */
  writeControl(value: number): void {
    const was = this.#control;
    this.#control = value & 0xff;
    if (!(was & ATA_DC_SRST) && (value & ATA_DC_SRST)) {
      for (const d of this.drives) {
        if (!d) continue;
        d.softReset();
        d.regs.status = ATA_SR_BSY;
      }
      this.#lowerIrq();
    } else if ((was & ATA_DC_SRST) && !(value & ATA_DC_SRST)) {
      // Reset ends: signatures, device 0 selected, no interrupt.
      for (const d of this.drives) d?.softReset();
      this.#unit = 0;
      for (const d of this.drives) if (d) d.regs.select = 0;
    }
    this.#updateLine();
  }

  /** Power-on reset of the channel, its devices and its bus master. */
  reset(): void {
    this.#unit = 0;
    this.#control = 0;
    this.#irqPending = false;
    this.busMaster.reset();
    for (const d of this.drives) d?.reset();
    this.#updateLine();
  }

  /** The channel's state. */
  saveState(): DeviceState {
    return {
      unit: this.#unit,
      control: this.#control,
      irqPending: this.#irqPending,
      busMaster: { ...this.busMaster.regs },
      drives: this.drives.map((d) => (d ? d.saveState() : null)),
    };
  }

  /** Restores {@linkcode saveState} output. */
  loadState(state: DeviceState): void {
    this.#unit = state.unit as number;
    this.#control = state.control as number;
    this.#irqPending = state.irqPending as boolean;
    Object.assign(this.busMaster.regs, state.busMaster as BusMasterState);
    const drives = state.drives as (DeviceState | null)[];
    this.drives.forEach((d, i) => {
      const s = drives[i];
      if (d && s) d.loadState(s);
    });
    this.#updateLine();
  }
}
