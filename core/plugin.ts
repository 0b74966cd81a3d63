// Plugin descriptors for every kind, and the Registry that finds them and prints their help

import type { BlockNode, CreateContext, OpenContext } from "./block/driver.ts";
import type { FileRole } from "./block/perm.ts";
import type { Chardev } from "./chardev.ts";
import type { CpuBackend, CpuContext } from "./cpu.ts";
import type { CpuExecutor } from "./cpu_executor.ts";
import type { Device, DeviceContext } from "./device.ts";
import { UsageError } from "./errors.ts";
import type { Machine, MachineConfig } from "./machine.ts";
import type { NetClient, NetdevContext } from "./net.ts";
import type { OptionSpec, ParsedOptions } from "./options.ts";

/**
 * The plugin API this vmkit implements. A plugin declares the version it was written
 * for in `apiVersion`; vmkit loads it when the numbers are equal. The number goes up
 * when a descriptor or context changes in a way an existing plugin would notice.
 */
export const PLUGIN_API_VERSION = 1;

/** The kinds of plugin vmkit knows. */
export type PluginKind =
  | "format"
  | "protocol"
  | "cpu"
  | "device"
  | "machine"
  | "netdev"
  | "chardev";

/** Every kind, in the order `vmkit plugin list` shows them. */
export const PLUGIN_KINDS: readonly PluginKind[] = [
  "format",
  "protocol",
  "cpu",
  "device",
  "machine",
  "netdev",
  "chardev",
];

/** Fields every plugin descriptor has. */
export interface PluginBase {
  /** Which contract the plugin fills. */
  readonly kind: PluginKind;
  /** The name a user types, spelled as QEMU spells it (`qcow2`, `virtio-blk-pci`, `pc`). */
  readonly name: string;
  /** One line for help listings. */
  readonly summary: string;
  /** The options the plugin accepts; anything else is refused with the option's name. */
  readonly options: readonly OptionSpec[];
  /** Other names that find the same plugin (`virtio-blk` for `virtio-blk-pci`). */
  readonly aliases?: readonly string[];
  /** Leave out of help listings. */
  readonly hidden?: boolean;
  /**
   * The plugin API version the plugin was written for ({@linkcode PLUGIN_API_VERSION});
   * required of a plugin loaded with `--plugin`, optional for built-ins.
   */
  readonly apiVersion?: number;
}

/** An image format: probe, create and open (the BlockDriver of QEMU). */
export interface FormatDescriptor extends PluginBase {
  readonly kind: "format";
  /**
   * Scores how surely the first bytes of a file are this format: 0 no, 100 certain.
   * `raw` answers 1 so it wins only when nothing else claims the file.
   */
  probe?(header: Uint8Array, filename: string): number;
  /** Writes a new image of `sizeBytes` to `filename` with create options `opts`. */
  create(
    filename: string,
    sizeBytes: number,
    opts: ParsedOptions,
    ctx: CreateContext,
  ): Promise<void>;
  /** Opens an image that sits on the protocol node `file`. */
  open(file: BlockNode, opts: ParsedOptions, ctx: OpenContext): Promise<BlockNode>;
  /** Runtime (open) options such as `l2-cache-size`; the create options are `options`. */
  readonly openOptions?: readonly OptionSpec[];
  /**
   * How the format uses its file, for the image locks (core/block/perm.ts): `metadata`
   * (the default) keeps its own structures there, `filtered` passes guest data straight
   * through (raw).
   */
  readonly fileRole?: FileRole;
  /**
   * `qemu-img measure`: the file size a new image of this format needs for
   * `sizeBytes` of guest data of which `allocatedBytes` are allocated (non-zero).
   */
  measure?(sizeBytes: number, allocatedBytes: number, opts: ParsedOptions): MeasureResult;
  /** True when `create` accepts `backing_file` (`-b`). */
  readonly supportsBacking?: boolean;
  /** True when `convert -c` may write this format compressed (qcow2 tells by `compression_type`). */
  readonly supportsCompression?: boolean;
  /**
   * The options `qemu-img amend` takes for this format, so `amend -f fmt -o help` lists
   * them without opening an image; absent when the format cannot be amended.
   */
  readonly amendOptions?: readonly OptionSpec[];
}

