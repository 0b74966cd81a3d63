// The Machine: owns memory, port I/O, devices, CPUs and the event loop, and runs them

import type { BlockIo } from "./block/backend.ts";
import type { Chardev } from "./chardev.ts";
import type { CpuBackend, CpuContext, CpuTopology } from "./cpu.ts";
import { apicIdOf } from "./cpu.ts";
import type { Device, DeviceContext, DeviceState, ServiceKey } from "./device.ts";
import { EventLoop, type EventLoopOptions, type RunOptions } from "./event_loop.ts";
import { type CpuExecutor, MachineExecutor, RoundRobinExecutor } from "./cpu_executor.ts";
import { AddressSpace } from "./memory/address_space.ts";
import { PortIoSpace } from "./memory/port_io.ts";
import { invariant, UsageError } from "./errors.ts";
import { type NetClient, type NetdevContext, netHubs, type NetworkPlan } from "./net.ts";
import type { ParsedOptions } from "./options.ts";
import type { Registry } from "./plugin.ts";

/** One `-drive` (or `-hda`, `-cdrom`) as the board sees it. */
export interface DriveConfig {
  /** The drive id (`drive0`, or `id=` from the command line). */
  id: string;
  /** The image as the device sees it (a BlockBackend with the cache mode); null for an empty CD-ROM drive. */
  node: BlockIo | null;
  /** Where the drive attaches: `ide` (the default on pc), `none` (for `-device`), ... */
  interface: "ide" | "floppy" | "virtio" | "scsi" | "none";
  /** The `index=` of the drive (`-hda` is 0, `-hdb` 1, `-cdrom` 2); computed when absent. */
  index?: number;
  /** `disk` or `cdrom`. */
  media: "disk" | "cdrom";
  readOnly: boolean;
  /** `serial=` of the drive, reported by IDENTIFY. */
  serial?: string;
}

/** A NIC the board creates (`-net nic`, `-nic`), linked to a network backend. */
export interface NicConfig {
  /** `model=` as typed (`virtio`, `virtio-net-pci`). */
  model: string;
  /** `macaddr=`/`mac=`; absent means the next default address. */
  mac?: string;
  /** The id of the NetClient it links to (a netdev or a hub port); absent for none. */
  netdev?: string;
  /** `id=`/`name=` of the NIC. */
  id?: string;
}

/** A Linux kernel to boot directly (`-kernel`, `-initrd`, `-append`). */
export interface KernelConfig {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** The `-kernel` path as typed (a Multiboot command line starts with it, as in QEMU). */
  kernelName?: string;
  /**
   * `-initrd` split on commas as QEMU splits it for Multiboot: each module's bytes and
   * its command line (the whole entry, `"file args"`).
   */
  modules?: { bytes: Uint8Array; cmdline: string }[];
}

/**
 * What the CLI fills in to build a machine. Boards read what applies to them and
 * refuse what they cannot do with a {@linkcode UsageError}.
 */
