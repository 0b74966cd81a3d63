// The local APICs (MMIO 0xfee00000, one per CPU): IRR/ISR, EOI, LVTs, timer, IPIs, and ExtINT from the PIC

import type { CpuBackend, InterruptSource } from "../../core/cpu.ts";
import {
  CPU_IRQ,
  cpuIrqKey,
  type Device,
  type DeviceContext,
  type DeviceState,
  PIC,
  type QtreeNode,
} from "../../core/device.ts";
import type { EventLoop, Timer } from "../../core/event_loop.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";
import {
  APIC_DM_EXTINT,
  APIC_DM_FIXED,
  APIC_DM_INIT,
  APIC_DM_LOWPRI,
  APIC_DM_NMI,
  APIC_DM_STARTUP,
  ApicBus,
  type ApicMessage,
  type BusApic,
  LAPIC,
  msiMessage,
} from "./apic_bus.ts";

/** The default physical base of the local APIC. */
export const APIC_DEFAULT_BASE = 0xfee00000;

const APIC_LVT_TIMER = 0;
const APIC_LVT_LINT0 = 3;
const APIC_LVT_MASKED = 1 << 16;
const APIC_SV_ENABLE = 1 << 8;
/** LVT registers at 0x320.. in order: timer, thermal, perf, LINT0, LINT1, error. */
const LVT_COUNT = 6;

interface ApicState {
  [key: string]: number | Uint32Array;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  esr: number;
  icrLow: number;
  icrHigh: number;
  divide: number;
  initialCount: number;
  /** Virtual ns at which the timer count was loaded. */
  loadNs: number;
  irr: Uint32Array;
  isr: Uint32Array;
  tmr: Uint32Array;
  lvt: Uint32Array;
}

function newState(id: number): ApicState {
  // Every LVT entry starts masked, LINT0 of the boot CPU too (SDM vol. 3 §10.4.7.1; QEMU
  // since 2.7): the firmware makes LINT0 ExtINT before it counts on the PIC (SeaBIOS
  // writes 0x8700 while it sets up the APs).
  const lvt = new Uint32Array(LVT_COUNT).fill(APIC_LVT_MASKED);
  return {
    id,
    tpr: 0,
    ldr: 0,
    dfr: 0xffffffff,
    svr: 0xff,
    esr: 0,
    icrLow: 0,
    icrHigh: 0,
    divide: 0,
    initialCount: 0,
    loadNs: 0,
    irr: new Uint32Array(8),
    isr: new Uint32Array(8),
    tmr: new Uint32Array(8),
    lvt,
  };
}

function highestBit(words: Uint32Array): number {
  for (let w = 7; w >= 0; w--) {
    if (words[w]) return w * 32 + (31 - Math.clz32(words[w]));
  }
  return -1;
}

/** Options of a {@linkcode LocalApic}. */
export interface LocalApicOptions {
  /** The APIC ID (0 when absent). */
  apicId?: number;
  /** The CPU index; CPU 0 is the bootstrap processor (0 when absent). */
  index?: number;
  /** The PIC, reached through LINT0 in ExtINT mode. */
  extInt?: InterruptSource | null;
  /** Level-triggered EOIs go here (the IOAPIC). */
  onEoi?: (vector: number) => void;
  /** The bus IPIs travel on; without one, only a fixed IPI to self is delivered. */
  bus?: ApicBus | null;
  /** The CPU the APIC drives (INIT, STARTUP, NMI); looked up when needed. */
  cpu?: () => CpuBackend | undefined;
}

/**
 * A local APIC. It is the CPU's InterruptSource: its own accepted vectors first, then
 * the PIC through LINT0 in ExtINT mode. The IOAPIC delivers into it through the bus
 * ({@linkcode receive}) or with {@linkcode deliver}; level-triggered EOIs are broadcast
 * back through `onEoi`. ICR writes send IPIs on the bus.
 */
export class LocalApic implements Device, InterruptSource, BusApic {
  readonly model = "apic";
  readonly index: number;
  #s: ApicState;
  #loop: EventLoop;
  #timer: Timer;
  #extInt: InterruptSource | null;
  #onEoi: (vector: number) => void;
  #kick: () => void;
  #bus: ApicBus | null;
  #cpu: () => CpuBackend | undefined;

  constructor(
    readonly id: string,
    loop: EventLoop,
    machine: DeviceContext | null,
    options: LocalApicOptions = {},
  ) {
    this.index = options.index ?? 0;
    this.#s = newState(options.apicId ?? 0);
    this.#loop = loop;
    this.#extInt = options.extInt ?? null;
    this.#onEoi = options.onEoi ?? (() => {});
    this.#kick = () => machine?.kickCpu(this.index);
    this.#bus = options.bus ?? null;
    this.#cpu = options.cpu ?? (() => machine?.cpus[this.index]);
    this.#timer = loop.createTimer(`${id}-timer`, () => this.#onTimer());
  }

