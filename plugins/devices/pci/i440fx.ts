// The i440FX host bridge: PCI configuration mechanism #1 (0xcf8/0xcfc), bus 0, and the PAM registers

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  GUEST_RAM,
  ISA_BIOS,
  PCI_BUS,
  type PciBus,
  type PciFunction,
  type ServiceKey,
  serviceKey,
} from "../../../core/device.ts";
import { IrqLine } from "../../../core/irq.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import { Pam } from "./pam.ts";
// QEMU's subsystem IDs on its PCI devices (SeaBIOS checks them to detect QEMU).
import {
  PCI_SUBDEVICE_ID_QEMU,
  PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
  PciConfig,
} from "../../../core/pci.ts";

/** PAM0 (the 0xf0000 segment is its high nibble); PAM1..PAM6 follow. */
export const I440FX_PAM = 0x59;
export const I440FX_PAM_SIZE = 7;
/** SMRAM control register. */
export const I440FX_SMRAM = 0x72;

/** Routes INTx of a slot to a PIRQ line (0..3); the ISA bridge maps PIRQs to IRQs. */
export type PirqRouter = (pirq: number, level: boolean) => void;

/**
 * PCI bus 0 behind the i440FX: functions by devfn, configuration mechanism #1 and
 * INTx lines that follow the PIIX barber-pole swizzle (PIRQ = (slot + pin - 2) & 3).
 */
/** Bus 0 with its function table, for the PIIX functions that route its INTx lines. */
export const PCI_BUS0: ServiceKey<PciBus0> = serviceKey("pci");

export class PciBus0 implements PciBus {
  readonly functions: (PciFunction | undefined)[] = new Array(256);
  #pirqRouter: PirqRouter = () => {};
  /** Asserted sources per PIRQ (lines are shared and level triggered). */
  #pirqCount = [0, 0, 0, 0];

  plug(fn: PciFunction, devfn?: number): number {
    let at = devfn;
    if (at === undefined) {
      at = -1;
      for (let slot = 0; slot < 32; slot++) {
        if (!this.functions[slot << 3]) {
          at = slot << 3;
          break;
        }
      }
      if (at < 0) throw new RangeError("PCI bus 0 is full");
    }
    if (this.functions[at]) {
      throw new RangeError(`PCI: slot ${at >> 3} function ${at & 7} not available`);
    }
    this.functions[at] = fn;
    return at;
  }

  intx(devfn: number, pin: number): IrqLine {
    const pirq = ((devfn >> 3) + pin - 2) & 3;
    return new IrqLine(`pci-${devfn.toString(16)}-int${"ABCD"[pin - 1]}`, (level) => {
      const before = this.#pirqCount[pirq] > 0;
      this.#pirqCount[pirq] += level ? 1 : -1;
      const after = this.#pirqCount[pirq] > 0;
      if (before !== after) this.#pirqRouter(pirq, after);
    });
  }

  /** Connects the PIRQ router (the PIIX3 ISA bridge). */
  setPirqRouter(router: PirqRouter): void {
    this.#pirqRouter = router;
  }

  /** True when PIRQ `n` is asserted by some function. */
  pirqLevel(n: number): boolean {
    return this.#pirqCount[n] > 0;
  }

  /** A configuration read of bus 0 (absent functions read all ones). */
  configRead(devfn: number, offset: number, size: 1 | 2 | 4): number {
    const fn = this.functions[devfn];
    if (!fn) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    return fn.configRead(offset, size);
  }

  /** A configuration write of bus 0. */
  configWrite(devfn: number, offset: number, size: 1 | 2 | 4, value: number): void {
    this.functions[devfn]?.configWrite(offset, size, value);
  }
}

/**
 * The i440FX PMC at 00:00.0 with the host side of configuration mechanism #1: the
 * address register at 0xcf8 (32-bit accesses) and the data window at 0xcfc-0xcff.
 */