/** What `qemu-img measure` prints. */
export interface MeasureResult {
  /** Bytes needed for the allocated data and metadata. */
  required: number;
  /** Bytes needed when every guest byte is allocated. */
  fullyAllocated: number;
}

/** A protocol: where image bytes live (host files, later nbd, http...). */
export interface ProtocolDescriptor extends PluginBase {
  readonly kind: "protocol";
  /** Creates (or truncates) the storage for `filename` with `sizeBytes`. */
  create(filename: string, sizeBytes: number, opts: ParsedOptions): Promise<void>;
  /** Opens `filename` as a protocol node. */
  open(filename: string, opts: ProtocolOpenOptions): Promise<BlockNode>;
  /**
   * Scores how surely `filename` names what this protocol opens when no driver is named
   * (QEMU's `bdrv_probe_device`): 0 no, 100 certain. `host_device` claims block and
   * character devices; `file`, the fallback, has none.
   */
  probeDevice?(filename: string): number;
  /**
   * Runtime options a user gives as `file.NAME=` on `-drive` and `-blockdev`; they reach
   * `open` typed, in `opts.options`.
   */
  readonly openOptions?: readonly OptionSpec[];
}

/** How a protocol node is opened. */
export interface ProtocolOpenOptions {
  readOnly: boolean;
  /** Bypass the host page cache (`cache=none`, `directsync`). */
  direct?: boolean;
  /** Take no lock (`-U`, `force-share`). */
  forceShare?: boolean;
  /** Ignore flushes (`cache=unsafe`): also the ordering flushes a format makes. */
  noFlush?: boolean;
  /**
   * `auto-read-only` (on for `-drive`): where a read-write open is refused, open read-only
   * instead of failing.
   */
  autoReadOnly?: boolean;
  /** The protocol's own runtime options (`file.locking=off`), typed by its `openOptions`. */
  options?: ParsedOptions;
}

/** One CPU model a backend offers (`-cpu help`). */
export interface CpuModelInfo {
  readonly name: string;
  readonly description: string;
  /** The model this name stands for, when it is an alias. */
  readonly alias?: string;
}

/**
 * A CPU family (an architecture): what `-cpu help` prints for a machine whose CPUs are of
 * it. A plugin adding another family supplies its own; x86's is core/x86_cpu_models.ts's
 * `X86_CPU_FAMILY`, which this module does not import: QEMU's model table is 78 KB that
 * `img` and every other command without a CPU would load for nothing.
 */
export interface CpuFamily {
  /** The name backends and machines refer to it by (`x86`, `riscv`). */
  readonly name: string;
  /** The whole `-cpu help` text, given every model the family's backends offer. */
  help(models: readonly CpuModelInfo[]): string;
}

/** The family of a CPU backend or machine that names none. */
export const DEFAULT_CPU_FAMILY = "x86";

