// balloon and query-balloon (QMP), `balloon MB` and `info balloon` (HMP), and the
// BALLOON_CHANGE event: the guest's memory as the balloon driver leaves it

import { BALLOON, type MemoryBalloon } from "../device.ts";
import type { Machine } from "../machine.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";
import { MonitorError } from "./commands.ts";

/** Balloon pages are 4 KiB whatever the guest's page size (virtio 1.2 §5.5.6). */
const BALLOON_PAGE_BYTES = 4096;

function balloonOf(machine: Machine): MemoryBalloon {
  const b = machine.findService(BALLOON);
  if (!b) throw new MonitorError("DeviceNotActive", "No balloon device has been activated");
  return b;
}

/** The guest's memory in bytes with the balloon taken out (QEMU's `actual`). */
export function balloonActualBytes(machine: Machine, balloon: MemoryBalloon): number {
  return machine.config.ramBytes - balloon.actualPages * BALLOON_PAGE_BYTES;
}

/**
 * Asks the guest to leave itself `targetBytes` of RAM (QEMU's qmp_balloon: above the RAM
 * size is the whole RAM; zero or less is refused).
 */
export function setBalloonTarget(machine: Machine, targetBytes: number): void {
  const balloon = balloonOf(machine);
  if (targetBytes <= 0) {
    throw new MonitorError("GenericError", "Parameter 'target' expects a size");
  }
  const ram = machine.config.ramBytes;
  const target = Math.min(targetBytes, ram);
  balloon.setTargetPages(Math.floor((ram - target) / BALLOON_PAGE_BYTES));
}

/** Sends BALLOON_CHANGE through `emit` whenever the guest reports a new balloon size. */
export function watchBalloon(
  machine: Machine,
  emit: (event: string, data: Record<string, unknown>) => void,
): void {
  const balloon = machine.findService(BALLOON);
  balloon?.onActualChange(() =>
    emit("BALLOON_CHANGE", { actual: balloonActualBytes(machine, balloon) })
  );
}

/** Adds balloon, query-balloon, `balloon` and `info balloon`. */
export function addBalloonCommands(table: CommandTable): void {
  const query = (ctx: MonitorContext) => ({
    actual: balloonActualBytes(ctx.machine, balloonOf(ctx.machine)),
  });
  table.addQmp({ name: "query-balloon", args: [], run: query });
  table.addQmp({
    name: "balloon",
    args: [{ name: "value", type: "int" }],
    run: (ctx, args) => (setBalloonTarget(ctx.machine, args.value as number), {}),
  });
  table.addInfo({
    name: "balloon",
    params: "",
    help: "show balloon information",
    run: (ctx) => {
      try {
        return `balloon: actual=${Math.floor(query(ctx).actual / 2 ** 20)}\n`;
      } catch (e) {
        if (e instanceof MonitorError) return `Error: ${e.message}\n`;
        throw e;
      }
    },
  });
  table.addHmp({
    name: "balloon",
    params: "target",
    help: "request VM to change its memory allocation (in MB)",
    run: (ctx, args) => {
      // QEMU's 'M' argument: an integer expression of megabytes; vmkit takes a number.
      const retry = 'Try "help balloon" for more information\n';
      const text = args.join(" ");
      if (text === "") return `unexpected end of expression\n${retry}`;
      const m = /^(0x[0-9a-f]+|\d+)(.*)$/i.exec(text);
      if (!m) return `invalid char '${text[0]}' in expression\n${retry}`;
      if (m[2] !== "") return `balloon: extraneous characters at the end of line\n${retry}`;
      try {
        setBalloonTarget(ctx.machine, Number(m[1]) * 2 ** 20);
        return "";
      } catch (e) {
        if (e instanceof MonitorError) return `Error: ${e.message}\n`;
        throw e;
      }
    },
  });
}
