// Plugin descriptors for every kind, and the Registry that finds them and prints their help

import type { BlockNode, CreateContext, OpenContext } from "./block/driver.ts";
import { UsageError } from "./errors.ts";
import type { OptionSpec, ParsedOptions } from "./options.ts";

/** The kinds of plugin vmkit knows. */
export type PluginKind = "format" | "protocol" | "cpu" | "device" | "machine" | "netdev";

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
}

/** A CPU backend (the x86 interpreter, KVM...). `create` returns the backend object. */
export interface CpuDescriptor extends PluginBase {
  readonly kind: "cpu";
  /** The `accel=` name this backend answers to (`tcg`, `kvm`). */
  readonly accel: string;
  /** CPU models (`-cpu help`): name and description. */
  readonly models: readonly { name: string; description: string; alias?: string }[];
  create(context: unknown, opts: ParsedOptions): unknown;
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
  create(machine: unknown, opts: ParsedOptions): unknown;
}

/** A machine board (`-M pc`). */
export interface MachineDescriptor extends PluginBase {
  readonly kind: "machine";
  /** Marked `(default)` in `-M help`. */
  readonly isDefault?: boolean;
  create(config: unknown): unknown;
}

/** A network backend (`-netdev user`, `-net user`). */
export interface NetdevDescriptor extends PluginBase {
  readonly kind: "netdev";
  /** Makes the backend's NetClient; `context` is core/net.ts's NetdevContext (the hubs). */
  create(opts: ParsedOptions, context?: unknown): unknown;
}

/** Any plugin descriptor. */
export type PluginDescriptor =
  | FormatDescriptor
  | ProtocolDescriptor
  | CpuDescriptor
  | DeviceDescriptor
  | MachineDescriptor
  | NetdevDescriptor;

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
 * registry.add({ kind: "netdev", name: "user", summary: "user-mode networking", options: [], create: () => ({}) });
 * assert.equal(registry.get("netdev", "user")?.summary, "user-mode networking");
 * assert.equal(registry.get("netdev", "tap"), undefined);
 * ```
 */
export class Registry {
  #plugins: PluginDescriptor[] = [];

  /** Adds one descriptor; a second plugin of the same kind and name is refused. */
  add(descriptor: PluginDescriptor): void {
    checkDescriptor(descriptor);
    for (const name of [descriptor.name, ...(descriptor.aliases ?? [])]) {
      if (this.get(descriptor.kind, name)) {
        throw new UsageError(`A ${descriptor.kind} plugin named '${name}' is already registered`);
      }
    }
    this.#plugins.push(descriptor);
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

  /** `-cpu help`, as qemu-system-x86_64 prints it. */
  cpuHelp(): string {
    const lines = ["Available CPUs:"];
    const models = this.list("cpu").flatMap((c) => c.models);
    const seen = new Set<string>();
    for (const m of models.slice().sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (seen.has(m.name)) continue;
      seen.add(m.name);
      const desc = m.alias ? `(alias of ${m.alias})` : m.description;
      lines.push(`x86 ${m.name.padEnd(22)}${desc}`);
    }
    return lines.join("\n");
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
  }
}

function checkDescriptor(d: PluginDescriptor): void {
  if (!d || typeof d !== "object") throw new TypeError("A plugin descriptor must be an object");
  const kinds: PluginKind[] = ["format", "protocol", "cpu", "device", "machine", "netdev"];
  if (!kinds.includes(d.kind)) throw new TypeError(`Unknown plugin kind '${String(d.kind)}'`);
  if (typeof d.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(d.name)) {
    throw new TypeError(`Invalid plugin name '${String(d.name)}'`);
  }
  if (typeof d.summary !== "string") throw new TypeError(`Plugin '${d.name}' has no summary`);
  if (!Array.isArray(d.options)) throw new TypeError(`Plugin '${d.name}' has no option list`);
  if (typeof (d as { create?: unknown }).create !== "function") {
    throw new TypeError(`Plugin '${d.name}' has no create()`);
  }
}
