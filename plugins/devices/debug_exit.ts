// The `isa-debug-exit` device: a guest write ends vmkit with exit code (value << 1) | 1

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type QtreeNode,
} from "../../core/device.ts";
import { optNumber, optString } from "../../core/options.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/** Test harnesses use it to end a run with a status chosen by the guest. */
export class DebugExit implements Device {
  readonly model = "isa-debug-exit";

  constructor(
    readonly id: string,
    onExit: (code: number) => void,
    machine: DeviceContext | null,
    readonly iobase = 0x501,
    readonly iosize = 2,
  ) {
    machine?.io.register(id, iobase, iosize, {
      read: () => 0xffffffff,
      write: (_port, _size, value) => onExit(((value << 1) | 1) >>> 0),
    });
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [{
        model: "isa-debug-exit",
        properties: [["iobase", this.iobase], ["iosize", this.iosize]],
      }],
    };
  }

  reset(): void {}

  saveState(): DeviceState {
    return {};
  }

  loadState(_state: DeviceState): void {}
}

/** `-device isa-debug-exit,iobase=0xf4,iosize=0x04`. */
export default {
  kind: "device",
  name: "isa-debug-exit",
  summary: "Exits the emulator with a guest-chosen status",
  bus: "ISA",
  category: "Misc",
  userCreatable: true,
  options: [
    // -device accepts an id as QEMU does; its help does not list it.
    { name: "id", type: "string", help: "device id", hidden: true },
    { name: "iobase", type: "number", help: "I/O base (default 0x501)", default: 0x501 },
    { name: "iosize", type: "number", help: "I/O size (default 2)", default: 2 },
  ],
  create(machine: DeviceContext, opts): DebugExit {
    const m = machine;
    const id = optString(opts, "id");
    return new DebugExit(
      id ?? m.freeId("debug-exit"),
      (code) => m.requestExit(code),
      m,
      optNumber(opts, "iobase") ?? 0x501,
      optNumber(opts, "iosize") ?? 2,
    );
  },
} satisfies DeviceDescriptor;
