// The ISA debug console (`isa-debugcon`): bytes written to one port go to a chardev

import type { Chardev } from "../../core/chardev.ts";
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type QtreeNode,
} from "../../core/device.ts";
import { optNumber, optString } from "../../core/options.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/**
 * A debug console port (0xe9 by default, 0x402 for SeaBIOS's debug log). Reads
 * return `readback` (0xe9), which is how firmware detects that the port is there.
 */
export class DebugCon implements Device {
  readonly model = "isa-debugcon";
  #chardev: Chardev | null;
  #byte = new Uint8Array(1);

  constructor(
    readonly id: string,
    chardev: Chardev | null,
    machine: DeviceContext | null,
    readonly iobase = 0xe9,
    readonly readback = 0xe9,
  ) {
    this.#chardev = chardev;
    machine?.io.register(id, iobase, 1, {
      read: () => this.readback,
      write: (_port, _size, value) => this.write(value),
    });
  }

  /** Sends one byte to the chardev. */
  write(value: number): void {
    this.#byte[0] = value;
    this.#chardev?.write(this.#byte);
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [{
        model: "isa-debugcon",
        properties: [
          ["iobase", this.iobase],
          ["chardev", this.#chardev?.id ?? ""],
          ["readback", this.readback],
        ],
      }],
    };
  }

  reset(): void {}

  saveState(): DeviceState {
    return {};
  }

  loadState(_state: DeviceState): void {}
}

/** `-device isa-debugcon,chardev=ID[,iobase=0xe9][,readback-value=0xe9]` (and `-debugcon`). */
export default {
  kind: "device",
  name: "isa-debugcon",
  summary: "ISA debug console port",
  bus: "ISA",
  category: "Misc",
  userCreatable: true,
  options: [
    // -device accepts an id as QEMU does; its help does not list it.
    { name: "id", type: "string", help: "device id", hidden: true },
    { name: "chardev", type: "string", help: "ID of a chardev to use as a backend" },
    { name: "iobase", type: "number", help: "I/O port (default 0xe9)", default: 0xe9 },
    { name: "readback-value", type: "number", help: "Value port reads return", default: 0xe9 },
  ],
  create(machine: DeviceContext, opts): DebugCon {
    const m = machine;
    const chardevId = optString(opts, "chardev");
    const id = optString(opts, "id");
    return new DebugCon(
      id ?? m.freeId("debugcon"),
      chardevId ? m.chardev(chardevId) : null,
      m,
      optNumber(opts, "iobase") ?? 0xe9,
      optNumber(opts, "readback-value") ?? 0xe9,
    );
  },
} satisfies DeviceDescriptor;
