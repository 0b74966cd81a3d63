// The IDE plugin: the `piix3-ide` device descriptor and the controller's public surface

import type { DeviceContext } from "../../../core/device.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { createPiix3Ide, type Piix3Ide } from "./piix3_ide.ts";

export { BusMaster, DmaOutcome } from "./bus_master.ts";
export { IdeChannel } from "./channel.ts";
export { Drive } from "./drive.ts";
export { chsForSize, guessGeometry, identifyDevice, identifyPacketDevice } from "./identify.ts";
export {
  createPiix3Ide,
  IDE_LEGACY,
  type IdeDriveConfig,
  PIIX3_IDE_DEVFN,
  Piix3Ide,
} from "./piix3_ide.ts";

/** The PIIX3 IDE controller of `-M pc` at 00:01.1, with the machine's `if=ide` drives. */
export default {
  kind: "device",
  name: "piix3-ide",
  summary: "Intel PIIX3 IDE controller (ATA disks, ATAPI CD-ROMs)",
  bus: "PCI",
  category: "Storage",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): Piix3Ide {
    return createPiix3Ide(machine);
  },
} satisfies DeviceDescriptor;