/** A CPU backend (the x86 interpreter, KVM...). `create` returns the backend object. */
export interface CpuDescriptor extends PluginBase {
  readonly kind: "cpu";
  /** The `accel=` name this backend answers to (`tcg`, `kvm`). */
  readonly accel: string;
  /**
   * The family whose CPUs this backend runs; absent means the family named `x86`
   * (core/x86_cpu_models.ts's `X86_CPU_FAMILY`, which the built-in x86 backends bring),
   * which backends written before families existed are.
   */
  readonly family?: CpuFamily;
  /** CPU models (`-cpu help`): name and description. */
  readonly models: readonly CpuModelInfo[];
  /** Makes CPU `context.index` of a machine, on its memory and port spaces. */
  create(context: CpuContext, opts: ParsedOptions): CpuBackend;
  /**
   * Checks that the accelerator can run on this host (KVM: /dev/kvm opens and answers)
   * before a machine is built; throws when it cannot. Optional: absent means always.
   */
  probe?(): void;
  /**
   * Allocates guest RAM the backend can run from (KVM: anonymous host memory it maps
   * into the VM); absent means an ordinary zeroed array.
   */
  allocateRam?(bytes: number): Uint8Array;
  /**
   * The clock the machine runs on with this backend: `instructions` (the default) for a
   * deterministic interpreter, `host` when the guest runs at host speed (KVM).
   */
  readonly clock?: "instructions" | "host";
  /**
   * The executor that runs a machine's CPUs with this backend (KVM: a host thread per
   * vCPU), given the accelerator's options; absent, or undefined returned, means the
   * machine's own (one CPU straight through, or round-robin).
   */
  createExecutor?(machine: Machine, opts: ParsedOptions): CpuExecutor | undefined;
}

/** QEMU's device categories, in the order `-device help` prints them. */
export const DEVICE_CATEGORIES = [
  "Controller/Bridge/Hub",
  "USB",
  "Storage",
  "Network",
  "Input",
  "Display",
  "Sound",
  "Misc",
  "CPU",
  "Watchdog",
  "Uncategorized",
] as const;

/** One of {@linkcode DEVICE_CATEGORIES}. */
export type DeviceCategory = typeof DEVICE_CATEGORIES[number];

/** A device model a user adds with `-device name,opts`. */
export interface DeviceDescriptor extends PluginBase {
  readonly kind: "device";
  /** The bus the device plugs into, as `-device help` prints it (`PCI`, `ISA`, `System`). */
  readonly bus: string;
  readonly category: DeviceCategory;
  /** True when a user may add it with `-device` (board-internal devices are not). */
  readonly userCreatable: boolean;
  /**
   * Makes the device in the machine `ctx`: registers its ports and MMIO windows, plugs
   * into its bus, takes its IRQ lines and publishes its services. The returned device
   * is added to the machine (unless `create` already added it).
   */
  create(ctx: DeviceContext, opts: ParsedOptions): Device;
}

/** A machine board (`-M pc`). */
export interface MachineDescriptor extends PluginBase {
  readonly kind: "machine";
  /** Marked `(default)` in `-M help`. */
  readonly isDefault?: boolean;
  /** The CPU family ({@linkcode CpuFamily} name) the board's CPUs are; absent means `x86`. */
  readonly cpuFamily?: string;
  /** Builds the board: a Machine with its memory map, built-in devices and CPUs. */
  create(config: MachineConfig): Machine;
}

/** A network backend (`-netdev user`, `-net user`). */
export interface NetdevDescriptor extends PluginBase {
  readonly kind: "netdev";
  /**
   * Makes the backend's NetClient, with the machine's event loop and hubs in `ctx`
   * (core/net.ts says what a backend may do with them); `close()` is called at exit.
   */
  create(opts: ParsedOptions, ctx: NetdevContext): NetClient;
}

/** A character backend (`-chardev NAME,id=ID,...`, `-serial NAME:...`). */
export interface ChardevDescriptor extends PluginBase {
  readonly kind: "chardev";
  /** Opens the backend `id`; `close()` is called at exit. */
  create(id: string, opts: ParsedOptions): Chardev;
}

/** Any plugin descriptor. */
export type PluginDescriptor =
  | FormatDescriptor
  | ProtocolDescriptor
  | CpuDescriptor
  | DeviceDescriptor
  | MachineDescriptor
  | NetdevDescriptor
  | ChardevDescriptor;

type ByKind<K extends PluginKind> = Extract<PluginDescriptor, { kind: K }>;