  /** Connects the IOAPIC's EOI broadcast. */
  setEoiListener(listener: (vector: number) => void): void {
    this.#onEoi = listener;
  }

  /** Connects the bus IPIs travel on. */
  setBus(bus: ApicBus | null): void {
    this.#bus = bus;
  }

  get apicId(): number {
    return this.#s.id;
  }

  get logicalId(): number {
    return this.#s.ldr >>> 24;
  }

  get destinationModel(): number {
    return this.#s.dfr >>> 28;
  }

  get arbitrationPriority(): number {
    return this.#s.tpr & 0xf0;
  }

  /** Accepts a bus message: fixed and lowest priority into IRR, NMI, INIT and STARTUP to the CPU. */
  receive(message: ApicMessage): void {
    switch (message.deliveryMode) {
      case APIC_DM_FIXED:
      case APIC_DM_LOWPRI:
        this.deliver(message.vector, message.level);
        return;
      case APIC_DM_NMI:
        this.#cpu()?.raiseNmi();
        this.#kick();
        return;
      case APIC_DM_INIT:
        // The APIC takes its INIT state with its CPU (QEMU's apic_init_reset).
        this.#initReset();
        this.#cpu()?.init?.();
        this.#kick();
        return;
      case APIC_DM_STARTUP:
        this.#cpu()?.startup?.(message.vector);
        this.#kick();
        return;
      case APIC_DM_EXTINT:
        // ExtINT on the bus (an IOAPIC entry in mode 7): the PIC gives the vector.
        this.#kick();
        return;
    }
  }

  /** Accepts a fixed interrupt `vector` (from the IOAPIC, the timer or an IPI). */
  deliver(vector: number, level = false): void {
    const s = this.#s;
    const w = vector >> 5;
    const bit = 1 << (vector & 31);
    s.irr[w] |= bit;
    if (level) s.tmr[w] |= bit;
    else s.tmr[w] &= ~bit;
    this.#kick();
  }

  #enabled(): boolean {
    return (this.#s.svr & APIC_SV_ENABLE) !== 0;
  }

  /** The vector the APIC would deliver now, or -1. */
  #pendingVector(): number {
    if (!this.#enabled()) return -1;
    const s = this.#s;
    const irr = highestBit(s.irr);
    if (irr < 0) return -1;
    const isr = highestBit(s.isr);
    const ppr = Math.max(s.tpr & 0xf0, isr < 0 ? 0 : isr & 0xf0);
    return (irr & 0xf0) > ppr ? irr : -1;
  }

