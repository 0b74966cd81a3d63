// The PIIX4 power management function (00:01.3): ACPI PM1 registers, PM timer and S5 power-off

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
} from "../../../core/device.ts";
import { POWER_BUTTON } from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { EventLoop } from "../../../core/event_loop.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { PCI_BUS0, type PciBus0 } from "./i440fx.ts";
import { PCI_SUBDEVICE_ID_QEMU, PCI_SUBVENDOR_ID_REDHAT_QUMRANET } from "../../../core/pci.ts";
import { PciConfig } from "../../../core/pci.ts";

/** PM base address register and its enable (PMREGMISC bit 0). */
export const PIIX4_PMBA = 0x40;
export const PIIX4_PMREGMISC = 0x80;
/** SMBus base and host configuration. */
export const PIIX4_SMBBA = 0x90;
export const PIIX4_SMBHSTCFG = 0xd2;

/** The ACPI PM timer frequency in Hz. */
export const PM_TIMER_FREQUENCY = 3579545;

const PM1_CNT_SLP_EN = 1 << 13;
const PM1_CNT_SCI_EN = 1 << 0;
/** PM1 status/enable bits that raise SCI (ACPI 6.5 §4.8.3.1): timer carry, global, power button, RTC. */
const ACPI_BITMASK_TIMER = 1 << 0;
const ACPI_BITMASK_GLOBAL_LOCK = 1 << 5;
const ACPI_BITMASK_POWER_BUTTON = 1 << 8;
const ACPI_BITMASK_RT_CLOCK = 1 << 10;
const PM1_SCI_EVENTS = ACPI_BITMASK_TIMER | ACPI_BITMASK_GLOBAL_LOCK | ACPI_BITMASK_POWER_BUTTON |
  ACPI_BITMASK_RT_CLOCK;
/** The ISA IRQ of SCI on QEMU's pc board (the FADT's SCI_INT). */
export const PIIX4_SCI_IRQ = 9;

/** The APM control and status ports (QEMU's apm device); the FADT names 0xb2 as SMI_CMD. */
export const APM_CNT_IOPORT = 0xb2;
/** The values the FADT tells the OS to write to SMI_CMD (QEMU's ACPI_ENABLE/ACPI_DISABLE). */
export const ACPI_ENABLE = 0xf1;
export const ACPI_DISABLE = 0xf0;

/** QEMU's GPE0 block (status then enable, 2 bytes each) and PCI hotplug block on `-M pc`. */
export const PIIX4_GPE0_BLK = 0xafe0;
export const PCI_HOTPLUG_ADDR = 0xae00;
export const PCI_HOTPLUG_SIZE = 0x14;

/** The devfn of the PM function on `-M pc` (slot 1, function 3). */
export const PIIX4_PM_DEVFN = 0x0b;

/**
 * The PIIX4 ACPI function: a 64-byte PM I/O block at the PMBA the firmware programs,
 * with PM1 status/enable/control and the 24-bit PM timer read from the virtual clock.
 * Writing SLP_EN with sleep type 0 (S5 on QEMU's PIIX4) powers the machine off.
 */
export class Piix4Pm implements Device {
  readonly model = "PIIX4_PM";
  readonly config: PciConfig;
  #loop: EventLoop;
  #machine: DeviceContext | null;
  #mappedBase: number | null = null;
  #pm1Status = 0;
  #pm1Enable = 0;
  #pm1Control = 0;
  #gpe = new Uint8Array(4);
  #apmControl = 0;
  #apmStatus = 0;
  #sci: IrqLine | null = null;

