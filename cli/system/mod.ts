// The `system-x86_64` face: qemu-system's command line, help queries, and starting a machine

import { UsageError, VmkitError } from "../../core/errors.ts";
import { loadVm } from "../../core/monitor/snapshots.ts";
import { markBlockStatsBaseline } from "../../core/monitor/block_info.ts";
import {
  formatOptionHelp,
  isHelpRequest,
  isHelpWord,
  parseKeyValueList,
} from "../../core/options.ts";
import type { MachineDescriptor, Registry } from "../../core/plugin.ts";
import { BlockBackend } from "../../core/block/backend.ts";
import { BlockGraph } from "../../core/block/graph.ts";
import { displayRegistry } from "../../core/display.ts";
import { firmwareDirs } from "../../core/firmware.ts";
import type { Machine, MachineExit } from "../../core/machine.ts";
import { writeErr, writeOut } from "../output.ts";
import { addAccelCommands } from "./accel.ts";
import { buildSystemSetup } from "./config.ts";
import { checkMachineProperties } from "./machine_props.ts";
import { type DisplayServers, startDisplays } from "./display/mod.ts";
import { nicModelHelp } from "./net.ts";
import { QEMU_VERSION, versionLine, VMKIT_VERSION } from "../version.ts";
import {
  monitorHost,
  MonitorPeers,
  type MonitorServers,
  startMonitors,
  StdioMux,
  vcFont,
} from "./monitor.ts";
import { monitorSpecs } from "./monitor_spec.ts";
import { allValues, lastValue, parseSystemArgs, type SystemOpt } from "./options.ts";

/** What the system face needs. */
export interface SystemContext {
  readonly registry: Registry;
  /** The name errors start with (`vmkit`, `qemu-system-x86_64`). */
  readonly program: string;
  /** The qemu-system binary this face stands for (`x86_64` when absent): `i386` names types `...-i386-cpu`. */
  readonly target?: "x86_64" | "i386";
  /** Called with how the guest's run ended, when a machine was built and ran (the demo). */
  readonly onExit?: (exit: MachineExit) => void;
}