export interface MachineConfig {
  /** Guest RAM in bytes (`-m`, QEMU's default 128 MiB). */
  ramBytes: number;
  /** Number of CPUs (`-smp`). */
  smp: number;
  /** Maximum CPUs (`-smp maxcpus=`); defaults to `smp`. */
  maxCpus?: number;
  /**
   * The `-smp` topology over `maxCpus` CPUs; absent means one socket of `smp` cores
   * (QEMU's default since 6.2).
   */
  topology?: CpuTopology;
  /** The firmware image, already read (`-bios`, or the board's default looked up by the CLI or board). */
  firmware?: Uint8Array;
  /** `-bios FILE` as given (the board looks it up when `firmware` is absent). */
  biosPath?: string;
  /** `-L DIR` directories searched for firmware, before the built-in ones. */
  dataDirs?: string[];
  /** `-option-rom FILE`: ROMs the firmware runs (fw_cfg `genroms/`), found like firmware. */
  optionRoms?: string[];
  /** Prints a start-up warning (`<program>: warning: ...`), as QEMU's warn_report(). */
  warn?: (message: string) => void;
  /** Drives in command-line order. */
  drives: DriveConfig[];
  /** Serial port backends in order (`-serial`, `-nographic` gives stdio); empty for none. */
  serial: Chardev[];
  /** The backend of `-debugcon` (an isa-debugcon at 0xe9), if given. */
  debugcon?: Chardev;
  /** `-boot order=` drive letters (`c` disk, `d` CD-ROM, `a` floppy, `n` network); default `cad`. */
  bootOrder?: string;
  /** `-boot once=` drive letters: used for the first boot only, then `bootOrder` again. */
  bootOnce?: string;
  /** `-boot menu=on`. */
  bootMenu?: boolean;
  /** `-boot splash-time=` in ms (the boot menu wait). */
  bootSplashTimeMs?: number;
  /** `-boot reboot-timeout=` in ms (-1 means never retry, QEMU's default). */
  bootRebootTimeoutMs?: number;
  /** True with `-nographic` (firmware then uses the serial console). */
  nographic: boolean;
  /** `-vga`: `std`, `cirrus` or `none`; absent means the board's default (std on pc). */
  vga?: string;
  /** Direct kernel boot. */
  kernel?: KernelConfig;
  /** `-uuid`. */
  uuid?: string;
  /** `-rtc base=`: the guest's wall clock at start (default: the host's time, UTC). */
  rtcBase?: Date;
  /** `-no-reboot`: a guest reset exits instead. */
  noReboot?: boolean;
  /** NICs the board creates, in order (before `-device` ones, as QEMU's pc does). */
  nics?: NicConfig[];
  /** Network backends and hub ports made before the machine, found by id as `netdev=` names them. */
  netdevs?: NetClient[];
  /**
   * The network backends to create with the machine's event loop (`-netdev`, `-net`,
   * `-nic`); the machine creates them before the board adds its NICs and closes them in
   * {@linkcode Machine.close}.
   */
  network?: NetworkPlan;
  /** Other chardevs (`-chardev`), found by id as `chardev=` options name them. */
  chardevs?: Chardev[];
  /** The plugin registry boards create their devices through (`-device` models). */
  registry?: Registry;
  /** Clock options (`-icount shift=N` maps to `nsPerInstruction: 2 ** N`). */
  clock?: EventLoopOptions;
  /**
   * Allocates guest RAM (the CPU backend's allocator: KVM maps host memory); absent
   * means an ordinary zeroed array. See {@linkcode Machine.allocateRam}.
   */
  allocateRam?(bytes: number): Uint8Array;
  /**
   * The CPU backend's executor for this machine (KVM: a host thread per vCPU); absent
   * or undefined means the machine's own: one CPU straight through, or round-robin.
   */
  createExecutor?(machine: Machine): CpuExecutor | undefined;
  /**
   * Makes CPU `index` for the machine (the CLI wraps the chosen CPU plugin). The
   * board calls it once per CPU after the memory and port spaces exist.
   */
  createCpu(machine: Machine, index: number): CpuBackend;
}

/** Why {@linkcode Machine.run} returned. */
export interface MachineExit {
  /**
   * `shutdown`: the guest powered off (or reset with -no-reboot); `exit`: a device
   * asked vmkit to exit (isa-debug-exit, the monitor's quit); `budget`/`until`: the
   * run options' limits; `idle`: halted forever with nothing pending.
   */
  reason: "shutdown" | "exit" | "budget" | "until" | "idle";
  /** The process exit code to use. */
  exitCode: number;
}

/** What {@linkcode Machine.run} carried out: a system reset, a power-off, an exit request. */
export type MachineRunEvent = "reset" | "shutdown" | "exit";

/**
 * A machine: the address space, the I/O port space, the devices, the CPUs and the
 * event loop. A board plugin (`pc`) creates one and populates it; the CLI then runs it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Machine } from "./machine.ts";
 *
 * const machine = new Machine({
 *   ramBytes: 1 << 20, smp: 1, drives: [], serial: [], nographic: true,
 *   createCpu: () => { throw new Error("no CPU in this example"); },
 * });
 * machine.memory.addRam("ram", 0, 1 << 20);
 * assert.equal(machine.devices.length, 0);
 * ```
 */
export class Machine implements DeviceContext {
  /** The configuration the machine was built from. */
  readonly config: MachineConfig;
  /** Guest physical memory. */
  readonly memory: AddressSpace;
  /** The x86 I/O port space. */
  readonly io: PortIoSpace;
  /** The virtual clock and main loop. */
  readonly loop: EventLoop;
  /** The CPUs, index 0 first (the boot processor). */
  readonly cpus: CpuBackend[] = [];
  #devices: Device[] = [];
  #services = new Map<string, unknown>();
  #a20 = true;
  #a20Listeners: ((enabled: boolean) => void)[] = [];
  #exitCode = 0;
  #realized = false;
  #executor: CpuExecutor;
  #netClients: NetClient[] = [];
  #closed = false;
  #paused = false;
  #resumeWaiter: (() => void) | null = null;
  #runListeners: ((event: MachineRunEvent) => void)[] = [];
  #runCount = 0;

