// Turns a parsed qemu-system command line into a MachineConfig: memory, CPUs, drives, chardevs

import { GUEST_DISK_SHARED } from "../../core/block/perm.ts";
import { BlockBackend, type CacheMode, parseCacheMode } from "../../core/block/backend.ts";
import { type BlockGraph, probedRawWarning, withoutOpenWrapper } from "../../core/block/graph.ts";
import { type Chardev, openChardev, type StdioChardevOptions } from "../../core/chardev.ts";
import { monitorChardevIds } from "./monitor_spec.ts";
import type { CpuBackend, CpuTopology } from "../../core/cpu.ts";
import { errorChainMessage, hostIoError, UsageError } from "../../core/errors.ts";
import type { DriveConfig, KernelConfig, MachineConfig } from "../../core/machine.ts";
import { parseKeyValueList, parseNumber, parseOptions, parseSize } from "../../core/options.ts";
import type { Registry } from "../../core/plugin.ts";
import {
  findX86Model,
  I386_DEFAULT_MODEL,
  parseCpuOption,
  X86_64_DEFAULT_MODEL,
} from "../../core/x86_cpu_models.ts";
import { accelProperties, chooseAccelerator } from "./accel.ts";
import { openBlockdevs, parseDriveOptions } from "./block_options.ts";
import { finishDrives, indexFromBusUnit } from "./drives.ts";
import { buildNetwork } from "./net.ts";
import { allValues, lastValue, type SystemOpt } from "./options.ts";

/** QEMU's default guest RAM. */
export const DEFAULT_RAM_BYTES = 128 << 20;

export { DRIVE_OPTIONS } from "./block_options.ts";

/** Everything the CLI needs besides the config itself. */
export interface SystemSetup {
  config: MachineConfig;
  /** `-device` models with their parsed options, created after the board. */
  devices: { model: string; opts: Record<string, string | number | boolean> }[];
  /** `-no-shutdown`: keep the process after the guest powers off. */
  noShutdown: boolean;
  /** Chardevs to close at exit (stdio restores the terminal). */
  chardevs: Chardev[];
  /** The drives' backends, drained, flushed and closed at exit. */
  backends: BlockBackend[];
  /** The accelerator that runs the machine (`tcg`, `kvm`), for `info kvm`. */
  accel: string;
}

/** Reads `-m 768`, `-m 1G`, `-m size=768M` (a bare number is MiB, as QEMU reads it). */
export function parseRamSize(text: string): number {
  const items = parseKeyValueList(text, { impliedKey: "size" });
  const size = items.find((i) => i.key === "size")?.value;
  if (size === undefined) throw new UsageError(`-m ${text}: missing 'size'`);
  let bytes: number;
  try {
    bytes = parseSize(size, { defaultSuffix: "m" });
  } catch {
    throw new UsageError(`-m ${text}: Parameter 'size' expects a non-negative number below 2^64`);
  }
  if (bytes < 1 << 20) throw new UsageError(`-m ${text}: ram size too small`);
  return bytes;
}

/** What `-smp` says: CPUs at start, the most there can be, and the topology. */
export interface SmpConfig {
  cpus: number;
  maxCpus: number;
  topology: CpuTopology;
  /** QEMU's warning for a zero parameter (still accepted, as QEMU 7.2 does). */
  warning?: string;
}

const SMP_KEYS = ["cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus"];
/** `-M pc`'s limit (QEMU's `max_cpus` of pc-i440fx-7.2). */
const SMP_MAX_CPUS = 255;

/**
 * Reads `-smp 2` or `-smp cpus=2,sockets=1,cores=2,threads=1,maxcpus=4` and fills in
 * what is left out as QEMU 7.2 does on `-M pc` (cores before sockets since 6.2), with
 * QEMU's errors for combinations that do not multiply out.
 */
