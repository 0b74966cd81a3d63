import assert from "node:assert/strict";
import type { BlockIo } from "../../../core/block/backend.ts";
import type { DeviceContext } from "../../../core/device.ts";
import { IrqLine } from "../../../core/irq.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { DmaI8257 } from "../dma_i8257.ts";
import { FloppyController } from "./controller.ts";

const FDC = 0x3f0;
const RAM_BYTES = 1 << 20;

/** An image in memory that refuses (and counts) any host access outside its bytes. */
class MemDisk implements BlockIo {
  readonly bytes: Uint8Array;
  outside = 0;
  reads = 0;
  constructor(sizeBytes: number) {
    this.bytes = new Uint8Array(sizeBytes);
    for (let i = 0; i < sizeBytes; i++) this.bytes[i] = (i * 31 + (i >> 9) * 7) & 0xff;
  }
  size(): number {
    return this.bytes.length;
  }
  #check(offset: number, length: number): void {
    if (offset < 0 || offset + length > this.bytes.length) {
      this.outside++;
      throw new RangeError(`outside the image: ${offset}+${length}`);
    }
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    this.reads++;
    this.#check(offset, buf.length);
    buf.set(this.bytes.subarray(offset, offset + buf.length));
    return Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.#check(offset, data.length);
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** A virtual clock that only arms: `due` lists what is armed, `fire()` runs it. */
class FakeLoop {
  due: { delayNs: number; run: () => void }[] = [];
  createTimer(_name: string, run: () => void) {
    const armed = () => this.due.some((t) => t.run === run);
    return {
      armIn: (delayNs: number) => this.due.push({ delayNs, run }),
      cancel: () => this.due = this.due.filter((t) => t.run !== run),
      get armed() {
        return armed();
      },
    };
  }
  fire(): void {
    const due = this.due;
    this.due = [];
    for (const t of due) t.run();
  }
}

function rig(imageBytes: number, options: { readOnly?: boolean; loop?: FakeLoop } = {}) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, RAM_BYTES);
  const io = new PortIoSpace();
  const ctx = { memory, io, loop: options.loop } as unknown as DeviceContext;
  const irq = new IrqLine("isa-irq6");
  const dma = new DmaI8257("dma", ctx);
  const disk = new MemDisk(imageBytes);
  const fdc = new FloppyController("fdc", {
    drives: [{ node: disk, readOnly: options.readOnly ?? false }, null],
    irq,
    dma,
  }, ctx);
  const out = (port: number, value: number) => io.out(port, 1, value);
  /** Channel 2 at `address` for `bytes`, `mode` 0x46 (to memory) or 0x4a (from memory). */
  const programDma = (address: number, bytes: number, mode = 0x46) => {
    out(0x0a, 0x06);
    out(0x0c, 0);
    out(0x04, address & 0xff);
    out(0x04, (address >> 8) & 0xff);
    out(0x0c, 0);
    out(0x05, (bytes - 1) & 0xff);
    out(0x05, ((bytes - 1) >> 8) & 0xff);
    out(0x0b, mode);
    out(0x81, (address >> 16) & 0xff);
    out(0x0a, 0x02);
  };
  const command = (bytes: number[]) => bytes.forEach((b) => out(FDC + 5, b));
  const result = (n: number) => Array.from({ length: n }, () => io.in(FDC + 5, 1));
  /** A READ (0xe6: MT, MFM, SK) or WRITE (0xc5) of (c, h, s) to `eot` on drive 0. */
  const transfer = (op: number, c: number, h: number, s: number, eot: number) =>
    command([op, h << 2, c, h, s, 2, eot, 0x1b, 0xff]);
  return { ram, io, irq, dma, disk, fdc, out, programDma, command, result, transfer };
}

const MB144 = 1474560;