  constructor(config: MachineConfig) {
    this.config = config;
    this.memory = new AddressSpace();
    this.io = new PortIoSpace();
    this.loop = new EventLoop(config.clock);
    this.#executor = config.createExecutor?.(this) ??
      (config.smp > 1 ? new RoundRobinExecutor(this) : new MachineExecutor(this));
    this.#netClients.push(...(config.netdevs ?? []));
    if (config.network) {
      const hubs = netHubs();
      const context: NetdevContext = { loop: this.loop, hub: (id) => hubs.hub(id) };
      this.#netClients.push(...config.network.create(context));
    }
  }

  /** A network backend or hub port by id (`netdev=` options name them). */
  netClient(id: string): NetClient | undefined {
    return this.#netClients.find((c) => c.id === id);
  }

  /** Every network backend and hub port of the machine. */
  get netClients(): readonly NetClient[] {
    return this.#netClients;
  }

  /**
   * Releases what the machine holds on the host: closes its network backends (sockets,
   * timers). Chardevs and drives belong to the caller that opened them. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#netClients) await c.close?.();
  }

  /**
   * Zeroed guest RAM of `bytes` for a board to map: from the CPU backend's allocator
   * when it has one (KVM runs the guest from host memory it maps, and devices' DMA then
   * reaches the same bytes), else an ordinary array.
   */
  allocateRam(bytes: number): Uint8Array {
    return this.config.allocateRam?.(bytes) ?? new Uint8Array(bytes);
  }

  /** The CPU topology: `config.topology`, or one socket with a core per CPU. */
  get topology(): CpuTopology {
    const n = Math.max(this.config.maxCpus ?? this.config.smp, this.config.smp);
    return this.config.topology ?? { sockets: 1, dies: 1, cores: n, threads: 1 };
  }

  /** The x86 APIC ID of CPU `index` (QEMU's packing of the topology). */
  apicId(index: number): number {
    return apicIdOf(index, this.topology);
  }

  /**
   * What a CPU plugin's `create` gets for CPU `index`: the memory and port spaces, its
   * APIC ID, the topology and the clock the TSC counts: the virtual clock in instruction
   * ticks (QEMU's TCG derives the TSC from its virtual clock too), so the CPUs' TSCs
   * agree and keep pace with the ACPI PM timer across idle periods (a TSC that stopped
   * while the guest idles makes Linux's clocksource watchdog call it unstable).
   */
  cpuContext(index: number, model?: string): CpuContext {
    return {
      memory: this.memory,
      io: this.io,
      model,
      index,
      apicId: this.apicId(index),
      cpuCount: this.config.smp,
      topology: this.topology,
      clock: () => Math.floor(this.loop.nowNs / this.loop.nsPerInstruction),
      loop: this.loop,
      findService: (key) => this.findService(key),
    };
  }

  /**
   * Instructions retired by all CPUs together (exact mid-slice: only one CPU runs at a
   * time). The virtual clock advances by this count; idle jumps come on top.
   */
  get instructionsRetired(): number {
    let n = 0;
    for (const c of this.cpus) n += c.instructionsRetired;
    return n;
  }

  /**
   * The index of the CPU running now (whose MMIO access is being served); 0 between
   * slices. Per-CPU devices such as the local APIC use it to find their own.
   */
  get currentCpu(): number {
    return this.#cpuOverride ?? this.#executor.current;
  }

  #cpuOverride: number | undefined;

  /**
   * Runs `fn` with {@linkcode currentCpu} set to `index`, between slices: the monitor
   * reads a CPU's own MMIO (its local APIC) as that CPU would.
   */
  asCpu<T>(index: number, fn: () => T): T {
    const previous = this.#cpuOverride;
    this.#cpuOverride = index;
    try {
      return fn();
    } finally {
      this.#cpuOverride = previous;
    }
  }