const SYSTEM_USAGE = `usage: qemu-system-x86_64 [options] [disk_image]

'disk_image' is a raw hard disk image for IDE hard disk 0

Standard options:
-h or -help     display this help and exit
-version        display version information and exit
-machine [type=]name[,prop[=value][,...]]
                selects emulated machine ('-machine help' for list)
                accel=accel1[:accel2[:...]] selects accelerator (kvm, tcg)
-cpu cpu        select CPU ('-cpu help' for list)
-accel [accel=]accelerator
-smp [[cpus=]n][,maxcpus=maxcpus][,sockets=sockets][,dies=dies][,clusters=clusters][,cores=cores][,threads=threads]
                set the number of initial CPUs to 'n' [default=1]
                maxcpus= maximum number of total CPUs, including
                offline CPUs for hotplug, etc
                sockets= number of sockets on the machine board
                dies= number of dies in one socket
                clusters= number of clusters in one die
                cores= number of cores in one cluster
                threads= number of threads in one core
-m megs         set virtual RAM size to megs MB
-name string    set the name of the guest
-boot [order=drives][,once=drives][,menu=on|off]
-drive [file=file][,if=type][,index=i][,media=d][,format=f][,cache=...]
-hda/-hdb/-hdc/-hdd file, -cdrom file
-device driver[,prop[=value][,...]]   ('-device help' for list)
-net nic[,model=...][,macaddr=...] | -net user  -netdev user,id=str
-vga [std|cirrus|none]
-kernel bzImage -initrd file -append cmdline
-bios file      -L path     -option-rom file
-nographic      -display none|vnc=...|web[=host:port] (a page with the screen, default port 5800)
-vnc [host]:N|unix:path[,share=allow-exclusive|force-shared|ignore][,to=L]
                 VNC server on port 5900+N (RFB 3.8: raw, CopyRect, ZRLE, Tight)
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
    if (o.name === "cpu" && isHelpRequest(o.value)) {
      return registry.cpuHelp(machineOf(opts, registry)?.cpuFamily);
    }
    if (o.name === "device") {
      if (isHelpWord(o.value)) return registry.deviceHelp() + "\n";
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
    const nicHelp = nicModelHelp(o.name, o.value, registry);
    if (nicHelp !== undefined) return nicHelp;
    if (o.name === "netdev" || o.name === "blockdev" || o.name === "drive") {
      const help = pluginOptionHelp(o.name, o.value, registry);
      if (help !== undefined) return help;
    }
  }
  return undefined;
}

/**
 * `-netdev user,help`, `-blockdev driver=qcow2,help` and `-drive format=qcow2,help`:
 * the options the plugin declares, from its descriptor.
 */
function pluginOptionHelp(name: string, value: string, registry: Registry): string | undefined {
  const implied = name === "netdev" ? "type" : name === "drive" ? "file" : "driver";
  const items = parseKeyValueList(value, { impliedKey: implied });
  if (!items.some((i) => i.bare && (i.key === "help" || i.key === "?"))) return undefined;
  if (name === "netdev") {
    const type = items.find((i) => i.key === "type")?.value;
    if (!type) return undefined;
    const d = registry.get("netdev", type);
    if (!d) {
      throw new UsageError(`-netdev ${value}: Parameter 'type' does not accept value '${type}'`);
    }
    return `${d.name} options:\n${formatOptionHelp(d.options)}\n`;
  }
  const driver = items.find((i) => i.key === (name === "drive" ? "format" : "driver"))?.value;
  if (!driver) return undefined;
  const format = registry.get("format", driver);
  const protocol = registry.get("protocol", driver);
  const specs = format?.openOptions ?? protocol?.openOptions;
  if (!format && !protocol) throw new UsageError(`-${name} ${value}: Unknown driver '${driver}'`);
  const file = registry.get("protocol", "file")?.openOptions ?? [];
  const fileHelp = format && file.length > 0
    ? `\nfile (protocol) options, as file.NAME=:\n${formatOptionHelp(file)}`
    : "";
  return `${driver} options:\n${formatOptionHelp(specs ?? [])}${fileHelp}\n`;
}

/** The board the command line asks for (the last -M/-machine type, else the default), if known. */
function machineOf(opts: readonly SystemOpt[], registry: Registry): MachineDescriptor | undefined {
  const machineText = lastValue(opts, "M", "machine");
  const type = machineText
    ? parseKeyValueList(machineText, { impliedKey: "type" }).find((i) => i.key === "type")?.value
    : undefined;
  return type ? registry.get("machine", type) : registry.list("machine").find((m) => m.isDefault);
}

function machineHelpRequested(value: string): boolean {
  const items = parseKeyValueList(value, { impliedKey: "type" });
  return items.some((i) =>
    (i.key === "type" && isHelpRequest(i.value)) || (i.bare && isHelpRequest(i.key))
  );
}

/** Runs the system face; resolves to the exit code. */
export async function runSystem(args: string[], ctx: SystemContext): Promise<number> {
  const parsed = parseSystemArgs(args);
  const opts = parsed.opts;
  if (opts.some((o) => o.name === "h" || o.name === "help")) {
    writeOut(SYSTEM_USAGE);
    return 0;
  }
  if (opts.some((o) => o.name === "version")) {
    writeOut(`${versionLine("QEMU emulator")}\n`);
    return 0;
  }
  // -L help lists the firmware directories, in search order, as QEMU's list_data_dirs.
  const dataDirs = allValues(opts, "L");
  if (dataDirs.some(isHelpWord)) {
    writeOut(firmwareDirs(dataDirs.filter((d) => !isHelpWord(d))).map((d) => `${d}\n`).join(""));
    return 0;
  }
  const help = answerHelpQuery(opts, ctx.registry);
  if (help !== undefined) {
    writeOut(help);
    return 0;
  }
  const descriptor = machineOf(opts, ctx.registry);
  if (!descriptor) {
    throw new UsageError("unsupported machine type\nUse -machine help to list supported machines");
  }
  checkMachineProperties(opts, descriptor.name);
  let machine: Machine | undefined;
  let mux: StdioMux | undefined;
  const specs = monitorSpecs(opts);
  // -nographic puts QEMU's default monitor on the stdio multiplexer with serial0.
  const defaultMonitor = opts.some((o) => o.name === "nographic") &&
    !opts.some((o) => o.name === "monitor" || o.name === "serial");
  if (defaultMonitor) {
    specs.push({ mode: "hmp", transport: "stdio", wait: false, text: "stdio" });
  }
  let quit!: () => void;
  const quitRequested = new Promise<void>((resolve) => (quit = resolve));
  const graph = new BlockGraph(ctx.registry, (line) => writeErr(line + "\n"));
  const setup = await buildSystemSetup(opts, parsed.hda, {
    registry: ctx.registry,
    graph,
    warn: (message) => writeErr(`${ctx.program}: warning: ${message}\n`),
    report: (line) => writeErr(`${line}\n`),
    program: ctx.program,
    target: ctx.target,
    // QEMU's -nographic escapes: Ctrl-A x quits.
    stdio: {
      onEscape: (key) => {
        if (mux?.escape(key)) return true;
        if (key !== 0x78 /* x */) return false;
        writeErr("QEMU: Terminated\n");
        machine?.requestExit(0);
        quit();
        return true;
      },
    },
  });
  // SIGINT, SIGHUP and SIGTERM end the run in order, as QEMU's termsig_handler: the disks
  // close (a qcow2 stores its dirty bitmaps) and the process exits 0.
  const TERM_SIGNALS = [["SIGINT", 2], ["SIGHUP", 1], ["SIGTERM", 15]] as const;
  let terminated = false;
  const onSignals = TERM_SIGNALS.map(([name, number]) => {
    const handler = () => {
      terminated = true;
      writeErr(`${ctx.program}: terminating on signal ${number}\n`);
      machine?.requestExit(0);
      quit();
    };
    return [name, handler] as const;
  });
  let monitors: MonitorServers | undefined;
  let vnc: DisplayServers | undefined;
  try {
    for (const [name, handler] of onSignals) Deno.addSignalListener(name, handler);
    // -nographic: the first serial port shares stdio with the monitor (Ctrl-A c).
    const stdioMonitor = specs.find((s) => s.transport === "stdio");
    const serialStdio = setup.config.serial.findIndex((c) => c.constructor.name === "StdioChardev");
    if (stdioMonitor && serialStdio >= 0) {
      if (!opts.some((o) => o.name === "nographic")) {
        throw new UsageError("cannot use stdio by multiple character devices");
      }
      mux = new StdioMux(setup.config.serial[serialStdio]);
      setup.config.serial[serialStdio] = mux.serial;
    }
    machine = descriptor.create(setup.config);
    addAccelCommands(machine, setup.accel, ctx.registry);
    for (const d of setup.devices) machine.createDevice(d.model, d.opts, true);
    const nameText = lastValue(opts, "name");
    const name = nameText === undefined
      ? undefined
      : parseKeyValueList(nameText, { impliedKey: "guest" })
        .find((i) => i.key === "guest")?.value;
    // A vc monitor is a console of the display even on a machine with no graphics card.
    const vcWanted = specs.some((s) => s.transport === "vc");
    if (vcWanted) displayRegistry(machine);
    vnc = startDisplays(machine, opts, name);
    if (specs.length > 0) {
      // This run's monitor clients, shown by info chardev.
      const peers = new MonitorPeers();
      monitors = await startMonitors(
        machine,
        specs,
        monitorHost({
          name,
          version: QEMU_VERSION,
          vmkitVersion: VMKIT_VERSION,
          chardevs: setup.chardevs,
          drives: setup.config.drives,
          specs,
          peers,
          quit,
          openMedium: async (file, format) => {
            const root = await graph.openImage(file, { format, readOnly: true });
            const backend = new BlockBackend(root);
            setup.backends.push(backend);
            return backend;
          },
          // The running chain already holds this backing file's locks (commit's target):
          // a second set from this very process would refuse it.
          openImage: (file, format) =>
            graph.openImage(file, { format, readOnly: false, protocolOptions: { locking: "off" } }),
        }),
        {
          startPaused: opts.some((o) => o.name === "S"),
          mux,
          keepAlive: !defaultMonitor,
          peers,
          font: vcWanted ? vcFont(dataDirs) : undefined,
        },
      );
    }
    // -loadvm TAG: the machine starts where snapshot TAG left it (after realize, whose
    // reset would undo it).
    const loadvmTag = lastValue(opts, "loadvm");
    if (loadvmTag !== undefined) {
      await machine.realize();
      try {
        await loadVm(machine, loadvmTag);
      } catch (e) {
        throw new VmkitError(e instanceof Error ? e.message : String(e));
      }
    }
    if (monitors) {
      // The monitor's block statistics count the guest's I/O, as QEMU's devices account
      // it: what realize read (virtio-blk's geometry guess) is not.
      await machine.realize();
      markBlockStatsBaseline(machine);
    }
    // A signal while the machine was being made ends it before it runs.
    if (terminated) return 0;
    const exit = await machine.run();
    ctx.onExit?.(exit);
    // Under VMKIT_DEBUG, say why the run ended and what the CPU and devices looked like.
    if (Deno.env.get("VMKIT_DEBUG") === "1") {
      const regs = machine.cpus[0]?.registers() ?? {};
      const text = Object.entries(regs).map(([k, v]) => `${k}=${v.toString(16)}`).join(" ");
      const states = JSON.stringify(
        machine.saveState(),
        (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v),
      );
      writeErr(`${ctx.program}: run ended (${exit.reason}): ${text}\n`);
      writeErr(`${ctx.program}: device states: ${states}\n`);
    }
    // The guest halted with nothing left that could wake it. QEMU would sit there; so
    // does vmkit, until Ctrl-A x or a signal ends it.
    if (exit.reason === "idle") await quitRequested;
    // -no-shutdown: the guest stays stopped and the process waits to be told to quit.
    if (exit.reason === "shutdown" && setup.noShutdown) await quitRequested;
    return exit.exitCode;
  } finally {
    for (const [name, handler] of onSignals) Deno.removeSignalListener(name, handler);
    await monitors?.close();
    await vnc?.close();
    await machine?.close();
    for (const c of setup.chardevs) await c.close();
    for (const b of setup.backends) await b.close();
  }
}