Deno.test("FloppyController READ moves sectors through DMA channel 2 and reports C H R N after IRQ 6", async () => {
  const r = rig(MB144);
  r.programDma(0x20000, 1024);
  r.transfer(0xe6, 0, 0, 1, 18);
  assert.equal(r.io.in(FDC + 4, 1) & 0x80, 0, "busy while the image is read");
  await r.fdc.pending;
  assert.equal(r.irq.level, true);
  assert.equal(r.io.in(FDC + 4, 1), 0xd0, "RQM, DIO, busy: the result phase");
  // ST0 (drive 0, head 0), ST1, ST2, then the sector after the last one moved.
  assert.deepEqual(r.result(7), [0x00, 0, 0, 0, 0, 3, 2]);
  assert.equal(r.irq.level, false);
  assert.equal(r.io.in(FDC + 4, 1), 0x80);
  assert.deepEqual(r.ram.subarray(0x20000, 0x20400), r.disk.bytes.subarray(0, 1024));
  assert.equal(r.io.in(0x08, 1) & 0x04, 0x04, "channel 2 reached its terminal count");
});

Deno.test("FloppyController READ with MT crosses to head 1 at the end of the track", async () => {
  const r = rig(MB144);
  r.programDma(0x30000, 4 * 512);
  r.transfer(0xe6, 3, 0, 17, 18);
  await r.fdc.pending;
  // Seek end (cylinder 0 to 3) and head 1 in ST0; the next sector is head 1's third.
  assert.deepEqual(r.result(7), [0x24, 0, 0, 3, 1, 3, 2]);
  const lba = (3 * 2 + 0) * 18 + 16;
  assert.deepEqual(
    r.ram.subarray(0x30000, 0x30800),
    r.disk.bytes.subarray(lba * 512, (lba + 4) * 512),
  );
});

Deno.test("FloppyController refuses a cylinder past the disk and a sector past the track with an error status", async () => {
  const r = rig(MB144);
  r.ram.fill(0x55, 0x20000, 0x20400);
  r.programDma(0x20000, 1024);
  r.transfer(0xe6, 200, 0, 1, 18);
  assert.equal(r.irq.level, true);
  // Abnormal termination; the result names the sector asked for.
  assert.deepEqual(r.result(7), [0x40, 0, 0, 200, 0, 1, 2]);
  r.transfer(0xe6, 5, 1, 40, 40);
  // End of cylinder; the head never moved, so ST0 names head 0.
  assert.deepEqual(r.result(7), [0x40, 0x80, 0, 5, 1, 40, 2], "end of cylinder");
  await r.fdc.pending;
  assert.equal(r.disk.reads, 0);
  assert.ok(r.ram.subarray(0x20000, 0x20400).every((b) => b === 0x55));
});

Deno.test("FloppyController with a DMA address past RAM completes without touching RAM or the host beyond the image", async () => {
  const r = rig(MB144);
  const before = r.ram.slice();
  // Page 0xff: 0xff0000, far past the 1 MiB of RAM; a 64 KiB count, more than the command needs.
  r.programDma(0xff0000, 0x10000);
  r.transfer(0xe6, 0, 0, 1, 18);
  await r.fdc.pending;
  assert.deepEqual(r.result(7), [0x20, 0, 0, 1, 0, 1, 2], "the whole track, then a step");
  assert.deepEqual(r.ram, before);
  assert.equal(r.disk.outside, 0);
});

Deno.test("FloppyController reads zeroes past the end of a short image and fails a write there", async () => {
  // 100 KiB matches no format: QEMU's fallback drive (2.88 MB: 36 sectors, 1 Mbit/s).
  const r = rig(100 * 1024);
  r.out(FDC + 7, 3); // data rate 1M
  r.ram.fill(0x55, 0x20000, 0x20400);
  r.programDma(0x20000, 1024);
  r.transfer(0xe6, 10, 0, 1, 36);
  await r.fdc.pending;
  assert.equal(r.result(7)[0] & 0xc0, 0, "a read inside the geometry succeeds");
  assert.ok(r.ram.subarray(0x20000, 0x20400).every((b) => b === 0), "zeroes past the image");
  r.programDma(0x20000, 512, 0x4a);
  r.transfer(0xc5, 10, 0, 1, 36);
  await r.fdc.pending;
  assert.equal(r.result(7)[0] & 0x40, 0x40, "a write past the image ends abnormally");
  assert.equal(r.disk.outside, 0, "the host file is never asked for bytes it does not have");
});

