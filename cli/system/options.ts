// qemu-system's command line: the option table and a parser that keeps order

import { UsageError } from "../../core/errors.ts";

/** Options that take an argument (QEMU's HAS_ARG), by name without the dash. */
const WITH_ARG = new Set([
  "name",
  "M",
  "machine",
  "accel",
  "m",
  "smp",
  "boot",
  "drive",
  "blockdev",
  "hda",
  "hdb",
  "hdc",
  "hdd",
  "cdrom",
  "fda",
  "fdb",
  "net",
  "netdev",
  "nic",
  "device",
  "vga",
  "balloon",
  "kernel",
  "initrd",
  "append",
  "display",
  "serial",
  "monitor",
  "qmp",
  "qmp-pretty",
  "cpu",
  "bios",
  "L",
  "debugcon",
  "gdb",
  "vnc",
  "rtc",
  "global",
  "chardev",
  "mon",
  "pidfile",
  "D",
  "d",
  "icount",
  "k",
  "usbdevice",
  "object",
  "readconfig",
  "trace",
  "loadvm",
  "incoming",
  "parallel",
  "virtfs",
  "sandbox",
  "msg",
  "dtb",
  "option-rom",
  "smbios",
  "uuid",
  "numa",
  "add-fd",
  "action",
  "watchdog-action",
  "mem-path",
  "mem-prealloc",
  "overcommit",
  "fsdev",
  "iscsi",
  "audiodev",
  "audio",
  "spice",
  "plugin",
  "run-with",
  "compat",
  "semihosting-config",
  "xen-domid",
  "async-teardown",
  "qtest",
  "qtest-log",
  "L",
]);

/** Options that are flags (no argument). */
const FLAGS = new Set([
  "nographic",
  "no-reboot",
  "no-shutdown",
  "S",
  "s",
  "enable-kvm",
  "nodefaults",
  "snapshot",
  "daemonize",
  "usb",
  "full-screen",
  "no-acpi",
  "no-hpet",
  "version",
  "h",
  "help",
  "no-user-config",
  "nodefconfig",
  "win2k-hack",
  "no-fd-bootchk",
  "alt-grab",
  "ctrl-grab",
  "no-quit",
  "preconfig",
  "only-migratable",
  "enable-sync-profile",
  "semihosting",
  "old-param",
  "mem-prealloc",
  "no-frame",
  "nouserconfig",
  "portrait",
  "enable-fips",
  "xen-attach",
]);

/** One option as given, in order (`-drive` may repeat). */
export interface SystemOpt {
  readonly name: string;
  readonly value: string;
}

/** A parsed qemu-system command line. */
export interface SystemArgs {
  readonly opts: SystemOpt[];
  /** A bare argument (QEMU takes one as the `-hda` image). */
  readonly hda?: string;
}

/**
 * Parses a qemu-system command line: `-opt value` or `--opt value`; an unknown
 * option is QEMU's `-frob: invalid option`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSystemArgs } from "./options.ts";
 *
 * const r = parseSystemArgs(["-m", "768", "--nographic", "-drive", "file=a.img"]);
 * assert.deepEqual(r.opts, [
 *   { name: "m", value: "768" },
 *   { name: "nographic", value: "" },
 *   { name: "drive", value: "file=a.img" },
 * ]);
 * ```
 */
export function parseSystemArgs(args: readonly string[]): SystemArgs {
  const opts: SystemOpt[] = [];
  let hda: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-") || arg === "-") {
      if (hda !== undefined) throw new UsageError(`${arg}: invalid option`);
      hda = arg;
      continue;
    }
    const name = arg.replace(/^--?/, "");
    if (WITH_ARG.has(name)) {
      if (i + 1 >= args.length) throw new UsageError(`${arg}: requires an argument`);
      opts.push({ name, value: args[++i] });
    } else if (FLAGS.has(name)) {
      opts.push({ name, value: "" });
    } else {
      throw new UsageError(`${arg}: invalid option`);
    }
  }
  return { opts, hda };
}

/** Every value of option `name`, in order. */
export function allValues(opts: readonly SystemOpt[], ...names: string[]): string[] {
  return opts.filter((o) => names.includes(o.name)).map((o) => o.value);
}

/** The last value of option `name` (QEMU lets a later one win). */
export function lastValue(opts: readonly SystemOpt[], ...names: string[]): string | undefined {
  const v = allValues(opts, ...names);
  return v[v.length - 1];
}
