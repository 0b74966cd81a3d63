// The PIIX3 IDE function (00:01.1): legacy ATA ports on IRQ 14/15 and the BAR4 bus master block

import type { BlockIo } from "../../../core/block/backend.ts";
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
  PCI_BUS,
  type PciBus,
  REMOVABLE_MEDIA,
} from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import { UsageError } from "../../../core/errors.ts";
import { PCI_SUBDEVICE_ID_QEMU, PCI_SUBVENDOR_ID_REDHAT_QUMRANET } from "../../../core/pci.ts";
import { PCI_STATUS, PciConfig } from "../../../core/pci.ts";
import { IdeChannel } from "./channel.ts";
import type { Drive } from "./drive.ts";

/** The devfn QEMU's pc board gives the IDE function (slot 1, function 1). */
export const PIIX3_IDE_DEVFN = 0x09;
/** IDE timing registers IDETIM of the primary and secondary channel (PIIX3 datasheet §2.3.1). */
export const PIIX_IDETIM_PRIMARY = 0x40;
export const PIIX_IDETIM_SECONDARY = 0x42;
/** The bus master I/O BAR (BMIBA). */
export const PIIX_BMIBA_BAR = 4;

/** PCI status bits set at reset: fast back-to-back capable, medium DEVSEL timing. */
const PCI_STATUS_FAST_BACK = 0x0080;
const PCI_STATUS_DEVSEL_MEDIUM = 0x0200;

/** The legacy ISA resources of the two channels. */
export const IDE_LEGACY = [
  { commandBase: 0x1f0, controlPort: 0x3f6, irq: 14 },
  { commandBase: 0x170, controlPort: 0x376, irq: 15 },
] as const;

/** One device to attach. */
export interface IdeDriveConfig {
  /** 0..3: primary master, primary slave, secondary master, secondary slave. */
  index: number;
  media: "disk" | "cdrom";
  node: BlockIo | null;
  readOnly: boolean;
  serial?: string;
}

/** Where the controller plugs in; every part is optional for tests. */
export interface Piix3IdeHost {
  memory: AddressSpace;
  io: PortIoSpace | null;
  pci: PciBus | null;
  irqs: [IrqLine | null, IrqLine | null];
  track?(promise: Promise<void>): Promise<void>;
}

/**
 * The PIIX3 IDE controller in compatibility mode (programming interface 0x80): the
 * two channels at their ISA ports and IRQs, and the SFF-8038i bus master registers
 * in the 16-byte I/O BAR4.
 */
export class Piix3Ide implements Device {
  readonly model = "piix3-ide";
  readonly config: PciConfig;
  readonly channels: [IdeChannel, IdeChannel];
  #io: PortIoSpace | null;

  constructor(readonly id: string, host: Piix3IdeHost, drives: IdeDriveConfig[]) {
    this.#io = host.io;
    this.channels = [0, 1].map((n) =>
      new IdeChannel({ memory: host.memory, irq: host.irqs[n], track: host.track })
    ) as [IdeChannel, IdeChannel];
    this.config = new PciConfig({
      vendorId: 0x8086,
      deviceId: 0x7010,
      classCode: 0x010180,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
    });
    // Device-specific registers (IDETIM, SIDETIM...) are plain read/write bytes, as on QEMU.
    this.config.setWritable(0x40, new Array(0xc0).fill(0xff));
    this.config.addBar(PIIX_BMIBA_BAR, {
      size: 16,
      io: true,
      map: (base) => this.#mapBusMaster(base),
    });
    this.#resetConfig();
    for (const d of drives) {
      if (d.index < 0 || d.index > 3) {
        throw new UsageError(`IDE unit ${d.index} does not exist: the PIIX3 has units 0 to 3`);
      }
      const channel = this.channels[d.index >> 1];
      if (channel.drives[d.index & 1]) throw new UsageError(`IDE unit ${d.index} is in use`);
      channel.attach((d.index & 1) as 0 | 1, {
        kind: d.media,
        node: d.node,
        readOnly: d.readOnly,
        // QEMU numbers its IDE drives QM00001.. in unit order.
        serial: d.serial ?? `QM${String(d.index + 1).padStart(5, "0")}`,
      });
    }
    if (host.io) this.#registerLegacyPorts(host.io);
    host.pci?.plug(this.config, PIIX3_IDE_DEVFN);
  }

