// SFF-8038i bus master IDE registers of one channel and the PRD table walk

import type { AddressSpace } from "../../../core/memory/address_space.ts";

/** Register offsets in a channel's 8-byte bus master block (SFF-8038i §3). */
export const BM_COMMAND = 0;
export const BM_STATUS = 2;
export const BM_PRD_TABLE = 4;

/** Command register bits: start/stop, and the direction (1 = the device writes memory). */
export const BM_CMD_START = 0x01;
export const BM_CMD_WRITE = 0x08;

/** Status register bits. */
export const BM_STATUS_ACTIVE = 0x01;
export const BM_STATUS_ERROR = 0x02;
export const BM_STATUS_INT = 0x04;
export const BM_STATUS_DRIVE0_DMA = 0x20;
export const BM_STATUS_DRIVE1_DMA = 0x40;

/** A PRD entry's end-of-table flag (bit 31 of its second dword). */
export const PRD_EOT = 0x80000000;

/** The longest PRD table: one 64 KiB region of 8-byte entries. */
const PRD_MAX_ENTRIES = 8192;

/** How a transfer through the PRD table ended. */
export const DmaOutcome = {
  /** All data moved and the table ended exactly with it (Active clears). */
  Exact: 0,
  /** All data moved with PRD space left over (Active stays set). */
  Larger: 1,
  /** The table ended before the data did. */
  Short: 2,
  /** A PRD pointed outside guest RAM (or the table itself did). */
  Fault: 3,
} as const;

/** One of the {@linkcode DmaOutcome} codes. */
export type DmaOutcome = typeof DmaOutcome[keyof typeof DmaOutcome];

/** The bus master registers of one channel, as plain numbers for save state. */
export interface BusMasterState {
  [key: string]: number;
  command: number;
  status: number;
  prdTable: number;
}

/**
 * One channel's bus master engine: the command, status and PRD table pointer
 * registers, and scatter/gather of a transfer through the PRD table in guest memory.
 */
export class BusMaster {
  /** The register values. */
  readonly regs: BusMasterState = { command: 0, status: 0, prdTable: 0 };
  #memory: AddressSpace;
  #onStart: () => void;

  /**
   * @param memory guest memory the PRDs point into
   * @param onStart called when the guest sets the start bit (a DMA command may be waiting)
   */
  constructor(memory: AddressSpace, onStart: () => void) {
    this.#memory = memory;
    this.#onStart = onStart;
  }

  /** True while the start bit is set. */
  get started(): boolean {
    return (this.regs.command & BM_CMD_START) !== 0;
  }

  /** Power-on values. */
  reset(): void {
    this.regs.command = 0;
    this.regs.status = 0;
    this.regs.prdTable = 0;
  }

  /** A read of the channel's register block at `offset` (0..7). */
  read(offset: number, size: 1 | 2 | 4): number {
    let v: number;
    if (offset >= BM_PRD_TABLE) v = this.regs.prdTable >>> (8 * (offset - BM_PRD_TABLE));
    else if (offset === BM_STATUS) v = this.regs.status;
    else if (offset === BM_COMMAND) v = this.regs.command;
    else v = 0;
    if (size === 2 && offset < BM_PRD_TABLE) v |= this.read(offset + 1, 1) << 8;
    if (size === 4 && offset < BM_PRD_TABLE) {
      v |= (this.read(offset + 1, 1) << 8) | (this.read(offset + 2, 2) << 16);
    }
    return size === 4 ? v >>> 0 : v & ((1 << (8 * size)) - 1);
  }

  /** A write of the channel's register block at `offset`. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (at === BM_COMMAND) this.#writeCommand(byte);
      else if (at === BM_STATUS) {
        // Error and interrupt are write-one-to-clear; the drive DMA bits are plain R/W.
        const r = this.regs;
        r.status = (r.status & ~(byte & (BM_STATUS_ERROR | BM_STATUS_INT)) &
          ~(BM_STATUS_DRIVE0_DMA | BM_STATUS_DRIVE1_DMA)) |
          (byte & (BM_STATUS_DRIVE0_DMA | BM_STATUS_DRIVE1_DMA));
      } else if (at >= BM_PRD_TABLE && at < BM_PRD_TABLE + 4) {
        const shift = 8 * (at - BM_PRD_TABLE);
        const mask = (0xff << shift) >>> 0;
        // The table is dword aligned: bits 1:0 read as zero.
        this.regs.prdTable = (((this.regs.prdTable & ~mask) | (byte << shift)) & ~3) >>> 0;
      }
    }
  }

  #writeCommand(byte: number): void {
    const r = this.regs;
    const wasStarted = (r.command & BM_CMD_START) !== 0;
    if (!(byte & BM_CMD_START)) {
      // Stopping ends the transfer for the host; Active clears (SFF-8038i §3.1).
      r.command = byte & BM_CMD_WRITE;
      r.status &= ~BM_STATUS_ACTIVE;
      return;
    }
    // The direction may not change while the engine runs.
    r.command = wasStarted ? (r.command & BM_CMD_WRITE) | BM_CMD_START : byte & 0x09;
    if (!wasStarted) {
      r.status |= BM_STATUS_ACTIVE;
      this.#onStart();
    }
  }

  /** Marks the end of a transfer: Active from `outcome`, Error on a fault. */
  finish(outcome: DmaOutcome): void {
    const r = this.regs;
    if (outcome !== DmaOutcome.Larger) r.status &= ~BM_STATUS_ACTIVE;
    if (outcome === DmaOutcome.Fault) r.status |= BM_STATUS_ERROR;
  }

