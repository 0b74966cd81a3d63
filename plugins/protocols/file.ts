// The `file` protocol: host files with positional I/O, sparse extents and preallocation

import { BLK_PERM_ALL, BLK_PERM_RESIZE, BLK_PERM_WRITE } from "../../core/block/perm.ts";
import { hostIoError, NotSupportedError } from "../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../core/options.ts";
import type { ProtocolDescriptor, ProtocolOpenOptions } from "../../core/plugin.ts";
import { FileNode, HOST_OPEN_OPTIONS, openHostNode, zeroes } from "./_file_node.ts";
import { HostFile } from "./_host_file.ts";
import { setNoCow } from "./_posix.ts";

export { FileNode, preallocate } from "./_file_node.ts";

/** The create options of the file protocol, as `qemu-img create -o help FILE` lists them. */
export const FILE_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  {
    name: "preallocation",
    type: "enum",
    values: ["off", "falloc", "full"],
    help: "Preallocation mode (allowed values: off, falloc, full)",
  },
  { name: "nocow", type: "bool", help: "Turn off copy-on-write (valid only on btrfs)" },
  {
    name: "extent_size_hint",
    type: "size",
    help: "Extent size hint for the image file, 0 to disable",
  },
];

/** Opens a host file as a protocol node (a device is refused: host_device opens those). */
export function openFile(filename: string, options: ProtocolOpenOptions): FileNode {
  return openHostNode(filename, options, "file");
}

/** Creates (or truncates) a host file of `sizeBytes`, sparse unless preallocation asks otherwise. */
export function createFile(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
): Promise<void> {
  const prealloc = String(opts.preallocation ?? "off");
  if (!["off", "falloc", "full"].includes(prealloc)) {
    throw new NotSupportedError(`Unsupported preallocation mode: ${prealloc}`);
  }
  let host: HostFile;
  try {
    host = HostFile.open(filename, "create");
  } catch (e) {
    throw hostIoError(e, `Could not create '${filename}'`);
  }
  // Like QEMU's file-posix create, a new file is a whole number of sectors long.
  sizeBytes = Math.ceil(sizeBytes / 512) * 512;
  const node = new FileNode(filename, host, false);
  try {
    // QEMU's raw_co_create: lock for writing and resizing (nobody else may resize) before
    // the file is emptied, so an image in use by a running VM is refused, not truncated.
    node.setPerm(BLK_PERM_WRITE | BLK_PERM_RESIZE, BLK_PERM_ALL & ~BLK_PERM_RESIZE);
    node.truncate(0);
    // nocow must be set while the file is still empty to take effect (btrfs).
    const fd = opts.nocow === true ? host.fd() : null;
    if (fd !== null) setNoCow(fd);
    node.truncate(sizeBytes, { preallocation: prealloc as "off" });
    // QEMU allocates the first block of a new file so later opens can probe
    // the alignment; we match it so `info` and `map` read the same.
    if (prealloc === "off" && sizeBytes > 0) node.writeSync(0, zeroes(Math.min(4096, sizeBytes)));
  } finally {
    node.close();
  }
  return Promise.resolve();
}

/** The `file` protocol plugin. */
export default {
  kind: "protocol",
  name: "file",
  summary: "Host file",
  options: FILE_CREATE_OPTIONS,
  openOptions: HOST_OPEN_OPTIONS,
  create: createFile,
  open: (filename: string, options: ProtocolOpenOptions) =>
    Promise.resolve(openFile(filename, options)),
} satisfies ProtocolDescriptor;