Deno.test("FloppyController sizes an oversized image as the fallback drive and stays inside it", async () => {
  const r = rig(3 << 20);
  r.out(FDC + 7, 3);
  r.programDma(0x20000, 512);
  r.transfer(0xe6, 79, 1, 36, 36); // the last sector of a 2.88 MB geometry
  await r.fdc.pending;
  assert.equal(r.result(7)[0] & 0xc0, 0);
  const lba = (79 * 2 + 1) * 36 + 35;
  assert.deepEqual(
    r.ram.subarray(0x20000, 0x20200),
    r.disk.bytes.subarray(lba * 512, lba * 512 + 512),
  );
  // The wrong data rate for the medium: missing address mark, as QEMU's check_media_rate.
  r.out(FDC + 7, 0);
  r.transfer(0xe6, 0, 0, 1, 36);
  assert.deepEqual(r.result(7).slice(0, 2), [0x60, 0x01], "the seek to cylinder 0 happened first");
});

Deno.test("FloppyController refuses a write to a read-only medium on its first sector, counting that sector's DMA bytes as QEMU", async () => {
  const r = rig(MB144, { readOnly: true });
  const before = r.disk.bytes.slice();
  r.programDma(0x20000, 1024, 0x4a);
  r.transfer(0xc5, 0, 0, 1, 18);
  await r.fdc.pending;
  assert.deepEqual(r.result(7), [0x60, 0x02, 0, 0, 0, 1, 2], "not writable, at C0 H0 S1");
  assert.equal(r.dma.remaining(2), 512);
  assert.deepEqual(r.disk.bytes, before);
});

Deno.test("FloppyController answers an unknown command, a sense with nothing pending, and a reset as QEMU", async () => {
  const r = rig(MB144);
  r.command([0x1f]);
  assert.deepEqual(r.result(1), [0x80]);
  r.command([0x08]);
  assert.deepEqual(r.result(1), [0x80]);
  r.command([0x10]);
  assert.deepEqual(r.result(1), [0x90], "VERSION: an 82078");
  // A reset through the DOR, while a read waits for its image bytes: the read delivers nothing.
  r.ram.fill(0x55, 0x20000, 0x20200);
  r.programDma(0x20000, 512);
  r.transfer(0xe6, 0, 0, 1, 18);
  r.out(FDC + 2, 0x00);
  r.out(FDC + 2, 0x0c);
  await r.fdc.pending;
  assert.ok(r.ram.subarray(0x20000, 0x20200).every((b) => b === 0x55));
  assert.equal(r.irq.level, true);
  for (let drive = 0; drive < 4; drive++) {
    r.command([0x08]);
    assert.deepEqual(r.result(2), [0xc0 + drive, 0]);
  }
  // Recalibrate and seek raise IRQ 6; sense interrupt gives ST0 with seek end and the cylinder.
  r.command([0x0f, 0, 42]);
  r.command([0x08]);
  assert.deepEqual(r.result(2), [0x20, 42]);
  r.command([0x07, 0]);
  r.command([0x08]);
  assert.deepEqual(r.result(2), [0x20, 0]);
});