  #resetConfig(): void {
    this.config.reset();
    this.config.set16(PCI_STATUS, PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM);
  }

  #registerLegacyPorts(io: PortIoSpace): void {
    IDE_LEGACY.forEach((legacy, n) => {
      const channel = this.channels[n];
      io.register(`${this.id}.${n}`, legacy.commandBase, 8, {
        read: (port, size) => channel.read(port - legacy.commandBase, size),
        write: (port, size, value) => channel.write(port - legacy.commandBase, size, value),
      });
      io.register(`${this.id}.${n}-ctl`, legacy.controlPort, 1, {
        read: () => channel.readAltStatus(),
        write: (_port, _size, value) => channel.writeControl(value),
      });
    });
  }

  #mapBusMaster(base: number | null): void {
    const io = this.#io;
    if (!io) return;
    io.unregister(`${this.id}-bmdma`);
    if (base === null) return;
    // BAR4 is guest-programmed: placed over the IDE command ports, it covers them
    // (an I/O BAR decodes at priority 1, above the fixed ISA ports, as in QEMU).
    io.register(`${this.id}-bmdma`, base, 16, {
      read: (port, size) => this.readBusMaster(port - base, size),
      write: (port, size, value) => this.writeBusMaster(port - base, size, value),
    }, { priority: 1, overlap: true });
  }

  /** A read of the bus master block at `offset` (0..15). */
  readBusMaster(offset: number, size: 1 | 2 | 4): number {
    return this.channels[offset >> 3].busMaster.read(offset & 7, size);
  }

  /** A write of the bus master block at `offset`. */
  writeBusMaster(offset: number, size: 1 | 2 | 4, value: number): void {
    this.channels[offset >> 3].busMaster.write(offset & 7, size, value);
  }

  /** The device at unit `index` (0..3), if any. */
  drive(index: number): Drive | null {
    return this.channels[index >> 1]?.drives[index & 1] ?? null;
  }

  /** Reads each disk's boot sector for its geometry. */
  async realize(): Promise<void> {
    for (const c of this.channels) for (const d of c.drives) await d?.init();
  }

  /** Resolves when no I/O is in flight (for tests). */
  async settled(): Promise<void> {
    for (const c of this.channels) await c.settled();
  }

  reset(): void {
    this.#resetConfig();
    for (const c of this.channels) c.reset();
  }

  /** savevm drains disk I/O first; a command still waiting for the disk cannot be saved. */
  migrationBlocker(): string | null {
    const busy = [0, 1, 2, 3].some((n) => (this.drive(n)?.ioInFlight ?? 0) > 0);
    return busy ? "an IDE command is waiting for its disk I/O" : null;
  }

  saveState(): DeviceState {
    return {
      config: this.config.save(),
      channels: this.channels.map((c) => c.saveState()),
    };
  }

  loadState(state: DeviceState): void {
    this.config.load(state.config as Uint8Array);
    const channels = state.channels as DeviceState[];
    this.channels.forEach((c, i) => c.loadState(channels[i]));
  }
}

/** Creates the controller of a machine with its `if=ide` drives. */
export function createPiix3Ide(machine: DeviceContext): Piix3Ide {
  const isa = machine.findService(ISA_BUS);
  const drives: IdeDriveConfig[] = [];
  let next = 0;
  for (const d of machine.config.drives) {
    if (d.interface !== "ide") continue;
    let index = d.index;
    if (index === undefined) {
      while (drives.some((x) => x.index === next)) next++;
      index = next;
    }
    drives.push({
      index,
      media: d.media,
      node: d.node,
      readOnly: d.readOnly,
      serial: d.serial,
    });
  }
  const ide = new Piix3Ide("ide", {
    memory: machine.memory,
    io: machine.io,
    pci: machine.findService(PCI_BUS) ?? null,
    irqs: [isa?.irq(14) ?? null, isa?.irq(15) ?? null],
    track: (promise) => machine.loop.track(promise),
  }, drives);
  publishRemovable(machine, ide, drives);
  return ide;
}

// The CD-ROM drives go on the machine's list of removable media (eject, change).
function publishRemovable(machine: DeviceContext, ide: Piix3Ide, drives: IdeDriveConfig[]): void {
  const configs = machine.config.drives.filter((d) => d.interface === "ide");
  drives.forEach((d, i) => {
    const drive = ide.drive(d.index);
    if (d.media !== "cdrom" || !drive) return;
    let media = machine.findService(REMOVABLE_MEDIA);
    if (!media) machine.provide(REMOVABLE_MEDIA, media = new Map());
    media.set(configs[i].id, drive);
  });
}
