// The `isa-scratch` device of docs/plugins.md: one 8-bit register at an I/O port that
// remembers what the guest writes and raises an ISA IRQ while it holds 0xff

import {
  type Device,
  type DeviceContext,
  type DeviceDescriptor,
  type DeviceState,
  type IrqLine,
  ISA_BUS,
  optNumber,
  PLUGIN_API_VERSION,
  UsageError,
} from "../../../mod.ts";

/** `isa-scratch`: state in plain fields, ports registered when created. */
export class Scratch implements Device {
  readonly model = "isa-scratch";
  value = 0;

  constructor(readonly id: string, readonly irq: IrqLine | null) {}

  read(): number {
    return this.value;
  }

  write(value: number): void {
    this.value = value & 0xff; // the register is 8 bits wide, whatever the guest writes
    this.irq?.set(this.value === 0xff);
  }

  reset(): void {
    this.value = 0;
    this.irq?.lower();
  }

  saveState(): DeviceState {
    return { value: this.value };
  }

  loadState(state: DeviceState): void {
    this.write(Number(state.value));
  }
}

/** `-device isa-scratch[,iobase=0x510][,irq=5]`. */
export default {
  kind: "device",
  name: "isa-scratch",
  summary: "one scratch register at an I/O port (the docs/plugins.md tutorial)",
  apiVersion: PLUGIN_API_VERSION,
  bus: "ISA",
  category: "Misc",
  userCreatable: true,
  options: [
    { name: "iobase", type: "number", help: "I/O port (default 0x510)" },
    { name: "irq", type: "number", help: "ISA IRQ raised while the register is 0xff (default 5)" },
  ],
  create(ctx: DeviceContext, opts): Scratch {
    const iobase = optNumber(opts, "iobase") ?? 0x510;
    const irqNumber = optNumber(opts, "irq") ?? 5;
    if (irqNumber > 15) throw new UsageError("isa-scratch: irq must be 0 to 15");
    const isa = ctx.findService(ISA_BUS);
    const device = new Scratch(ctx.freeId("scratch"), isa?.irq(irqNumber) ?? null);
    ctx.io.register(device.id, iobase, 1, {
      read: () => device.read(),
      write: (_port, _size, value) => device.write(value),
    });
    return device;
  },
} satisfies DeviceDescriptor;
