// The execution phase of the 82078's data commands: READ, WRITE, VERIFY and the three SCANs
//
// QEMU 7.2's model (fdctrl_start_transfer, fdctrl_transfer_handler): the first sector is
// sought and checked, then DMA channel 2 is asked for (VERIFY moves no data and runs at
// once), the sectors the command covers are walked within the DMA count, and the result
// phase names where the walk stopped. With DMA off the bytes go through the FIFO instead
// (controller.ts). A SCAN compares memory with the medium sector by sector and stops on the
// first sector that satisfies it; QEMU then reports "scan equal hit" (ST2 0x08) whatever
// stopped it, and the DMA count has moved over the sectors before that one only.

import type { BlockIo } from "../../../core/block/backend.ts";
import type { IsaDma } from "../../../core/device.ts";
import type { FloppyController } from "./controller.ts";
import { type Drive, linearSector, SECTOR_BYTES, seek } from "./geometry.ts";
import {
  DIR_READ,
  DIR_SCANE,
  DIR_SCANH,
  DIR_SCANL,
  DIR_VERIFY,
  DIR_WRITE,
  DOR_DMAEN,
  DSR_DRATEMASK,
  MSR_RQM,
  SR0_ABNTERM,
  SR0_SEEK,
  SR1_EC,
  SR1_MA,
  SR1_NW,
  SR2_SEH,
} from "./registers.ts";

/** One sector of a transfer: where it is in the image, how much of it moves, and the drive's
 * head, track, sector and ST0 before it (restored when the command stops there). */
interface Chunk {
  readonly offset: number;
  readonly bytes: number;
  readonly at: [number, number, number, number];
}

/** True for the three SCAN directions. */
function isScan(direction: number): boolean {
  return direction === DIR_SCANE || direction === DIR_SCANL || direction === DIR_SCANH;
}

/**
 * READ, WRITE, VERIFY or SCAN: seek to the first sector, check the data rate and the end of
 * track, then wait for the DMA controller, or start the programmed-I/O data phase.
 */
export function startTransfer(fdc: FloppyController, direction: number): void {
  const d = fdc.selectFromCommand();
  const [kt, kh, ks] = [fdc.fifo[2], fdc.fifo[3], fdc.fifo[4]];
  const fail = (sr1: number) => {
    fdc.stopTransfer(SR0_ABNTERM, sr1, 0);
    fdc.fifo.set([kt, kh, ks], 3);
  };
  const moved = seek(d, kh, kt, ks);
  if (moved === 2) return fail(0);
  if (moved === 3) return fail(SR1_EC);
  if (moved === 1) fdc.status0 |= SR0_SEEK;
  if ((fdc.dsr & DSR_DRATEMASK) !== d.rate) return fail(SR1_MA);
  fdc.dataDir = direction;
  fdc.dataPos = 0;
  fdc.multiTrack = (fdc.fifo[0] & 0x80) !== 0;
  if (fdc.fifo[5] === 0) fdc.dataLen = fdc.fifo[8];
  else {
    // An end-of-track sector before the first one: QEMU 7.2 refuses it (missing address mark).
    if (fdc.fifo[6] - ks + 1 < 0) return fail(SR1_MA);
    const sectors = fdc.fifo[6] - ks + 1 + (fdc.multiTrack ? fdc.fifo[6] : 0);
    fdc.dataLen = (128 << Math.min(fdc.fifo[5], 7)) * sectors;
  }
  fdc.eot = fdc.fifo[6];
  const dma = fdc.dma;
  // QEMU 7.2 only logs a DMA mode that does not fit the command and uses DMA anyway.
  if (!(fdc.dor & DOR_DMAEN) || !dma) return fdc.startPio(direction);
  fdc.msr &= ~MSR_RQM;
  // VERIFY compares the medium with itself: no DMA request, the whole length at once.
  if (direction === DIR_VERIFY) return transfer(fdc, dma, fdc.dataLen);
  let started = false;
  dma.hold(fdc.dmaChannel, () => {
    if (started) return;
    started = true;
    dma.release(fdc.dmaChannel);
    transfer(fdc, dma, Math.min(dma.remaining(fdc.dmaChannel), fdc.dataLen));
  });
}

/** QEMU's fdctrl_seek_to_next_sect: false at the end of the cylinder. */
export function nextSector(fdc: FloppyController, d: Drive): boolean {
  let [head, track, sect] = [d.head, d.track, d.sect];
  let more = true;
  if (sect >= d.lastSect || sect === fdc.eot) {
    sect = 1;
    if (fdc.multiTrack) {
      if (head === 0 && d.heads === 2) head = 1;
      else {
        head = 0;
        track++;
        fdc.status0 |= SR0_SEEK;
        if (d.heads === 1) more = false;
      }
    } else {
      fdc.status0 |= SR0_SEEK;
      track++;
      more = false;
    }
  } else sect++;
  seek(d, head, track, sect);
  return more;
}

/**
 * The sectors `total` bytes cover from the drive's position, the drive moved past them
 * (at most to the end of the cylinder). The walk happens first so the result names the
 * right sector; no guest access reaches the controller meanwhile (RQM is clear).
 */
function walk(fdc: FloppyController, d: Drive, total: number): Chunk[] {
  const chunks: Chunk[] = [];
  for (let pos = 0; pos < total;) {
    const bytes = Math.min(SECTOR_BYTES, total - pos);
    chunks.push({
      offset: linearSector(d) * SECTOR_BYTES,
      bytes,
      at: [d.head, d.track, d.sect, fdc.status0],
    });
    pos += bytes;
    if (pos % SECTOR_BYTES === 0 && !nextSector(fdc, d)) break;
  }
  return chunks;
}

