// eject and change (HMP), eject and blockdev-change-medium (QMP): the tray of a
// removable-media drive, with QEMU's DEVICE_TRAY_MOVED events

import type { BlockIo } from "../block/backend.ts";
import { errorChainMessage } from "../errors.ts";
import { REMOVABLE_MEDIA, type RemovableMedium } from "../device.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";
import { MonitorError } from "./commands.ts";
import { drivePath } from "./block_info.ts";

function medium(ctx: MonitorContext, device: string): RemovableMedium {
  const drive = ctx.machine.config.drives.find((d) => d.id === device);
  if (!drive) throw new MonitorError("DeviceNotFound", `Device '${device}' not found`);
  const m = ctx.machine.findService(REMOVABLE_MEDIA)?.get(device);
  if (!m) throw new MonitorError("GenericError", `Device '${device}' is not removable`);
  return m;
}

function trayMoved(ctx: MonitorContext, device: string, open: boolean): void {
  // QEMU's id is the attached device's qdev id, or its QOM path when it has none (a
  // -cdrom drive's never has one): vmkit's path of it (block_info.ts).
  const drive = ctx.machine.config.drives.find((d) => d.id === device);
  ctx.emit("DEVICE_TRAY_MOVED", {
    device,
    "tray-open": open,
    id: drive ? drivePath(ctx, drive) : "",
  });
}

// Opens the tray (an event if it moved) and puts `node` in, or takes the medium out.
function swapMedium(
  ctx: MonitorContext,
  device: string,
  force: boolean,
  node: BlockIo | null,
): RemovableMedium {
  const m = medium(ctx, device);
  const wasOpen = m.trayOpen;
  if (!m.openTray(force)) {
    throw new MonitorError(
      "GenericError",
      `Device '${device}' is locked and force was not specified, wait for tray to open and try again`,
    );
  }
  if (!wasOpen && m.hasTray !== false) trayMoved(ctx, device, true);
  m.setMedium(node);
  const config = ctx.machine.config.drives.find((d) => d.id === device);
  if (config) config.node = node;
  return m;
}

/** Opens the tray and removes the medium (QEMU's qmp_eject). */
export function ejectMedium(ctx: MonitorContext, device: string, force: boolean): void {
  swapMedium(ctx, device, force, null);
}

/** Opens the tray, puts `file` in and closes it (QEMU's blockdev-change-medium). */
export async function changeMedium(
  ctx: MonitorContext,
  device: string,
  file: string,
  options: { format?: string; force?: boolean } = {},
): Promise<void> {
  medium(ctx, device);
  if (!ctx.host.openMedium) throw new MonitorError("GenericError", "Cannot open images here");
  let node;
  try {
    node = await ctx.host.openMedium(file, options.format);
  } catch (e) {
    // The graph may name the file at two levels: say it once, as QEMU does.
    const parts = errorChainMessage(e).split(": ");
    throw new Error(parts.filter((p, i) => p !== parts[i - 1]).join(": "));
  }
  const m = swapMedium(ctx, device, options.force ?? false, node);
  m.closeTray();
  if (m.hasTray !== false) trayMoved(ctx, device, false);
}

/** Adds eject and change to HMP, eject and blockdev-change-medium to QMP. */
export function addMediaCommands(table: CommandTable): void {
  table.addHmp({
    name: "eject",
    params: "[-f] device",
    help: "eject a removable medium (use -f to force it)",
    run: (ctx, args) =>
      hmpErrors(() => {
        const force = args[0] === "-f";
        const rest = force ? args.slice(1) : args;
        if (rest.length !== 1) throw new Error("Parameter 'device' is missing");
        ejectMedium(ctx, rest[0], force);
        return "";
      }),
  });
  table.addHmp({
    name: "change",
    params: "device [filename] [format [read-only-mode]]",
    help: "change a removable medium, optional format",
    run: (ctx, args) =>
      hmpErrors(async () => {
        if (args.length < 2) throw new Error("Parameter 'target' is missing");
        await changeMedium(ctx, args[0], args[1], { format: args[2] });
        return "";
      }),
  });
  table.addQmp({
    name: "eject",
    args: [
      { name: "device", type: "str", optional: true },
      { name: "id", type: "str", optional: true },
      { name: "force", type: "bool", optional: true },
    ],
    run: (ctx, args) => {
      ejectMedium(ctx, deviceArg(args), (args.force as boolean | undefined) ?? false);
      return {};
    },
  });
  table.addQmp({
    name: "blockdev-change-medium",
    args: [
      { name: "device", type: "str", optional: true },
      { name: "id", type: "str", optional: true },
      { name: "filename", type: "str" },
      { name: "format", type: "str", optional: true },
      { name: "force", type: "bool", optional: true },
      { name: "read-only-mode", type: "str", optional: true },
    ],
    run: async (ctx, args) => {
      await changeMedium(ctx, deviceArg(args), args.filename as string, {
        format: args.format as string | undefined,
        force: args.force as boolean | undefined,
      });
      return {};
    },
  });
}

function deviceArg(args: Record<string, unknown>): string {
  const device = (args.device ?? args.id) as string | undefined;
  if (device === undefined) {
    throw new MonitorError("GenericError", "Need exactly one of 'device' and 'id'");
  }
  return device;
}

// HMP prints a failed command's error after "Error: " (QEMU's hmp_handle_error).
async function hmpErrors(work: () => string | Promise<string>): Promise<string> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof MonitorError) throw new Error(e.message);
    throw e;
  }
}