export class I440fx implements Device {
  readonly model = "i440FX-pcihost";
  readonly bus = new PciBus0();
  readonly config: PciConfig;
  #address = 0;
  #pam: Pam | null;

  constructor(
    readonly id: string,
    machine: DeviceContext | null,
    options: { memory?: AddressSpace; ram?: Uint8Array; isaBios?: Uint8Array | null } = {},
  ) {
    this.config = new PciConfig({
      vendorId: 0x8086,
      deviceId: 0x1237,
      revision: 0x02,
      classCode: 0x060000,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
    }, { onWrite: () => this.#pam?.update(this.config.bytes) });
    this.config.setWritable(I440FX_PAM, new Array(I440FX_PAM_SIZE).fill(0xff));
    this.config.wmask[I440FX_PAM] = 0x30; // PAM0's low nibble is reserved
    this.config.wmask[I440FX_SMRAM] = 0x78;
    this.bus.plug(this.config, 0);
    const memory = options.memory ?? machine?.memory;
    this.#pam = memory && options.ram
      ? new Pam(memory, options.ram, options.isaBios ?? null)
      : null;
    this.#resetRegisters();
    if (machine) {
      machine.io.register(`${id}-conf-addr`, 0xcf8, 1, {
        read: (_port, size) => (size === 4 ? this.#address : 0xff),
        write: (_port, size, value) => {
          if (size === 4) this.#address = value >>> 0;
        },
      });
      machine.io.register(`${id}-conf-data`, 0xcfc, 4, {
        read: (port, size) => this.readData(port & 3, size),
        write: (port, size, value) => this.writeData(port & 3, size, value),
      });
    }
  }

  #resetRegisters(): void {
    this.config.reset();
    this.config.bytes[I440FX_SMRAM] = 0x02;
    this.#pam?.update(this.config.bytes);
  }

  /** Sets the configuration address register (as a 32-bit write to 0xcf8 does). */
  setAddress(value: number): void {
    this.#address = value >>> 0;
  }

  #target(): { devfn: number; reg: number } | null {
    const a = this.#address;
    if (!(a & 0x80000000)) return null;
    if (((a >> 16) & 0xff) !== 0) return null; // only bus 0 exists
    return { devfn: (a >> 8) & 0xff, reg: a & 0xfc };
  }

  /** A read of the data window at 0xcfc + `lane`. */
  readData(lane: number, size: 1 | 2 | 4): number {
    const t = this.#target();
    if (!t) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    return this.bus.configRead(t.devfn, t.reg + lane, size);
  }

  /** A write of the data window at 0xcfc + `lane`. */
  writeData(lane: number, size: 1 | 2 | 4, value: number): void {
    const t = this.#target();
    if (!t) return;
    this.bus.configWrite(t.devfn, t.reg + lane, size, value);
  }

  /** The PAM segment mode at `address` (for tests and the monitor). */
  pamModeAt(address: number): number {
    return this.#pam?.modeAt(address) ?? 3;
  }

  reset(): void {
    this.#address = 0;
    this.#resetRegisters();
  }

  saveState(): DeviceState {
    return { address: this.#address, config: this.config.save() };
  }

  loadState(state: DeviceState): void {
    this.#address = state.address as number;
    this.config.load(state.config as Uint8Array);
    this.#pam?.update(this.config.bytes);
  }
}

/** The i440FX host bridge of `-M pc`; the board provides `ram` and `isa-bios` first. */
export default {
  kind: "device",
  name: "i440FX-pcihost",
  summary: "Intel 440FX PCI host bridge and memory controller",
  bus: "System",
  category: "Controller/Bridge/Hub",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): I440fx {
    const m = machine;
    const host = new I440fx("i440fx", m, {
      ram: m.findService(GUEST_RAM),
      isaBios: m.findService(ISA_BIOS) ?? null,
    });
    m.provide(PCI_BUS, host.bus);
    return host;
  },
} satisfies DeviceDescriptor;
