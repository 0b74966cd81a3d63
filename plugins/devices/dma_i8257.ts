// The PC's two cascaded 8237 ISA DMA controllers (QEMU's i8257): channels 0-3 move bytes, 4-7 words
//
// Controller 1 answers at 0x00-0x0f, controller 2 at 0xc0-0xdf (every other port), the page
// registers at 0x81-0x8f. A device raises DREQ with a transfer callback (core IsaDma); the
// callback runs while the channel is unmasked and moves at most what the channel has left
// (its count register + 1 units). The address a transfer reaches is page << 16 | address,
// as QEMU computes it; memory the bus refuses (MMIO, nothing) takes no bytes, and the
// count still runs down, so a guest's bad programming ends in its own terminal count.

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_DMA,
  type IsaDma,
  type QtreeNode,
} from "../../core/device.ts";
import type { AddressSpace } from "../../core/memory/address_space.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/** The page register port of each channel (0x80 + this); channel 4 has none (cascade). */
const PAGE_PORTS = [0x87, 0x83, 0x81, 0x82, 0x8f, 0x8b, 0x89, 0x8a];

/** Mode register fields (8237A data sheet, "Mode Register"). */
const MODE_AUTOINIT = 0x10;
const MODE_DECREMENT = 0x20;

interface Channel {
  /** Base address and count as the guest programmed them (16 bits each). */
  baseAddress: number;
  baseCount: number;
  /** Units already moved in the current run (QEMU's now[COUNT]). */
  done: number;
  mode: number;
  page: number;
}

interface Controller {
  channels: Channel[];
  /** Bit n: channel n masked. */
  mask: number;
  /** Bits 0-3: terminal count reached (cleared on read); bits 4-7: DREQ held. */
  status: number;
  command: number;
  /** The byte flip-flop: false means the next byte is the low one. */
  flipFlop: boolean;
}

function newController(): Controller {
  return {
    channels: Array.from({ length: 4 }, () => ({
      baseAddress: 0,
      baseCount: 0,
      done: 0,
      mode: 0,
      page: 0,
    })),
    mask: 0xf,
    status: 0,
    command: 0,
    flipFlop: false,
  };
}

/** The 8237 pair of a PC board. */
export class DmaI8257 implements Device, IsaDma {
  readonly model = "i8257";
  #controllers = [newController(), newController()];
  #memory: AddressSpace | null;
  #transfers: ((() => void) | null)[] = new Array(8).fill(null);
  /** True while transfer callbacks run (a callback that unmasks another channel waits its turn). */
  #running = false;

  constructor(readonly id: string, machine: DeviceContext | null) {
    this.#memory = machine?.memory ?? null;
    if (!machine) return;
    for (const [index, base, stride] of [[0, 0x00, 1], [1, 0xc0, 2]] as const) {
      machine.io.register(`${id}-${index}`, base, 16 * stride, {
        read: (port) =>
          (port - base) % stride ? 0xff : this.readPort(index, (port - base) / stride),
        write: (port, _size, value) => {
          if ((port - base) % stride === 0) this.writePort(index, (port - base) / stride, value);
        },
      });
    }
    for (const [channel, port] of PAGE_PORTS.entries()) {
      if (channel === 4) continue;
      machine.io.register(`${id}-page${channel}`, port, 1, {
        read: () => this.#channel(channel).page,
        write: (_port, _size, value) => {
          this.#channel(channel).page = value & 0xff;
        },
      });
    }
  }

