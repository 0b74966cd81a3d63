// `isa-fdc`: the PC's floppy controller plugin (controller.ts), with drives from -fda/-fdb/-drive if=floppy

import {
  type DeviceContext,
  FLOPPY_DRIVES,
  ISA_BUS,
  ISA_DMA,
  REMOVABLE_MEDIA,
} from "../../../core/device.ts";
import type { BlockIo } from "../../../core/block/backend.ts";
import { UsageError } from "../../../core/errors.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { FloppyController } from "./controller.ts";

export { FloppyController } from "./controller.ts";
export { floppyFormat } from "./geometry.ts";

/** The PC's floppy controller (`isa-fdc`), built in on `-M pc` with drives from `-fda`/`-fdb`. */
export default {
  kind: "device",
  name: "isa-fdc",
  summary: "virtual floppy controller",
  bus: "ISA",
  category: "Storage",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): FloppyController {
    const floppies = machine.config.drives.filter((d) => d.interface === "floppy");
    const host: [
      { node: BlockIo | null; readOnly: boolean; id: string } | null,
      { node: BlockIo | null; readOnly: boolean; id: string } | null,
    ] = [null, null];
    for (const d of floppies) {
      const unit = d.index ?? 0;
      if (unit > 1) {
        throw new UsageError(`Can't create floppy unit ${unit}, bus supports only 2 units`);
      }
      host[unit] = { node: d.node, readOnly: d.readOnly, id: d.id };
    }
    const fdc = new FloppyController("fdc", {
      drives: host,
      irq: machine.findService(ISA_BUS)?.irq(6) ?? null,
      dma: machine.findService(ISA_DMA) ?? null,
      track: (p) => machine.loop.track(p),
    }, machine);
    machine.provide(FLOPPY_DRIVES, fdc);
    // The monitor's eject and change: a floppy drive has no tray, only a medium.
    let media = machine.findService(REMOVABLE_MEDIA);
    if (!media) machine.provide(REMOVABLE_MEDIA, media = new Map());
    for (const d of floppies) {
      const unit = d.index ?? 0;
      media.set(d.id, {
        hasTray: false,
        trayOpen: false,
        locked: false,
        get inserted() {
          return fdc.drives[unit].node !== null;
        },
        openTray: () => true,
        setMedium: (node) => fdc.insert(unit, node),
        closeTray: () => {},
      });
    }
    return fdc;
  },
} satisfies DeviceDescriptor;