/**
 * The set of plugins in one vmkit process: built-ins from `plugins/mod.ts` plus any
 * loaded with `--plugin`. It finds plugins by kind and name and prints QEMU-style help.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Registry } from "./plugin.ts";
 *
 * const registry = new Registry();
 * registry.add({
 *   kind: "netdev", name: "user", summary: "user-mode networking", options: [],
 *   create: () => ({ id: "u", model: "user", peer: null, receive: () => true }),
 * });
 * assert.equal(registry.get("netdev", "user")?.summary, "user-mode networking");
 * assert.equal(registry.get("netdev", "tap"), undefined);
 * ```
 */
export class Registry {
  #plugins: PluginDescriptor[] = [];
  #sources = new Map<PluginDescriptor, string>();

  /**
   * Adds one descriptor; a second plugin of the same kind and name is refused.
   *
   * @param source where it came from, for `vmkit plugin list` (a path or URL)
   */
  add(descriptor: PluginDescriptor, source = "built-in"): void {
    this.addGroup([descriptor], source);
  }

  /**
   * Adds the descriptors of one plugin module together: all of them, or none when one
   * is malformed or its name is taken (by the registry or by another in the group).
   */
  addGroup(descriptors: readonly PluginDescriptor[], source = "built-in"): void {
    const taken = new Set<string>();
    for (const d of descriptors) {
      checkDescriptor(d);
      for (const name of [d.name, ...(d.aliases ?? [])]) {
        if (this.get(d.kind, name) || taken.has(`${d.kind}:${name}`)) {
          throw new UsageError(`A ${d.kind} plugin named '${name}' is already registered`);
        }
        taken.add(`${d.kind}:${name}`);
      }
    }
    for (const d of descriptors) {
      this.#plugins.push(d);
      this.#sources.set(d, source);
    }
  }

  /** Where a registered descriptor came from: `built-in`, or the path or URL it was loaded from. */
  sourceOf(descriptor: PluginDescriptor): string | undefined {
    return this.#sources.get(descriptor);
  }

  /** Every plugin, in registration order. */
  all(): readonly PluginDescriptor[] {
    return this.#plugins;
  }

  /** Adds every descriptor of a list. */
  addAll(descriptors: readonly PluginDescriptor[]): this {
    for (const d of descriptors) this.add(d);
    return this;
  }

  /** Finds a plugin by kind and name or alias. */
  get<K extends PluginKind>(kind: K, name: string): ByKind<K> | undefined {
    return this.#plugins.find((p) =>
      p.kind === kind && (p.name === name || (p.aliases ?? []).includes(name))
    ) as ByKind<K> | undefined;
  }

  /** Finds a plugin or throws the error a user reads. */
  require<K extends PluginKind>(kind: K, name: string): ByKind<K> {
    const found = this.get(kind, name);
    if (!found) throw new UsageError(unknownPluginMessage(kind, name));
    return found;
  }

  /** Every plugin of one kind, in registration order. */
  list<K extends PluginKind>(kind: K): ByKind<K>[] {
    return this.#plugins.filter((p) => p.kind === kind) as ByKind<K>[];
  }

  /** `-M help`, as qemu-system prints it. */
  machineHelp(): string {
    const lines = ["Supported machines are:"];
    for (const m of this.list("machine").filter((m) => !m.hidden)) {
      // QEMU lists a machine's short alias (`pc`) just before its versioned name.
      for (const alias of m.aliases ?? []) {
        lines.push(`${alias.padEnd(20)} ${m.summary} (alias of ${m.name})`);
      }
      lines.push(`${m.name.padEnd(20)} ${m.summary}${m.isDefault ? " (default)" : ""}`);
    }
    return lines.join("\n");
  }

  /** `-device help`, grouped by category as qemu-system prints it. */
  deviceHelp(): string {
    const lines: string[] = [];
    const devices = this.list("device").filter((d) => d.userCreatable && !d.hidden);
    for (const category of DEVICE_CATEGORIES) {
      const inCategory = devices.filter((d) => d.category === category)
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      if (inCategory.length === 0) continue;
      if (lines.length > 0) lines.push("");
      lines.push(`${category} devices:`);
      for (const d of inCategory) {
        let line = `name "${d.name}", bus ${d.bus}`;
        if (d.aliases?.length) line += `, alias "${d.aliases[0]}"`;
        if (d.summary) line += `, desc "${d.summary}"`;
        lines.push(line);
      }
    }
    return lines.join("\n");
  }

  /**
   * `-cpu help` for a machine whose CPUs are of `family` (a machine's `cpuFamily`, x86 when
   * absent): the family's own text (for x86 byte for byte what qemu-system-x86_64 7.2
   * prints), given the models of every backend of that family. The text comes from the
   * first backend that names the family; a family no backend names (a machine plugin loaded
   * without its CPU plugin) gets an empty `Available CPUs:` list.
   */
  cpuHelp(family = DEFAULT_CPU_FAMILY): string {
    const backends = this.list("cpu").filter((c) =>
      (c.family?.name ?? DEFAULT_CPU_FAMILY) === family
    );
    const models = backends.flatMap((c) => c.models);
    const owner = backends.find((c) => c.family)?.family;
    return owner ? owner.help(models) : "Available CPUs:\n";
  }

  /** Probes a file header against every format; the highest score wins (raw at worst). */
  probeFormat(header: Uint8Array, filename: string): FormatDescriptor | undefined {
    let best: FormatDescriptor | undefined;
    let bestScore = 0;
    for (const f of this.list("format")) {
      const score = f.probe?.(header, filename) ?? 0;
      if (score > bestScore) {
        best = f;
        bestScore = score;
      }
    }
    return best;
  }
}

