// `info pci` and `query-pci`: bus 0 walked through the host bridge's configuration ports,
// as QEMU's qmp_query_pci walks its bus, and the HMP layout printed from the same list

import type { CommandTable, MonitorContext } from "./commands.ts";
import { hex } from "./hex.ts";

/** One BAR of a PCI function as query-pci reports it (bar 6 is the expansion ROM). */
export interface PciRegionInfo {
  bar: number;
  type: "io" | "memory";
  /** The base, or -1 while the BAR is not decoded (QEMU's PCI_BAR_UNMAPPED). */
  address: number;
  size: number;
  prefetch?: boolean;
  mem_type_64?: boolean;
}

/** One PCI function as query-pci reports it. */
export interface PciDeviceInfo {
  bus: number;
  slot: number;
  function: number;
  class_info: { class: number; desc?: string };
  id: { vendor: number; device: number; "subsystem-vendor": number; subsystem: number };
  irq_pin: number;
  irq?: number;
  qdev_id: string;
  regions: PciRegionInfo[];
}

/** The class names QEMU's pci_class_descriptions gives the classes a PC board has. */
const PCI_CLASSES: Record<number, string> = {
  0x0100: "SCSI controller",
  0x0101: "IDE controller",
  0x0106: "SATA controller",
  0x0180: "Storage controller",
  0x0200: "Ethernet controller",
  0x0300: "VGA controller",
  0x0600: "Host bridge",
  0x0601: "ISA bridge",
  0x0680: "Bridge",
};

const PCI_COMMAND_IO = 0x1;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_ROM_ADDRESS = 0x30;

/**
 * Walks bus 0 through ports 0xcf8/0xcfc between slices (sizing each BAR the way a
 * firmware does, then writing its value back) and restores the guest's address latch.
 */
export function pciDevices(ctx: MonitorContext): PciDeviceInfo[] {
  const io = ctx.machine.io;
  const latch = io.in(0xcf8, 4);
  const select = (devfn: number, off: number) =>
    io.out(0xcf8, 4, (0x80000000 | (devfn << 8) | (off & 0xfc)) >>> 0);
  const cfg = (devfn: number, off: number) => (select(devfn, off), io.in(0xcfc, 4) >>> 0);
  const setCfg = (
    devfn: number,
    off: number,
    v: number,
  ) => (select(devfn, off), io.out(0xcfc, 4, v >>> 0));
  // Writes all ones (or `probe`) and reads back the size mask, restoring the value.
  const sizeMask = (devfn: number, off: number, probe = 0xffffffff) => {
    const value = cfg(devfn, off);
    setCfg(devfn, off, probe);
    const mask = cfg(devfn, off);
    setCfg(devfn, off, value);
    return { value, mask };
  };
  const out: PciDeviceInfo[] = [];
  try {
    for (let devfn = 0; devfn < 256; devfn++) {
      const id = cfg(devfn, 0);
      if ((id & 0xffff) === 0xffff || id === 0) {
        if ((devfn & 7) === 0) devfn += 7;
        continue;
      }
      const cls = cfg(devfn, 8) >>> 16;
      const sub = cfg(devfn, 0x2c);
      const intr = cfg(devfn, 0x3c);
      const headerWord = cfg(devfn, 0x0c) >>> 16;
      const command = cfg(devfn, 4) & 0xffff;
      const pin = (intr >> 8) & 0xff;
      const info: PciDeviceInfo = {
        bus: 0,
        slot: devfn >> 3,
        function: devfn & 7,
        class_info: PCI_CLASSES[cls] ? { class: cls, desc: PCI_CLASSES[cls] } : { class: cls },
        id: {
          vendor: id & 0xffff,
          device: id >>> 16,
          "subsystem-vendor": sub & 0xffff,
          subsystem: sub >>> 16,
        },
        irq_pin: pin,
        qdev_id: "",
        regions: [],
      };
      if (pin) info.irq = intr & 0xff;
      if ((headerWord & 0x7f) === 0) {
        for (let bar = 0; bar < 6; bar++) {
          const off = 0x10 + bar * 4;
          const { value, mask } = sizeMask(devfn, off);
          if (mask === 0) continue;
          if (value & 1) {
            const size = ((~(mask & 0xfffc) & 0xffff) + 1) >>> 0;
            const base = value & 0xfffc;
            const mapped = (command & PCI_COMMAND_IO) !== 0 && base !== 0;
            info.regions.push({ bar, type: "io", address: mapped ? base : -1, size });
            continue;
          }
          const is64 = (value & 6) === 4;
          let size = ((~(mask & 0xfffffff0)) + 1) >>> 0;
          let base = (value & 0xfffffff0) >>> 0;
          if (is64) {
            const high = sizeMask(devfn, off + 4);
            const sizeMask64 = high.mask * 2 ** 32 + (mask & 0xfffffff0);
            size = 2 ** 64 - sizeMask64;
            if (high.mask === 0xffffffff) size = ((~(mask & 0xfffffff0)) + 1) >>> 0;
            base += high.value * 2 ** 32;
          }
          const mapped = (command & PCI_COMMAND_MEMORY) !== 0 && base !== 0;
          info.regions.push({
            bar,
            type: "memory",
            address: mapped ? base : -1,
            size,
            prefetch: (value & 8) !== 0,
            mem_type_64: is64,
          });
          if (is64) bar++;
        }
        // The expansion ROM: sized without setting its enable bit.
        const rom = sizeMask(devfn, PCI_ROM_ADDRESS, 0xfffff800);
        if ((rom.mask & 0xfffff800) !== 0) {
          const size = ((~(rom.mask & 0xfffff800)) + 1) >>> 0;
          const base = (rom.value & 0xfffff800) >>> 0;
          const mapped = (command & PCI_COMMAND_MEMORY) !== 0 && (rom.value & 1) !== 0 &&
            base !== 0;
          info.regions.push({
            bar: 6,
            type: "memory",
            address: mapped ? base : -1,
            size,
            prefetch: false,
            mem_type_64: false,
          });
        }
      }
      out.push(info);
      if ((devfn & 7) === 0 && !(headerWord & 0x80)) devfn += 7;
    }
  } finally {
    io.out(0xcf8, 4, latch >>> 0);
  }
  return out;
}

