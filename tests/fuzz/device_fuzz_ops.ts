// Device fuzzing engine: seeded guest operations (ports, MMIO, PCI config, DMA structures in RAM) against `-M pc`

import type { Machine } from "../../core/machine.ts";
import { fuzzMachine, pciRead, pciWrite } from "./device_machine.ts";
import { Prng } from "./prng.ts";

/**
 * One guest action, fully resolved, so a case is replayed from its list alone:
 * port in/out, MMIO read/write, PCI configuration read/write through 0xcf8/0xcfc,
 * bytes stored in guest RAM (a DMA structure: a ring, a PRD table, an access
 * structure), or virtual time passing with host I/O allowed to complete.
 */
export type FuzzOp =
  | { t: "out"; port: number; size: 1 | 2 | 4; value: number }
  | { t: "in"; port: number; size: 1 | 2 | 4 }
  | { t: "write"; addr: number; size: 1 | 2 | 4; value: number }
  | { t: "read"; addr: number; size: 1 | 2 | 4 }
  | { t: "pci"; devfn: number; offset: number; size: 1 | 2 | 4; value: number }
  | { t: "pcir"; devfn: number; offset: number; size: 1 | 2 | 4 }
  | { t: "mem"; addr: number; hex: string }
  | { t: "clock"; ns: number };

/** A board variant: the display adapter is the one `-M pc` choice that changes devices. */
export interface FuzzCase {
  seed: number;
  vga: "std" | "cirrus";
  ops: FuzzOp[];
}

/** Where DMA structures and buffers go: 1-5 MiB of guest RAM. */
const SCRATCH_BASE = 0x100000;
const SCRATCH_BYTES = 4 << 20;
/** BAR bases the generator prefers, so windows land where later ops look for them. */
const MMIO_BASES = [0xfe000000, 0xfebf0000, 0xfd000000, 0xc0000, 0xa0000, 0x200000, 0xfee00000];
const IO_BASES = [0xc000, 0xc040, 0xc080, 0xc100, 0x1f0, 0x170, 0x20, 0x60, 0x3f8, 0x510];

