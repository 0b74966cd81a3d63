// The `system-x86_64` face: qemu-system's command line, help queries, and starting a machine

import { UsageError } from "../../core/errors.ts";
import { formatOptionHelp, isHelpRequest, parseKeyValueList } from "../../core/options.ts";
import type { Registry } from "../../core/plugin.ts";
import { writeOut } from "../output.ts";
import { versionLine } from "../version.ts";
import { lastValue, parseSystemArgs, type SystemOpt } from "./options.ts";

/** What the system face needs. */
export interface SystemContext {
  readonly registry: Registry;
  /** The name errors start with (`vmkit`, `qemu-system-x86_64`). */
  readonly program: string;
}

const SYSTEM_USAGE = `usage: qemu-system-x86_64 [options] [disk_image]

'disk_image' is a raw hard disk image for IDE hard disk 0

Standard options:
-h or -help     display this help and exit
-version        display version information and exit
-machine [type=]name[,prop[=value][,...]]
                selects emulated machine ('-machine help' for list)
                accel=accel1[:accel2[:...]] selects accelerator (tcg)
-cpu cpu        select CPU ('-cpu help' for list)
-accel [accel=]accelerator
-smp n          set the number of CPUs to 'n'
-m megs         set virtual RAM size to megs MB
-name string    set the name of the guest
-boot [order=drives][,once=drives][,menu=on|off]
-drive [file=file][,if=type][,index=i][,media=d][,format=f][,cache=...]
-hda/-hdb/-hdc/-hdd file, -cdrom file
-device driver[,prop[=value][,...]]   ('-device help' for list)
-net nic[,model=...][,macaddr=...] | -net user  -netdev user,id=str
-vga [std|cirrus|none]
-kernel bzImage -initrd file -append cmdline
-bios file      -L path
-nographic      -display none
-serial dev     -monitor dev     -qmp dev     -debugcon dev
-no-reboot      -no-shutdown
`;

/**
 * Answers the help queries (`-M help`, `-device help`, `-device NAME,help`,
 * `-cpu help`), or returns undefined when the command line is not a query.
 */
export function answerHelpQuery(
  opts: readonly SystemOpt[],
  registry: Registry,
): string | undefined {
  for (const o of opts) {
    if ((o.name === "M" || o.name === "machine") && machineHelpRequested(o.value)) {
      return registry.machineHelp() + "\n";
    }
    if (o.name === "cpu" && isHelpRequest(o.value)) return registry.cpuHelp() + "\n";
    if (o.name === "device") {
      if (isHelpRequest(o.value)) return registry.deviceHelp() + "\n";
      const items = parseKeyValueList(o.value, { impliedKey: "driver" });
      const driver = items.find((i) => i.key === "driver")?.value;
      if (driver && items.some((i) => i.bare && (i.key === "help" || i.key === "?"))) {
        const d = registry.get("device", driver);
        if (!d) {
          throw new UsageError(`-device ${o.value}: '${driver}' is not a valid device model name`);
        }
        return `${d.name} options:\n${formatOptionHelp(d.options)}\n`;
      }
    }
  }
  return undefined;
}

function machineHelpRequested(value: string): boolean {
  const items = parseKeyValueList(value, { impliedKey: "type" });
  return items.some((i) =>
    (i.key === "type" && isHelpRequest(i.value)) || (i.bare && isHelpRequest(i.key))
  );
}

/** Runs the system face; resolves to the exit code. */
export function runSystem(args: string[], ctx: SystemContext): Promise<number> {
  const parsed = parseSystemArgs(args);
  const opts = parsed.opts;
  if (opts.some((o) => o.name === "h" || o.name === "help")) {
    writeOut(SYSTEM_USAGE);
    return Promise.resolve(0);
  }
  if (opts.some((o) => o.name === "version")) {
    writeOut(`${versionLine("QEMU emulator")}\n`);
    return Promise.resolve(0);
  }
  const help = answerHelpQuery(opts, ctx.registry);
  if (help !== undefined) {
    writeOut(help);
    return Promise.resolve(0);
  }
  const machineName = lastValue(opts, "M", "machine");
  const type = machineName
    ? (parseKeyValueList(machineName, { impliedKey: "type" }).find((i) => i.key === "type")?.value)
    : undefined;
  const machine = type
    ? ctx.registry.get("machine", type)
    : ctx.registry.list("machine").find((m) => m.isDefault);
  if (type && !machine) {
    throw new UsageError("unsupported machine type\nUse -machine help to list supported machines");
  }
  for (const o of opts.filter((o) => o.name === "device")) {
    const driver = parseKeyValueList(o.value, { impliedKey: "driver" }).find((i) =>
      i.key === "driver"
    )?.value;
    if (!driver || !ctx.registry.get("device", driver)) {
      throw new UsageError(
        `-device ${o.value}: '${driver ?? ""}' is not a valid device model name`,
      );
    }
  }
  if (!machine) throw new UsageError("No machine specified, and there is no default");
  throw new UsageError(
    `Machine '${machine.name}' cannot start yet: its board is still being built`,
  );
}
