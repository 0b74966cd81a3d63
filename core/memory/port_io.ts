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
}

/**
 * The 64 KiB I/O port space with one handler slot per port, so a port access is one
 * array lookup. Overlapping registrations are refused.
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
 * ```
 */
export class PortIoSpace {
  #slots: (PortRange | undefined)[] = new Array(0x10000);
  #ranges: PortRange[] = [];
  /** Port accesses that found no device (a debugging aid). */
  unassignedAccesses = 0;

  /** Registers `count` ports from `base`; refuses an overlap with another device. */
  register(name: string, base: number, count: number, handler: PortHandler): void {
    if (base < 0 || count <= 0 || base + count > 0x10000) {
      throw new RangeError(`Port range of '${name}' is out of bounds`);
    }
    for (let p = base; p < base + count; p++) {
      const owner = this.#slots[p];
      if (owner) {
        throw new RangeError(
          `Ports of '${name}' overlap '${owner.name}' at 0x${p.toString(16)}`,
        );
      }
    }
    const range = { name, base, count, handler };
    this.#ranges.push(range);
    for (let p = base; p < base + count; p++) this.#slots[p] = range;
  }

  /** Removes a registration by name (a PCI I/O BAR moving). */
  unregister(name: string): void {
    this.#ranges = this.#ranges.filter((r) => {
      if (r.name !== name) return true;
      for (let p = r.base; p < r.base + r.count; p++) this.#slots[p] = undefined;
      return false;
    });
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