export function parseSmp(text: string): SmpConfig {
  const items = parseKeyValueList(text, { impliedKey: "cpus" });
  const given = new Map<string, number>();
  for (const i of items) {
    if (!SMP_KEYS.includes(i.key)) throw new UsageError(`Parameter 'smp.${i.key}' is unexpected`);
    if (!/^\d+$/.test(i.value.trim())) {
      throw new UsageError(`Parameter 'smp.${i.key}' expects integer`);
    }
    given.set(i.key, Number(i.value.trim()));
  }
  const warning = [...given.values()].some((v) => v === 0)
    ? "Deprecated CPU topology (considered invalid): CPU topology parameters must be greater than zero"
    : undefined;
  const get = (k: string) => given.get(k) ?? 0;
  let cpus = get("cpus"), maxCpus = get("maxcpus");
  let sockets = get("sockets"), cores = get("cores"), threads = get("threads");
  const dies = get("dies") || 1;
  const clusters = get("clusters") || 1;
  if (clusters > 1) throw new UsageError("clusters not supported by this machine's CPU topology");
  if (cpus === 0 && maxCpus === 0) {
    sockets ||= 1;
    cores ||= 1;
    threads ||= 1;
  } else {
    maxCpus ||= cpus;
    if (cores === 0) {
      sockets ||= 1;
      threads ||= 1;
      cores = Math.floor(maxCpus / (sockets * dies * threads));
    } else if (sockets === 0) {
      threads ||= 1;
      sockets = Math.floor(maxCpus / (dies * cores * threads));
    }
    if (threads === 0) threads = Math.floor(maxCpus / (sockets * dies * cores));
  }
  maxCpus ||= sockets * dies * cores * threads;
  cpus ||= maxCpus;
  const hierarchy =
    `sockets (${sockets}) * dies (${dies}) * cores (${cores}) * threads (${threads})`;
  if (sockets * dies * cores * threads !== maxCpus) {
    throw new UsageError(
      `Invalid CPU topology: product of the hierarchy must match maxcpus: ${hierarchy} != maxcpus (${maxCpus})`,
    );
  }
  if (maxCpus < cpus) {
    throw new UsageError(
      `Invalid CPU topology: maxcpus must be equal to or greater than smp: ${hierarchy} == maxcpus (${maxCpus}) < smp_cpus (${cpus})`,
    );
  }
  if (maxCpus > SMP_MAX_CPUS) {
    throw new UsageError(
      `Invalid SMP CPUs ${maxCpus}. The max CPUs supported by machine 'pc-i440fx-7.2' is ${SMP_MAX_CPUS}`,
    );
  }
  return { cpus, maxCpus, topology: { sockets, dies, cores, threads }, warning };
}

export { chosenAccel } from "./accel.ts";

/** Reads `-boot` (`d`, `order=dc,menu=on,once=d,splash-time=,reboot-timeout=`). */
export function parseBoot(text: string): Partial<MachineConfig> {
  const items = parseKeyValueList(text, { impliedKey: "order" });
  const out: Partial<MachineConfig> = {};
  for (const i of items) {
    switch (i.key) {
      case "order":
      case "once":
        if (!/^[a-p]+$/.test(i.value)) {
          throw new UsageError(`Invalid boot device for PC: '${i.value}'`);
        }
        for (const [n, letter] of [...i.value].entries()) {
          if (i.value.indexOf(letter) !== n) {
            throw new UsageError(`Boot device '${letter}' was given twice`);
          }
        }
        // once= is the order of the first boot only; the board restores order= on reset.
        if (i.key === "once") out.bootOnce = i.value;
        else out.bootOrder = i.value;
        break;
      case "menu":
        out.bootMenu = ["on", "yes", "true"].includes(i.value);
        break;
      case "splash-time":
        out.bootSplashTimeMs = parseNumber(i.value, "splash-time");
        break;
      case "reboot-timeout":
        out.bootRebootTimeoutMs = Number(i.value);
        break;
      case "strict":
      case "splash":
        break;
      default:
        throw new UsageError(`-boot ${text}: Invalid parameter '${i.key}'`);
    }
  }
  return out;
}

