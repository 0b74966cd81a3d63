// The x86 I/O port space: devices register their own port ranges

/** A device's port handler; `port` is the absolute port number. */
export interface PortHandler {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, size: 1 | 2 | 4, value: number): void;
}

interface PortRange {
  readonly name: string;
  readonly base: number;
  readonly count: number;
  readonly handler: PortHandler;
  readonly priority: number;
  readonly overlap: boolean;
  /** Registration order: among equal priorities the later one answers. */
  readonly order: number;
}

/**
 * How a port range is placed; the same rule as the memory address space's
 * `RegionOptions`: `overlap: true` marks a guest-programmed window (a PCI I/O BAR, the
 * PIIX4 PM base) that may land on any port, where the highest priority, then the latest
 * registration, answers. Fixed ranges without it refuse a collision at build time.
 */
export interface PortOptions {
  priority?: number;
  overlap?: boolean;
}

/**
 * The 64 KiB I/O port space with one handler slot per port, so a port access is one
 * array lookup. Overlapping fixed registrations are refused; guest-programmed windows
 * (`overlap: true`) resolve by priority and order, as QEMU's memory API does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PortIoSpace } from "./port_io.ts";
 *
 * const io = new PortIoSpace();
 * let last = 0;
 * io.register("debug", 0xe9, 1, { read: () => 0xe9, write: (_p, _s, v) => { last = v; } });
 * io.out(0xe9, 1, 0x41);
 * assert.equal(last, 0x41);
 * assert.equal(io.in(0xe9, 1), 0xe9);
 * assert.equal(io.in(0x1234, 2), 0xffff); // nothing there
 * // A guest-programmed window over the port answers until it moves away.
 * io.register("bar", 0xe8, 4, { read: () => 0x11, write: () => {} }, { overlap: true });
 * assert.equal(io.in(0xe9, 1), 0x11);
 * io.unregister("bar");
 * assert.equal(io.in(0xe9, 1), 0xe9);
 * ```
 */
export class PortIoSpace {
  #slots: (PortRange | undefined)[] = new Array(0x10000);
  #ranges: PortRange[] = [];
  #nextOrder = 0;
  /** Port accesses that found no device (a debugging aid). */
  unassignedAccesses = 0;

  /** Registers `count` ports from `base`; a fixed range refuses an overlap with another. */
  register(
    name: string,
    base: number,
    count: number,
    handler: PortHandler,
    options: PortOptions = {},
  ): void {
    if (!Number.isInteger(base) || base < 0 || count <= 0 || base + count > 0x10000) {
      throw new RangeError(`Port range of '${name}' is out of bounds`);
    }
    const priority = options.priority ?? 0;
    const overlap = options.overlap ?? false;
    if (!overlap) {
      for (const r of this.#ranges) {
        if (
          !r.overlap && r.priority === priority && base < r.base + r.count &&
          r.base < base + count
        ) {
          throw new RangeError(
            `Ports of '${name}' overlap '${r.name}' at 0x${Math.max(base, r.base).toString(16)}`,
          );
        }
      }
    }
    this.#ranges.push({ name, base, count, handler, priority, overlap, order: this.#nextOrder++ });
    this.#repaint(base, count);
  }

  /** The registered ranges, in registration order (for tools: the fuzzer, the monitor). */
  get ranges(): readonly { name: string; base: number; count: number }[] {
    return this.#ranges;
  }

  /** Removes a registration by name (a PCI I/O BAR moving). */
  unregister(name: string): void {
    const gone = this.#ranges.filter((r) => r.name === name);
    if (gone.length === 0) return;
    this.#ranges = this.#ranges.filter((r) => r.name !== name);
    for (const r of gone) this.#repaint(r.base, r.count);
  }

  /** Recomputes the owner of each port in `[base, base + count)`: lowest first, winner last. */
  #repaint(base: number, count: number): void {
    const touching = this.#ranges.filter((r) => r.base < base + count && base < r.base + r.count)
      .sort((a, b) => a.priority - b.priority || a.order - b.order);
    this.#slots.fill(undefined, base, base + count);
    for (const r of touching) {
      this.#slots.fill(r, Math.max(base, r.base), Math.min(base + count, r.base + r.count));
    }
  }

  /** Reads a port; an unassigned port reads all ones, as on a PC. */
  in(port: number, size: 1 | 2 | 4): number {
    const r = this.#slots[port & 0xffff];
    if (r) return r.handler.read(port & 0xffff, size);
    this.unassignedAccesses++;
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
  }

  /** Writes a port; a write to an unassigned port is dropped. */
  out(port: number, size: 1 | 2 | 4, value: number): void {
    const r = this.#slots[port & 0xffff];
    if (r) r.handler.write(port & 0xffff, size, value);
    else this.unassignedAccesses++;
  }
}