Deno.test("FloppyController.loadState() resumes a result phase another controller saved", async () => {
  const a = rig(MB144);
  a.programDma(0x20000, 512);
  a.transfer(0xe6, 2, 1, 5, 18);
  await a.fdc.pending;
  const b = rig(MB144);
  b.fdc.loadState(structuredClone(a.fdc.saveState()));
  assert.equal(b.io.in(FDC + 4, 1), a.io.in(FDC + 4, 1));
  assert.deepEqual(b.result(7), a.result(7));
  assert.deepEqual(b.fdc.saveState(), a.fdc.saveState());
});

Deno.test("FloppyController moves data through the FIFO when SPECIFY turns DMA off (programmed I/O)", async () => {
  const r = rig(MB144);
  r.command([0x03, 0xaf, 0x03]); // SPECIFY, ND: no DMA
  // A multi-track WRITE at C1 H0 S1 with EOT 1: sector 1 of head 0, then of head 1 (QEMU's
  // length for MT), byte by byte, waiting while a sector goes to the image.
  r.transfer(0xc5, 1, 0, 1, 1);
  assert.equal(r.irq.level, true, "IRQ 6: the data phase began");
  const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 13 + 7) & 0xff);
  for (const byte of data) {
    while (!(r.io.in(FDC + 4, 1) & 0x80)) await r.fdc.pending;
    assert.equal(r.io.in(FDC + 4, 1) & 0x60, 0x20, "non-DMA, host to controller");
    r.out(FDC + 5, byte);
  }
  await r.fdc.pending;
  assert.deepEqual(r.result(7), [0x20, 0, 0, 2, 0, 1, 2], "then on to cylinder 2");
  assert.deepEqual(r.disk.bytes.subarray(36 * 512, 37 * 512), data.subarray(0, 512));
  assert.deepEqual(r.disk.bytes.subarray(54 * 512, 55 * 512), data.subarray(512));
  // READ them back the same way.
  r.transfer(0xe6, 1, 0, 1, 1);
  const back: number[] = [];
  for (let i = 0; i < 1024; i++) {
    while (!(r.io.in(FDC + 4, 1) & 0x80)) await r.fdc.pending;
    assert.equal(r.io.in(FDC + 4, 1) & 0x60, 0x60, "non-DMA, controller to host");
    back.push(r.io.in(FDC + 5, 1));
  }
  assert.deepEqual(Uint8Array.from(back), data);
  assert.deepEqual(r.result(7), [0x24, 0, 0, 1, 1, 1, 2]);
  assert.equal(r.disk.outside, 0);
});

Deno.test("FloppyController SCAN EQUAL stops on the sector memory equals, the DMA count short of it; VERIFY moves no DMA", async () => {
  const r = rig(MB144);
  // Memory: a sector of 0xee, then sector 2's bytes; the scan starts at sector 1.
  r.ram.fill(0xee, 0x20000, 0x20200);
  r.ram.set(r.disk.bytes.subarray(512, 1024), 0x20200);
  r.programDma(0x20000, 1536, 0x4a);
  r.command([0x51, 0, 0, 0, 1, 2, 3, 0x1b, 0xff]);
  await r.fdc.pending;
  assert.deepEqual(r.result(7), [0, 0, 0x08, 0, 0, 2, 2], "scan equal hit at sector 2");
  assert.equal(r.dma.remaining(2), 1024, "only sector 1 counted");
  // SCAN HIGH OR EQUAL: 0xee against sector 1 (higher or not, QEMU reports SEH).
  r.programDma(0x20000, 512, 0x4a);
  r.command([0x5d, 0, 0, 0, 1, 2, 3, 0x1b, 0xff]);
  await r.fdc.pending;
  assert.equal(r.result(7)[2], 0x08);
  // VERIFY of C0 H0 S5-S7: the walk only, no DMA request, the count untouched.
  r.programDma(0x20000, 512);
  r.command([0x56, 0, 0, 0, 5, 2, 7, 0x1b, 0xff]);
  assert.deepEqual(r.result(7), [0x20, 0, 0, 1, 0, 1, 2], "past S7: the next cylinder");
  assert.equal(r.dma.remaining(2), 512);
});

