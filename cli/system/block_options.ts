// -drive and -blockdev options: the drive's own, plus what the format and protocol plugins declare

import { BlockBackend, type CacheMode, parseCacheMode } from "../../core/block/backend.ts";
import type { BlockGraph } from "../../core/block/graph.ts";
import { UsageError } from "../../core/errors.ts";
import type { DriveConfig } from "../../core/machine.ts";
import {
  type KeyValue,
  type OptionSpec,
  type ParsedOptions,
  parseKeyValueList,
  parseOptions,
} from "../../core/options.ts";
import type { Registry } from "../../core/plugin.ts";

/** The options of a `-drive` itself; a format's and protocol's own come from their descriptors. */
export const DRIVE_OPTIONS: readonly OptionSpec[] = [
  { name: "file", type: "string", help: "disk image" },
  { name: "format", type: "string", help: "disk format (raw, qcow2, ...)" },
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
  { name: "auto-read-only", type: "bool", help: "fall back to read-only (accepted)" },
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

/**
 * Types the options a `-drive` or `-blockdev` passes on: `file.NAME=` by the protocol's
 * `openOptions`, the rest by the format's (every format's when the format is probed).
 *
 * @returns the typed format and protocol options
 */
export function pluginBlockOptions(
  registry: Registry,
  format: string | undefined,
  items: readonly KeyValue[],
): { formatOptions: ParsedOptions; protocolOptions: ParsedOptions } {
  const protocol = registry.require("protocol", "file");
  const fileItems = items.filter((i) => i.key.startsWith("file."))
    .map((i) => ({ ...i, key: i.key.slice(5) }));
  const formatItems = items.filter((i) => !i.key.startsWith("file."));
  let protocolOptions: ParsedOptions;
  try {
    protocolOptions = parseOptions(joinItems(fileItems), protocol.openOptions ?? []);
  } catch (e) {
    const bad = fileItems.find((i) => !(protocol.openOptions ?? []).some((o) => o.name === i.key));
    if (bad) {
      throw new UsageError(
        `Block protocol '${protocol.name}' doesn't support the option '${bad.key}'`,
      );
    }
    throw e;
  }
  const descriptor = format === undefined ? undefined : registry.get("format", format);
  if (format !== undefined && !descriptor) throw new UsageError(`Unknown driver '${format}'`);
  const specs = descriptor ? descriptor.openOptions ?? [] : allFormatOpenOptions(registry);
  const bad = formatItems.find((i) => !specs.some((o) => o.name === i.key));
  if (bad) {
    throw new UsageError(
      descriptor
        ? `Block format '${descriptor.name}' does not support the option '${bad.key}'`
        : `Invalid parameter '${bad.key}'`,
    );
  }
  return { formatOptions: parseOptions(joinItems(formatItems), specs), protocolOptions };
}

/**
 * Reads one `-drive` option string: the drive's own options typed by
 * {@linkcode DRIVE_OPTIONS}, the format's and protocol's by their descriptors.
 */
export function parseDriveOptions(
  spec: string,
  registry: Registry,
): { drive: ParsedOptions; formatOptions: ParsedOptions; protocolOptions: ParsedOptions } {
  const items = parseKeyValueList(spec, { impliedKey: "file" });
  const own = items.filter((i) => DRIVE_OPTIONS.some((o) => o.name === i.key));
  const passed = items.filter((i) => !DRIVE_OPTIONS.some((o) => o.name === i.key));
  const drive = parseOptions(joinItems(own), DRIVE_OPTIONS);
  return { drive, ...pluginBlockOptions(registry, drive.format as string | undefined, passed) };
}

/**
 * QEMU 7.2 opens a host device only through its host_device driver: an explicit `file`
 * driver on one (`driver=file,filename=/dev/null`) is refused, where a bare filename
 * (`-cdrom /dev/null`) probes its way to host_device. A missing path or a directory is left
 * to the open, which names it as QEMU's does.
 */
function refuseDeviceForFile(where: string, filename: string): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(filename);
  } catch {
    return;
  }
  if (!st.isFile && !st.isDirectory) {
    throw new UsageError(`${where}: 'file' driver requires '${filename}' to be a regular file`);
  }
}

