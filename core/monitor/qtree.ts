// `info qtree`: the device tree as QEMU prints it, PCI functions with their PCIDevice
// properties, ISA devices on the bridge's isa.0 with their qdev properties

import type { Device, QdevValue, QtreeNode } from "../device.ts";
import type { PciFunction } from "../pci.ts";
import { sizeToStr } from "../size_text.ts";
import type { MonitorContext } from "./commands.ts";
import { type PciDeviceInfo, pciDevices } from "./pci_info.ts";
import { hex } from "./hex.ts";

// Where a device sits on bus 0: its `devfn`, or else the function whose IDs and class
// match the configuration space the device holds as `config` (the bridges and the IDE).
function pciDevfnOf(d: Device, pci: Map<number, PciDeviceInfo>): number | undefined {
  const own = d as { devfn?: unknown; config?: unknown };
  if (typeof own.devfn === "number") return pci.has(own.devfn) ? own.devfn : undefined;
  const config = own.config as PciFunction | undefined;
  if (typeof config?.configRead !== "function") return undefined;
  const id = config.configRead(0, 4) >>> 0;
  const cls = config.configRead(8, 4) >>> 16;
  for (const [devfn, p] of pci) {
    if (p.id.vendor === (id & 0xffff) && p.id.device === id >>> 16 && p.class_info.class === cls) {
      return devfn;
    }
  }
  return undefined;
}

/** QEMU 7.2's i440FX-pcihost on `-M pc` and its properties' defaults. */
const PCI_HOST: QtreeNode = {
  model: "i440FX-pcihost",
  properties: [
    ["pci-hole64-size", { bytes: 2 ** 31 }],
    ["short_root_bus", 0],
    ["x-pci-hole64-fix", true],
    ["x-config-reg-migration-enabled", true],
    ["bypass-iommu", false],
  ],
};

/**
 * `info qtree`: vmkit's devices. The PCI functions (found by their devfn) sit on pci.0 with
 * QEMU's properties and class/address/BAR lines; a device that says what QEMU device(s) it
 * is ({@linkcode Device.qtree}) is listed with QEMU's properties, on the ISA bus behind the
 * PCI-ISA bridge or on the system bus; any other hangs off the system bus by its model.
 * QEMU lists a bus's children newest first, so the ISA bus is walked backwards.
 */
export function qtreeText(ctx: MonitorContext): string {
  const pci = new Map(pciDevices(ctx).map((p) => [p.slot * 8 + p.function, p]));
  const onPci = new Map<number, Device>();
  const system: Device[] = [];
  const isa: [QtreeNode, string][] = [];
  const idOf = (d: Device) => ctx.machine.qdevId(d);
  for (const d of ctx.machine.devices) {
    const devfn = pciDevfnOf(d, pci);
    const own = d.qtree?.();
    if (devfn !== undefined) onPci.set(devfn, d);
    else if (own?.bus === "isa") isa.unshift(...named(own.nodes, idOf(d)));
    else system.push(d);
  }
  let out = "bus: main-system-bus\n  type System\n";
  for (const d of system) {
    const own = d.qtree?.();
    if (own) { for (const [n, id] of named(own.nodes, idOf(d))) out += nodeText(n, 2, id); }
    else out += `  dev: ${d.model}, id "${idOf(d)}"\n`;
  }
  // The PCI host with its properties and bus; its configuration function (00.0) is listed
  // on the bus itself.
  out += nodeText(PCI_HOST, 2) + "    bus: pci.0\n      type PCI\n";
  for (const [devfn, p] of [...pci].sort((a, b) => b[0] - a[0])) {
    const d = onPci.get(devfn);
    const name = p.class_info.desc ?? `Class ${hex(p.class_info.class, 4)}`;
    const addr = `${hex(p.slot, 2)}.${p.function}`;
    // The host bridge's function is QEMU's i440FX device, apart from its i440FX-pcihost.
    const model = d?.model === "i440FX-pcihost" ? "i440FX" : d?.model ?? "pci-device";
    out += `      dev: ${model}, id "${d ? idOf(d) : ""}"\n`;
    out += pciProperties(p, addr, pci);
    out += `        class ${name}, addr 00:${addr}, pci id ${hex(p.id.vendor, 4)}:${
      hex(p.id.device, 4)
    } (sub ${hex(p.id["subsystem-vendor"], 4)}:${hex(p.id.subsystem, 4)})\n`;
    for (const r of p.regions) {
      const at = r.address < 0 ? "0xffffffffffffffff" : `0x${hex(r.address, 1)}`;
      const last = r.address < 0 ? r.size - 2 : r.address + r.size - 1;
      const kind = r.type === "io" ? "i/o" : "mem";
      out += `        bar ${r.bar}: ${kind} at ${at} [0x${hex(last, 1)}]\n`;
    }
    // The PCI-ISA bridge (class 0601) carries the ISA bus.
    if (p.class_info.class === 0x0601 && isa.length > 0) {
      out += "        bus: isa.0\n          type ISA\n";
      for (const [n, id] of isa) out += nodeText(n, 10, id);
    }
  }
  return out;
}