/**
 * The DMA part of a data command: walks the sectors, does the image I/O, then moves or
 * compares the bytes and ends the command.
 */
function transfer(fdc: FloppyController, dma: IsaDma, total: number): void {
  const d = fdc.cur;
  const chunks = walk(fdc, d, total);
  const node = d.node;
  const generation = fdc.generation;
  const direction = fdc.dataDir;
  const channel = fdc.dmaChannel;
  if (!node) return fdc.stopTransfer(SR0_ABNTERM, 0, 0);
  if (direction === DIR_WRITE && d.readOnly && chunks.length) {
    // QEMU refuses on the first sector, where it stays, and counts that sector's bytes
    // as moved: the DMA count runs down by them though memory gives nothing.
    [d.head, d.track, d.sect, fdc.status0] = chunks[0].at;
    dma.readMemory(channel, new Uint8Array(chunks[0].bytes));
    return fdc.stopTransfer(SR0_ABNTERM | SR0_SEEK, SR1_NW, 0);
  }
  const moved = chunks.reduce((n, c) => n + c.bytes, 0);
  if (direction === DIR_VERIFY) {
    // What QEMU reads for a VERIFY goes nowhere: only the walk shows.
    fdc.dataLen -= moved;
    return fdc.stopTransfer(0, 0, 0);
  }
  const size = node.size();
  const current = () => generation === fdc.generation;
  let work: Promise<void>;
  if (direction === DIR_READ) {
    work = readChunks(node, size, chunks).then((data) => {
      if (!current()) return;
      for (const buf of data) dma.writeMemory(channel, buf);
      fdc.dataLen -= moved;
      fdc.stopTransfer(0, 0, 0);
    });
  } else if (isScan(direction)) {
    work = readChunks(node, size, chunks).then((data) => {
      if (!current()) return;
      const hit = scan(dma, channel, direction, data);
      // The sectors before the one that stopped the scan are the transfer's length.
      const compared = chunks.slice(0, hit < 0 ? chunks.length : hit);
      if (hit >= 0) [d.head, d.track, d.sect, fdc.status0] = chunks[hit].at;
      fdc.dataLen -= compared.reduce((n, c) => n + c.bytes, 0);
      fdc.stopTransfer(0, 0, SR2_SEH);
    });
  } else {
    work = writeChunks(node, size, chunks, dma, channel).then((failed) => {
      if (!current()) return;
      fdc.dataLen -= moved;
      if (failed < 0) return fdc.stopTransfer(0, 0, 0);
      // QEMU stops on the sector it could not write: the result names that sector.
      [d.head, d.track, d.sect, fdc.status0] = chunks[failed].at;
      fdc.stopTransfer(SR0_ABNTERM | SR0_SEEK, 0, 0);
    });
  }
  fdc.pending = fdc.track(work.catch(() => {
    if (current()) fdc.stopTransfer(SR0_ABNTERM | SR0_SEEK, 0, 0);
  }));
}

/**
 * Compares memory at the channel's position with each sector read (as C's memcmp, memory
 * first): the index of the first sector that satisfies the scan (equal; or memory lower
 * for SCAN LOW OR EQUAL, higher for SCAN HIGH OR EQUAL), -1 when none did. The channel
 * moves over the sectors that did not.
 */
function scan(dma: IsaDma, channel: number, direction: number, data: Uint8Array[]): number {
  for (const [i, disk] of data.entries()) {
    const memory = new Uint8Array(disk.length);
    dma.peekMemory(channel, memory);
    const at = memory.findIndex((b, k) => b !== disk[k]);
    const order = at < 0 ? 0 : memory[at] - disk[at];
    if (
      order === 0 || (order < 0 && direction === DIR_SCANL) ||
      (order > 0 && direction === DIR_SCANH)
    ) return i;
    dma.readMemory(channel, memory);
  }
  return -1;
}

/** Reads whole sectors; outside the image they read as zeroes (QEMU: "image size is too small"). */
async function readChunks(
  node: BlockIo,
  size: number,
  chunks: readonly Chunk[],
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const c of chunks) {
    const sector = new Uint8Array(SECTOR_BYTES);
    if (c.offset >= 0 && c.offset + SECTOR_BYTES <= size) await node.read(c.offset, sector);
    out.push(sector.subarray(0, c.bytes));
  }
  return out;
}

/**
 * Takes the bytes from memory now, then writes them in order; the index of the first sector
 * outside the image (nothing written from it on), or -1 when all were written.
 */
async function writeChunks(
  node: BlockIo,
  size: number,
  chunks: readonly Chunk[],
  dma: IsaDma,
  channel: number,
): Promise<number> {
  const data = chunks.map((c) => {
    const buf = new Uint8Array(c.bytes);
    dma.readMemory(channel, buf);
    return buf;
  });
  for (const [i, c] of chunks.entries()) {
    if (c.offset < 0 || c.offset + SECTOR_BYTES > size) return i;
    const sector = new Uint8Array(SECTOR_BYTES);
    if (c.bytes < SECTOR_BYTES) await node.read(c.offset, sector);
    sector.set(data[i]);
    await node.write(c.offset, sector);
  }
  return -1;
}