/**
 * Opens the nodes of `-blockdev` options as drives with `interface: none`, named by
 * `node-name`, for `-device ...,drive=NAME`. A format node sits on a protocol node given
 * inline (`file.driver=file,file.filename=PATH`) or by name (`file=NODE`, another
 * `-blockdev driver=file,node-name=NODE,filename=PATH`).
 */
export async function openBlockdevs(
  specs: readonly string[],
  graph: BlockGraph,
): Promise<DriveConfig[]> {
  const registry = graph.registry;
  const protocols = new Map<string, { filename: string; options: ParsedOptions }>();
  const drives: DriveConfig[] = [];
  for (const spec of specs) {
    const where = `-blockdev ${spec}`;
    const items = parseKeyValueList(spec);
    const get = (k: string) => items.find((i) => i.key === k)?.value;
    const driver = get("driver");
    const nodeName = get("node-name");
    if (!driver) throw new UsageError(`${where}: Parameter 'driver' is missing`);
    if (!nodeName) throw new UsageError(`${where}: node-name is required (vmkit names every node)`);
    const protocol = registry.get("protocol", driver);
    if (protocol) {
      // A protocol node: remembered, opened under the format node that names it.
      const filename = get("filename");
      if (!filename) throw new UsageError(`${where}: Parameter 'filename' is missing`);
      if (protocol.name === "file") refuseDeviceForFile(where, filename);
      const rest = items.filter((i) => !["driver", "node-name", "filename"].includes(i.key));
      try {
        const options = parseOptions(joinItems(rest), protocol.openOptions ?? []);
        protocols.set(nodeName, { filename, options });
      } catch (e) {
        throw new UsageError(`${where}: ${(e as Error).message}`);
      }
      continue;
    }
    const own = items.filter((i) => BLOCKDEV_OPTIONS.some((o) => o.name === i.key));
    const passed = items.filter((i) =>
      !BLOCKDEV_OPTIONS.some((o) => o.name === i.key) && i.key !== "file.driver" &&
      i.key !== "file.filename"
    );
    let o: ParsedOptions;
    let plugin: { formatOptions: ParsedOptions; protocolOptions: ParsedOptions };
    try {
      o = parseOptions(joinItems(own), BLOCKDEV_OPTIONS);
      plugin = pluginBlockOptions(registry, driver, passed);
    } catch (e) {
      throw new UsageError(`${where}: ${(e as Error).message}`);
    }
    let filename = get("file.filename");
    if (get("file.driver") === "file" && filename) refuseDeviceForFile(where, filename);
    let protocolOptions = plugin.protocolOptions;
    if (typeof o.file === "string") {
      const below = protocols.get(o.file);
      if (!below) throw new UsageError(`${where}: Cannot find device='' nor node-name='${o.file}'`);
      filename = below.filename;
      protocolOptions = { ...below.options, ...protocolOptions };
    } else if ((get("file.driver") ?? "file") !== "file") {
      throw new UsageError(`${where}: Unknown protocol '${get("file.driver")}'`);
    }
    if (!filename) throw new UsageError(`${where}: Parameter 'file' is missing`);
    const readOnly = o["read-only"] === true;
    const cache: CacheMode = o["cache.no-flush"] === true
      ? "unsafe"
      : o["cache.direct"] === true
      ? "none"
      : "writeback";
    let node: BlockBackend;
    try {
      const flags = parseCacheMode(cache);
      const root = await graph.openImage(filename, {
        format: driver,
        readOnly,
        direct: flags.direct,
        noFlush: flags.noFlush,
        formatOptions: plugin.formatOptions,
        protocolOptions,
      });
      node = new BlockBackend(root, { cache });
    } catch (e) {
      throw new UsageError(where, { cause: e });
    }
    drives.push({ id: nodeName, node, interface: "none", media: "disk", readOnly });
  }
  return drives;
}
