// The PIIX3 PCI-to-ISA bridge (00:01.0): PIRQ routing registers and the 0xcf9 reset control register

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  IOAPIC,
  PIC,
} from "../../../core/device.ts";
import type { IrqController } from "../../../core/irq.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { PCI_BUS0, type PciBus0 } from "./i440fx.ts";
import { PCI_SUBDEVICE_ID_QEMU, PCI_SUBVENDOR_ID_REDHAT_QUMRANET } from "../../../core/pci.ts";
import { PciConfig } from "../../../core/pci.ts";

/** PIRQ route control registers PIRQRC[A..D] (bit 7 disables, bits 3:0 the ISA IRQ). */
export const PIIX_PIRQCA = 0x60;
/** The reset control register's port. */
export const RCR_IOPORT = 0xcf9;

/** The devfn QEMU's pc board gives the PIIX3 (slot 1, function 0). */
export const PIIX3_DEVFN = 0x08;

/**
 * The PIIX3 ISA bridge function: routes the four PCI interrupt lines to ISA IRQs as
 * the firmware programs PIRQRC, and resets the system through port 0xcf9.
 */
export class Piix3 implements Device {
  readonly model = "PIIX3";
  readonly config: PciConfig;
  #bus: PciBus0;
  #pic: IrqController | null;
  #ioapic: IrqController | null;
  #rcr = 0;
  #onReset: () => void;
  /** Current level per ISA IRQ from PCI interrupts. */
  #levels = new Array(16).fill(false);

  constructor(
    readonly id: string,
    bus: PciBus0,
    machine: DeviceContext | null,
    options: { pic?: IrqController | null; ioapic?: IrqController | null; onReset?: () => void } =
      {},
  ) {
    this.#bus = bus;
    this.#pic = options.pic ?? null;
    this.#ioapic = options.ioapic ?? null;
    this.#onReset = options.onReset ?? (() => machine?.requestReset());
    this.config = new PciConfig({
      vendorId: 0x8086,
      deviceId: 0x7000,
      classCode: 0x060100,
      headerType: 0x80,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
    }, { onWrite: (offset, size) => this.#configWritten(offset, size) });
    this.config.setWritable(PIIX_PIRQCA, [0x8f, 0x8f, 0x8f, 0x8f]);
    this.#resetRegisters();
    bus.plug(this.config, PIIX3_DEVFN);
    bus.setPirqRouter((pirq, level) => {
      this.#ioapic?.setIrq(16 + pirq, level);
      this.#route();
    });
    if (machine) {
      machine.io.register(`${id}-rcr`, RCR_IOPORT, 1, {
        read: () => this.#rcr,
        write: (_port, _size, value) => this.writeRcr(value),
      });
    }
  }

  #resetRegisters(): void {
    this.config.reset();
    for (let i = 0; i < 4; i++) this.config.bytes[PIIX_PIRQCA + i] = 0x80;
    this.config.bytes[0x69] = 0x02; // top of memory
    this.config.bytes[0x70] = 0x80; // MBIRQ0 disabled
    this.config.bytes[0x76] = 0x0c;
    this.config.bytes[0x77] = 0x0c;
    this.config.bytes[0x78] = 0x02;
    this.config.bytes[0x80] = 0x00;
    this.config.bytes[0xa0] = 0x08;
    this.config.bytes[0xa8] = 0x0f;
  }

  #configWritten(offset: number, size: number): void {
    if (offset < PIIX_PIRQCA + 4 && offset + size > PIIX_PIRQCA) this.#route();
  }

  /** The ISA IRQ PIRQ `n` is routed to, or -1 when disabled. */
  pirqRoute(n: number): number {
    const v = this.config.bytes[PIIX_PIRQCA + n];
    return v & 0x80 ? -1 : v & 0x0f;
  }

  #route(): void {
    const levels = new Array(16).fill(false);
    for (let n = 0; n < 4; n++) {
      const irq = this.pirqRoute(n);
      if (irq >= 0 && this.#bus.pirqLevel(n)) levels[irq] = true;
    }
    for (let irq = 0; irq < 16; irq++) {
      if (levels[irq] !== this.#levels[irq]) {
        this.#levels[irq] = levels[irq];
        this.#pic?.setIrq(irq, levels[irq]);
        // A routed PIRQ drives the ISA IRQ line, which reaches the IOAPIC pin of the same
        // number too (QEMU's gsi lines): an APIC-mode guest's _PRT names those GSIs.
        this.#ioapic?.setIrq(irq, levels[irq]);
      }
    }
  }

  /** Port 0xcf9: bit 2 going from 0 to 1 resets the system (bit 1 asks for a hard reset). */
  writeRcr(value: number): void {
    if ((value & 0x04) && !(this.#rcr & 0x04)) {
      this.#rcr = value & 0x02;
      this.#onReset();
      return;
    }
    this.#rcr = value & 0x02;
  }

  reset(): void {
    this.#rcr = 0;
    this.#resetRegisters();
    this.#route();
  }

  saveState(): DeviceState {
    return { config: this.config.save(), rcr: this.#rcr };
  }

  loadState(state: DeviceState): void {
    this.config.load(state.config as Uint8Array);
    this.#rcr = state.rcr as number;
    this.#route();
  }
}

/** The PIIX3 ISA bridge of `-M pc`, at 00:01.0. */
export default {
  kind: "device",
  name: "PIIX3",
  summary: "Intel PIIX3 PCI-to-ISA bridge",
  bus: "PCI",
  category: "Controller/Bridge/Hub",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): Piix3 {
    const m = machine;
    const bus = m.service(PCI_BUS0);
    return new Piix3("piix3", bus, m, {
      pic: m.findService(PIC) ?? null,
      ioapic: m.findService(IOAPIC) ?? null,
    });
  },
} satisfies DeviceDescriptor;