/** Splits `-initrd` on single commas (`,,` is a literal comma), as QEMU does for Multiboot modules. */
export function splitModules(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "," && text[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (text[i] === ",") {
      out.push(cur);
      cur = "";
    } else cur += text[i];
  }
  out.push(cur);
  return out.filter((m) => m !== "");
}

function readKernelFile(path: string, what: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    throw new UsageError(`could not load ${what} '${path}'`, { cause: hostIoError(e, path) });
  }
}

/** Reads `-kernel`, `-initrd` and `-append` into the board's kernel configuration. */
export function readKernelConfig(opts: readonly SystemOpt[]): KernelConfig | undefined {
  const kernelPath = lastValue(opts, "kernel");
  const initrd = lastValue(opts, "initrd");
  const append = lastValue(opts, "append");
  if (kernelPath === undefined) {
    if (initrd !== undefined) throw new UsageError("-initrd only allowed with -kernel option");
    if (append !== undefined) throw new UsageError("-append only allowed with -kernel option");
    return undefined;
  }
  const modules = initrd === undefined ? undefined : splitModules(initrd).map((entry) => ({
    bytes: readKernelFile(entry.split(" ")[0], "initrd"),
    cmdline: entry,
  }));
  return {
    kernel: readKernelFile(kernelPath, "kernel"),
    kernelName: kernelPath,
    cmdline: append ?? "",
    initrd: initrd === undefined ? undefined : modules?.[0]?.bytes,
    modules,
  };
}

