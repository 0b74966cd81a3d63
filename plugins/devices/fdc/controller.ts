// The PC's floppy disk controller (`isa-fdc`, an Intel 82078 at 0x3f0, IRQ 6, ISA DMA channel 2)
//
// Commands arrive byte by byte at the FIFO (0x3f5); a read or write moves whole sectors
// between the image and guest memory through the DMA controller, then the result phase
// (ST0 ST1 ST2 C H R N) is read back after IRQ 6. Addressing follows QEMU 7.2's model:
// a sector outside the geometry ends the command with an error status; a sector inside the
// geometry but past the end of a short image reads as zeroes, and a write there fails.
// Image I/O is asynchronous: the controller stays busy (RQM clear) until it completes.
// This file keeps the registers, the command and result phases and programmed I/O;
// commands.ts has the command table, transfer.ts the data commands' DMA execution phase.

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type FloppyDrives,
  type IsaDma,
  type QtreeNode,
} from "../../../core/device.ts";
import type { BlockIo } from "../../../core/block/backend.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { Timer } from "../../../core/event_loop.ts";

import {
  CONFIG_DEFAULT,
  DIR_READ,
  DIR_WRITE,
  DOR_DMAEN,
  DOR_MOTEN0,
  DOR_MOTEN1,
  DOR_NRESET,
  DOR_SELMASK,
  DSR_DRATEMASK,
  DSR_PWRDOWN,
  DSR_SWRESET,
  MSR_CMDBUSY,
  MSR_DIO,
  MSR_NONDMA,
  MSR_RQM,
  READ_ID_NS,
  RESET_SENSEI_COUNT,
  SR0_ABNTERM,
  SR0_HEAD,
  SR0_INVCMD,
  SR0_RDYCHG,
  SR0_SEEK,
  SR1_MA,
  SRA_INTPEND,
  SRA_NDRV2,
  SRB_DR0,
  SRB_MTR0,
  SRB_MTR1,
} from "./registers.ts";
import { commandFor } from "./commands.ts";
import { nextSector } from "./transfer.ts";
import {
  CMOS_DRIVE_TYPE,
  type Drive,
  linearSector,
  newDrive,
  SECTOR_BYTES,
  seek,
} from "./geometry.ts";

/** The controller's registers savevm keeps, in order. */
const SAVED_FIELDS = [
  "sra",
  "srb",
  "dor",
  "tdr",
  "dsr",
  "msr",
  "curDrv",
  "status0",
  "dataPos",
  "dataLen",
  "dataDir",
  "eot",
  "config",
  "lock",
  "precompTrack",
  "powerDown",
  "timer0",
  "timer1",
  "resetSensei",
] as const;

/** The PC floppy controller with drives A and B. */
export class FloppyController implements Device, FloppyDrives {
  readonly model = "isa-fdc";
  readonly drives: [Drive, Drive];
  #irq: IrqLine | null;
  /** ISA DMA, or null (programmed I/O only). */
  readonly dma: IsaDma | null;
  /** Hands host I/O to the machine's loop (it waits for it). */
  readonly track: (p: Promise<void>) => Promise<void>;
  readonly dmaChannel: number;

