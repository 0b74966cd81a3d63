// The i8254 programmable interval timer (ports 0x40-0x43) and the port 0x61 speaker/refresh register

import {
  assignState,
  cloneState,
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
  type QtreeNode,
} from "../../core/device.ts";
import type { EventLoop, Timer } from "../../core/event_loop.ts";
import type { IrqLine } from "../../core/irq.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";
import { optNumber } from "../../core/options.ts";

/** The PIT input clock in Hz (the 14.31818 MHz crystal divided by 12). */
export const PIT_FREQ = 1193182;

/** Refresh request period of port 0x61 bit 4 in ns (it toggles every 15.085 us). */
const REFRESH_PERIOD_NS = 15085;

interface Channel {
  [key: string]: number | boolean;
  /** The count loaded (1..0x10000). */
  count: number;
  /** Virtual ns at which counting started from `count`. */
  loadNs: number;
  mode: number;
  bcd: boolean;
  /** 1 LSB, 2 MSB, 3 LSB then MSB. */
  rw: number;
  /** Next byte of a two-byte write is the MSB. */
  writeMsb: boolean;
  /** Low byte of a two-byte write in progress. */
  writeLow: number;
  /** Next byte of a two-byte read is the MSB. */
  readMsb: boolean;
  latched: boolean;
  latchValue: number;
  latchMsb: boolean;
  statusLatched: boolean;
  status: number;
  gate: boolean;
  /** Ticks counted before the gate went low (modes that pause). */
  pausedTicks: number;
  /** A count was written but counting has not started (null count bit). */
  nullCount: boolean;
  /** True until a count is written after a control word. */
  idle: boolean;
}

function newChannel(gate: boolean): Channel {
  return {
    count: 0x10000,
    loadNs: 0,
    mode: 0,
    bcd: false,
    rw: 3,
    writeMsb: false,
    writeLow: 0,
    readMsb: false,
    latched: false,
    latchValue: 0,
    latchMsb: false,
    statusLatched: false,
    status: 0,
    gate,
    pausedTicks: -1,
    nullCount: true,
    idle: true,
  };
}

/**
 * The i8254: three 16-bit counters clocked at {@linkcode PIT_FREQ}. Counter values
 * are computed from the virtual clock, so a read is exact without ticking; counter
 * 0 raises ISA IRQ 0 from a timer at each period; counter 2's gate and output are
 * bits 0 and 5 of port 0x61, which also shows the refresh toggle (bit 4) firmware
 * polls for short delays.
 */
export class Pit implements Device {
  readonly model = "isa-pit";
  #loop: EventLoop;
  #irq: IrqLine | null;
  #timer: Timer;
  #channels: Channel[] = [newChannel(true), newChannel(true), newChannel(false)];
  #port61 = { speakerData: false };
  #iobase: number;

  constructor(
    readonly id: string,
    loop: EventLoop,
    irq: IrqLine | null,
    machine: DeviceContext | null,
    options: { iobase?: number } = {},
  ) {
    this.#loop = loop;
    this.#irq = irq;
    this.#timer = loop.createTimer(`${id}-irq0`, () => this.#onTimer());
    this.#iobase = options.iobase ?? 0x40;
    if (machine) {
      const iobase = this.#iobase;
      machine.io.register(id, iobase, 4, {
        read: (port) => this.readPort(port - iobase),
        write: (port, _size, value) => this.writePort(port - iobase, value & 0xff),
      });
      machine.io.register(`${id}-port61`, 0x61, 1, {
        read: () => this.readPort61(),
        write: (_port, _size, value) => this.writePort61(value),
      });
    }
  }