/** Opens every drive of the command line (`-drive`, `-hda..-hdd`, `-cdrom`, a bare image). */
export async function openDrives(
  opts: readonly SystemOpt[],
  graph: BlockGraph,
  hda: string | undefined,
): Promise<DriveConfig[]> {
  // Each drive as -drive text, and the option as typed, which QEMU's messages name.
  const specs: { spec: string; typed: string }[] = [];
  if (hda !== undefined) {
    specs.push({ spec: `file=${hda.replaceAll(",", ",,")},index=0,media=disk`, typed: hda });
  }
  const SHORTHANDS: Record<string, string> = {
    hda: "index=0,media=disk",
    hdb: "index=1,media=disk",
    hdc: "index=2,media=disk",
    hdd: "index=3,media=disk",
    cdrom: "index=2,media=cdrom",
    fda: "if=floppy,index=0",
    fdb: "if=floppy,index=1",
  };
  for (const o of opts) {
    const file = o.value.replaceAll(",", ",,");
    if (o.name === "drive") specs.push({ spec: o.value, typed: `-drive ${o.value}` });
    else if (SHORTHANDS[o.name]) {
      specs.push({ spec: `file=${file},${SHORTHANDS[o.name]}`, typed: `-${o.name} ${o.value}` });
    }
  }
  const drives: DriveConfig[] = [];
  for (const { spec, typed } of specs) {
    let o;
    let formatOptions;
    let protocolOptions;
    let protocol;
    try {
      ({ drive: o, formatOptions, protocolOptions, protocol } = parseDriveOptions(
        spec,
        graph.registry,
      ));
    } catch (e) {
      throw new UsageError(`${typed}: ${(e as Error).message}`);
    }
    const media = (o.media as "disk" | "cdrom" | undefined) ?? "disk";
    const readOnly = o.readonly === true || media === "cdrom";
    const cache = (o.cache as CacheMode | undefined) ?? "writeback";
    const file = o.file as string | undefined;
    const iface = (o.if as DriveConfig["interface"] | undefined) ?? "ide";
    // The pc board's floppy bus has units 0 and 1 (QEMU's words).
    if (iface === "floppy" && typeof o.index === "number" && o.index > 1) {
      throw new UsageError(
        `${typed}: machine type does not support if=floppy,bus=0,unit=${o.index}`,
      );
    }
    let node: BlockBackend | null = null;
    if (file !== undefined && file !== "") {
      try {
        const flags = parseCacheMode(cache);
        const root = await graph.openImage(file, {
          format: o.format as string | undefined,
          protocol,
          readOnly,
          // QEMU's -drive defaults auto-read-only to on (blockdev.c's drive_new).
          autoReadOnly: o["auto-read-only"] !== false,
          direct: flags.direct,
          noFlush: flags.noFlush,
          formatOptions,
          protocolOptions,
          // A guest device lets others read and resize, never write (QEMU's
          // blkconf_apply_backend_options without share-rw); a drive with no device shares all.
          access: iface === "none" ? undefined : { shared: GUEST_DISK_SHARED },
        });
        // QEMU's warning: block 0 of a probed raw disk is guarded (plugins/formats/raw.ts).
        if (root.restrictsBlockZero) graph.report(probedRawWarning(file));
        // auto-read-only fell back to a read-only open: a drive whose device writes then fails
        // QEMU's write-permission check (a CD-ROM and a drive with no device, if=none, do not).
        if (root.readOnly && !readOnly && iface !== "none") {
          await root.close();
          const denied = `Could not open '${file}': Permission denied`;
          // QEMU names the option only where the drive's device is made with it (virtio).
          throw new UsageError(iface === "virtio" ? `${typed}: ${denied}` : denied);
        }
        // An IDE hard disk cannot be read-only in QEMU (ide-hd refuses the node); a CD-ROM,
        // a floppy and a virtio disk can.
        if (o.readonly === true && iface === "ide" && media === "disk") {
          await root.close();
          throw new UsageError("Block node is read-only");
        }
        // The guest's disk goes through the same backend and scheduler as `img`.
        node = new BlockBackend(root, { cache });
      } catch (e) {
        if (e instanceof UsageError) throw e;
        // qemu-system prints why, without qemu-img's `Could not open 'FILE'` before it.
        const parts = errorChainMessage(withoutOpenWrapper(e)).split(": ");
        const message = parts.filter((p, i) => p !== parts[i - 1]).join(": ");
        throw new UsageError(`${typed}: ${message}`);
      }
    } else if (media === "disk" && iface !== "floppy") {
      // A floppy drive may be empty, as a CD-ROM drive may.
      throw new UsageError(`${typed}: A block device must be specified for "file"`);
    }
    drives.push({
      // finishDrives() names drives without id= as QEMU does (ide0-hd0, virtio0...).
      id: (o.id as string | undefined) ?? "",
      node,
      interface: iface,
      index: (o.index as number | undefined) ??
        indexFromBusUnit(iface, o.bus as number | undefined, o.unit as number | undefined),
      media,
      readOnly,
      serial: o.serial as string | undefined,
    });
  }
  return drives;
}

/** The options vmkit acts on; every other QEMU option is refused, never silently ignored. */
/** `-uuid`: QEMU's text form, 8-4-4-4-12 hex digits (fw_cfg and the monitor take it). */
function parseUuid(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(text)) {
    throw new UsageError(`-uuid ${text}: failed to parse UUID string: wrong format`);
  }
  return text;
}

const IMPLEMENTED = new Set([
  "name",
  "uuid",
  "M",
  "machine",
  "accel",
  "enable-kvm",
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
  "device",
  "kernel",
  "initrd",
  "append",
  "nographic",
  "display",
  "vnc",
  "serial",
  "debugcon",
  "chardev",
  "mon",
  "cpu",
  "bios",
  "L",
  "option-rom",
  "no-reboot",
  "no-shutdown",
  "monitor",
  "qmp",
  "S",
  "loadvm",
  "vga",
  "net",
  "netdev",
  "nic",
  "balloon",
  "nodefaults",
  "no-user-config",
  "nouserconfig",
  "version",
  "h",
  "help",
]);

/** The `-vga` types vmkit builds, and the others QEMU knows. */
const VGA_TYPES = ["std", "cirrus", "none"];
const QEMU_VGA_TYPES = ["vmware", "qxl", "xenfb", "tcx", "cg3", "virtio"];

