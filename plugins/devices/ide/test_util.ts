// Test helpers for the IDE models: sparse in-memory disks, a controller on a port space, task file helpers

import type { BlockNode, BlockStatus } from "../../../core/block/driver.ts";
import { IrqLine } from "../../../core/irq.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { type IdeDriveConfig, Piix3Ide } from "./piix3_ide.ts";

/** The byte a pattern disk holds at `offset` before anything is written there. */
export function patternByte(offset: number): number {
  return (Math.floor(offset / 512) * 7 + (offset % 512)) & 0xff;
}

/**
 * An in-memory BlockNode of any size: unwritten bytes read as {@linkcode patternByte},
 * written 512-byte sectors are kept in a map. Reads past the end fail, as BlockNode
 * requires.
 */
export class PatternDisk implements BlockNode {
  readonly driver = "pattern";
  readonly file = null;
  readonly backing = null;
  readonly #sectors = new Map<number, Uint8Array>();
  /** Operations so far (`read`/`write`/`flush`). */
  readonly log: string[] = [];

  constructor(
    readonly sizeBytes: number,
    readonly filename = "pattern",
    readonly readOnly = false,
  ) {}

  size(): number {
    return this.sizeBytes;
  }

  #sector(n: number): Uint8Array {
    let s = this.#sectors.get(n);
    if (!s) {
      s = new Uint8Array(512);
      for (let i = 0; i < 512; i++) s[i] = patternByte(n * 512 + i);
      this.#sectors.set(n, s);
    }
    return s;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    this.log.push(`read ${offset} ${buf.length}`);
    if (offset + buf.length > this.sizeBytes) {
      return Promise.reject(new RangeError("read past end"));
    }
    for (let i = 0; i < buf.length;) {
      const at = offset + i;
      const s = this.#sector(Math.floor(at / 512));
      const o = at % 512;
      const n = Math.min(512 - o, buf.length - i);
      buf.set(s.subarray(o, o + n), i);
      i += n;
    }
    return Promise.resolve();
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.log.push(`write ${offset} ${data.length}`);
    if (this.readOnly) return Promise.reject(new Error("read-only"));
    for (let i = 0; i < data.length;) {
      const at = offset + i;
      const s = this.#sector(Math.floor(at / 512));
      const o = at % 512;
      const n = Math.min(512 - o, data.length - i);
      s.set(data.subarray(i, i + n), o);
      i += n;
    }
    return Promise.resolve();
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    return this.write(offset, new Uint8Array(bytes));
  }
  discard(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<void> {
    this.log.push("flush");
    return Promise.resolve();
  }
  blockStatus(_offset: number, bytes: number): Promise<BlockStatus> {
    return Promise.resolve({ bytes, allocated: true, data: true, zero: false });
  }
  truncate(): Promise<void> {
    return Promise.reject(new Error("not resizable"));
  }
  allocatedBytes(): number {
    return this.#sectors.size * 512;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A controller on its own port space and 1 MiB of RAM, with both IRQ lines recorded. */
export interface IdeRig {
  ide: Piix3Ide;
  io: PortIoSpace;
  memory: AddressSpace;
  ram: Uint8Array;
  irq14: IrqLine;
  irq15: IrqLine;
  /** Levels IRQ 14 went through. */
  irq14Levels: boolean[];
}

/** Builds an {@linkcode IdeRig} with `drives` and realizes it. */
export async function ideRig(drives: IdeDriveConfig[]): Promise<IdeRig> {
  const io = new PortIoSpace();
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  const irq14Levels: boolean[] = [];
  const irq14 = new IrqLine("irq14", (l) => irq14Levels.push(l));
  const irq15 = new IrqLine("irq15");
  const ide = new Piix3Ide("ide", { memory, io, pci: null, irqs: [irq14, irq15] }, drives);
  await ide.realize();
  ide.reset();
  return { ide, io, memory, ram, irq14, irq15, irq14Levels };
}

/** Primary channel ports. */
export const PRI = 0x1f0;
export const PRI_CTL = 0x3f6;

/** Writes an LBA28 task file on the primary channel and a command. */
export function issueLba28(
  io: PortIoSpace,
  command: number,
  lba: number,
  count: number,
  options: { slave?: boolean; feature?: number } = {},
): void {
  io.out(PRI + 6, 1, 0xe0 | (options.slave ? 0x10 : 0) | ((lba >>> 24) & 0x0f));
  io.out(PRI + 1, 1, options.feature ?? 0);
  io.out(PRI + 2, 1, count & 0xff);
  io.out(PRI + 3, 1, lba & 0xff);
  io.out(PRI + 4, 1, (lba >>> 8) & 0xff);
  io.out(PRI + 5, 1, (lba >>> 16) & 0xff);
  io.out(PRI + 7, 1, command);
}

/** Reads `bytes` from the primary data port with 16-bit accesses. */
export function readPio(io: PortIoSpace, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 2) {
    const w = io.in(PRI, 2);
    out[i] = w & 0xff;
    out[i + 1] = w >> 8;
  }
  return out;
}

/** Writes `data` to the primary data port with 16-bit accesses. */
export function writePio(io: PortIoSpace, data: Uint8Array): void {
  for (let i = 0; i < data.length; i += 2) io.out(PRI, 2, data[i] | (data[i + 1] << 8));
}

/** The expected content of `count` pattern sectors from `lba`. */
export function patternSectors(lba: number, count: number, sectorBytes = 512): Uint8Array {
  const out = new Uint8Array(count * sectorBytes);
  for (let i = 0; i < out.length; i++) out[i] = patternByte(lba * sectorBytes + i);
  return out;
}
