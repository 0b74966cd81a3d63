// -drive and -blockdev options: the drive's own, plus what the format and protocol plugins declare

import { GUEST_DISK_SHARED } from "../../core/block/perm.ts";
import { BlockBackend, type CacheMode, parseCacheMode } from "../../core/block/backend.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { type BlockGraph, withoutOpenWrapper } from "../../core/block/graph.ts";
import { errorChainMessage, UsageError } from "../../core/errors.ts";
import type { DriveConfig } from "../../core/machine.ts";
import {
  type KeyValue,
  type OptionSpec,
  type ParsedOptions,
  parseKeyValueList,
  parseOptions,
} from "../../core/options.ts";
import type { ProtocolDescriptor, Registry } from "../../core/plugin.ts";

/** The options of a `-drive` itself; a format's and protocol's own come from their descriptors. */
export const DRIVE_OPTIONS: readonly OptionSpec[] = [
  { name: "file", type: "string", help: "disk image" },
  { name: "format", type: "string", help: "disk format (raw, qcow2, ...)" },
  { name: "driver", type: "string", help: "the top driver: a format, or a protocol (file)" },
  {
    name: "if",
    type: "enum",
    values: ["ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none"],
    help: "interface",
  },
  { name: "index", type: "number", help: "index on the interface" },
  { name: "bus", type: "number", help: "bus number" },
  { name: "unit", type: "number", help: "unit number" },
  { name: "media", type: "enum", values: ["disk", "cdrom"], help: "media type" },
  {
    name: "cache",
    type: "enum",
    values: ["writeback", "writethrough", "none", "directsync", "unsafe"],
    help: "host cache mode",
  },
  { name: "readonly", type: "bool", help: "open read-only" },
  {
    name: "auto-read-only",
    type: "bool",
    help: "open read-only where read-write is refused (on by default)",
  },
  { name: "snapshot", type: "bool", help: "discard writes at exit" },
  { name: "id", type: "string", help: "drive id" },
  { name: "serial", type: "string", help: "disk serial number" },
  { name: "aio", type: "string", help: "host AIO implementation (accepted)" },
  { name: "discard", type: "string", help: "discard mode (accepted)" },
  { name: "detect-zeroes", type: "string", help: "detect zero writes (accepted)" },
  { name: "werror", type: "string", help: "write error action (accepted)" },
  { name: "rerror", type: "string", help: "read error action (accepted)" },
];

/** The options of a format `-blockdev` itself (QEMU's BlockdevOptionsBase). */
const BLOCKDEV_OPTIONS: readonly OptionSpec[] = [
  { name: "driver", type: "string", help: "the format (or protocol) driver" },
  { name: "node-name", type: "string", help: "the node's name (what -device drive= names)" },
  { name: "file", type: "string", help: "the node-name of the protocol -blockdev below" },
  { name: "read-only", type: "bool", help: "open read-only" },
  { name: "cache.direct", type: "bool", help: "bypass the host page cache" },
  { name: "cache.no-flush", type: "bool", help: "ignore flush requests" },
  { name: "discard", type: "string", help: "discard mode (accepted)" },
  { name: "detect-zeroes", type: "string", help: "detect zero writes (accepted)" },
  { name: "auto-read-only", type: "bool", help: "open read-only where read-write is refused" },
];

function joinItems(items: readonly KeyValue[]): string {
  return items.map((i) => (i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`))
    .join(",");
}

/** Every format's runtime options, once each: what a `-drive` without `format=` may carry. */
function allFormatOpenOptions(registry: Registry): OptionSpec[] {
  const seen = new Map<string, OptionSpec>();
  for (const f of registry.list("format")) {
    for (const o of f.openOptions ?? []) if (!seen.has(o.name)) seen.set(o.name, o);
  }
  return [...seen.values()];
}

/** What {@linkcode pluginBlockOptions} makes of the options a drive passes on. */
export interface PluginBlockOptions {
  formatOptions: ParsedOptions;
  protocolOptions: ParsedOptions;
  /** The protocol named with `file.driver=` (the graph chooses by the filename without one). */
  protocol?: string;
  /** The filename given as `file.filename=` (or `filename=` under `driver=file`). */
  filename?: string;
}

/**
 * Types a protocol's options, refusing one it does not declare in QEMU's words: -drive's
 * ("Block protocol 'file' doesn't support the option 'x'"), or with `blockdev` the schema's
 * ("Parameter 'file.x' is unexpected", `prefix` giving the key's full name).
 */
function typeProtocolOptions(
  protocol: ProtocolDescriptor,
  items: readonly KeyValue[],
  options: { blockdev?: boolean; prefix?: string } = {},
): ParsedOptions {
  const specs = protocol.openOptions ?? [];
  const bad = items.find((i) => !specs.some((o) => o.name === i.key));
  if (bad) {
    throw new UsageError(
      options.blockdev
        ? `Parameter '${options.prefix ?? ""}${bad.key}' is unexpected`
        : `Block protocol '${protocol.name}' doesn't support the option '${bad.key}'`,
    );
  }
  return parseOptions(joinItems(items), specs);
}

