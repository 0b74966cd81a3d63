// The `host_device` protocol: a host block or character device (`-cdrom /dev/sr0`, /dev/null)

import { IoError } from "../../core/errors.ts";
import type { ParsedOptions } from "../../core/options.ts";
import type { ProtocolDescriptor, ProtocolOpenOptions } from "../../core/plugin.ts";
import { HOST_OPEN_OPTIONS, isHostDevice, openHostNode } from "./_file_node.ts";

/**
 * "Creates" an image on a device as QEMU's host_device does: nothing is written or
 * truncated; the device must exist and be at least `sizeBytes` long.
 */
async function createOnDevice(
  filename: string,
  sizeBytes: number,
  _opts: ParsedOptions,
): Promise<void> {
  const node = openHostNode(filename, { readOnly: false }, "host_device");
  const deviceBytes = node.size();
  await node.close();
  if (sizeBytes > deviceBytes) throw new IoError("Cannot grow device files");
}

/** The `host_device` protocol plugin; a filename naming a device probes to it. */
export default {
  kind: "protocol",
  name: "host_device",
  summary: "Host block or character device",
  options: [],
  openOptions: HOST_OPEN_OPTIONS,
  // QEMU's hdev_probe_device: a block or character device is certain.
  probeDevice: (filename: string) => isHostDevice(filename) ? 100 : 0,
  create: createOnDevice,
  open: (filename: string, options: ProtocolOpenOptions) =>
    Promise.resolve(openHostNode(filename, options, "host_device")),
} satisfies ProtocolDescriptor;