/** Values of implemented options that ask for something not built yet. */
function refuseUnbuilt(o: SystemOpt): void {
  const first = o.value.split(",")[0];
  const display = first.replace(/^type=/, "");
  if (
    o.name === "display" && !["none", "curses", "web"].includes(display) &&
    !display.startsWith("vnc=") && !display.startsWith("web=")
  ) {
    throw new UsageError(
      `-display ${o.value}: vmkit has no such display yet; use -display none, vnc=..., web ` +
        `or -nographic`,
    );
  }
  if (o.name === "vga" && !VGA_TYPES.includes(o.value)) {
    throw new UsageError(
      QEMU_VGA_TYPES.includes(o.value)
        ? `-vga ${o.value}: not supported by vmkit yet; use -vga std, cirrus or none`
        : `unknown vga type: ${o.value}`,
    );
  }
}

/** The file of `-option-rom FILE` (`romfile=FILE` too); `bootindex=` is not built yet. */
function optionRomFile(text: string): string {
  const items = parseKeyValueList(text, { impliedKey: "romfile" });
  const other = items.find((i) => i.key !== "romfile");
  if (other) {
    throw new UsageError(`-option-rom ${text}: '${other.key}' is not supported by vmkit yet`);
  }
  const file = items.find((i) => i.key === "romfile")?.value;
  if (!file) throw new UsageError(`-option-rom ${text}: a ROM file name is required`);
  return file;
}

/** `-balloon none` or `-balloon virtio[,opts]` as the `-device` it stands for. */
function balloonDevice(text: string): string[] {
  const { 0: type, length } = text.split(",");
  if (type === "none" && length === 1) return [];
  if (type === "virtio") return [`virtio-balloon-pci${text.slice(type.length)}`];
  throw new UsageError(`-balloon ${text}: unknown balloon device '${type}': use virtio or none`);
}

/** Refuses every option vmkit parses but does not implement, with its name. */
export function checkImplemented(opts: readonly SystemOpt[]): void {
  for (const o of opts) {
    // The pc board has no parallel port yet: asking for none is what it has.
    if (o.name === "parallel" && o.value === "none") continue;
    if (!IMPLEMENTED.has(o.name)) throw new UsageError(`-${o.name}: not supported by vmkit yet`);
    refuseUnbuilt(o);
  }
}

/** True when the last `-machine ...,graphics=off` (QEMU's machine property) turns graphics off. */
function machineGraphicsOff(opts: readonly SystemOpt[]): boolean {
  let off = false;
  for (const o of opts) {
    if (o.name !== "M" && o.name !== "machine") continue;
    for (const i of parseKeyValueList(o.value, { impliedKey: "type" })) {
      if (i.key === "graphics") off = i.value === "off";
    }
  }
  return off;
}