Deno.test("FloppyController READ ID answers on the current drive 20 ms later, RQM clear meanwhile", () => {
  const loop = new FakeLoop();
  const r = rig(MB144, { loop });
  // Drive B's head 1 named: QEMU answers for drive A (the DOR's), head 1.
  r.command([0x4a, 0x05]);
  assert.equal(r.io.in(FDC + 4, 1), 0x10, "busy, no request for master");
  assert.deepEqual(loop.due.map((t) => t.delayNs), [20_000_000]);
  loop.fire();
  assert.deepEqual(r.result(7), [0x04, 0, 0, 0, 1, 2, 2]);
  // savevm while READ ID runs: the loaded controller answers on its own clock.
  r.command([0x4a, 0x00]);
  const loop2 = new FakeLoop();
  const b = rig(MB144, { loop: loop2 });
  b.fdc.loadState(structuredClone(r.fdc.saveState()));
  assert.deepEqual(loop2.due.map((t) => t.delayNs), [20_000_000]);
  loop2.fire();
  assert.deepEqual(b.result(7), [0x00, 0, 0, 0, 0, 3, 2]);
  loop.fire();
  r.result(7);
  // A reset while READ ID runs takes the answer back.
  r.command([0x4a, 0x00]);
  r.out(FDC + 2, 0x00);
  r.out(FDC + 2, 0x0c);
  assert.deepEqual(loop.due, []);
});

Deno.test("FloppyController keeps QEMU's SAVE, RESTORE, DRIVE SPECIFICATION and FORMAT AND WRITE", () => {
  const r = rig(MB144);
  r.command([0x4e, 0, 0, 3, 0, 0, 0, 7, 8, 18, 0x04, 0x57, 0, 0, 0, 0, 0, 0]);
  assert.equal(r.io.in(FDC + 4, 1), 0x80, "RESTORE has no result phase");
  r.command([0x2e]);
  assert.deepEqual(r.result(15), [0, 0, 3, 0, 0, 0, 7, 8, 18, 0x04, 0x57, 0, 0, 0, 0]);
  r.command([0xcd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(r.result(1), [0x80], "FORMAT AND WRITE: ten bytes, then invalid");
  r.command([0x8e, 0x21, 2, 3, 4, 0xc0]);
  assert.deepEqual(r.result(4), [0x21, 0x21, 0, 0]);
  // Without its end bit the command holds the FIFO (QEMU); only a reset frees it.
  r.command([0x8e, 0, 0, 0, 0, 0]);
  r.command([0x10]);
  assert.equal(r.io.in(FDC + 4, 1) & 0x80, 0, "no byte taken");
  r.out(FDC + 2, 0x00);
  r.out(FDC + 2, 0x0c);
  r.command([0x10]);
  assert.deepEqual(r.result(1), [0x90]);
});

Deno.test("FloppyController keeps CONFIGURE, LOCK, SPECIFY and the data rate across a system reset, as QEMU's isa-fdc", () => {
  const r = rig(MB144);
  r.command([0x13, 0, 0x57, 9]);
  r.command([0x94]);
  r.result(1);
  r.command([0x03, 0xaf, 0x02]);
  r.out(FDC + 7, 0x02);
  // A DOR reset owes four sense-interrupt answers; a system reset drops them (QEMU).
  r.out(FDC + 2, 0x00);
  r.out(FDC + 2, 0x0c);
  r.fdc.reset();
  r.command([0x08]);
  assert.deepEqual(r.result(1), [0x80], "nothing pending");
  r.command([0x0e]);
  // tracks, timers (SPECIFY), sectors, LOCK, CONFIGURE, precompensation
  assert.deepEqual(r.result(10), [0, 0, 0, 0, 0x0a, 0x03, 18, 0x80, 0x57, 9]);
  assert.equal(r.fdc.dsr & 3, 2);
});
