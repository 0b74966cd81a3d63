// The virtio PCI plugins: virtio-blk-pci, virtio-net-pci and virtio-balloon-pci descriptors

import type { DriveConfig } from "../../../core/machine.ts";
import { BALLOON, type DeviceContext, PCI_BUS } from "../../../core/device.ts";
import { addOptionRomBar, parsePciAddr } from "../../../core/pci.ts";
import { loadOptionRom, netBootRequested } from "../../../core/firmware.ts";
import { UsageError } from "../../../core/errors.ts";
import { connectNetClients, nicMacAddress, registerNic } from "../../../core/net.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { VirtioBalloon } from "./balloon.ts";
import { VirtioBlk } from "./blk.ts";
import { parseMac, VirtioNet } from "./net.ts";
import { type VirtioDeviceModel, VirtioPciDevice } from "./pci.ts";

export { VirtioBalloon } from "./balloon.ts";
export { VirtioBlk, virtioBlkGeometry } from "./blk.ts";
export { DEFAULT_MAC, formatMac, parseMac, VirtioNet } from "./net.ts";
export { type VirtioDeviceModel, type VirtioHost, VirtioPciDevice } from "./pci.ts";
export { type DescChain, VirtQueue, VirtQueueError } from "./queue.ts";

/** Options every virtio PCI device takes. */
const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: "id", type: "string", help: "device id" },
  { name: "addr", type: "string", help: "PCI slot[.function] (hex)" },
  {
    name: "disable-legacy",
    type: "enum",
    values: ["on", "off", "auto"],
    help: "turn off the legacy (0.9.5) I/O BAR interface (auto: off on a PCI bus)",
  },
  { name: "disable-modern", type: "bool", help: "turn off the virtio 1.x interface" },
  { name: "bootindex", type: "number", help: "boot priority (accepted)" },
];

/** Reads `addr=` as a devfn (moved to core/pci.ts; re-exported for this plugin's users). */
export { parsePciAddr };

/** Drives a virtio-blk device has taken (a drive backs one device). */
const claimedDrives = new WeakSet<DriveConfig>();

function plugTransport(
  machine: DeviceContext,
  model: string,
  prefix: string,
  device: VirtioDeviceModel,
  opts: ParsedOptions,
): VirtioPciDevice {
  const devfn = opts.addr === undefined ? undefined : parsePciAddr(model, String(opts.addr));
  const id = (opts.id as string | undefined) ?? machine.freeId(prefix);
  if (machine.device(id)) throw new UsageError(`Duplicate ID '${id}' for device`);
  try {
    return new VirtioPciDevice(id, model, device, {
      memory: machine.memory,
      io: machine.io,
      pci: machine.findService(PCI_BUS) ?? null,
      devfn,
      track: (promise) => machine.loop.track(promise),
      kick: () => machine.kick(),
    }, {
      legacy: opts["disable-legacy"] !== "on",
      modern: opts["disable-modern"] !== true,
    });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(`${e.message} for ${model}`);
    throw e;
  }
}

/** Creates a virtio-blk-pci on the drive `drive=` names. */
export function createVirtioBlkPci(machine: DeviceContext, opts: ParsedOptions): VirtioPciDevice {
  const model = "virtio-blk-pci";
  const driveId = opts.drive as string | undefined;
  if (driveId === undefined) throw new UsageError("drive property not set");
  const drive = machine.config.drives.find((d) => d.id === driveId);
  if (!drive) throw new UsageError(`Property '${model}.drive' can't find value '${driveId}'`);
  if (claimedDrives.has(drive) || (drive.interface !== "none" && drive.interface !== "virtio")) {
    throw new UsageError(`Property '${model}.drive' can't take value '${driveId}', it's in use`);
  }
  if (!drive.node) throw new UsageError("Device needs media, but drive is empty");
  const blk = new VirtioBlk(drive.node, {
    readOnly: drive.readOnly,
    serial: (opts.serial as string | undefined) ?? drive.serial,
    queueSize: opts["queue-size"] as number | undefined,
  });
  const device = plugTransport(machine, model, "virtio-blk", blk, opts);
  claimedDrives.add(drive);
  return device;
}