/**
 * Types the options a `-drive` or `-blockdev` passes on: `file.NAME=` by the protocol's
 * `openOptions` (`file.driver=` names the protocol), the rest by the format's (every
 * format's when the format is probed). A protocol named as the driver (`driver=file`)
 * takes the rest itself.
 *
 * @returns the typed format and protocol options, and the protocol and filename named
 */
export function pluginBlockOptions(
  registry: Registry,
  format: string | undefined,
  items: readonly KeyValue[],
  options: { blockdev?: boolean } = {},
): PluginBlockOptions {
  const blockdev = options.blockdev === true;
  const fileItems = items.filter((i) => i.key.startsWith("file."))
    .map((i) => ({ ...i, key: i.key.slice(5) }));
  const formatItems = items.filter((i) => !i.key.startsWith("file."));
  const root = format === undefined || registry.get("format", format)
    ? undefined
    : registry.get("protocol", format);
  if (root) {
    // No format node: the protocol takes the options, and `file.` names nothing.
    if (fileItems.length > 0) {
      throw new UsageError(
        blockdev
          ? "Parameter 'file' is unexpected"
          : `Block protocol '${root.name}' doesn't support the option 'file.${fileItems[0].key}'`,
      );
    }
    const filename = formatItems.find((i) => i.key === "filename")?.value;
    const rest = formatItems.filter((i) => i.key !== "filename");
    const protocolOptions = typeProtocolOptions(root, rest, { blockdev });
    return { formatOptions: {}, protocolOptions, filename };
  }
  const driver = fileItems.find((i) => i.key === "driver")?.value;
  const filename = fileItems.find((i) => i.key === "filename")?.value;
  const protocol = driver === undefined
    ? registry.require("protocol", "file")
    : registry.get("protocol", driver);
  if (!protocol) throw new UsageError(`Unknown driver '${driver}'`);
  const protocolOptions = typeProtocolOptions(
    protocol,
    fileItems.filter((i) => i.key !== "driver" && i.key !== "filename"),
    { blockdev, prefix: "file." },
  );
  const descriptor = format === undefined ? undefined : registry.get("format", format);
  if (format !== undefined && !descriptor) throw new UsageError(`Unknown driver '${format}'`);
  const specs = descriptor ? descriptor.openOptions ?? [] : allFormatOpenOptions(registry);
  const bad = formatItems.find((i) => !specs.some((o) => o.name === i.key));
  if (bad) {
    throw new UsageError(
      blockdev
        ? `Parameter '${bad.key}' is unexpected`
        : descriptor
        ? `Block format '${descriptor.name}' does not support the option '${bad.key}'`
        : `Invalid parameter '${bad.key}'`,
    );
  }
  return {
    formatOptions: parseOptions(joinItems(formatItems), specs),
    protocolOptions,
    protocol: driver,
    filename,
  };
}

/**
 * Reads one `-drive` option string: the drive's own options typed by
 * {@linkcode DRIVE_OPTIONS}, the format's and protocol's by their descriptors.
 */
export function parseDriveOptions(
  spec: string,
  registry: Registry,
): { drive: ParsedOptions } & PluginBlockOptions {
  const items = parseKeyValueList(spec, { impliedKey: "file" });
  const own = items.filter((i) => DRIVE_OPTIONS.some((o) => o.name === i.key));
  const passed = items.filter((i) => !DRIVE_OPTIONS.some((o) => o.name === i.key));
  const drive = parseOptions(joinItems(own), DRIVE_OPTIONS);
  if (drive.driver !== undefined && drive.format !== undefined) {
    throw new UsageError("Cannot specify both 'driver' and 'format'");
  }
  const top = (drive.driver ?? drive.format) as string | undefined;
  const plugin = pluginBlockOptions(registry, top, passed);
  if (drive.file !== undefined && plugin.filename !== undefined) {
    throw new UsageError("Can't specify 'file' and 'filename' options at the same time");
  }
  if (top !== undefined) drive.format = top;
  if (plugin.filename !== undefined) drive.file = plugin.filename;
  return { drive, ...plugin };
}

/** `file=NODE` naming no earlier `-blockdev`, in QEMU's words. */
function unknownNode(name: string): UsageError {
  return new UsageError(`Cannot find device='${name}' nor node-name='${name}'`);
}

/** The cache mode a `-blockdev`'s `cache.direct` and `cache.no-flush` stand for. */
function blockdevCache(o: ParsedOptions): CacheMode {
  return o["cache.no-flush"] === true
    ? "unsafe"
    : o["cache.direct"] === true
    ? "none"
    : "writeback";
}

