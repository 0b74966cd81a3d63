// The machine's screen outside the guest: the VNC server (`-vnc`, `-display vnc=`) and the monitor's `screendump`

import { DISPLAY, type ScreendumpFormat } from "../../../core/display.ts";
import { UsageError } from "../../../core/errors.ts";
import type { Machine } from "../../../core/machine.ts";
import {
  CommandTable,
  type HmpCommand,
  monitorCommands,
  MonitorError,
} from "../../../core/monitor/mod.ts";
import { addMediaCommands } from "../../../core/monitor/media.ts";
import { rfbServer, startVnc, vncSpecFromOptions } from "./vnc.ts";
import { parseWebDisplay, startWeb } from "./web.ts";

export { parseVncSpec, startVnc, type VncHandle, type VncSpec, vncSpecFromOptions } from "./vnc.ts";
export { parseWebDisplay, startWeb } from "./web.ts";
export { RfbServer } from "./rfb_server.ts";

/** The console `device` names (a device id), or console 0 without one. */
function consoleIndex(machine: Machine, device: string | undefined): number {
  if (device === undefined) return 0;
  const consoles = machine.findService(DISPLAY)?.consoles ?? [];
  const index = consoles.findIndex((c) => c.id === device);
  if (index < 0) throw new UsageError(`Device '${device}' not found`);
  return index;
}

async function screendump(
  machine: Machine,
  file: string,
  format: ScreendumpFormat,
  device?: string,
): Promise<void> {
  const display = machine.findService(DISPLAY);
  if (!display) throw new UsageError("There is no console to take a screendump from");
  await display.screendump(file, consoleIndex(machine, device), format);
}

/**
 * Adds `screendump` to the machine's monitors, as QEMU 7.2 has it: HMP
 * `screendump FILE [-f ppm|png] [DEVICE [HEAD]]` and the QMP command with `filename`,
 * `device`, `head` and `format`.
 */
export function addScreendumpCommands(machine: Machine): void {
  const table = monitorCommands(machine);
  table.addHmp({
    name: "screendump",
    params: "filename [-f format] [device [head]]",
    help: "save screen from head 'head' of display device 'device'" +
      "in specified format 'format' as image 'filename'." +
      "Currently only 'png' and 'ppm' formats are supported.",
    async run(_ctx, args) {
      const words = [...args];
      let format: string = "ppm";
      const flag = words.indexOf("-f");
      if (flag >= 0) {
        format = words[flag + 1] ?? "";
        words.splice(flag, 2);
      }
      const [file, device] = words;
      if (!file) throw new MonitorError("GenericError", "Parameter 'filename' is missing");
      if (format !== "ppm" && format !== "png") {
        throw new Error(`invalid parameter value: ${format}`);
      }
      await screendump(machine, file, format, device);
      return "";
    },
  });
  table.addQmp({
    name: "screendump",
    args: [
      { name: "filename", type: "str" },
      { name: "device", type: "str", optional: true },
      { name: "head", type: "int", optional: true },
      { name: "format", type: "str", optional: true },
    ],
    async run(_ctx, args) {
      const format = (args.format as string | undefined) ?? "ppm";
      if (format !== "ppm" && format !== "png") {
        throw new MonitorError(
          "GenericError",
          `Parameter 'format' does not accept value '${format}'`,
        );
      }
      await screendump(machine, args.filename as string, format, args.device as string | undefined);
      return {};
    },
  });
  addChangeVnc(table, machine);
  const setPassword = (password: string) => {
    if (!machine.findService(DISPLAY)?.setPassword("vnc", password)) {
      throw new MonitorError("GenericError", "Could not set password");
    }
  };
  table.addQmp({
    name: "change-vnc-password",
    args: [{ name: "password", type: "str" }],
    run(_ctx, args) {
      setPassword(args.password as string);
      return {};
    },
  });
  table.addQmp({
    name: "set_password",
    args: [
      { name: "protocol", type: "str" },
      { name: "password", type: "str" },
      { name: "connected", type: "str", optional: true },
      { name: "display", type: "str", optional: true },
    ],
    run(_ctx, args) {
      if (args.protocol !== "vnc") {
        throw new MonitorError(
          "GenericError",
          args.protocol === "spice"
            ? "spice is not enabled"
            : `Parameter 'protocol' does not accept value '${args.protocol}'`,
        );
      }
      setPassword(args.password as string);
      return {};
    },
  });
}

/**
 * HMP `change vnc password PASSWORD` (and `passwd`), as QEMU 7.2 answers it; every
 * other `change` goes to the monitor's own (removable media). The monitor keeps a
 * command a plugin added before it over its built-in of the same name, so this works
 * whichever is registered first.
 */
function addChangeVnc(table: CommandTable, machine: Machine): void {
  let media: HmpCommand | undefined = table.hmp("change");
  if (!media) {
    const builtins = new CommandTable();
    addMediaCommands(builtins);
    media = builtins.hmp("change")!;
  }
  const fallback = media;
  table.addHmp({
    name: fallback.name,
    params: fallback.params,
    help: fallback.help,
    run(ctx, args) {
      if (args[0] !== "vnc" || args.length < 2) return fallback.run(ctx, args);
      // QEMU prints these two without "Error: ".
      if (args.length > 3) return "Parameter 'read-only-mode' is invalid for VNC\n";
      if (args[1] !== "password" && args[1] !== "passwd") {
        return "Expected 'password' after 'vnc'\n";
      }
      // (QEMU prompts for a missing password; this monitor has no prompt to read it.)
      if (args[2] === undefined) throw new Error("Parameter 'password' is missing");
      if (!machine.findService(DISPLAY)?.setPassword("vnc", args[2])) {
        // QEMU's words, its unexpanded ${dpy} included.
        return "If you want use passwords please enable password auth using " +
          "'-vnc ${dpy},password'.\nError: Could not set password\n";
      }
      return "";
    },
  });
}

/** The display servers running for a machine. */
export interface DisplayServers {
  /** The VNC TCP port or unix path, when `-vnc` is on. */
  readonly vncAddress?: string;
  /** The browser console's port, when `-display web` is on. */
  readonly webPort?: number;
  close(): Promise<void>;
}

/**
 * Starts what the command line asks of the screen: the VNC server of `-vnc` or
 * `-display vnc=`, the browser console of `-display web[=HOST:PORT]`, and the
 * monitor's `screendump`.
 */
export function startDisplays(
  machine: Machine,
  opts: readonly { name: string; value: string }[],
  guestName?: string,
): DisplayServers | undefined {
  addScreendumpCommands(machine);
  const spec = vncSpecFromOptions(opts);
  let web: { host: string; port: number } | undefined;
  for (const o of opts) if (o.name === "display") web = parseWebDisplay(o.value) ?? web;
  if (!spec && !web) return undefined;
  const server = rfbServer(machine, spec, guestName);
  const closers: (() => Promise<void>)[] = [];
  try {
    const vnc = spec ? startVnc(server, spec) : undefined;
    if (vnc) closers.push(() => vnc.close());
    const page = web ? startWeb(server, web.host, web.port) : undefined;
    if (page) closers.push(() => page.close());
    return {
      vncAddress: vnc?.address,
      webPort: page?.port,
      async close() {
        // Clients first (a browser's WebSocket would hold the HTTP server's shutdown).
        server.close();
        for (const c of closers) await c();
        server.close();
      },
    };
  } catch (error) {
    for (const c of closers) c();
    server.close();
    throw error;
  }
}