// An unmapped BAR prints as QEMU's: the address -1 as 64 bits, the end wrapped to size - 2.
function addr(value: number, digits: number): string {
  return value < 0 ? "0xffffffffffffffff" : `0x${hex(value, digits)}`;
}

/** `info pci`: QEMU's hmp_info_pci_device layout for each function. */
export function pciText(devices: readonly PciDeviceInfo[]): string {
  let out = "";
  for (const d of devices) {
    out += `  Bus ${String(d.bus).padStart(2)}, device ${
      String(d.slot).padStart(3)
    }, function ${d.function}:\n`;
    const name = d.class_info.desc ?? `Class ${hex(d.class_info.class, 4)}`;
    out += `    ${name}: PCI device ${hex(d.id.vendor, 4)}:${hex(d.id.device, 4)}\n`;
    out += `      PCI subsystem ${hex(d.id["subsystem-vendor"], 4)}:${hex(d.id.subsystem, 4)}\n`;
    if (d.irq_pin) out += `      IRQ ${d.irq}, pin ${String.fromCharCode(64 + d.irq_pin)}\n`;
    for (const r of d.regions) {
      const last = r.address < 0 ? r.size - 2 : r.address + r.size - 1;
      if (r.type === "io") {
        out += `      BAR${r.bar}: I/O at ${addr(r.address, 4)} [0x${hex(last, 4)}].\n`;
      } else {
        out += `      BAR${r.bar}: ${r.mem_type_64 ? 64 : 32} bit${
          r.prefetch ? " prefetchable" : ""
        } memory at ${addr(r.address, 8)} [0x${hex(last, 8)}].\n`;
      }
    }
    out += `      id "${d.qdev_id}"\n`;
  }
  return out;
}

/** Adds `info pci` and `query-pci`. */
export function addPciCommands(table: CommandTable): void {
  table.addInfo({
    name: "pci",
    params: "",
    help: "show PCI info",
    run: (ctx) => pciText(pciDevices(ctx)),
  });
  table.addQmp({
    name: "query-pci",
    args: [],
    run: (ctx) => [{ bus: 0, devices: pciDevices(ctx) }],
  });
}