function unknownPluginMessage(kind: PluginKind, name: string): string {
  switch (kind) {
    case "format":
      return `Unknown file format '${name}'`;
    case "protocol":
      return `Unknown protocol '${name}'`;
    case "device":
      return `'${name}' is not a valid device model name`;
    case "machine":
      return `unsupported machine type '${name}'`;
    case "cpu":
      return `unable to find CPU model '${name}'`;
    case "netdev":
      return `Parameter 'type' does not accept value '${name}'`;
    case "chardev":
      return `'${name}' is not a valid char driver name`;
  }
}

function checkDescriptor(d: PluginDescriptor): void {
  if (!d || typeof d !== "object") throw new TypeError("A plugin descriptor must be an object");
  if (!PLUGIN_KINDS.includes(d.kind)) {
    throw new TypeError(`Unknown plugin kind '${String(d.kind)}'`);
  }
  if (typeof d.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(d.name)) {
    throw new TypeError(`Invalid plugin name '${String(d.name)}'`);
  }
  if (typeof d.summary !== "string") throw new TypeError(`Plugin '${d.name}' has no summary`);
  if (!Array.isArray(d.options)) throw new TypeError(`Plugin '${d.name}' has no option list`);
  if (typeof (d as { create?: unknown }).create !== "function") {
    throw new TypeError(`Plugin '${d.name}' has no create()`);
  }
}

/**
 * Checks the `apiVersion` a plugin loaded from outside declares against this vmkit's.
 *
 * @returns null when it may load, else the one line that says why not
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { apiVersionProblem, PLUGIN_API_VERSION } from "./plugin.ts";
 *
 * assert.equal(apiVersionProblem({ name: "edu", apiVersion: PLUGIN_API_VERSION }), null);
 * assert.match(apiVersionProblem({ name: "edu", apiVersion: 99 })!, /needs plugin API 99/);
 * ```
 */
export function apiVersionProblem(d: { name?: unknown; apiVersion?: unknown }): string | null {
  const name = String(d.name);
  if (d.apiVersion === undefined) {
    return `Plugin '${name}' declares no apiVersion (this vmkit's plugin API is ${PLUGIN_API_VERSION})`;
  }
  if (d.apiVersion !== PLUGIN_API_VERSION) {
    return `Plugin '${name}' needs plugin API ${String(d.apiVersion)}, ` +
      `but this vmkit has plugin API ${PLUGIN_API_VERSION}`;
  }
  return null;
}