/** Creates a virtio-net-pci linked to `netdev=` (or to nothing). */
export function createVirtioNetPci(machine: DeviceContext, opts: ParsedOptions): VirtioPciDevice {
  const model = "virtio-net-pci";
  let given: Uint8Array | undefined;
  if (opts.mac !== undefined) {
    const parsed = parseMac(String(opts.mac));
    if (!parsed) throw new UsageError(`Property '${model}.mac' doesn't take value '${opts.mac}'`);
    given = parsed;
  }
  // One table of default MACs for every NIC model of the machine, as QEMU's.
  const mac = nicMacAddress(machine, given);
  const netdevId = opts.netdev as string | undefined;
  const netdev = netdevId === undefined ? undefined : machine.netClient(netdevId);
  if (netdevId !== undefined && !netdev) {
    throw new UsageError(`Property '${model}.netdev' can't find value '${netdevId}'`);
  }
  if (netdev?.peer) {
    throw new UsageError(`Property '${model}.netdev' can't take value '${netdevId}', it's in use`);
  }
  const id = (opts.id as string | undefined) ?? machine.freeId("virtio-net");
  // QEMU 7.2's virtio-net-pci romfile: iPXE, which SeaBIOS runs for `-boot n`.
  const rom = loadOptionRom(opts.romfile as string | undefined, "efi-virtio.rom", {
    dataDirs: machine.config.dataDirs,
    warn: machine.config.warn,
    netBoot: netBootRequested(machine.config),
    what: model,
  });
  const net = new VirtioNet(id, mac, {
    mrgRxbuf: opts.mrg_rxbuf as boolean | undefined,
    guestTso4: opts.guest_tso4 as boolean | undefined,
  });
  const device = plugTransport(machine, model, "virtio-net", net, { ...opts, id });
  if (rom) addOptionRomBar(device.config, machine.memory, `${id}.rom`, rom);
  if (netdev) connectNetClients(net, netdev);
  registerNic(machine, net, opts.id as string | undefined, () => net.mac);
  return device;
}

/** A virtio block device on PCI (`-device virtio-blk-pci,drive=ID`, `-drive if=virtio`). */
export const virtioBlkPci = {
  kind: "device",
  name: "virtio-blk-pci",
  aliases: ["virtio-blk"],
  summary: "Virtio block device",
  bus: "PCI",
  category: "Storage",
  userCreatable: true,
  options: [
    ...COMMON_OPTIONS,
    {
      name: "drive",
      type: "string",
      help: "Node name or ID of a block device to use as a backend",
    },
    { name: "serial", type: "string", help: "disk serial number (GET_ID)" },
    { name: "queue-size", type: "number", help: "virtqueue size (default 256)" },
  ],
  create(machine: DeviceContext, opts: ParsedOptions): VirtioPciDevice {
    return createVirtioBlkPci(machine, opts);
  },
} satisfies DeviceDescriptor;

/** A virtio network card on PCI (`-device virtio-net-pci,netdev=ID`, `-net nic,model=virtio`). */
export const virtioNetPci = {
  kind: "device",
  name: "virtio-net-pci",
  aliases: ["virtio-net"],
  summary: "Virtio network device",
  bus: "PCI",
  category: "Network",
  userCreatable: true,
  options: [
    ...COMMON_OPTIONS,
    { name: "netdev", type: "string", help: "ID of a netdev to use as a backend" },
    { name: "mac", type: "string", help: "Ethernet 6-byte MAC Address" },
    { name: "mrg_rxbuf", type: "bool", help: "mergeable receive buffers (default on)" },
    {
      name: "guest_tso4",
      type: "bool",
      help: "large TCP/IPv4 frames to the guest, with guest_csum (default on)",
    },
    {
      name: "romfile",
      type: "string",
      help: "option ROM in the expansion ROM BAR (default efi-virtio.rom; empty: none)",
    },
  ],
  create(machine: DeviceContext, opts: ParsedOptions): VirtioPciDevice {
    return createVirtioNetPci(machine, opts);
  },
} satisfies DeviceDescriptor;

/** The virtio memory balloon on PCI (`-device virtio-balloon`, `-balloon virtio`). */
export const virtioBalloonPci = {
  kind: "device",
  name: "virtio-balloon-pci",
  aliases: ["virtio-balloon"],
  summary: "Virtio memory balloon",
  bus: "PCI",
  category: "Misc",
  userCreatable: true,
  options: COMMON_OPTIONS,
  create(machine: DeviceContext, opts: ParsedOptions): VirtioPciDevice {
    // The monitor's balloon commands drive the one balloon a machine may have.
    if (machine.findService(BALLOON)) throw new UsageError("Only one balloon device is supported");
    const balloon = new VirtioBalloon();
    const device = plugTransport(machine, "virtio-balloon-pci", "virtio-balloon", balloon, opts);
    machine.provide(BALLOON, balloon);
    return device;
  },
} satisfies DeviceDescriptor;

/** The three virtio device plugins, in the order help lists them. */
export const VIRTIO_DEVICE_PLUGINS: readonly DeviceDescriptor[] = [
  virtioBlkPci,
  virtioNetPci,
  virtioBalloonPci,
];