/**
 * A qdev property's value as QEMU's `info qtree` prints it: a number with its hex (a
 * negative one as the 64-bit two's complement), a string quoted, a size with its
 * human form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { qdevValueText } from "./qtree.ts";
 *
 * assert.equal(qdevValueText(1016), "1016 (0x3f8)");
 * assert.equal(qdevValueText(-1), "-1 (0xffffffffffffffff)");
 * assert.equal(qdevValueText("auto"), '"auto"');
 * assert.equal(qdevValueText({ bytes: 4294967295 }), "4294967295 (4 GiB)");
 * ```
 */
export function qdevValueText(value: QdevValue): string {
  if (typeof value === "string") return `"${value}"`;
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    const bits = value < 0 ? BigInt.asUintN(64, BigInt(value)) : BigInt(value);
    return `${value} (0x${bits.toString(16)})`;
  }
  return `${value.bytes} (${sizeToStr(value.bytes)})`;
}

/** A device's nodes with their qdev ids: `id` names a device that is one node; others have none. */
function named(nodes: readonly QtreeNode[], id: string): [QtreeNode, string][] {
  return nodes.map((n) => [n, nodes.length === 1 ? id : ""]);
}

/** One device (qdev id `id`) with its GPIO lines, properties and buses, `indent` spaces in. */
function nodeText(node: QtreeNode, indent: number, id = ""): string {
  const pad = " ".repeat(indent);
  let out = `${pad}dev: ${node.model}, id "${id}"\n`;
  for (const [kind, name, count] of node.gpios ?? []) {
    out += `${pad}  gpio-${kind} "${name}" ${count}\n`;
  }
  for (const [name, value] of node.properties) out += `${pad}  ${name} = ${qdevValueText(value)}\n`;
  for (const [base, size] of node.mmio ?? []) {
    out += `${pad}  mmio ${hex(base, 16)}/${hex(size, 16)}\n`;
  }
  for (const bus of node.buses ?? []) {
    out += `${pad}  bus: ${bus.name}\n${pad}    type ${bus.type}\n`;
    for (const d of bus.devices) out += nodeText(d, indent + 4);
  }
  return out;
}

/**
 * The properties every PCI device has in QEMU (its PCIDevice part), as `info qtree` prints
 * them. A NIC's or display's ROM file is the device's own (vmkit maps it only when it is
 * used), so `romfile` and `romsize` are left out there; the other functions have none.
 */
function pciProperties(p: PciDeviceInfo, addr: string, all: Map<number, PciDeviceInfo>): string {
  const devfn = p.slot * 8 + p.function;
  // Function 0 of a slot whose other functions exist is multifunction (PIIX3 on 01.0).
  const multi = p.function === 0 &&
    [1, 2, 3, 4, 5, 6, 7].some((f) => all.has(devfn + f));
  const cls = p.class_info.class >> 8;
  const ownRom = cls === 0x02 || cls === 0x03 || p.regions.some((r) => r.bar === 6);
  let out = `        addr = ${addr}\n`;
  if (!ownRom) out += `        romfile = ""\n        romsize = 4294967295 (0xffffffff)\n`;
  out += "        rombar = 1 (0x1)\n";
  out += `        multifunction = ${multi}\n`;
  out += "        x-pcie-lnksta-dllla = true\n        x-pcie-extcap-init = true\n";
  out += `        failover_pair_id = ""\n        acpi-index = 0 (0x0)\n`;
  return out;
}