  /** Creates the CPUs through `config.createCpu` (the board calls it once memory is mapped). */
  createCpus(): void {
    if (this.cpus.length > 0) return;
    for (let i = 0; i < this.config.smp; i++) {
      const cpu = this.config.createCpu(this, i);
      cpu.setA20?.(this.#a20);
      this.cpus.push(cpu);
    }
  }

  /**
   * Publishes a service other devices use through a core interface, under a typed key
   * of core/device.ts: `PIC`, `IOAPIC`, `ISA_BUS`, `PCI_BUS`, `FW_CFG`, `CPU_IRQ`... (a
   * plain string is the older, untyped form, kept for callers not yet moved).
   */
  provide<T>(key: ServiceKey<T> | string, service: T): void {
    this.#services.set(typeof key === "string" ? key : key.name, service);
  }

  /** A published service, or undefined (a string name is the older, untyped form). */
  findService<T>(key: ServiceKey<T> | string): T | undefined {
    return this.#services.get(typeof key === "string" ? key : key.name) as T | undefined;
  }

  /** A published service that must exist (the board wires it before devices need it). */
  service<T>(key: ServiceKey<T> | string): T {
    const name = typeof key === "string" ? key : key.name;
    const s = this.#services.get(name);
    invariant(s !== undefined, `Machine service '${name}' is not provided`);
    return s as T;
  }

  /** A chardev by id (serial ports, `-debugcon`, `-chardev`). */
  chardev(id: string): Chardev {
    const all = [...this.config.serial, ...(this.config.chardevs ?? [])];
    if (this.config.debugcon) all.push(this.config.debugcon);
    const found = all.find((c) => c.id === id);
    if (!found) throw new UsageError(`chardev '${id}' not found`);
    return found;
  }

  /** A drive by id. */
  drive(id: string): DriveConfig {
    const found = this.config.drives.find((d) => d.id === id);
    if (!found) throw new UsageError(`Property 'drive' can't find value '${id}'`);
    return found;
  }

  /**
   * Creates a device through its plugin (`-device model,opts`, or a board's built-in
   * device) and adds it to the machine. From a `-device` option (`fromDeviceOption`), its
   * `id` is also the qdev id `info qtree` shows.
   */
  createDevice(model: string, opts: ParsedOptions = {}, fromDeviceOption = false): Device {
    const registry = this.config.registry;
    if (!registry) throw new UsageError(`'${model}' is not a valid device model name`);
    const descriptor = registry.require("device", model);
    const device = descriptor.create(this, opts) as Device;
    if (!this.#devices.includes(device)) this.addDevice(device);
    if (fromDeviceOption && typeof opts.id === "string") this.#qdevIds.set(device, opts.id);
    return device;
  }

  /** The ids `-device ...,id=NAME` gave (createDevice's `fromDeviceOption`). */
  readonly #qdevIds = new WeakMap<Device, string>();

  /**
   * The id QEMU's qdev would know `device` by: the one `-device ...,id=` gave it, else ""
   * (what the board makes, and `-net nic,id=` NICs, whose id names only the NIC).
   */
  qdevId(device: Device): string {
    return this.#qdevIds.get(device) ?? "";
  }

  /** Wakes the loop and makes the CPUs look at their interrupt source (an IRQ was raised). */
  kick(): void {
    this.loop.wake();
    this.#executor.kick(-1);
  }

  /**
   * Makes CPU `index` look at its interrupt source (its local APIC accepted an
   * interrupt, an INIT or a STARTUP): a running CPU leaves its slice; with several CPUs
   * the one running gives its turn up so the woken one runs soon (QEMU's RR kick).
   */
  kickCpu(index: number): void {
    this.loop.wake();
    this.#executor.kick(index);
  }

  /** Every device, in creation order. */
  get devices(): readonly Device[] {
    return this.#devices;
  }

  /** Adds a device (ids must be unique); returns it. */
  addDevice<T extends Device>(device: T): T {
    if (this.#devices.some((d) => d.id === device.id)) {
      throw new UsageError(`Duplicate ID '${device.id}' for device`);
    }
    this.#devices.push(device);
    return device;
  }

  /** A device by id. */
  device(id: string): Device | undefined {
    return this.#devices.find((d) => d.id === id);
  }

  /** A free device id `${prefix}${n}`. */
  freeId(prefix: string): string {
    for (let n = 0;; n++) if (!this.device(`${prefix}${n}`)) return `${prefix}${n}`;
  }

  /** True when address line 20 is enabled (the A20 gate of the i8042 and port 0x92). */
  get a20(): boolean {
    return this.#a20;
  }

  /** Sets the A20 gate; listeners (a CPU that masks A20) hear changes. */
  setA20(enabled: boolean): void {
    if (enabled === this.#a20) return;
    this.#a20 = enabled;
    for (const c of this.cpus) c.setA20?.(enabled);
    for (const l of this.#a20Listeners) l(enabled);
  }

  /** Listens to A20 gate changes. */
  onA20Change(listener: (enabled: boolean) => void): void {
    this.#a20Listeners.push(listener);
  }

  /** A system reset request (keyboard controller pulse, 0xcf9, triple fault). */
  requestReset(): void {
    this.#stop(this.config.noReboot ? "shutdown" : "reset");
  }

  /** A power-off request (ACPI S5). */
  requestShutdown(): void {
    this.#stop("shutdown");
  }

  /** Asks vmkit to exit with `exitCode` (isa-debug-exit, the monitor's quit). */
  requestExit(exitCode: number): void {
    this.#exitCode = exitCode;
    this.#stop("exit");
  }

  // The CPUs leave their slice at the next instruction boundary: nothing runs after
  // the device write that asked for the stop.
  #stop(detail: string): void {
    this.loop.requestStop(detail);
    for (const c of this.cpus) c.requestExit();
    this.#wakePaused();
  }

  /**
   * Pauses the guest (the monitor's `stop`): the CPUs leave their slice at the next
   * instruction boundary and neither they nor the virtual clock and its timers move
   * until {@linkcode resume}. Reset, shutdown and exit requests are still carried out.
   */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.loop.requestStop("pause");
    for (const c of this.cpus) c.requestExit();
  }

  /** Resumes a guest paused by {@linkcode pause} (the monitor's `cont`). */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#wakePaused();
  }

  /** True while paused by {@linkcode pause}. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Listens to the resets and power-offs {@linkcode run} carries out (QMP's events). */
  onRunEvent(listener: (event: MachineRunEvent) => void): void {
    this.#runListeners.push(listener);
  }

  #emit(event: MachineRunEvent): void {
    for (const l of this.#runListeners) l(event);
  }

  #wakePaused(): void {
    const w = this.#resumeWaiter;
    this.#resumeWaiter = null;
    w?.();
  }