/** The values a register write uses: boundaries more often than noise. */
function value(rng: Prng, size: 1 | 2 | 4): number {
  const mask = size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
  switch (rng.int(6)) {
    case 0:
      return 0;
    case 1:
      return mask;
    case 2:
      return rng.int(16);
    case 3:
      return (1 << rng.int(8 * size)) >>> 0;
    default:
      return (rng.int(0x100000000) & mask) >>> 0;
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A guest address in the scratch area, or (rarely) anywhere. */
function guestAddress(rng: Prng, align = 1): number {
  if (rng.chance(0.1)) return rng.pick([0, 0x9f000, 0xa0000, 0xc0000, 0xfffff000, 0xe0000000]);
  return SCRATCH_BASE + Math.floor(rng.int(SCRATCH_BYTES) / align) * align;
}

/** A length: small and aligned mostly, sometimes huge or odd. */
function length(rng: Prng): number {
  switch (rng.int(5)) {
    case 0:
      return rng.pick([0, 1, 0xffffffff, 0x80000000, 64 << 20, 0x10000]);
    case 1:
      return rng.int(0x10000);
    default:
      return 512 * rng.range(1, 16);
  }
}

/** What the generator knows of the board: windows are re-read when address decoding changes. */
class Board {
  devfns: number[] = [];
  #ports: { base: number; count: number }[] = [];
  #mmio: { base: number; size: number }[] = [];
  #memGeneration = -1;
  #portCount = -1;

  constructor(readonly machine: Machine) {
    for (let devfn = 0; devfn < 256; devfn++) {
      if (pciRead(machine, devfn, 0, 2) !== 0xffff) this.devfns.push(devfn);
    }
  }

  #refresh(): void {
    const m = this.machine;
    if (m.memory.generation !== this.#memGeneration) {
      this.#memGeneration = m.memory.generation;
      this.#mmio = m.memory.regions.filter((r) => r.kind !== "ram" || r.base >= 0xa0000)
        .map((r) => ({ base: r.base, size: r.size }));
    }
    if (m.io.ranges.length !== this.#portCount) {
      this.#portCount = m.io.ranges.length;
      this.#ports = m.io.ranges.map((r) => ({ base: r.base, count: r.count }));
    }
  }

  port(rng: Prng): number {
    this.#refresh();
    if (rng.chance(0.05) || this.#ports.length === 0) return rng.int(0x10000);
    const r = rng.pick(this.#ports);
    return r.base + rng.int(r.count + 1); // one past the end now and then
  }

  mmio(rng: Prng): number {
    this.#refresh();
    if (rng.chance(0.05) || this.#mmio.length === 0) return rng.int(0x100000000);
    const r = rng.pick(this.#mmio);
    return r.base + rng.int(Math.min(r.size, 0x10000));
  }
}

/** The legacy virtio I/O base of `devfn` as the generator programs it. */
function virtioIoBase(devfn: number): number {
  return 0xc000 + (devfn << 5);
}

/**
 * Makes the next few operations: one generic action (a port, MMIO or config access)
 * or a device-shaped one (a virtio queue with a chain in RAM, an IDE DMA command with
 * its PRD table, a fw_cfg DMA access), as generic-fuzz mixes raw I/O with DMA patterns.
 */
function generate(rng: Prng, board: Board): FuzzOp[] {
  const size = rng.pick([1, 2, 4] as const);
  switch (rng.int(14)) {
    case 0:
    case 1:
      return [{ t: "out", port: board.port(rng), size, value: value(rng, size) }];
    case 2:
      return [{ t: "in", port: board.port(rng), size }];
    case 3:
    case 4:
      return [{ t: "write", addr: board.mmio(rng), size, value: value(rng, size) }];
    case 5:
      return [{ t: "read", addr: board.mmio(rng), size }];
    case 6: {
      const devfn = rng.chance(0.9) ? rng.pick(board.devfns) : rng.int(256);
      const offset = rng.chance(0.5)
        ? rng.pick([0x04, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30, 0x40, 0x80])
        : rng.int(256);
      return [{ t: "pci", devfn, offset, size, value: value(rng, size) }];
    }
    case 7:
      return mapBar(rng, board);
    case 8:
      return [{ t: "pcir", devfn: rng.pick(board.devfns), offset: rng.int(256), size }];
    case 9:
      return virtioRequest(rng, board);
    case 10:
      return ideDma(rng);
    case 11:
      return fwCfgDma(rng);
    case 12:
      return [{ t: "clock", ns: rng.pick([1000, 1e6, 1e7, 1e8]) }];
    default:
      return pamOrPm(rng);
  }
}

/** Programs a BAR of a PCI function at a likely base and enables decoding. */
function mapBar(rng: Prng, board: Board): FuzzOp[] {
  const devfn = rng.pick(board.devfns);
  const bar = rng.int(7);
  const offset = bar === 6 ? 0x30 : 0x10 + 4 * bar;
  const io = rng.chance(0.5);
  const base = io ? rng.pick(IO_BASES) | 1 : rng.pick(MMIO_BASES) | (bar === 6 ? 1 : 0);
  return [
    { t: "pci", devfn, offset, size: 4, value: base >>> 0 },
    { t: "pci", devfn, offset: 0x04, size: 2, value: rng.pick([0x7, 0x3, 0x5, 0x1, 0x0]) },
  ];
}

/** PAM modes of a segment, or the PIIX4 PM base and enable. */
function pamOrPm(rng: Prng): FuzzOp[] {
  if (rng.chance(0.5)) {
    return [{ t: "pci", devfn: 0, offset: 0x59 + rng.int(7), size: 1, value: rng.int(256) }];
  }
  return [
    {
      t: "pci",
      devfn: 0x0b,
      offset: 0x40,
      size: 4,
      value: rng.pick([0x1, 0x21, 0xb001, 0x1f1, 0x61]),
    },
    { t: "pci", devfn: 0x0b, offset: 0x80, size: 1, value: rng.int(2) },
  ];
}

/**
 * A legacy virtio queue set up at a page in scratch RAM with one chain of random
 * descriptors (a virtio-blk header in the first buffer), made available and notified.
 */
function virtioRequest(rng: Prng, board: Board): FuzzOp[] {
  const virtio = board.devfns.filter((d) => d >= 0x18);
  if (virtio.length === 0) return [];
  const devfn = rng.pick(virtio);
  const io = virtioIoBase(devfn);
  const queue = rng.int(3);
  const qsize = 256; // the legacy layout uses the device's size; 256 covers blk and net
  const ring = SCRATCH_BASE + (rng.int(SCRATCH_BYTES / 2) & ~0xfff);
  const ops: FuzzOp[] = [
    { t: "pci", devfn, offset: 0x10, size: 4, value: io | 1 },
    { t: "pci", devfn, offset: 0x04, size: 2, value: 0x7 },
  ];
  // A reset now and then clears NEEDS_RESET left by an earlier bad ring.
  if (rng.chance(0.3)) ops.push({ t: "out", port: io + 18, size: 1, value: 0 });
  ops.push(
    { t: "out", port: io + 18, size: 1, value: rng.pick([0x7, 0x7, 0xf, 0x3]) },
    { t: "out", port: io + 14, size: 2, value: queue },
    { t: "out", port: io + 8, size: 4, value: ring >>> 12 },
  );
  if (rng.chance(0.5)) return [...ops, ...wellFormedBlk(rng, ring, qsize, io, queue)];
  const count = rng.range(1, 6);
  const desc = new Uint8Array(16 * count);
  const dv = new DataView(desc.buffer);
  for (let i = 0; i < count; i++) {
    const addr = guestAddress(rng, 16);
    dv.setUint32(16 * i, addr, true);
    dv.setUint32(16 * i + 8, length(rng), true);
    let flags = i < count - 1 ? 1 : 0;
    if (rng.chance(0.4)) flags |= 2;
    if (rng.chance(0.05)) flags |= 4;
    if (rng.chance(0.05)) flags ^= 1;
    dv.setUint16(16 * i + 12, flags, true);
    dv.setUint16(16 * i + 14, rng.chance(0.9) ? i + 1 : rng.int(0x10000), true);
    if (i === 0) {
      // A virtio-blk header at the first buffer: type, reserved, sector.
      const h = new Uint8Array(16);
      const hv = new DataView(h.buffer);
      hv.setUint32(0, rng.pick([0, 1, 4, 8, 11, 13, rng.int(32)]), true);
      hv.setUint32(8, rng.chance(0.8) ? rng.int(8192) : rng.int(0x100000000), true);
      ops.push({ t: "mem", addr, hex: hex(h) });
    }
  }
  ops.push({ t: "mem", addr: ring, hex: hex(desc) });
  // avail ring right after the table: flags, idx, ring[0..]
  const avail = ring + 16 * qsize;
  const idx = rng.chance(0.9) ? rng.range(1, 4) : rng.int(0x10000);
  const av = new Uint8Array(4 + 2 * 4);
  const avv = new DataView(av.buffer);
  avv.setUint16(2, idx, true);
  for (let i = 0; i < 4; i++) {
    avv.setUint16(4 + 2 * i, rng.chance(0.9) ? 0 : rng.int(0x10000), true);
  }
  ops.push({ t: "mem", addr: avail, hex: hex(av) });
  ops.push({ t: "out", port: io + 16, size: 2, value: queue });
  return ops;
}

/** A virtio-blk request a driver would send: header, data, status, at descriptors 0-2. */
function wellFormedBlk(
  rng: Prng,
  ring: number,
  qsize: number,
  io: number,
  queue: number,
): FuzzOp[] {
  const type = rng.pick([0, 1, 4, 8]);
  const sectors = rng.range(1, 16);
  const header = SCRATCH_BASE + SCRATCH_BYTES / 2 + (rng.int(0x1000) & ~15);
  const data = SCRATCH_BASE + SCRATCH_BYTES / 2 + 0x10000 + (rng.int(0x100000) & ~0x1ff);
  const status = header + 0x800;
  const h = new Uint8Array(16);
  const hv = new DataView(h.buffer);
  hv.setUint32(0, type, true);
  hv.setUint32(8, rng.int(8192 - sectors), true);
  const desc = new Uint8Array(48);
  const dv = new DataView(desc.buffer);
  const put = (i: number, addr: number, len: number, flags: number) => {
    dv.setUint32(16 * i, addr, true);
    dv.setUint32(16 * i + 8, len, true);
    dv.setUint16(16 * i + 12, flags, true);
    dv.setUint16(16 * i + 14, i + 1, true);
  };
  put(0, header, 16, 1);
  put(1, data, 512 * sectors, type === 0 || type === 8 ? 3 : 1);
  put(2, status, 1, 2);
  const avail = new Uint8Array(6);
  const av = new DataView(avail.buffer);
  av.setUint16(2, rng.range(1, 3), true); // the same head once or more: in use limits
  return [
    { t: "mem", addr: header, hex: hex(h) },
    { t: "mem", addr: ring, hex: hex(desc) },
    { t: "mem", addr: ring + 16 * qsize, hex: hex(avail) },
    { t: "out", port: io + 16, size: 2, value: queue },
    { t: "clock", ns: 1000 },
  ];
}

/** An IDE DMA command (READ/WRITE DMA or an ATAPI READ) with a PRD table in scratch RAM. */
function ideDma(rng: Prng): FuzzOp[] {
  const secondary = rng.chance(0.5);
  const cmd = secondary ? 0x170 : 0x1f0;
  const bm = 0xc100 + (secondary ? 8 : 0);
  const table = SCRATCH_BASE + (rng.int(SCRATCH_BYTES) & ~7);
  const entries = rng.range(1, 4);
  const prd = new Uint8Array(8 * entries);
  const pv = new DataView(prd.buffer);
  for (let i = 0; i < entries; i++) {
    pv.setUint32(8 * i, guestAddress(rng, 2), true);
    pv.setUint32(
      8 * i + 4,
      (rng.int(0x10000) & ~1) | (i === entries - 1 && rng.chance(0.9) ? 0x80000000 : 0),
      true,
    );
  }
  const ops: FuzzOp[] = [
    { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0xc101 },
    { t: "pci", devfn: 0x09, offset: 0x04, size: 2, value: 0x5 },
    { t: "mem", addr: table, hex: hex(prd) },
    { t: "out", port: bm + 4, size: 4, value: table },
    { t: "out", port: cmd + 6, size: 1, value: rng.pick([0xe0, 0xf0, 0xa0, 0xb0]) },
  ];
  if (secondary || rng.chance(0.3)) {
    // ATAPI PACKET with DMA, then a READ(10)/READ(12)/other CDB.
    ops.push({ t: "out", port: cmd + 1, size: 1, value: 1 });
    ops.push({ t: "out", port: cmd + 4, size: 1, value: 0xfe });
    ops.push({ t: "out", port: cmd + 5, size: 1, value: 0xff });
    ops.push({ t: "out", port: cmd + 7, size: 1, value: 0xa0 });
    const op = rng.pick([0x28, 0xa8, 0x12, 0x43, 0x5a, 0x46, 0x03, 0xbe, rng.int(256)]);
    const cdb = [op, 0, 0, 0, 0, rng.int(64), 0, 0, rng.int(256), rng.int(256), 0, 0];
    if (rng.chance(0.2)) { for (let i = 1; i < 12; i++) cdb[i] = rng.int(256); }
    for (let i = 0; i < 12; i += 2) {
      ops.push({ t: "out", port: cmd, size: 2, value: cdb[i] | (cdb[i + 1] << 8) });
    }
  } else {
    ops.push({ t: "out", port: cmd + 2, size: 1, value: rng.int(256) });
    ops.push({ t: "out", port: cmd + 3, size: 1, value: rng.int(256) });
    ops.push({
      t: "out",
      port: cmd + 7,
      size: 1,
      value: rng.pick([0xc8, 0xca, 0x25, 0x35, 0xec, rng.int(256)]),
    });
  }
  ops.push({ t: "out", port: bm, size: 1, value: rng.pick([0x09, 0x01, 0x08, 0x00]) });
  return ops;
}

/** A fw_cfg DMA access structure in scratch RAM, started through ports 0x514/0x518. */
function fwCfgDma(rng: Prng): FuzzOp[] {
  const at = SCRATCH_BASE + (rng.int(SCRATCH_BYTES) & ~15);
  const access = new Uint8Array(16);
  const v = new DataView(access.buffer);
  const key = rng.pick([0x00, 0x01, 0x19, 0x20, 0x05, rng.int(0x10000)]);
  v.setUint32(
    0,
    ((key << 16) | rng.pick([0x02, 0x0a, 0x04, 0x0c, 0x10, 0x18, rng.int(256)])) >>> 0,
  );
  v.setUint32(4, length(rng));
  v.setUint32(12, guestAddress(rng));
  const swap = (x: number) =>
    (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
  return [
    { t: "mem", addr: at, hex: hex(access) },
    { t: "out", port: 0x514, size: 4, value: 0 },
    { t: "out", port: 0x518, size: 4, value: swap(at) },
  ];
}

/** Limits of one case: past them the case is reported rather than left to run on. */
export interface CaseLimits {
  /** Host memory (RSS) growth allowed during the case. */
  heapBytes: number;
  /** Wall time allowed for the case. */
  timeMs: number;
}

/** What happened in one case. */
export interface CaseResult {
  seed: number;
  vga: "std" | "cirrus";
  ops: number;
  /** A thrown error or rejected promise out of a device, a memory or time excess. */
  failure: { kind: "crash" | "memory" | "hang"; message: string; at: number } | null;
  /** The concrete operations run (for printing a crasher). */
  trace: FuzzOp[];
  peakRssBytes: number;
  /** Counters that show the case reached device logic (requests handled, DMA done). */
  reach: Record<string, number>;
}

/** Reads the counters devices keep, to tell a fuzzer that reaches device logic from one that does not. */
function reach(machine: Machine): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of machine.devices) {
    const dev = d as unknown as {
      device?: { stats?: Record<string, unknown> };
      errors?: number;
      dmaTransfers?: number;
    };
    for (const [k, v] of Object.entries(dev.device?.stats ?? {})) {
      if (typeof v === "number") out[`${d.model}.${k}`] = v;
    }
    if (typeof dev.errors === "number") out[`${d.model}.ringErrors`] = dev.errors;
    if (typeof dev.dmaTransfers === "number") out[`${d.model}.dma`] = dev.dmaTransfers;
  }
  return out;
}

const pendingRejections: unknown[] = [];
let listening = false;

function listenForRejections(): void {
  if (listening) return;
  listening = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    pendingRejections.push(event.reason);
  });
}

/** Lets host I/O the devices started finish (a bounded number of host turns). */
async function settle(machine: Machine): Promise<void> {
  for (let i = 0; i < 200 && machine.loop.pendingIo > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Runs one concrete operation. */
async function apply(machine: Machine, op: FuzzOp): Promise<void> {
  switch (op.t) {
    case "out":
      return machine.io.out(op.port, op.size, op.value);
    case "in":
      return void machine.io.in(op.port, op.size);
    case "write":
      if (op.size === 1) machine.memory.write8(op.addr, op.value);
      else if (op.size === 2) machine.memory.write16(op.addr, op.value);
      else machine.memory.write32(op.addr, op.value);
      return;
    case "read":
      if (op.size === 1) machine.memory.read8(op.addr);
      else if (op.size === 2) machine.memory.read16(op.addr);
      else machine.memory.read32(op.addr);
      return;
    case "pci":
      return pciWrite(machine, op.devfn, op.offset, op.size, op.value);
    case "pcir":
      return void pciRead(machine, op.devfn, op.offset, op.size);
    case "mem": {
      // The guest's own stores: through the CPU's view, so ROM and MMIO behave as for it.
      const bytes = unhex(op.hex);
      for (let i = 0; i < bytes.length; i++) machine.memory.write8((op.addr + i) >>> 0, bytes[i]);
      return;
    }
    case "clock":
      machine.loop.advanceBy(op.ns);
      return await settle(machine);
  }
}

/**
 * Runs a case: generated from `seed` (`count` operations) or replayed from `ops`,
 * on a fresh board. Every operation is checked for a throw out of the device; memory
 * growth and wall time are checked after each.
 */
export async function runCase(
  seed: number,
  options: { count?: number; ops?: FuzzOp[]; vga?: "std" | "cirrus"; limits: CaseLimits },
): Promise<CaseResult> {
  listenForRejections();
  pendingRejections.length = 0;
  const rng = new Prng(seed);
  const vga = options.vga ?? (rng.chance(0.5) ? "std" : "cirrus");
  const machine = await fuzzMachine({ ramBytes: 16 << 20, vga });
  const board = new Board(machine);
  const trace: FuzzOp[] = [];
  const rss0 = Deno.memoryUsage().rss;
  let peak = rss0;
  const t0 = performance.now();
  const result = (failure: CaseResult["failure"]): CaseResult => ({
    seed,
    vga,
    ops: trace.length,
    failure,
    trace,
    peakRssBytes: peak,
    reach: reach(machine),
  });
  const queue = options.ops ? [...options.ops] : [];
  const count = options.ops ? options.ops.length : options.count ?? 100;
  let sinceSettle = 0;
  while (trace.length < count) {
    if (queue.length === 0) queue.push(...generate(rng, board));
    const op = queue.shift()!;
    trace.push(op);
    try {
      await apply(machine, op);
      if (++sinceSettle >= 16) {
        sinceSettle = 0;
        await settle(machine);
      }
    } catch (error) {
      return result({ kind: "crash", message: describe(error), at: trace.length - 1 });
    }
    if (pendingRejections.length > 0) {
      return result({
        kind: "crash",
        message: describe(pendingRejections[0]),
        at: trace.length - 1,
      });
    }
    const rss = Deno.memoryUsage().rss;
    if (rss > peak) peak = rss;
    if (rss - rss0 > options.limits.heapBytes) {
      return result({
        kind: "memory",
        message: `host memory grew by ${((rss - rss0) / 2 ** 20).toFixed(0)} MiB`,
        at: trace.length - 1,
      });
    }
    if (performance.now() - t0 > options.limits.timeMs) {
      return result({
        kind: "hang",
        message: `case ran past ${options.limits.timeMs} ms`,
        at: trace.length - 1,
      });
    }
  }
  try {
    await settle(machine);
  } catch (error) {
    return result({ kind: "crash", message: describe(error), at: trace.length - 1 });
  }
  if (pendingRejections.length > 0) {
    return result({ kind: "crash", message: describe(pendingRejections[0]), at: trace.length - 1 });
  }
  return result(null);
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}\n${error.stack ?? ""}`
    : String(error);
}

/** The devices of the fuzz board (for the report). */
export async function fuzzDevices(): Promise<string[]> {
  const names = new Set<string>();
  for (const vga of ["std", "cirrus"] as const) {
    const m = await fuzzMachine({ ramBytes: 16 << 20, vga });
    for (const d of m.devices) names.add(d.model);
  }
  return [...names];
}