  #channel(channel: number): Channel {
    return this.#controllers[channel >> 2].channels[channel & 3];
  }

  /** Reads register `reg` (0-15) of controller `index`. */
  readPort(index: number, reg: number): number {
    const c = this.#controllers[index];
    if (reg < 8) {
      const ch = c.channels[reg >> 1];
      let value: number;
      if (reg & 1) value = (ch.baseCount - ch.done) & 0xffff;
      else {
        const step = ch.mode & MODE_DECREMENT ? -ch.done : ch.done;
        value = (ch.baseAddress + step) & 0xffff;
      }
      const byte = c.flipFlop ? value >> 8 : value & 0xff;
      c.flipFlop = !c.flipFlop;
      return byte;
    }
    if (reg === 8) {
      const status = c.status;
      c.status &= 0xf0; // terminal count bits clear on read
      return status;
    }
    if (reg === 0xf) return c.mask | 0xf0;
    return 0xff;
  }

  /** Writes register `reg` (0-15) of controller `index`. */
  writePort(index: number, reg: number, value: number): void {
    const c = this.#controllers[index];
    value &= 0xff;
    if (reg < 8) {
      const ch = c.channels[reg >> 1];
      const key = reg & 1 ? "baseCount" : "baseAddress";
      ch[key] = c.flipFlop ? (ch[key] & 0xff) | value << 8 : (ch[key] & 0xff00) | value;
      c.flipFlop = !c.flipFlop;
      ch.done = 0;
      return;
    }
    switch (reg) {
      case 8:
        c.command = value;
        return;
      case 9: // request register: software DREQ (no device behind it here)
        return;
      case 0xa:
        c.mask = value & 4 ? c.mask | 1 << (value & 3) : c.mask & ~(1 << (value & 3));
        break;
      case 0xb:
        c.channels[value & 3].mode = value;
        return;
      case 0xc:
        c.flipFlop = false;
        return;
      case 0xd: // master clear
        c.flipFlop = false;
        c.status = 0;
        c.command = 0;
        c.mask = 0xf;
        return;
      case 0xe:
        c.mask = 0;
        break;
      case 0xf:
        c.mask = value & 0xf;
        break;
      default:
        return;
    }
    this.#run();
  }

  mode(channel: number): number {
    return this.#channel(channel).mode;
  }

  remaining(channel: number): number {
    const ch = this.#channel(channel);
    return ((ch.baseCount + 1 - ch.done) << (channel >> 2)) >>> 0;
  }

  hold(channel: number, transfer: () => void): void {
    this.#transfers[channel] = transfer;
    this.#controllers[channel >> 2].status |= 0x10 << (channel & 3);
    this.#run();
  }

  release(channel: number): void {
    this.#transfers[channel] = null;
    this.#controllers[channel >> 2].status &= ~(0x10 << (channel & 3));
  }

  writeMemory(channel: number, data: Uint8Array): number {
    return this.#move(channel, data.length, (address, part) => {
      this.#memory?.dmaWrite(address, data.subarray(part.start, part.end));
    });
  }

  readMemory(channel: number, out: Uint8Array): number {
    return this.#read(channel, out, true);
  }

  peekMemory(channel: number, out: Uint8Array): number {
    return this.#read(channel, out, false);
  }

  #read(channel: number, out: Uint8Array, advance: boolean): number {
    out.fill(0);
    return this.#move(channel, out.length, (address, part) => {
      this.#memory?.dmaRead(address, out.subarray(part.start, part.end));
    }, advance);
  }

  /**
   * Moves up to `bytes` at the channel's position, runs the count down, and marks the
   * terminal count (reloading the base registers with autoinit); with `advance` false,
   * only copies.
   */
  #move(
    channel: number,
    bytes: number,
    copy: (address: number, part: { start: number; end: number }) => void,
    advance = true,
  ): number {
    const ch = this.#channel(channel);
    const wordShift = channel >> 2;
    const n = Math.min(bytes, this.remaining(channel));
    if (n <= 0) return 0;
    const decrement = (ch.mode & MODE_DECREMENT) !== 0;
    const startUnit = decrement ? ch.baseAddress - ch.done : ch.baseAddress + ch.done;
    // QEMU's address: the page above the 16-bit address (words on controller 2).
    const page = wordShift ? (ch.page & 0xfe) << 16 : ch.page << 16;
    const start = page + (startUnit << wordShift);
    // Byte by byte backwards when decrementing; in one piece otherwise.
    const pieces = decrement
      ? Array.from({ length: n }, (_, i) => ({ address: start - i, start: i, end: i + 1 }))
      : [{ address: start, start: 0, end: n }];
    for (const p of pieces) {
      try {
        if (p.address >= 0) copy(p.address >>> 0, p);
      } catch (e) {
        // Memory the bus refuses takes nothing; the transfer's count runs on.
        if (!(e instanceof RangeError)) throw e;
      }
    }
    if (!advance) return n;
    ch.done += Math.ceil(n / (1 << wordShift));
    if (ch.done >= ch.baseCount + 1) {
      this.#controllers[channel >> 2].status |= 1 << (channel & 3);
      ch.done = ch.mode & MODE_AUTOINIT ? 0 : ch.baseCount + 1;
    }
    return n;
  }

  /** Runs the transfer of every unmasked channel that holds DREQ. */
  #run(): void {
    if (this.#running) return;
    this.#running = true;
    try {
      for (let channel = 0; channel < 8; channel++) {
        const c = this.#controllers[channel >> 2];
        const transfer = this.#transfers[channel];
        // As QEMU, the cascade (channel 4) does not gate controller 1.
        if (transfer && !(c.mask & 1 << (channel & 3))) transfer();
      }
    } finally {
      this.#running = false;
    }
  }

  /** QEMU's two i8257 (the 16-bit controller listed first, as QEMU's newest-first ISA bus does). */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [
        {
          model: "i8257",
          properties: [["base", 0xc0], ["page-base", 0x88], ["pageh-base", -1], ["dshift", 1]],
        },
        {
          model: "i8257",
          properties: [["base", 0x00], ["page-base", 0x80], ["pageh-base", -1], ["dshift", 0]],
        },
      ],
    };
  }

  reset(): void {
    this.#controllers = [newController(), newController()];
    this.#transfers.fill(null);
  }

  saveState(): DeviceState {
    return { controllers: structuredClone(this.#controllers) as unknown as DeviceState[] };
  }

  loadState(state: DeviceState): void {
    this.#controllers = structuredClone(state.controllers) as unknown as Controller[];
  }
}

/** The PC's DMA controllers (`i8257`), built in on `-M pc`. */
export default {
  kind: "device",
  name: "i8257",
  summary: "Intel 8237 ISA DMA controller pair",
  bus: "ISA",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): DmaI8257 {
    const dma = new DmaI8257("dma", machine);
    machine.provide(ISA_DMA, dma);
    return dma;
  },
} satisfies DeviceDescriptor;
