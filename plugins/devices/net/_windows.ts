// The memory and I/O windows a NIC's BARs decode, moved as the guest programs the BARs

import type { AddressSpace, MmioHandler } from "../../../core/memory/address_space.ts";
import type { PortHandler, PortIoSpace } from "../../../core/memory/port_io.ts";

/** A memory BAR's window: `map(base)` moves it, `map(null)` removes it. */
export class MmioWindow {
  #base: number | null = null;

  constructor(
    readonly memory: AddressSpace,
    readonly name: string,
    readonly size: number,
    readonly handler: MmioHandler,
  ) {}

  map(base: number | null): void {
    if (this.#base !== null) this.memory.remove(this.name);
    this.#base = null;
    if (base === null) return;
    try {
      this.memory.addMmio(this.name, base, this.size, this.handler);
      this.#base = base;
    } catch {
      // A base on top of RAM or another window is not decoded (the guest's mistake).
    }
  }
}

/** An I/O BAR's window; the handler gets the offset into the window. */
export function mapIoWindow(
  io: PortIoSpace,
  name: string,
  base: number | null,
  size: number,
  handler: PortHandler,
): void {
  io.unregister(name);
  if (base === null) return;
  try {
    io.register(name, base, size, {
      read: (port, width) => handler.read(port - base, width),
      write: (port, width, value) => handler.write(port - base, width, value),
    });
  } catch {
    // Overlapping ports: not decoded.
  }
}
