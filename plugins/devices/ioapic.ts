// The I/O APIC (MMIO 0xfec00000): 24 redirection entries delivering interrupts to the local APICs

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  IOAPIC,
  type QtreeNode,
} from "../../core/device.ts";
import type { IrqController } from "../../core/irq.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";
import { type ApicMessage, LAPIC } from "./apic_bus.ts";

/** The default physical base of the IOAPIC. */
export const IOAPIC_DEFAULT_BASE = 0xfec00000;
/** Inputs of QEMU's IOAPIC. */
export const IOAPIC_NUM_PINS = 24;
/** The version register's low byte (QEMU 7.2's default `version` property). */
const IOAPIC_VERSION = 0x20;

const IOAPIC_LVT_MASKED = 1 << 16;
const IOAPIC_LVT_TRIGGER_LEVEL = 1 << 15;
const IOAPIC_LVT_REMOTE_IRR = 1 << 14;
const IOAPIC_LVT_DELIV_STATUS = 1 << 12;
const IOAPIC_LVT_DEST_LOGICAL = 1 << 11;

/** Where the IOAPIC sends interrupts: the APIC bus. */
export interface ApicBus {
  /** Delivers a message to the local APIC(s) it names (level says how to EOI). */
  deliver(message: ApicMessage): void;
}

/**
 * An 82093AA-style IOAPIC (version 0x20, as QEMU 7.2 models it). ISA IRQ 0 is wired to
 * pin 2, as on QEMU's pc board and as the MADT interrupt source override says.
 */
export class IoApic implements Device, IrqController {
  readonly model = "ioapic";
  #irqCounts = new Array<number>(IOAPIC_NUM_PINS).fill(0);
  #statLevels = new Array<boolean>(IOAPIC_NUM_PINS).fill(false);
  #apic: Pick<ApicBus, "deliver"> | null;
  #select = 0;
  #id = 0;
  // Redirection entries as two 32-bit halves: a float64 cannot hold 64 bits, and the
  // destination in bits 56-63 would round away the vector in the low bits.
  #low = new Uint32Array(IOAPIC_NUM_PINS);
  #high = new Uint32Array(IOAPIC_NUM_PINS);
  #levels = new Uint8Array(IOAPIC_NUM_PINS);
  /**
   * Edges that arrived while their pin was masked (QEMU's IOAPIC IRR): delivered when
   * the pin is unmasked. Linux masks a line while a driver starts up, and a UART's
   * THRE edge in that window would otherwise be lost for good.
   */
  #pendingEdges = new Uint8Array(IOAPIC_NUM_PINS);

  constructor(
    readonly id: string,
    apic: Pick<ApicBus, "deliver"> | null,
    machine: DeviceContext | null,
  ) {
    this.#apic = apic;
    this.#resetEntries();
    machine?.memory.addMmio(id, IOAPIC_DEFAULT_BASE, 0x1000, {
      read: (offset) => this.read(offset),
      write: (offset, _size, value) => this.write(offset, value >>> 0),
    });
  }