  // The registers and command state, named as in QEMU's FDCtrl; public for commands.ts.
  sra = 0;
  srb = 0xc0;
  dor = DOR_NRESET | DOR_DMAEN;
  tdr = 0;
  dsr = 0;
  msr = MSR_RQM;
  curDrv = 0;
  status0 = 0;
  fifo = new Uint8Array(SECTOR_BYTES);
  dataPos = 0;
  dataLen = 0;
  multiTrack = false;
  dataDir = DIR_WRITE;
  eot = 0;
  /** CONFIGURE's byte (EIS, EFIFO, POLL, FIFO threshold); SAVE and DUMPREG show it. */
  config = CONFIG_DEFAULT;
  lock = 0;
  precompTrack = 0;
  powerDown = 0;
  timer0 = 0;
  timer1 = 0;
  resetSensei = 0;
  /** Bumped by every reset: an image transfer begun before it delivers nothing after it. */
  generation = 0;
  /** Transfers whose image I/O has not completed (tests wait on this). */
  pending: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    host: {
      drives: [
        { node: BlockIo | null; readOnly: boolean; id?: string } | null,
        { node: BlockIo | null; readOnly: boolean; id?: string } | null,
      ];
      irq: IrqLine | null;
      dma: IsaDma | null;
      dmaChannel?: number;
      track?: (p: Promise<void>) => Promise<void>;
    },
    machine: DeviceContext | null,
    iobase = 0x3f0,
  ) {
    this.drives = [
      newDrive(host.drives[0]?.node ?? null, host.drives[0]?.readOnly ?? false, !!host.drives[0]),
      newDrive(host.drives[1]?.node ?? null, host.drives[1]?.readOnly ?? false, !!host.drives[1]),
    ];
    this.#present = [host.drives[0] !== null, host.drives[1] !== null];
    this.#driveIds = [host.drives[0]?.id ?? "floppy0", host.drives[1]?.id ?? "floppy1"];
    this.#irq = host.irq;
    this.dma = host.dma;
    this.dmaChannel = host.dmaChannel ?? 2;
    this.track = host.track ?? ((p) => p);
    this.#iobase = iobase;
    // 0x3f0-0x3f5 and 0x3f7: 0x3f6 belongs to the IDE controller's device control.
    machine?.io.register(id, iobase, 6, {
      read: (port) => this.readRegister(port - iobase),
      write: (port, _size, value) => this.writeRegister(port - iobase, value),
    });
    machine?.io.register(`${id}-dir`, iobase + 7, 1, {
      read: () => this.readRegister(7),
      write: (_port, _size, value) => this.writeRegister(7, value),
    });
    this.#resultTimer = machine?.loop?.createTimer(`${id}-result`, () => this.#readIdResult()) ??
      null;
    this.#reset(false);
  }

  /** READ ID's answer comes when it fires. */
  readonly #resultTimer: Timer | null;
  readonly #present: [boolean, boolean];
  readonly #iobase: number;
  /** The -drive ids of drives A and B, for `info qtree`. */
  readonly #driveIds: [string, string];

  /**
   * Puts `node` in drive `unit` (null: takes the medium out), as the monitor's change and
   * eject do: the geometry follows the new medium, the head stays, the disk-change line is set.
   */
  insert(unit: number, node: BlockIo | null): void {
    const old = this.drives[unit];
    const fresh = newDrive(node, old.readOnly, true);
    Object.assign(old, {
      node,
      lastSect: fresh.lastSect,
      maxTrack: fresh.maxTrack,
      heads: fresh.heads,
      rate: fresh.rate,
      mediaChanged: true,
    });
  }

  /** CMOS 0x10 codes of drives A and B (0 for a drive slot with no drive). */
  cmosTypes(): readonly [number, number] {
    return [0, 1].map((i) => this.#present[i] ? CMOS_DRIVE_TYPE[this.drives[i].type] : 0) as [
      number,
      number,
    ];
  }

  /** The selected drive. */
  get cur(): Drive {
    return this.unit(this.curDrv);
  }

  /** Drive `n` as the controller numbers them: the TDR's boot select swaps A and B (QEMU). */
  unit(n: number): Drive {
    return this.drives[(n ^ (this.tdr >> 2)) & 1];
  }

  /** Reads register `reg` (0-7 from the base). */
  readRegister(reg: number): number {
    switch (reg & 7) {
      case 0:
        return this.sra;
      case 1:
        return this.srb;
      case 2:
        return this.dor | this.curDrv;
      case 3:
        return this.tdr;
      case 4:
        // Reading the main status takes the controller out of power-down and reset (QEMU).
        this.dsr &= ~DSR_PWRDOWN;
        this.dor |= DOR_NRESET;
        return this.msr;
      case 5:
        return this.#readData();
      case 7:
        return this.cur.mediaChanged ? 0x80 : 0;
      default:
        return 0xff;
    }
  }

  /** Writes register `reg` (0-7 from the base). */
  writeRegister(reg: number, value: number): void {
    value &= 0xff;
    switch (reg & 7) {
      case 2:
        this.#writeDor(value);
        return;
      case 3:
        if (this.dor & DOR_NRESET) this.tdr = value & 0x04;
        return;
      case 4:
        if (!(this.dor & DOR_NRESET)) return;
        if (value & DSR_SWRESET) {
          this.dor &= ~DOR_NRESET;
          this.#reset(true);
          this.dor |= DOR_NRESET;
        }
        if (value & DSR_PWRDOWN) this.#reset(true);
        this.dsr = value;
        return;
      case 5:
        this.#writeData(value);
        return;
      case 7:
        if (this.dor & DOR_NRESET) this.dsr = (this.dsr & ~DSR_DRATEMASK) | (value & DSR_DRATEMASK);
        return;
    }
  }

  #writeDor(value: number): void {
    this.srb = (this.srb & ~(SRB_MTR0 | SRB_MTR1 | SRB_DR0)) |
      (value & DOR_MOTEN0 ? SRB_MTR0 : 0) | (value & DOR_MOTEN1 ? SRB_MTR1 : 0) |
      (value & 1 ? SRB_DR0 : 0);
    if (value & DOR_NRESET && !(this.dor & DOR_NRESET)) {
      this.#reset(true);
      this.dsr &= ~DSR_PWRDOWN;
    }
    this.curDrv = value & DOR_SELMASK;
    this.dor = value;
  }

  #raiseIrq(): void {
    if (!(this.sra & SRA_INTPEND)) {
      this.#irq?.set(true);
      this.sra |= SRA_INTPEND;
    }
    this.resetSensei = 0;
  }

  #resetIrq(): void {
    this.status0 = 0;
    if (!(this.sra & SRA_INTPEND)) return;
    this.#irq?.set(false);
    this.sra &= ~SRA_INTPEND;
  }

  #reset(doIrq: boolean): void {
    this.generation++;
    this.#resultTimer?.cancel();
    this.#resetIrq();
    this.dma?.release(this.dmaChannel);
    this.sra = this.#present[1] ? 0 : SRA_NDRV2;
    this.srb = 0xc0;
    this.curDrv = 0;
    this.dor = DOR_NRESET | (this.dma ? DOR_DMAEN : 0);
    this.msr = MSR_RQM;
    this.resetSensei = 0;
    this.dataPos = 0;
    this.dataLen = 0;
    this.multiTrack = false;
    for (const d of this.drives) seek(d, 0, 0, 1);
    this.#resetFifo();
    if (doIrq) {
      this.status0 |= SR0_RDYCHG;
      this.#raiseIrq();
      this.resetSensei = RESET_SENSEI_COUNT;
    }
  }

  /** Back to the command phase: the FIFO takes a command byte (QEMU's to_command_phase). */
  #resetFifo(): void {
    this.dataDir = DIR_WRITE;
    this.dataPos = 0;
    this.msr = (this.msr & ~(MSR_CMDBUSY | MSR_DIO)) | MSR_RQM;
  }

  /** Enters the result phase with `length` bytes of the FIFO to read. */
  #setFifo(length: number): void {
    this.dataDir = DIR_READ;
    this.dataLen = length;
    this.dataPos = 0;
    this.msr |= MSR_CMDBUSY | MSR_RQM | MSR_DIO;
  }

  #readData(): number {
    if (!(this.msr & MSR_RQM) || !(this.msr & MSR_DIO)) return 0;
    if (this.msr & MSR_NONDMA) return this.#readPio();
    const value = this.fifo[this.dataPos % SECTOR_BYTES];
    if (++this.dataPos >= this.dataLen) {
      this.dataPos = 0;
      this.#resetFifo();
      this.#resetIrq();
    }
    return value;
  }

  #writeData(value: number): void {
    if (!(this.dor & DOR_NRESET)) return;
    if (!(this.msr & MSR_RQM) || this.msr & MSR_DIO) return;
    this.dsr &= ~DSR_PWRDOWN;
    if (this.msr & MSR_NONDMA) return this.#writePio(value);
    if (this.dataPos === 0) {
      this.dataLen = commandFor(value).params + 1;
      this.msr |= MSR_CMDBUSY;
    }
    this.fifo[this.dataPos++] = value;
    if (this.dataPos !== this.dataLen) return;
    // The execution phase: no byte is taken until the command moves on.
    this.msr &= ~MSR_RQM;
    commandFor(this.fifo[0]).run(this);
  }

  /** Ends a command: the seven result bytes, and IRQ 6 (QEMU's fdctrl_stop_transfer). */
  stopTransfer(sr0: number, sr1: number, sr2: number): void {
    const d = this.cur;
    this.status0 = (this.status0 & ~0x07) | (this.curDrv & 1) | (d.head ? SR0_HEAD : 0) | sr0;
    this.fifo.set([this.status0, sr1, sr2, d.track, d.head, d.sect, 2]);
    this.dataDir = DIR_READ;
    this.dma?.release(this.dmaChannel);
    this.msr = (this.msr | MSR_RQM | MSR_DIO) & ~MSR_NONDMA;
    this.#pioStuck = false;
    this.#setFifo(7);
    this.#raiseIrq();
  }

  /** Answers one byte (VERSION, LOCK...). */
  reply(bytes: number[]): void {
    this.fifo.set(bytes);
    this.#setFifo(bytes.length);
  }

  /** Answers "invalid command" (ST0 0x80), QEMU's fdctrl_unimplemented. */
  invalid(): void {
    this.reply([SR0_INVCMD]);
  }

  /** Ends a command that has no result phase. */
  done(raise: boolean): void {
    this.#resetFifo();
    if (raise) {
      this.status0 |= SR0_SEEK;
      this.#raiseIrq();
    }
  }

  /** Selects the drive the command's second byte names; returns it. */
  selectFromCommand(): Drive {
    this.curDrv = this.fifo[1] & DOR_SELMASK;
    return this.cur;
  }

  /** SENSE INTERRUPT STATUS: ST0 and the cylinder, or the four answers a reset owes. */
  senseInterrupt(): void {
    if (this.resetSensei > 0) {
      this.fifo[0] = SR0_RDYCHG + RESET_SENSEI_COUNT - this.resetSensei;
      this.resetSensei--;
    } else if (!(this.sra & SRA_INTPEND)) {
      this.reply([SR0_INVCMD]);
      return;
    } else {
      this.fifo[0] = (this.status0 & ~(SR0_HEAD | 0x03)) | (this.curDrv & 1);
    }
    this.fifo[1] = this.cur.track;
    this.#setFifo(2);
    this.#resetIrq();
    this.status0 = SR0_RDYCHG;
  }

  /**
   * READ ID on the current drive: the head the command names, then the answer a fiftieth
   * of a second later on the virtual clock (QEMU's result timer); without a machine, at once.
   */
  readId(): void {
    this.cur.head = (this.fifo[1] >> 2) & 1;
    if (this.#resultTimer) this.#resultTimer.armIn(READ_ID_NS);
    else this.#readIdResult();
  }

  /** The READ ID answer: the next sector under the head, or a missing address mark at the wrong data rate. */
  #readIdResult(): void {
    const d = this.cur;
    // Pretend the disk spins: the next sector comes under the head (QEMU).
    if (d.lastSect !== 0) d.sect = (d.sect % d.lastSect) + 1;
    if ((this.dsr & DSR_DRATEMASK) !== d.rate) this.stopTransfer(SR0_ABNTERM, SR1_MA, 0);
    else this.stopTransfer(0, 0, 0);
  }

  /**
   * The programmed-I/O data phase (DMA off): IRQ 6 says it began; the bytes go through the
   * FIFO, read for every command but WRITE (QEMU's VERIFY and SCANs read out like a READ).
   */
  startPio(direction: number): void {
    this.msr |= MSR_NONDMA | MSR_RQM;
    if (direction !== DIR_WRITE) this.msr |= MSR_DIO;
    this.#raiseIrq();
    if (direction !== DIR_WRITE) this.#fetchSector();
  }

  /**
   * Loads the sector under the head into the FIFO for a programmed-I/O read (zeroes outside
   * the image). The host read is asynchronous: RQM is clear until the bytes are there,
   * where QEMU reads synchronously; a guest that polls RQM before each byte sees the same.
   */
  #fetchSector(): void {
    const d = this.cur;
    const offset = linearSector(d) * SECTOR_BYTES;
    this.fifo.fill(0);
    if (!d.node || offset < 0 || offset + SECTOR_BYTES > d.node.size()) return;
    const generation = this.generation;
    const sector = new Uint8Array(SECTOR_BYTES);
    this.msr &= ~MSR_RQM;
    const ready = () => {
      if (generation !== this.generation) return;
      this.fifo.set(sector);
      this.msr |= MSR_RQM;
    };
    this.pending = this.track(
      d.node.read(offset, sector).then(ready, () => {
        sector.fill(0);
        ready();
      }),
    );
  }

  /** True once a programmed-I/O transfer could not step to its next sector (QEMU then reads 0). */
  #pioStuck = false;

  /** One byte of a programmed-I/O read (QEMU's fdctrl_read_data with NONDMA). */
  #readPio(): number {
    if (this.#pioStuck) return 0;
    const value = this.fifo[this.dataPos % SECTOR_BYTES];
    if (++this.dataPos === this.dataLen) {
      this.dataPos = 0;
      this.stopTransfer(0, 0, 0);
    } else if (this.dataPos % SECTOR_BYTES === 0) {
      // The next sector now, so its bytes are there when the guest asks.
      if (nextSector(this, this.cur)) this.#fetchSector();
      else this.#pioStuck = true;
    }
    return value;
  }

  /**
   * One byte of a programmed-I/O write: a full sector (or the last byte) goes to the image,
   * RQM clear meanwhile. A sector that cannot be written leaves the transfer where it is,
   * as QEMU's does (no result phase).
   */
  #writePio(value: number): void {
    const pos = this.dataPos++ % SECTOR_BYTES;
    this.fifo[pos] = value;
    if (pos !== SECTOR_BYTES - 1 && this.dataPos !== this.dataLen) return;
    const d = this.cur;
    const offset = linearSector(d) * SECTOR_BYTES;
    const generation = this.generation;
    const sector = this.fifo.slice();
    this.msr &= ~MSR_RQM;
    const fits = d.node && !d.readOnly && offset >= 0 && offset + SECTOR_BYTES <= d.node.size();
    const write = fits ? d.node!.write(offset, sector) : Promise.reject(new RangeError("outside"));
    this.pending = this.track(write.then(() => {
      if (generation !== this.generation) return;
      this.msr |= MSR_RQM;
      if (!nextSector(this, d)) return;
      if (this.dataPos === this.dataLen) this.stopTransfer(0, 0, 0);
    }, () => {
      if (generation === this.generation) this.msr |= MSR_RQM;
    }));
  }

  /**
   * QEMU's isa-fdc and the floppy devices on its floppy-bus.0 (unit 1 first: the bus lists
   * its newest child first), with the drive type the medium gave each.
   */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    const floppies: QtreeNode[] = [];
    for (const unit of [1, 0]) {
      if (!this.#present[unit]) continue;
      floppies.push({
        model: "floppy",
        properties: [
          ["unit", unit],
          ["drive", this.#driveIds[unit]],
          ["backend_defaults", "auto"],
          ["logical_block_size", { bytes: 512 }],
          ["physical_block_size", { bytes: 512 }],
          ["min_io_size", { bytes: 0 }],
          ["opt_io_size", { bytes: 0 }],
          ["discard_granularity", { bytes: 0xffffffff }],
          ["write-cache", "auto"],
          ["share-rw", false],
          ["account-invalid", "auto"],
          ["account-failed", "auto"],
          ["drive-type", this.drives[unit].type],
        ],
      });
    }
    return {
      bus: "isa",
      nodes: [{
        model: "isa-fdc",
        properties: [
          ["iobase", this.#iobase],
          ["irq", 6],
          ["dma", this.dmaChannel],
          ["fdtypeA", "auto"],
          ["fdtypeB", "auto"],
          ["fallback", "288"],
        ],
        buses: [{ name: "floppy-bus.0", type: "floppy-bus", devices: floppies }],
      }],
    };
  }

  /**
   * A system reset: QEMU's isa-fdc reset is the controller's own (fdctrl_reset without an
   * interrupt); what SPECIFY, CONFIGURE, LOCK, PERPENDICULAR MODE and the DSR and TDR set
   * stays as the guest left it.
   */
  reset(): void {
    this.#reset(false);
  }

  saveState(): DeviceState {
    return {
      regs: SAVED_FIELDS.map((k) => this[k]),
      multiTrack: this.multiTrack,
      fifo: this.fifo.slice(),
      drives: this.drives.map((d) => [d.head, d.track, d.sect, d.mediaChanged ? 1 : 0]),
      readIdPending: this.#resultTimer?.armed ?? false,
    };
  }

  loadState(state: DeviceState): void {
    const regs = state.regs as number[];
    SAVED_FIELDS.forEach((k, i) => this[k] = regs[i]);
    this.multiTrack = state.multiTrack as boolean;
    this.fifo.set(state.fifo as Uint8Array);
    (state.drives as number[][]).forEach((v, i) => {
      Object.assign(this.drives[i], { head: v[0], track: v[1], sect: v[2], mediaChanged: !!v[3] });
    });
    this.generation++;
    // A READ ID in flight answers a full 20 ms after the load (QEMU keeps what was left).
    this.#resultTimer?.cancel();
    if (state.readIdPending) this.readId();
  }
}