  constructor(
    readonly id: string,
    bus: PciBus0 | null,
    loop: EventLoop,
    machine: DeviceContext | null,
  ) {
    this.#loop = loop;
    this.#machine = machine;
    this.config = new PciConfig({
      vendorId: 0x8086,
      deviceId: 0x7113,
      revision: 0x03,
      classCode: 0x068000,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
      interruptPin: 1,
    }, { onWrite: () => this.#remap() });
    this.config.setWritable(PIIX4_PMBA, [0xc0, 0xff, 0, 0]);
    this.config.setWritable(PIIX4_PMREGMISC, [0x01]);
    this.config.setWritable(PIIX4_SMBBA, [0xf0, 0xff, 0, 0]);
    this.config.setWritable(PIIX4_SMBHSTCFG, [0xff]);
    this.#resetRegisters();
    bus?.plug(this.config, PIIX4_PM_DEVFN);
    this.#sci = machine?.findService(ISA_BUS)?.irq(PIIX4_SCI_IRQ) ?? null;
    machine?.provide(POWER_BUTTON, this);
    machine?.io.register(`${id}-apm`, APM_CNT_IOPORT, 2, {
      read: (port) => (port === APM_CNT_IOPORT ? this.#apmControl : this.#apmStatus),
      write: (port, _size, value) => {
        if (port === APM_CNT_IOPORT) this.writeApmControl(value & 0xff);
        else this.#apmStatus = value & 0xff;
      },
    });
    // QEMU's fixed GPE0 block and PCI hotplug registers, which the FADT and DSDT SeaBIOS
    // builds point at. Unbacked ports read all ones: a guest would see every GPE pending
    // and every slot asking to be ejected, and Linux's acpiphp would remove every device.
    machine?.io.register(`${id}-gpe0`, PIIX4_GPE0_BLK, 4, {
      read: (port, size) => this.readPm(0x0c + (port - PIIX4_GPE0_BLK), size),
      write: (port, size, value) => this.writePm(0x0c + (port - PIIX4_GPE0_BLK), size, value),
    });
    // up, down, eject, removable, selector: nothing is ever hot-plugged.
    machine?.io.register(`${id}-pcihp`, PCI_HOTPLUG_ADDR, PCI_HOTPLUG_SIZE, {
      read: () => 0,
      write: () => {},
    });
  }

  #resetRegisters(): void {
    this.config.reset();
    this.config.bytes[PIIX4_PMBA] = 0x01;
    this.config.bytes[PIIX4_SMBBA] = 0x01;
    // DEVACTB APMC_EN (bit 25 of 0x58) set: SMM counts as already set up, so firmware
    // skips SMI relocation, as QEMU does when SMM is off (vmkit has no SMM).
    this.config.bytes[0x5b] = 0x02;
    this.#remap();
  }

  /** The PM timer value (24 bits). */
  pmTimer(): number {
    return Math.floor(this.#loop.nowNs * PM_TIMER_FREQUENCY / 1e9) & 0xffffff;
  }

  #remap(): void {
    // PMIOSE (PMREGMISC bit 0) enables the PM I/O block, whatever the command register says.
    const enabled = (this.config.bytes[PIIX4_PMREGMISC] & 1) !== 0;
    const base = enabled ? this.config.get32(PIIX4_PMBA) & 0xffc0 : null;
    if (base === this.#mappedBase) return;
    const io = this.#machine?.io;
    if (io) {
      if (this.#mappedBase !== null) io.unregister(`${this.id}-pm`);
      if (base !== null) {
        // PMBA is the guest's to program: a base over other ports (PMBA 0 covers the
        // PIC) decodes to the PM block, as QEMU's later-mapped subregion wins.
        io.register(`${this.id}-pm`, base, 64, {
          read: (port, size) => this.readPm(port - base, size),
          write: (port, size, value) => this.writePm(port - base, size, value),
        }, { overlap: true });
      }
    }
    this.#mappedBase = base;
  }

  /** A read of the PM I/O block at `offset`. */
  readPm(offset: number, size: 1 | 2 | 4): number {
    let v: number;
    switch (offset & ~3) {
      case 0x00:
        v = this.#pm1Status | (this.#pm1Enable << 16);
        break;
      case 0x04:
        v = this.#pm1Control;
        break;
      case 0x08:
        v = this.pmTimer();
        break;
      case 0x0c:
        v = this.#gpe[0] | (this.#gpe[1] << 8) | (this.#gpe[2] << 16) | (this.#gpe[3] << 24);
        break;
      default:
        v = 0;
    }
    v = v >>> (8 * (offset & 3));
    return size === 4 ? v >>> 0 : v & ((1 << (8 * size)) - 1);
  }

  /**
   * Presses the power button (the monitor's `system_powerdown`): PWRBTN_STS is set and,
   * when the guest enabled it, SCI is raised, as QEMU's `acpi_pm1_evt_power_down`.
   */
  powerDown(): void {
    this.#pm1Status |= ACPI_BITMASK_POWER_BUTTON;
    this.#updateSci();
  }

  // SCI is a level: high while an enabled PM1 event or GPE0 event is pending.
  #updateSci(): void {
    const pm1 = (this.#pm1Status & this.#pm1Enable & PM1_SCI_EVENTS) !== 0;
    const gpe = ((this.#gpe[0] & this.#gpe[2]) | (this.#gpe[1] & this.#gpe[3])) !== 0;
    this.#sci?.set(pm1 || gpe);
  }

  /** A write of the PM I/O block at `offset`. */
  writePm(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset === 0x00) {
      this.#pm1Status &= ~value; // write one to clear
      if (size === 4) this.#pm1Enable = (value >>> 16) & 0xffff;
    } else if (offset === 0x02) {
      this.#pm1Enable = value & 0xffff;
    } else if (offset === 0x04) {
      this.#pm1Control = value & ~PM1_CNT_SLP_EN & 0xffff;
      if (value & PM1_CNT_SLP_EN) {
        const sleepType = (value >> 10) & 7;
        if (sleepType === 0) this.#machine?.requestShutdown();
      }
    } else if (offset >= 0x0c && offset < 0x10) {
      for (let i = 0; i < size && offset + i < 0x10; i++) {
        const at = offset - 0x0c + i;
        const b = (value >>> (8 * i)) & 0xff;
        if (at < 2) this.#gpe[at] &= ~b;
        else this.#gpe[at] = b;
      }
    }
    this.#updateSci();
  }

  /**
   * A write to the APM control port. With no SMM to run, the values that ask firmware
   * to switch ACPI mode act directly on SCI_EN, as QEMU's PIIX4 does (ACPI 6.5 §4.8.2.5:
   * the OS writes ACPI_ENABLE to SMI_CMD, then polls SCI_EN).
   */
  writeApmControl(value: number): void {
    this.#apmControl = value;
    if (value === ACPI_ENABLE) this.#pm1Control |= PM1_CNT_SCI_EN;
    else if (value === ACPI_DISABLE) this.#pm1Control &= ~PM1_CNT_SCI_EN;
  }

  reset(): void {
    this.#apmControl = 0;
    this.#apmStatus = 0;
    this.#pm1Status = 0;
    this.#pm1Enable = 0;
    this.#pm1Control = 0;
    this.#gpe.fill(0);
    this.#resetRegisters();
    this.#updateSci();
  }

  saveState(): DeviceState {
    return {
      config: this.config.save(),
      pm1Status: this.#pm1Status,
      pm1Enable: this.#pm1Enable,
      pm1Control: this.#pm1Control,
      gpe: this.#gpe.slice(),
      apmControl: this.#apmControl,
      apmStatus: this.#apmStatus,
    };
  }

  loadState(state: DeviceState): void {
    this.config.load(state.config as Uint8Array);
    this.#pm1Status = state.pm1Status as number;
    this.#pm1Enable = state.pm1Enable as number;
    this.#pm1Control = state.pm1Control as number;
    this.#gpe.set(state.gpe as Uint8Array);
    this.#apmControl = (state.apmControl as number | undefined) ?? 0;
    this.#apmStatus = (state.apmStatus as number | undefined) ?? 0;
    this.#remap();
    this.#updateSci();
  }
}

/** The PIIX4 ACPI/PM function of `-M pc` at 00:01.3. */
export default {
  kind: "device",
  name: "PIIX4_PM",
  summary: "Intel PIIX4 power management (ACPI)",
  bus: "PCI",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): Piix4Pm {
    const m = machine;
    return new Piix4Pm("pm", m.service(PCI_BUS0), m.loop, m);
  },
} satisfies DeviceDescriptor;