  /** Ticks counted by a channel since its load (stopped while its gate pauses it). */
  #ticks(c: Channel): number {
    if (c.pausedTicks >= 0) return c.pausedTicks;
    const elapsed = this.#loop.nowNs - c.loadNs;
    return Math.floor(elapsed * PIT_FREQ / 1e9);
  }

  /** The current count of channel `n` (what a latch would capture). */
  counterValue(n: number): number {
    const c = this.#channels[n];
    if (c.idle) return c.count & 0xffff;
    const d = this.#ticks(c);
    switch (c.mode) {
      case 0:
      case 1:
      case 4:
      case 5:
        return (c.count - d) & 0xffff;
      case 3:
        // The count goes down by two each tick, twice per period.
        return (c.count - ((2 * d) % c.count)) & 0xffff;
      default: // mode 2 (and 6, an alias)
        return (c.count - (d % c.count)) & 0xffff;
    }
  }

  /** The OUT pin of channel `n`. */
  output(n: number): boolean {
    const c = this.#channels[n];
    if (c.idle) return c.mode !== 0;
    const d = this.#ticks(c);
    switch (c.mode) {
      case 0:
        return d >= c.count;
      case 1:
        return d >= c.count;
      case 3:
        return (d % c.count) < ((c.count + 1) >> 1);
      case 4:
      case 5:
        return d !== c.count;
      default:
        // Mode 2: low for the one tick before reload.
        return (d % c.count) !== c.count - 1;
    }
  }

  /** The virtual time of the next rising edge of channel 0's OUT, or Infinity. */
  #nextIrqNs(): number {
    const c = this.#channels[0];
    if (c.idle || c.pausedTicks >= 0) return Infinity;
    const d = this.#ticks(c);
    let edgeTick: number;
    switch (c.mode) {
      case 0:
      case 4:
        // Mode 0 raises OUT at terminal count; mode 4 (software-triggered strobe, what
        // Linux's one-shot PIT clockevent uses) strobes it there once. Both fire once.
        if (d >= c.count) return Infinity;
        edgeTick = c.count;
        break;
      case 2:
      case 3:
      case 6:
      case 7:
        edgeTick = (Math.floor(d / c.count) + 1) * c.count;
        break;
      default:
        return Infinity;
    }
    // The first ns at which #ticks() reaches edgeTick.
    return c.loadNs + Math.ceil(edgeTick * 1e9 / PIT_FREQ);
  }

  #onTimer(): void {
    const c = this.#channels[0];
    if (this.#irq) {
      if (c.mode === 0) {
        this.#irq.raise();
      } else {
        this.#irq.lower();
        this.#irq.raise();
      }
    }
    this.#armTimer();
  }

  #armTimer(): void {
    const next = this.#nextIrqNs();
    if (next === Infinity) this.#timer.cancel();
    else this.#timer.arm(next);
  }

  #load(n: number, value: number): void {
    const c = this.#channels[n];
    let count = value;
    if (c.bcd) count = fromBcd(value);
    if (count === 0) count = c.bcd ? 10000 : 0x10000;
    // Mode 2 and 3 cannot count 1 period; the chip treats 1 as illegal (we use 2).
    if ((c.mode === 2 || c.mode === 3) && count === 1) count = 2;
    c.count = count;
    c.loadNs = this.#loop.nowNs;
    c.idle = false;
    c.nullCount = false;
    c.pausedTicks = -1;
    if (!c.gate && (c.mode === 0 || c.mode === 2 || c.mode === 3 || c.mode === 4)) {
      c.pausedTicks = 0;
    }
    if (n === 0) {
      if (c.mode === 0 || c.mode === 4) this.#irq?.lower();
      this.#armTimer();
    }
  }

  /** A read of counter `reg` (0..2); the control register (3) reads as 0xff. */
  readPort(reg: number): number {
    if (reg === 3) return 0xff;
    const c = this.#channels[reg];
    if (c.statusLatched) {
      c.statusLatched = false;
      return c.status;
    }
    let value: number;
    let msbNext: boolean;
    if (c.latched) {
      value = c.latchValue;
      msbNext = c.latchMsb;
    } else {
      value = this.counterValue(reg);
      if (c.bcd) value = toBcd(value);
      msbNext = c.readMsb;
    }
    let byte: number;
    switch (c.rw) {
      case 1:
        byte = value & 0xff;
        c.latched = false;
        break;
      case 2:
        byte = (value >> 8) & 0xff;
        c.latched = false;
        break;
      default:
        byte = msbNext ? (value >> 8) & 0xff : value & 0xff;
        if (c.latched) {
          if (msbNext) c.latched = false;
          c.latchMsb = !msbNext;
        } else {
          c.readMsb = !msbNext;
        }
    }
    return byte;
  }

  /** A write of counter `reg` (0..2) or the control word (3). */
  writePort(reg: number, value: number): void {
    if (reg === 3) {
      this.#control(value);
      return;
    }
    const c = this.#channels[reg];
    switch (c.rw) {
      case 1:
        this.#load(reg, value);
        break;
      case 2:
        this.#load(reg, value << 8);
        break;
      default:
        if (!c.writeMsb) {
          c.writeLow = value;
          c.writeMsb = true;
        } else {
          c.writeMsb = false;
          this.#load(reg, c.writeLow | (value << 8));
        }
    }
  }

  #control(value: number): void {
    const sc = value >> 6;
    if (sc === 3) {
      // Read-back: bit 5 clear latches counts, bit 4 clear latches status.
      for (let n = 0; n < 3; n++) {
        if ((value & (2 << n)) === 0) continue;
        const c = this.#channels[n];
        if ((value & 0x20) === 0 && !c.latched) this.#latchCount(n);
        if ((value & 0x10) === 0 && !c.statusLatched) {
          c.status = (this.output(n) ? 0x80 : 0) | (c.nullCount ? 0x40 : 0) | (c.rw << 4) |
            (c.mode << 1) | (c.bcd ? 1 : 0);
          c.statusLatched = true;
        }
      }
      return;
    }
    const c = this.#channels[sc];
    const rw = (value >> 4) & 3;
    if (rw === 0) {
      if (!c.latched) this.#latchCount(sc);
      return;
    }
    c.rw = rw;
    c.mode = (value >> 1) & 7;
    if (c.mode > 5) c.mode -= 4;
    c.bcd = (value & 1) !== 0;
    c.writeMsb = false;
    c.readMsb = false;
    c.latched = false;
    c.statusLatched = false;
    c.idle = true;
    c.nullCount = true;
    if (sc === 0) {
      this.#timer.cancel();
      // A control word sets OUT low in mode 0 and high in the others.
      if (c.mode === 0) this.#irq?.lower();
      else this.#irq?.raise();
    }
  }

  #latchCount(n: number): void {
    const c = this.#channels[n];
    let v = this.counterValue(n);
    if (c.bcd) v = toBcd(v);
    c.latchValue = v;
    c.latched = true;
    c.latchMsb = false;
  }

  /** Sets the GATE input of a channel (channel 2's is port 0x61 bit 0). */
  setGate(n: number, gate: boolean): void {
    const c = this.#channels[n];
    if (gate === c.gate) return;
    c.gate = gate;
    if (c.idle) return;
    const now = this.#loop.nowNs;
    if (gate) {
      if (c.mode === 1 || c.mode === 2 || c.mode === 3 || c.mode === 5) {
        // A rising gate edge (re)starts the count.
        c.loadNs = now;
        c.pausedTicks = -1;
      } else if (c.pausedTicks >= 0) {
        // Resume where counting stopped.
        c.loadNs = now - Math.floor(c.pausedTicks * 1e9 / PIT_FREQ);
        c.pausedTicks = -1;
      }
    } else if (c.mode === 0 || c.mode === 2 || c.mode === 3 || c.mode === 4) {
      c.pausedTicks = this.#ticks(c);
    }
    if (n === 0) this.#armTimer();
  }

  /** Port 0x61: bit 0 gate 2, bit 1 speaker data, bit 4 refresh toggle, bit 5 OUT2. */
  readPort61(): number {
    const refresh = Math.floor(this.#loop.nowNs / REFRESH_PERIOD_NS) & 1;
    return (this.#channels[2].gate ? 1 : 0) | (this.#port61.speakerData ? 2 : 0) |
      (refresh << 4) | (this.output(2) ? 0x20 : 0);
  }

  /** Writes port 0x61 (the gate of counter 2 and the speaker enable). */
  writePort61(value: number): void {
    this.#port61.speakerData = (value & 2) !== 0;
    this.setGate(2, (value & 1) !== 0);
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [{
        model: "isa-pit",
        gpios: [["in", "", 1], ["out", "", 1]],
        properties: [["iobase", this.#iobase]],
      }],
    };
  }

  reset(): void {
    this.#channels = [newChannel(true), newChannel(true), newChannel(false)];
    this.#port61.speakerData = false;
    this.#timer.cancel();
  }

  saveState(): DeviceState {
    return {
      channels: this.#channels.map((c) => cloneState(c)),
      speakerData: this.#port61.speakerData,
      timerNs: this.#timer.armed ? this.#timer.deadlineNs : -1,
    };
  }

  loadState(state: DeviceState): void {
    const chans = state.channels as DeviceState[];
    chans.forEach((s, i) => assignState(this.#channels[i], s, this.model));
    this.#port61.speakerData = state.speakerData as boolean;
    this.#armTimer();
  }
}

function fromBcd(v: number): number {
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

function toBcd(v: number): number {
  v %= 10000;
  return ((Math.floor(v / 1000) % 10) << 12) | ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

/** The PC's i8254 timer on ISA IRQ 0 (`isa-pit`). */
export default {
  kind: "device",
  name: "isa-pit",
  summary: "Intel 8254 programmable interval timer",
  bus: "ISA",
  category: "Misc",
  userCreatable: false,
  options: [{ name: "iobase", type: "number", help: "I/O base (default 0x40)", default: 0x40 }],
  create(machine: DeviceContext, opts): Pit {
    const m = machine;
    const isa = m.findService(ISA_BUS);
    return new Pit("pit", m.loop, isa?.irq(0) ?? null, m, { iobase: optNumber(opts, "iobase") });
  },
} satisfies DeviceDescriptor;