  /** Sets the interrupt bit (the drive raised its interrupt). */
  interrupt(): void {
    this.regs.status |= BM_STATUS_INT;
  }

  /** Copies `data` into guest memory through the PRD table (a device-to-memory transfer). */
  scatter(data: Uint8Array): DmaOutcome {
    const cursor = this.cursor();
    return cursor.scatter(data, true)!;
  }

  /** Fills `out` from guest memory through the PRD table (a memory-to-device transfer). */
  gather(out: Uint8Array): DmaOutcome {
    const cursor = this.cursor();
    return cursor.gather(out, true)!;
  }

  /**
   * A walk of the PRD table from its first entry that a transfer can feed in pieces,
   * so a long read (an ATAPI READ(12) of a whole disc) never needs one host buffer for
   * all of it.
   */
  cursor(): PrdCursor {
    return new PrdCursor(this.#memory, this.regs.prdTable);
  }
}

/**
 * A position in a PRD table: the entry being filled and the bytes used of it. Each
 * piece of a transfer continues where the previous one stopped.
 */
export class PrdCursor {
  #memory: AddressSpace;
  #table: number;
  #index = 0;
  #entryAddress = 0;
  #entryLength = 0;
  #entryEot = false;
  /** Bytes of the current entry already used; -1 before the entry is read. */
  #used = -1;
  #entry = new Uint8Array(8);
  #view = new DataView(this.#entry.buffer);

  constructor(memory: AddressSpace, table: number) {
    this.#memory = memory;
    this.#table = table;
  }

  /**
   * Copies the next `data.length` bytes of a device-to-memory transfer. Returns null
   * when more pieces may follow, or how the transfer ended: Fault or Short at once,
   * Exact or Larger after the piece marked `final`.
   */
  scatter(data: Uint8Array, final: boolean): DmaOutcome | null {
    return this.#walk(data.length, final, (address, done, n) => {
      this.#memory.dmaWrite(address, data.subarray(done, done + n));
    });
  }

  /** The memory-to-device twin of {@linkcode scatter}. */
  gather(out: Uint8Array, final: boolean): DmaOutcome | null {
    return this.#walk(out.length, final, (address, done, n) => {
      this.#memory.dmaRead(address, out.subarray(done, done + n));
    });
  }

  #walk(
    bytes: number,
    final: boolean,
    step: (address: number, done: number, n: number) => void,
  ): DmaOutcome | null {
    let done = 0;
    try {
      while (done < bytes) {
        if (this.#used < 0 || this.#used === this.#entryLength) {
          if (this.#used >= 0 && this.#entryEot) return DmaOutcome.Short;
          if (this.#used >= 0) this.#index++;
          if (this.#index >= PRD_MAX_ENTRIES) return DmaOutcome.Short;
          this.#readEntry();
        }
        const n = Math.min(this.#entryLength - this.#used, bytes - done);
        step((this.#entryAddress + this.#used) >>> 0, done, n);
        this.#used += n;
        done += n;
      }
    } catch (error) {
      if (error instanceof RangeError) return DmaOutcome.Fault;
      throw error;
    }
    if (!final) return null;
    return this.#entryEot && this.#used === this.#entryLength
      ? DmaOutcome.Exact
      : DmaOutcome.Larger;
  }

  #readEntry(): void {
    // The table may not cross a 64 KiB boundary: the entry pointer wraps inside it.
    const at = (this.#table & 0xffff0000) + ((this.#table + 8 * this.#index) & 0xffff);
    this.#memory.dmaRead(at >>> 0, this.#entry);
    this.#entryAddress = this.#view.getUint32(0, true) & ~1;
    const flags = this.#view.getUint32(4, true);
    this.#entryLength = flags & 0xfffe || 0x10000;
    this.#entryEot = (flags & PRD_EOT) !== 0;
    this.#used = 0;
  }
}