  #acceptsExtInt(): boolean {
    const lint0 = this.#s.lvt[APIC_LVT_LINT0];
    return !(lint0 & APIC_LVT_MASKED) && ((lint0 >> 8) & 7) === APIC_DM_EXTINT;
  }

  hasPending(): boolean {
    if (this.#pendingVector() >= 0) return true;
    return this.#acceptsExtInt() && (this.#extInt?.hasPending() ?? false);
  }

  acknowledge(): number {
    const v = this.#pendingVector();
    if (v >= 0) {
      const s = this.#s;
      s.irr[v >> 5] &= ~(1 << (v & 31));
      s.isr[v >> 5] |= 1 << (v & 31);
      return v;
    }
    if (this.#extInt && this.#acceptsExtInt()) return this.#extInt.acknowledge();
    // Nothing after all: the spurious vector.
    return this.#s.svr & 0xff;
  }

  #eoi(): void {
    const s = this.#s;
    const v = highestBit(s.isr);
    if (v < 0) return;
    const bit = 1 << (v & 31);
    s.isr[v >> 5] &= ~bit;
    if (s.tmr[v >> 5] & bit) this.#onEoi(v);
    this.#kick();
  }

  #divisor(): number {
    const d = this.#s.divide;
    const v = (d & 3) | ((d & 8) >> 1);
    return 1 << ((v + 1) & 7);
  }

  /** The timer's current count; one tick is `divisor` ns (a 1 GHz APIC bus, as in QEMU). */
  #currentCount(): number {
    const s = this.#s;
    if (s.initialCount === 0) return 0;
    const ticks = Math.floor((this.#loop.nowNs - s.loadNs) / this.#divisor());
    const periodic = ((s.lvt[APIC_LVT_TIMER] >> 17) & 3) === 1;
    if (periodic) return s.initialCount - (ticks % s.initialCount);
    return ticks >= s.initialCount ? 0 : s.initialCount - ticks;
  }

  #armTimer(): void {
    const s = this.#s;
    if (s.initialCount === 0) {
      this.#timer.cancel();
      return;
    }
    const period = s.initialCount * this.#divisor();
    const periodic = ((s.lvt[APIC_LVT_TIMER] >> 17) & 3) === 1;
    const elapsed = this.#loop.nowNs - s.loadNs;
    if (!periodic && elapsed >= period) {
      this.#timer.cancel();
      return;
    }
    const n = Math.floor(elapsed / period) + 1;
    this.#timer.arm(s.loadNs + n * period);
  }

  #onTimer(): void {
    const lvt = this.#s.lvt[APIC_LVT_TIMER];
    if (!(lvt & APIC_LVT_MASKED)) this.deliver(lvt & 0xff);
    this.#armTimer();
  }

  /** Reads the register at `offset` (16-byte aligned). */
  readRegister(offset: number): number {
    const s = this.#s;
    if (offset >= 0x100 && offset < 0x180) return s.isr[(offset - 0x100) >> 4];
    if (offset >= 0x180 && offset < 0x200) return s.tmr[(offset - 0x180) >> 4];
    if (offset >= 0x200 && offset < 0x280) return s.irr[(offset - 0x200) >> 4];
    if (offset >= 0x320 && offset < 0x380) return s.lvt[(offset - 0x320) >> 4];
    switch (offset) {
      case 0x20:
        return (s.id << 24) >>> 0;
      case 0x30:
        return 0x00050014; // version 0x14, 6 LVT entries
      case 0x80:
        return s.tpr;
      case 0xa0: {
        const isr = highestBit(s.isr);
        return Math.max(s.tpr & 0xf0, isr < 0 ? 0 : isr & 0xf0);
      }
      case 0xd0:
        return s.ldr;
      case 0xe0:
        return s.dfr;
      case 0xf0:
        return s.svr;
      case 0x280:
        return s.esr;
      case 0x300:
        return s.icrLow & ~(1 << 12); // delivery status: idle
      case 0x310:
        return s.icrHigh;
      case 0x380:
        return s.initialCount;
      case 0x390:
        return this.#currentCount();
      case 0x3e0:
        return s.divide;
      default:
        return 0;
    }
  }

  /** Writes the register at `offset`. */
  writeRegister(offset: number, value: number): void {
    const s = this.#s;
    if (offset >= 0x320 && offset < 0x380) {
      const i = (offset - 0x320) >> 4;
      s.lvt[i] = this.#enabled() ? value : value | APIC_LVT_MASKED;
      if (i === APIC_LVT_TIMER) this.#armTimer();
      this.#kick();
      return;
    }
    switch (offset) {
      case 0x20:
        s.id = value >>> 24;
        break;
      case 0x80:
        s.tpr = value & 0xff;
        this.#kick();
        break;
      case 0xb0:
        this.#eoi();
        break;
      case 0xd0:
        s.ldr = value & 0xff000000;
        break;
      case 0xe0:
        s.dfr = value | 0x0fffffff;
        break;
      case 0xf0:
        s.svr = value & 0x1ff;
        if (!(value & APIC_SV_ENABLE)) {
          for (let i = 0; i < LVT_COUNT; i++) s.lvt[i] |= APIC_LVT_MASKED;
        }
        this.#kick();
        break;
      case 0x280:
        s.esr = 0;
        break;
      case 0x300:
        s.icrLow = value;
        this.#sendIpi();
        break;
      case 0x310:
        s.icrHigh = value;
        break;
      case 0x380:
        s.initialCount = value;
        s.loadNs = this.#loop.nowNs;
        this.#armTimer();
        break;
      case 0x3e0:
        s.divide = value & 0xb;
        break;
    }
  }

  /**
   * Sends the IPI the ICR describes on the bus. Delivery is immediate, so the delivery
   * status bit (12) always reads idle afterwards, as a guest polling it expects.
   */
  #sendIpi(): void {
    const s = this.#s;
    if (this.#bus) {
      this.#bus.sendIpi(this, s.icrLow, s.icrHigh);
      return;
    }
    const mode = (s.icrLow >> 8) & 7;
    const shorthand = (s.icrLow >> 18) & 3;
    const dest = s.icrHigh >>> 24;
    const toSelf = shorthand === 1 || shorthand === 2 || (shorthand === 0 && dest === s.id);
    if (mode === 0 && toSelf) this.deliver(s.icrLow & 0xff);
  }

  /**
   * The INIT state (SDM vol. 3 §10.4.7.3): like power-up but the APIC ID (and base)
   * survive.
   */
  #initReset(): void {
    this.#s = newState(this.#s.id);
    this.#timer.cancel();
  }

  reset(): void {
    this.#s = newState(this.#s.id);
    this.#timer.cancel();
  }

  saveState(): DeviceState {
    return structuredClone(this.#s);
  }

  loadState(state: DeviceState): void {
    this.#s = structuredClone(state) as ApicState;
    this.#armTimer();
  }
}