  /** Realizes every device (once) and resets the machine. */
  async realize(): Promise<void> {
    if (this.#realized) return;
    this.#realized = true;
    for (const d of this.#devices) await d.realize?.();
    this.reset();
  }

  /** System reset: every device, then every CPU. */
  reset(): void {
    this.setA20(true);
    for (const d of this.#devices) d.reset();
    for (const c of this.cpus) c.reset();
  }

  /**
   * Runs the guest until it powers off, exits, or a limit in `options` is reached.
   * Resets requested by the guest are carried out here and the run goes on.
   */
  async run(options: RunOptions = {}): Promise<MachineExit> {
    this.#runCount++;
    try {
      return await this.#run(options);
    } finally {
      this.#runCount--;
    }
  }

  /**
   * True while {@linkcode run} is carrying out the guest's run, paused or not: a reset,
   * shutdown or exit requested now will be carried out (and reported by a run event).
   */
  get runActive(): boolean {
    return this.#runCount > 0;
  }

  async #run(options: RunOptions): Promise<MachineExit> {
    await this.realize();
    let budget = options.maxInstructions ?? Infinity;
    for (;;) {
      // Paused: nothing runs (and the virtual clock stands) until resumed or stopped.
      if (this.#paused && !this.loop.stopRequested) {
        this.loop.holdClock();
        while (this.#paused && !this.loop.stopRequested) {
          await new Promise<void>((resolve) => (this.#resumeWaiter = resolve));
        }
        this.loop.releaseClock();
      }
      const result = await this.loop.run(this.#executor, {
        maxInstructions: budget,
        untilNs: options.untilNs,
      });
      budget -= result.instructions;
      switch (result.reason) {
        case "stop":
          if (result.detail === "pause") continue;
          if (result.detail === "reset") {
            this.reset();
            this.#emit("reset");
            continue;
          }
          if (result.detail === "exit") {
            this.#emit("exit");
            return { reason: "exit", exitCode: this.#exitCode };
          }
          this.#emit("shutdown");
          return { reason: "shutdown", exitCode: 0 };
        case "budget":
        case "until":
        case "idle":
          return { reason: result.reason, exitCode: 0 };
      }
    }
  }

  /** The state of every device, keyed by device id. */
  saveState(): Record<string, DeviceState> {
    const out: Record<string, DeviceState> = {};
    for (const d of this.#devices) out[d.id] = d.saveState();
    return out;
  }

  /** Restores device states saved by {@linkcode saveState}. */
  loadState(states: Record<string, DeviceState>): void {
    for (const d of this.#devices) {
      const s = states[d.id];
      if (s) d.loadState(s);
    }
  }
}

export { SMP_QUANTUM } from "./cpu_executor.ts";