  #resetEntries(): void {
    this.#low.fill(IOAPIC_LVT_MASKED);
    this.#high.fill(0);
  }

  #entryLow(pin: number): number {
    return this.#low[pin];
  }

  #setEntryLow(pin: number, low: number): void {
    this.#low[pin] = low >>> 0;
  }

  /** Sets input `pin`; ISA IRQ 0 arrives on pin 2. */
  setIrq(pin: number, level: boolean): void {
    // `info irq` counts by input, before ISA IRQ 0 moves to pin 2 (as QEMU's stats).
    if (pin < IOAPIC_NUM_PINS && level !== this.#statLevels[pin]) {
      this.#statLevels[pin] = level;
      if (level) this.#irqCounts[pin]++;
    }
    const p = pin === 0 ? 2 : pin;
    if (p >= IOAPIC_NUM_PINS) return;
    const was = this.#levels[p] !== 0;
    this.#levels[p] = level ? 1 : 0;
    const low = this.#entryLow(p);
    if (low & IOAPIC_LVT_TRIGGER_LEVEL) {
      if (level) this.#service(p);
    } else if (level && !was) {
      if (low & IOAPIC_LVT_MASKED) this.#pendingEdges[p] = 1;
      else this.#service(p);
    }
  }

  #service(pin: number): void {
    const low = this.#entryLow(pin);
    if (low & IOAPIC_LVT_MASKED) return;
    const levelTriggered = (low & IOAPIC_LVT_TRIGGER_LEVEL) !== 0;
    if (levelTriggered) {
      if (low & IOAPIC_LVT_REMOTE_IRR) return;
      this.#setEntryLow(pin, low | IOAPIC_LVT_REMOTE_IRR);
    }
    // The destination (bits 63:56) is an APIC ID or, in logical mode, a set of APICs
    // (Linux on i386 with few CPUs: logical flat, one bit per CPU).
    this.#apic?.deliver({
      vector: low & 0xff,
      deliveryMode: (low >> 8) & 7,
      destination: this.#high[pin] >>> 24,
      logical: (low & IOAPIC_LVT_DEST_LOGICAL) !== 0,
      level: levelTriggered,
    });
  }

  /** The local APIC's EOI of a level-triggered `vector`: clears Remote IRR and re-checks. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      const low = this.#entryLow(pin);
      if ((low & 0xff) !== vector || !(low & IOAPIC_LVT_REMOTE_IRR)) continue;
      this.#setEntryLow(pin, low & ~IOAPIC_LVT_REMOTE_IRR);
      if (this.#levels[pin]) this.#service(pin);
    }
  }

  /** A read of IOREGSEL (0x00) or IOWIN (0x10). */
  read(offset: number): number {
    if (offset === 0x00) return this.#select;
    if (offset !== 0x10) return 0;
    const r = this.#select;
    if (r === 0x00) return this.#id << 24;
    if (r === 0x01) return ((IOAPIC_NUM_PINS - 1) << 16) | IOAPIC_VERSION;
    if (r === 0x02) return 0;
    if (r >= 0x10 && r < 0x10 + 2 * IOAPIC_NUM_PINS) {
      const pin = (r - 0x10) >> 1;
      return (r & 1 ? this.#high[pin] : this.#low[pin]) >>> 0;
    }
    return 0;
  }

  /** A write of IOREGSEL, IOWIN or the EOI register (0x40). */
  write(offset: number, value: number): void {
    if (offset === 0x00) {
      this.#select = value & 0xff;
      return;
    }
    if (offset === 0x40) {
      this.eoi(value & 0xff);
      return;
    }
    if (offset !== 0x10) return;
    const r = this.#select;
    if (r === 0x00) {
      this.#id = (value >>> 24) & 0x0f;
    } else if (r >= 0x10 && r < 0x10 + 2 * IOAPIC_NUM_PINS) {
      const pin = (r - 0x10) >> 1;
      if (r & 1) {
        this.#high[pin] = value >>> 0;
      } else {
        // Remote IRR and delivery status are read-only.
        const keep = this.#entryLow(pin) & (IOAPIC_LVT_REMOTE_IRR | IOAPIC_LVT_DELIV_STATUS);
        this.#setEntryLow(pin, (value & ~(IOAPIC_LVT_REMOTE_IRR | IOAPIC_LVT_DELIV_STATUS)) | keep);
        if (value & IOAPIC_LVT_MASKED) return;
        if (value & IOAPIC_LVT_TRIGGER_LEVEL) {
          this.#pendingEdges[pin] = 0;
          if (this.#levels[pin]) this.#service(pin);
        } else if (this.#pendingEdges[pin]) {
          this.#pendingEdges[pin] = 0;
          this.#service(pin);
        }
      }
    }
  }

  /** QEMU's ioapic on the system bus: its 24 inputs, version and MMIO window. */
  qtree(): { bus: "system"; nodes: QtreeNode[] } {
    return {
      bus: "system",
      nodes: [{
        model: "ioapic",
        gpios: [["in", "", IOAPIC_NUM_PINS]],
        properties: [["version", IOAPIC_VERSION]],
        mmio: [[IOAPIC_DEFAULT_BASE, 0x1000]],
      }],
    };
  }

  reset(): void {
    this.#select = 0;
    this.#id = 0;
    this.#resetEntries();
    this.#pendingEdges.fill(0);
  }

  irqStatistics(): { name: string; counts: readonly number[] } {
    return { name: "ioapic", counts: this.#irqCounts };
  }

  saveState(): DeviceState {
    return {
      select: this.#select,
      id: this.#id,
      low: this.#low.slice(),
      high: this.#high.slice(),
      levels: this.#levels.slice(),
      pendingEdges: this.#pendingEdges.slice(),
    };
  }

  loadState(state: DeviceState): void {
    this.#select = state.select as number;
    this.#id = state.id as number;
    this.#low.set(state.low as Uint32Array);
    this.#high.set(state.high as Uint32Array);
    this.#levels.set(state.levels as Uint8Array);
    if (state.pendingEdges) this.#pendingEdges.set(state.pendingEdges as Uint8Array);
  }
}

/** The IOAPIC of `-M pc`; it delivers to the local APICs' bus, the service `lapic`. */
export default {
  kind: "device",
  name: "ioapic",
  summary: "I/O APIC",
  bus: "System",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): IoApic {
    const m = machine;
    const lapic = m.findService(LAPIC);
    const ioapic = new IoApic("ioapic", lapic ?? null, m);
    lapic?.setEoiListener((v) => ioapic.eoi(v));
    m.provide(IOAPIC, ioapic);
    return ioapic;
  },
} satisfies DeviceDescriptor;