/**
 * The local APICs of all CPUs, one device: the bus between them and the IOAPIC, and the
 * MMIO window at 0xfee00000. A CPU's register access reaches its own APIC (the machine
 * says which CPU runs); a write that cannot be a register access (address bits 19:12
 * set, or register 0) is an MSI, as QEMU decodes the shared window.
 */
export class LocalApics implements Device {
  readonly model = "apic";
  /** The APICs by CPU index. */
  readonly apics: LocalApic[];
  /** The bus IPIs, IOAPIC messages and MSIs travel on. */
  readonly bus: ApicBus;
  #machine: DeviceContext | null;

  constructor(
    readonly id: string,
    loop: EventLoop,
    machine: DeviceContext | null,
    options: { count: number; apicId?: (index: number) => number; extInt?: InterruptSource | null },
  ) {
    this.#machine = machine;
    this.apics = [];
    for (let i = 0; i < options.count; i++) {
      this.apics.push(
        new LocalApic(i === 0 ? id : `${id}${i}`, loop, machine, {
          index: i,
          apicId: options.apicId?.(i) ?? i,
          extInt: options.extInt ?? null,
        }),
      );
    }
    this.bus = new ApicBus(this.apics);
    for (const a of this.apics) a.setBus(this.bus);
    machine?.memory.addMmio(id, APIC_DEFAULT_BASE, APIC_WINDOW_BYTES, {
      read: (offset) => offset < 0x1000 ? this.#own().readRegister(offset & 0xff0) : 0,
      write: (offset, _size, value) => {
        if (offset >= 0x1000 || (offset & 0xff0) === 0) {
          this.bus.deliver(msiMessage(offset, value));
        } else {
          this.#own().writeRegister(offset & 0xff0, value >>> 0);
        }
      },
    });
  }

  /** The APIC of the CPU running now. */
  #own(): LocalApic {
    return this.apics[this.#machine?.currentCpu ?? 0] ?? this.apics[0];
  }

  /** Delivers an IOAPIC or MSI message (the IOAPIC's view of the bus). */
  deliver(message: ApicMessage): void {
    this.bus.deliver(message);
  }

  /** Connects the IOAPIC's EOI broadcast to every APIC. */
  setEoiListener(listener: (vector: number) => void): void {
    for (const a of this.apics) a.setEoiListener(listener);
  }

  /** QEMU's local APICs belong to their CPUs, on no bus: `info qtree` lists none. */
  qtree(): { bus: "system"; nodes: QtreeNode[] } {
    return { bus: "system", nodes: [] };
  }

  reset(): void {
    for (const a of this.apics) a.reset();
  }

  saveState(): DeviceState {
    return { apics: this.apics.map((a) => a.saveState()) };
  }

  loadState(state: DeviceState): void {
    const list = state.apics as DeviceState[] | undefined;
    // A state from the one-APIC days is the boot CPU's.
    if (!list) this.apics[0].loadState(state);
    else list.forEach((s, i) => this.apics[i]?.loadState(s));
  }
}

/** The APIC MMIO window: registers in the first 4 KiB, MSI addresses in the whole 1 MiB. */
const APIC_WINDOW_BYTES = 0x100000;

/**
 * The local APICs of `-M pc`, one per CPU; each takes over as its CPU's interrupt source
 * (services `cpu-irq0`.., and `cpu-irq` for the boot CPU); the IOAPIC reaches them
 * through `lapic`.
 */
export default {
  kind: "device",
  name: "apic",
  summary: "Local APIC of each CPU",
  bus: "System",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): LocalApics {
    const m = machine;
    const apics = new LocalApics("apic", m.loop, m, {
      count: Math.max(1, m.config.smp),
      apicId: (i) => m.apicId(i),
      extInt: m.findService(PIC) ?? null,
    });
    m.provide(LAPIC, apics);
    m.provide(CPU_IRQ, apics.apics[0]);
    apics.apics.forEach((a, i) => m.provide(cpuIrqKey(i), a));
    return apics;
  },
} satisfies DeviceDescriptor;