/**
 * Opens the nodes of `-blockdev` options as drives with `interface: none`, named by
 * `node-name`, for `-device ...,drive=NAME`. Every node is opened where it is given, as
 * QEMU does (a protocol node on a missing file fails even if nothing uses it). A format
 * node sits on a protocol node given inline (`file.driver=file,file.filename=PATH`) or
 * by name (`file=NODE`, an earlier `-blockdev driver=file,node-name=NODE,filename=PATH`,
 * which the format node then owns); a protocol node no format node takes is a drive itself.
 */
export async function openBlockdevs(
  specs: readonly string[],
  graph: BlockGraph,
): Promise<DriveConfig[]> {
  // Protocol nodes not (yet) under a format node, by node-name.
  const protocols = new Map<string, { node: BlockNode; readOnly: boolean; cache: CacheMode }>();
  const drives: DriveConfig[] = [];
  try {
    for (const spec of specs) {
      const where = `-blockdev ${spec}`;
      try {
        await openBlockdev(spec, graph, protocols, drives);
      } catch (e) {
        throw new UsageError(`${where}: ${errorChainMessage(withoutOpenWrapper(e))}`);
      }
    }
  } catch (e) {
    for (const p of protocols.values()) await p.node.close().catch(() => {});
    for (const d of drives) {
      if (d.node instanceof BlockBackend) await d.node.close().catch(() => {});
    }
    throw e;
  }
  for (const [id, p] of protocols) {
    drives.push({
      id,
      node: new BlockBackend(p.node, { cache: p.cache }),
      interface: "none",
      media: "disk",
      readOnly: p.readOnly,
    });
  }
  return drives;
}

/** Opens one `-blockdev` (see {@linkcode openBlockdevs}); errors lack the option's text. */
async function openBlockdev(
  spec: string,
  graph: BlockGraph,
  protocols: Map<string, { node: BlockNode; readOnly: boolean; cache: CacheMode }>,
  drives: DriveConfig[],
): Promise<void> {
  const registry = graph.registry;
  const items = parseKeyValueList(spec);
  const get = (k: string) => items.find((i) => i.key === k)?.value;
  const driver = get("driver");
  const nodeName = get("node-name");
  if (!driver) throw new UsageError("Parameter 'driver' is missing");
  if (!registry.get("format", driver) && !registry.get("protocol", driver)) {
    throw new UsageError(`Parameter 'driver' does not accept value '${driver}'`);
  }
  const fileDriver = get("file.driver");
  if (fileDriver !== undefined && !registry.get("protocol", fileDriver)) {
    throw new UsageError(`Parameter 'driver' does not accept value '${fileDriver}'`);
  }
  if (!nodeName) throw new UsageError("node-name is required (vmkit names every node)");
  const own = items.filter((i) => BLOCKDEV_OPTIONS.some((o) => o.name === i.key));
  const passed = items.filter((i) => !BLOCKDEV_OPTIONS.some((o) => o.name === i.key));
  const o = parseOptions(joinItems(own), BLOCKDEV_OPTIONS);
  const plugin = pluginBlockOptions(registry, driver, passed, { blockdev: true });
  const readOnly = o["read-only"] === true;
  const cache = blockdevCache(o);
  const flags = parseCacheMode(cache);
  const open = {
    readOnly,
    autoReadOnly: o["auto-read-only"] === true,
    direct: flags.direct,
    noFlush: flags.noFlush,
  };
  if (registry.get("protocol", driver)) {
    // A protocol node: opened now; a format node naming it takes it, else it is a drive.
    if (typeof o.file === "string") throw new UsageError("Invalid parameter 'file'");
    if (!plugin.filename) throw new UsageError("Parameter 'filename' is missing");
    const node = await graph.openImage(plugin.filename, {
      ...open,
      format: driver,
      protocolOptions: plugin.protocolOptions,
    });
    protocols.set(nodeName, { node, readOnly: node.readOnly, cache });
    return;
  }
  let root: BlockNode;
  if (typeof o.file === "string") {
    const below = protocols.get(o.file);
    if (!below) throw unknownNode(o.file);
    if (fileDriver !== undefined || plugin.filename !== undefined) {
      throw new UsageError("Cannot reference an existing block device with additional options");
    }
    protocols.delete(o.file);
    root = await graph.openImageOn(below.node, {
      ...open,
      format: driver,
      formatOptions: plugin.formatOptions,
      // A format node is a drive for a -device: locked as a guest disk is.
      access: { shared: GUEST_DISK_SHARED },
    });
  } else {
    if (!plugin.filename) throw new UsageError("Parameter 'file' is missing");
    root = await graph.openImage(plugin.filename, {
      ...open,
      format: driver,
      protocol: fileDriver ?? "file",
      formatOptions: plugin.formatOptions,
      protocolOptions: plugin.protocolOptions,
      access: { shared: GUEST_DISK_SHARED },
    });
  }
  drives.push({
    id: nodeName,
    node: new BlockBackend(root, { cache }),
    interface: "none",
    media: "disk",
    readOnly,
  });
}
