// The NIC plugins that are not virtio: e1000 (82540EM) and rtl8139 (RTL8139C+)

import { type Device, type DeviceContext, PCI_BUS } from "../../../core/device.ts";
import { UsageError } from "../../../core/errors.ts";
import { loadOptionRom, netBootRequested } from "../../../core/firmware.ts";
import {
  connectNetClients,
  type NetClient,
  nicMacAddress,
  registerNic,
} from "../../../core/net.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { addOptionRomBar, type PciConfig } from "../../../core/pci.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { E1000, type E1000Host } from "./e1000.ts";
import { Rtl8139 } from "./rtl8139.ts";

export { E1000 } from "./e1000.ts";
export { Rtl8139 } from "./rtl8139.ts";

function parseMac(text: string): Uint8Array | null {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return null;
  return new Uint8Array(parts.map((p) => Number.parseInt(p, 16)));
}

function parseAddr(model: string, text: string): number {
  const m = /^(?:0x)?([0-9a-fA-F]{1,2})(?:\.([0-7]))?$/.exec(text);
  const slot = m ? Number.parseInt(m[1], 16) : NaN;
  if (!m || slot > 31) {
    throw new UsageError(`Property '${model}.addr' doesn't take value '${text}'`);
  }
  return (slot << 3) | Number(m[2] ?? 0);
}

/** The MAC for a NIC: `mac=`, or the machine's next free default (shared with virtio-net). */
function nicMac(machine: DeviceContext, model: string, opts: ParsedOptions): Uint8Array {
  if (opts.mac === undefined) return nicMacAddress(machine);
  const parsed = parseMac(String(opts.mac));
  if (!parsed) throw new UsageError(`Property '${model}.mac' doesn't take value '${opts.mac}'`);
  return nicMacAddress(machine, parsed);
}

/** Options every NIC here takes. */
const NIC_OPTIONS = [
  { name: "id", type: "string", help: "device id" },
  { name: "addr", type: "string", help: "PCI slot[.function] (hex)" },
  { name: "netdev", type: "string", help: "ID of a netdev to use as a backend" },
  { name: "mac", type: "string", help: "Ethernet 6-byte MAC Address" },
  { name: "bootindex", type: "number", help: "boot priority (accepted)" },
  {
    name: "romfile",
    type: "string",
    help: "option ROM in the expansion ROM BAR (default: the iPXE ROM QEMU uses; empty: none)",
  },
] as const;

/**
 * Checks a NIC's options, makes it with `make`, gives it its option ROM (`romfile=`, by
 * default `defaultRom` as QEMU 7.2 names it, which SeaBIOS runs for `-boot n`) and links
 * it to its `netdev=`.
 */
function createNic<
  T extends Device & NetClient & { readonly pci: PciConfig; readonly mac: Uint8Array },
>(
  machine: DeviceContext,
  opts: ParsedOptions,
  model: string,
  defaultRom: string,
  make: (id: string, mac: Uint8Array, host: E1000Host) => T,
): T {
  const netdevId = opts.netdev as string | undefined;
  const netdev = netdevId === undefined ? undefined : machine.netClient(netdevId);
  if (netdevId !== undefined && !netdev) {
    throw new UsageError(`Property '${model}.netdev' can't find value '${netdevId}'`);
  }
  if (netdev?.peer) {
    throw new UsageError(`Property '${model}.netdev' can't take value '${netdevId}', it's in use`);
  }
  const id = (opts.id as string | undefined) ?? machine.freeId(model);
  if (machine.device(id)) throw new UsageError(`Duplicate ID '${id}' for device`);
  const rom = loadOptionRom(opts.romfile as string | undefined, defaultRom, {
    dataDirs: machine.config.dataDirs,
    warn: machine.config.warn,
    netBoot: netBootRequested(machine.config),
    what: model,
  });
  const nic = make(id, nicMac(machine, model, opts), {
    memory: machine.memory,
    io: machine.io,
    pci: machine.findService(PCI_BUS) ?? null,
    devfn: opts.addr === undefined ? undefined : parseAddr(model, String(opts.addr)),
    kick: () => machine.kick(),
  });
  if (rom) addOptionRomBar(nic.pci, machine.memory, `${id}.rom`, rom);
  if (netdev) connectNetClients(nic, netdev);
  registerNic(machine, nic, opts.id as string | undefined, () => nic.mac);
  return nic;
}

/** `-device e1000,netdev=ID` and `-net nic,model=e1000` (QEMU's default NIC on pc). */
export const e1000Device = {
  kind: "device",
  name: "e1000",
  aliases: ["e1000-82540em"],
  summary: "Intel Gigabit Ethernet (82540EM)",
  bus: "PCI",
  category: "Network",
  userCreatable: true,
  options: NIC_OPTIONS,
  create(machine: DeviceContext, opts: ParsedOptions): E1000 {
    return createNic(
      machine,
      opts,
      "e1000",
      "efi-e1000.rom",
      (id, mac, host) => new E1000(id, mac, host),
    );
  },
} satisfies DeviceDescriptor;

/** `-device rtl8139,netdev=ID` and `-net nic,model=rtl8139`: an RTL8139C+ in C+ mode. */
export const rtl8139Device = {
  kind: "device",
  name: "rtl8139",
  summary: "Realtek RTL8139C+ (C+ mode only: Linux 8139cp)",
  bus: "PCI",
  category: "Network",
  userCreatable: true,
  options: NIC_OPTIONS,
  create(machine: DeviceContext, opts: ParsedOptions): Rtl8139 {
    return createNic(
      machine,
      opts,
      "rtl8139",
      "efi-rtl8139.rom",
      (id, mac, host) => new Rtl8139(id, mac, host),
    );
  },
} satisfies DeviceDescriptor;

/** The non-virtio NIC plugins. */
export const NET_DEVICE_PLUGINS: readonly DeviceDescriptor[] = [e1000Device, rtl8139Device];