/** Builds the machine configuration from a parsed command line. */
export async function buildSystemSetup(
  opts: readonly SystemOpt[],
  hda: string | undefined,
  context: {
    registry: Registry;
    graph: BlockGraph;
    stdio: StdioChardevOptions;
    /** Prints a warning line (`<program>: warning: ...`). */
    warn?: (message: string) => void;
    /** Prints a line to stderr as it is (accelerator fallbacks); console.error when absent. */
    report?: (line: string) => void;
    /** The program name messages start with (`qemu-system-x86_64`). */
    program?: string;
    /** The qemu-system binary messages speak for (`x86_64` when absent). */
    target?: "x86_64" | "i386";
  },
): Promise<SystemSetup> {
  const registry = context.registry;
  checkImplemented(opts);
  // -balloon virtio is the older spelling of -device virtio-balloon (QEMU 7.2 dropped it).
  const deviceSpecs = opts.flatMap((o) => {
    if (o.name === "device") return [o.value];
    if (o.name === "balloon") return balloonDevice(o.value);
    return [];
  });
  const devices = deviceSpecs.map((text) => {
    const items = parseKeyValueList(text, { impliedKey: "driver" });
    const model = items.find((i) => i.key === "driver")?.value ?? "";
    const descriptor = registry.get("device", model);
    if (!descriptor) {
      throw new UsageError(`-device ${text}: '${model}' is not a valid device model name`);
    }
    const rest = items.filter((i) => i.key !== "driver").map((i) =>
      i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`
    )
      .join(",");
    try {
      return { model: descriptor.name, opts: parseOptions(rest, descriptor.options) };
    } catch (e) {
      throw new UsageError(`-device ${text}: ${(e as Error).message}`);
    }
  });
  const { plugin: cpuPlugin, choice: accelChoice } = chooseAccelerator(
    opts,
    registry,
    context.report ?? ((line) => console.error(line)),
    context.program,
  );
  const accelOpts = accelProperties(opts, accelChoice, context.warn);
  const cpuText = lastValue(opts, "cpu");
  const cpuModel = cpuText?.split(",")[0];
  // QEMU's x86 models: unknown flags and bad values fail with QEMU's words before start-up.
  if (cpuText && cpuModel && findX86Model(cpuModel)) {
    parseCpuOption(cpuText, { target: context.target });
  }
  if (cpuModel && !cpuPlugin.models.some((m) => m.name === cpuModel)) {
    throw new UsageError(`unable to find CPU model '${cpuModel}'`);
  }
  // Without -cpu, QEMU's default for the binary: qemu64 for x86_64, qemu32 for i386 (issue 14).
  const tcgDefault = cpuPlugin.accel === "tcg"
    ? (context.target === "i386" ? I386_DEFAULT_MODEL : X86_64_DEFAULT_MODEL)
    : undefined;
  const nographic = opts.some((o) => o.name === "nographic");
  const chardevs: Chardev[] = [];
  const open = (id: string, spec: string) => {
    // One terminal has one reader: a second stdio backend is refused as QEMU refuses it.
    if ((spec === "stdio" || spec === "mon:stdio") && chardevs.some(isStdio)) {
      throw new UsageError("cannot use stdio by multiple character devices");
    }
    const c = openChardev(id, spec, context.stdio);
    chardevs.push(c);
    return c;
  };
  // -chardev BACKEND,id=ID[,path=FILE]: named backends that -device ...,chardev=ID and
  // -serial chardev:ID use.
  // A chardev a `-mon` names is the monitor's (cli/system/monitor.ts opens it).
  const forMonitors = monitorChardevIds(opts);
  const named: Chardev[] = allValues(opts, "chardev").flatMap((text) => {
    const items = parseKeyValueList(text, { impliedKey: "backend" });
    const get = (k: string) => items.find((i) => i.key === k)?.value;
    const id = get("id");
    if (!id) throw new UsageError(`-chardev ${text}: chardev: "id" is required`);
    if (forMonitors.has(id)) return [];
    const backend = get("backend");
    // A chardev plugin (`--plugin`) answers to its own name with its declared options.
    const plugin = backend === undefined ? undefined : registry.get("chardev", backend);
    if (plugin) {
      const rest = items.filter((i) => i.key !== "backend" && i.key !== "id")
        .map((i) => (i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`)).join(",");
      let parsed;
      try {
        parsed = parseOptions(rest, plugin.options);
      } catch (e) {
        throw new UsageError(`-chardev ${text}: ${(e as Error).message}`);
      }
      const c = plugin.create(id, parsed);
      chardevs.push(c);
      return c;
    }
    const spec = backend === "file" ? `file:${get("path") ?? ""}` : backend ?? "";
    if (!["stdio", "null"].includes(spec) && !spec.startsWith("file:")) {
      throw new UsageError(`-chardev ${text}: '${backend}' is not a valid char driver name`);
    }
    if (spec === "file:") throw new UsageError(`-chardev ${text}: chardev: "path" is required`);
    return open(id, spec);
  });
  const serialSpecs = allValues(opts, "serial");
  if (serialSpecs.length === 0 && nographic) serialSpecs.push("mon:stdio");
  const serial = serialSpecs.filter((s) => s !== "none").map((spec, i) => {
    if (!spec.startsWith("chardev:")) return open(`serial${i}`, spec);
    const found = named.find((c) => c.id === spec.slice(8));
    if (!found) throw new UsageError(`-serial ${spec}: chardev '${spec.slice(8)}' not found`);
    return found;
  });
  const debugconSpec = lastValue(opts, "debugcon");
  const debugcon = debugconSpec && debugconSpec !== "none"
    ? open("debugcon", debugconSpec)
    : undefined;
  const smp = parseSmp(lastValue(opts, "smp") ?? "1");
  if (smp.warning) context.warn?.(smp.warning);
  const boot = parseBoot(lastValue(opts, "boot") ?? "order=cad");
  const network = buildNetwork(
    opts,
    registry,
    devices.map((d) => d.opts.netdev).filter((n) => typeof n === "string"),
  );
  for (const w of network.warnings) context.warn?.(w);
  const config: MachineConfig = {
    ramBytes: parseRamSize(lastValue(opts, "m") ?? String(DEFAULT_RAM_BYTES >> 20)),
    smp: smp.cpus,
    maxCpus: smp.maxCpus,
    topology: smp.topology,
    biosPath: lastValue(opts, "bios"),
    dataDirs: allValues(opts, "L"),
    optionRoms: allValues(opts, "option-rom").map(optionRomFile),
    warn: context.warn,
    drives: [
      ...finishDrives(await openDrives(opts, context.graph, hda), {
        defaultCdrom: !opts.some((o) => o.name === "nodefaults"),
        defaultFloppy: !opts.some((o) => o.name === "nodefaults"),
      }),
      ...await openBlockdevs(allValues(opts, "blockdev"), context.graph),
    ],
    nics: network.nics,
    network: network.plan,
    serial,
    debugcon,
    // `-machine graphics=off` tells the firmware to use the serial console as -nographic does.
    nographic: nographic || machineGraphicsOff(opts),
    // -nodefaults drops the default VGA as it does in QEMU; an explicit -vga still wins.
    vga: lastValue(opts, "vga") ??
      (opts.some((o) => o.name === "nodefaults") ? "none" : undefined),
    noReboot: opts.some((o) => o.name === "no-reboot"),
    uuid: parseUuid(lastValue(opts, "uuid")),
    chardevs: named.filter((c) => !serial.includes(c)),
    kernel: readKernelConfig(opts),
    registry,
    clock: cpuPlugin.clock === "host"
      // KVM slices end at host deadlines; a longer cap costs no input latency there.
      ? { realtime: true, hostClock: true, maxSliceInstructions: 1_250_000 }
      : { realtime: true },
    allocateRam: cpuPlugin.allocateRam,
    createExecutor: (machine) => cpuPlugin.createExecutor?.(machine, accelOpts),
    ...boot,
    createCpu: (machine, index) =>
      cpuPlugin.create(
        { ...machine.cpuContext(index, cpuModel ?? tcgDefault), cpu: cpuText, warn: context.warn },
        accelOpts,
      ) as CpuBackend,
  };
  // -drive if=virtio becomes a virtio-blk-pci after the -device list, as QEMU's drive_new
  // appends it to the device options.
  for (const d of config.drives) {
    if (d.interface === "virtio") devices.push({ model: "virtio-blk-pci", opts: { drive: d.id } });
  }
  const backends = config.drives.map((d) => d.node).filter((n) => n instanceof BlockBackend);
  return {
    config,
    devices,
    noShutdown: opts.some((o) => o.name === "no-shutdown"),
    chardevs,
    backends,
    accel: cpuPlugin.accel,
  };
}

function isStdio(c: Chardev): boolean {
  return c.constructor.name === "StdioChardev";
}
