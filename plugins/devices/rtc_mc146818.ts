// The MC146818 real-time clock and CMOS memory (ports 0x70-0x71), with the bytes a PC BIOS reads

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
  type QtreeNode,
  RTC_CMOS,
} from "../../core/device.ts";
import type { EventLoop, Timer } from "../../core/event_loop.ts";
import type { IrqLine } from "../../core/irq.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/** CMOS register numbers (MC146818 datasheet and the PC/AT BIOS layout). */
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const RTC_CENTURY = 0x32;

const REG_A_UIP = 0x80;
const REG_B_SET = 0x80;
const REG_B_PIE = 0x40;
const REG_B_AIE = 0x20;
const REG_B_UIE = 0x10;
const REG_B_DM = 0x04;
const REG_B_24H = 0x02;
const REG_C_IRQF = 0x80;
const REG_C_PF = 0x40;
const REG_C_AF = 0x20;
const REG_C_UF = 0x10;

/** The update cycle takes 244 us before each second boundary (UIP is set then). */
const UIP_NS = 244_000;

function toBcd(v: number): number {
  return ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

function fromBcd(v: number): number {
  return (v >> 4) * 10 + (v & 0xf);
}

/**
 * The MC146818 RTC: 128 bytes of CMOS, the time kept as an offset from the virtual
 * clock (so a guest sees time advance with its own instructions), periodic, alarm and
 * update-ended interrupts on ISA IRQ 8.
 */
export class Rtc implements Device {
  readonly model = "mc146818rtc";
  /** The CMOS bytes (time registers are refreshed on read). */
  readonly cmos = new Uint8Array(128);
  #loop: EventLoop;
  #irq: IrqLine | null;
  #index = 0;
  /** Guest wall-clock seconds at virtual time 0. */
  #baseSeconds: number;
  #periodicTimer: Timer;
  #secondTimer: Timer;
  /** The last whole second for which UF was reported. */
  #lastUpdateSecond = 0;

  constructor(
    readonly id: string,
    loop: EventLoop,
    irq: IrqLine | null,
    machine: DeviceContext | null,
    options: { base?: Date } = {},
  ) {
    this.#loop = loop;
    this.#irq = irq;
    this.#baseSeconds = Math.floor((options.base ?? new Date()).getTime() / 1000);
    this.#periodicTimer = loop.createTimer(`${id}-periodic`, () => this.#onPeriodic());
    this.#secondTimer = loop.createTimer(`${id}-second`, () => this.#onSecond());
    this.#powerOn();
    if (machine) {
      machine.io.register(id, 0x70, 2, {
        read: (port) => (port === 0x70 ? 0xff : this.read(this.#index)),
        write: (port, _size, value) => {
          if (port === 0x70) this.#index = value & 0x7f;
          else this.write(this.#index, value & 0xff);
        },
      });
    }
  }

  #powerOn(): void {
    this.cmos[RTC_REG_A] = 0x26;
    this.cmos[RTC_REG_B] = REG_B_24H;
    this.cmos[RTC_REG_C] = 0;
    this.cmos[RTC_REG_D] = 0x80;
    this.#lastUpdateSecond = this.#nowSeconds();
  }

  /** The guest's wall-clock time in seconds since 1970. */
  #nowSeconds(): number {
    return this.#baseSeconds + Math.floor(this.#loop.nowNs / 1e9);
  }

  #encode(v: number): number {
    return this.cmos[RTC_REG_B] & REG_B_DM ? v : toBcd(v);
  }

  #decode(v: number): number {
    return this.cmos[RTC_REG_B] & REG_B_DM ? v : fromBcd(v);
  }

  /** Writes the current time into the time registers (unless the guest holds SET). */
  #refreshTime(): void {
    if (this.cmos[RTC_REG_B] & REG_B_SET) return;
    const d = new Date(this.#nowSeconds() * 1000);
    const c = this.cmos;
    c[RTC_SECONDS] = this.#encode(d.getUTCSeconds());
    c[RTC_MINUTES] = this.#encode(d.getUTCMinutes());
    let hour = d.getUTCHours();
    if (c[RTC_REG_B] & REG_B_24H) {
      c[RTC_HOURS] = this.#encode(hour);
    } else {
      const pm = hour >= 12;
      hour = hour % 12 || 12;
      c[RTC_HOURS] = this.#encode(hour) | (pm ? 0x80 : 0);
    }
    c[RTC_DAY_OF_WEEK] = this.#encode(d.getUTCDay() + 1);
    c[RTC_DAY_OF_MONTH] = this.#encode(d.getUTCDate());
    c[RTC_MONTH] = this.#encode(d.getUTCMonth() + 1);
    c[RTC_YEAR] = this.#encode(d.getUTCFullYear() % 100);
    c[RTC_CENTURY] = toBcd(Math.floor(d.getUTCFullYear() / 100));
  }

  /** Takes the time the guest wrote into the registers as the new wall clock. */
  #adoptTime(): void {
    const c = this.cmos;
    let hour = this.#decode(c[RTC_HOURS] & 0x7f);
    if (!(c[RTC_REG_B] & REG_B_24H)) {
      hour %= 12;
      if (c[RTC_HOURS] & 0x80) hour += 12;
    }
    const year = fromBcd(c[RTC_CENTURY]) * 100 + this.#decode(c[RTC_YEAR]);
    const ms = Date.UTC(
      year,
      this.#decode(c[RTC_MONTH]) - 1,
      this.#decode(c[RTC_DAY_OF_MONTH]),
      hour,
      this.#decode(c[RTC_MINUTES]),
      this.#decode(c[RTC_SECONDS]),
    );
    if (Number.isFinite(ms)) {
      this.#baseSeconds = Math.floor(ms / 1000) - Math.floor(this.#loop.nowNs / 1e9);
    }
  }

  /** Reads CMOS byte `index`. */
  read(index: number): number {
    const c = this.cmos;
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        this.#refreshTime();
        return c[index];
      case RTC_REG_A: {
        const nsIntoSecond = this.#loop.nowNs % 1e9;
        const uip = !(c[RTC_REG_B] & REG_B_SET) && nsIntoSecond >= 1e9 - UIP_NS;
        return (c[RTC_REG_A] & ~REG_A_UIP) | (uip ? REG_A_UIP : 0);
      }
      case RTC_REG_C: {
        this.#catchUpUpdate();
        const value = c[RTC_REG_C];
        c[RTC_REG_C] = 0;
        this.#irq?.lower();
        return value;
      }
      default:
        return c[index];
    }
  }

  /** Writes CMOS byte `index`. */
  write(index: number, value: number): void {
    const c = this.cmos;
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        this.#refreshTime();
        c[index] = value;
        if (!(c[RTC_REG_B] & REG_B_SET)) this.#adoptTime();
        return;
      case RTC_REG_A:
        c[RTC_REG_A] = (value & ~REG_A_UIP) | (c[RTC_REG_A] & REG_A_UIP);
        this.#armPeriodic();
        return;
      case RTC_REG_B: {
        const wasSet = (c[RTC_REG_B] & REG_B_SET) !== 0;
        if (!wasSet && (value & REG_B_SET)) this.#refreshTime();
        c[RTC_REG_B] = value & (value & REG_B_SET ? ~REG_B_UIE : 0xff);
        if (wasSet && !(value & REG_B_SET)) this.#adoptTime();
        this.#armPeriodic();
        this.#armSecond();
        this.#updateIrq();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        c[index] = value;
    }
  }

  /** The periodic interrupt period in ns from the rate bits of register A, or 0 when off. */
  #periodNs(): number {
    const rate = this.cmos[RTC_REG_A] & 0x0f;
    if (rate === 0) return 0;
    const hz = rate <= 2 ? 32768 >> (rate + 6) : 32768 >> (rate - 1);
    return 1e9 / hz;
  }

  #armPeriodic(): void {
    const period = this.#periodNs();
    if (period === 0 || !(this.cmos[RTC_REG_B] & REG_B_PIE)) {
      this.#periodicTimer.cancel();
      return;
    }
    if (!this.#periodicTimer.armed) {
      const now = this.#loop.nowNs;
      this.#periodicTimer.arm((Math.floor(now / period) + 1) * period);
    }
  }

  #onPeriodic(): void {
    this.cmos[RTC_REG_C] |= REG_C_PF;
    this.#updateIrq();
    const period = this.#periodNs();
    if (period > 0 && (this.cmos[RTC_REG_B] & REG_B_PIE)) {
      this.#periodicTimer.arm(
        this.#periodicTimer.deadlineNs === Infinity
          ? this.#loop.nowNs + period
          : Math.max(this.#loop.nowNs, (Math.floor(this.#loop.nowNs / period) + 1) * period),
      );
    }
  }

  #armSecond(): void {
    if (this.cmos[RTC_REG_B] & (REG_B_UIE | REG_B_AIE)) {
      if (!this.#secondTimer.armed) {
        this.#secondTimer.arm((Math.floor(this.#loop.nowNs / 1e9) + 1) * 1e9);
      }
    } else {
      this.#secondTimer.cancel();
    }
  }

  /** Sets UF (and AF) for seconds that ended since the last look. */
  #catchUpUpdate(): void {
    if (this.cmos[RTC_REG_B] & REG_B_SET) return;
    const now = this.#nowSeconds();
    if (now === this.#lastUpdateSecond) return;
    this.#lastUpdateSecond = now;
    this.cmos[RTC_REG_C] |= REG_C_UF;
    if (this.#alarmMatches()) this.cmos[RTC_REG_C] |= REG_C_AF;
  }

  #alarmMatches(): boolean {
    this.#refreshTime();
    const c = this.cmos;
    const match = (alarm: number, value: number) => (alarm & 0xc0) === 0xc0 || alarm === value;
    return match(c[RTC_SECONDS_ALARM], c[RTC_SECONDS]) &&
      match(c[RTC_MINUTES_ALARM], c[RTC_MINUTES]) && match(c[RTC_HOURS_ALARM], c[RTC_HOURS]);
  }

  #onSecond(): void {
    this.#catchUpUpdate();
    this.#updateIrq();
    this.#armSecond();
  }

  #updateIrq(): void {
    const c = this.cmos;
    const enabled = c[RTC_REG_B] & (REG_B_PIE | REG_B_AIE | REG_B_UIE);
    const flags = c[RTC_REG_C] & (REG_C_PF | REG_C_AF | REG_C_UF);
    if (enabled & flags) {
      if (!(c[RTC_REG_C] & REG_C_IRQF)) {
        c[RTC_REG_C] |= REG_C_IRQF;
        this.#irq?.raise();
      }
    }
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [{
        model: "mc146818rtc",
        gpios: [["out", "", 1]],
        properties: [
          ["base_year", 0],
          ["iobase", 0x70],
          ["irq", 8],
          ["lost_tick_policy", "discard"],
        ],
      }],
    };
  }

  reset(): void {
    // CMOS contents survive a reset; the interrupt enables do not.
    this.cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE);
    this.cmos[RTC_REG_C] = 0;
    this.#irq?.lower();
    this.#periodicTimer.cancel();
    this.#secondTimer.cancel();
  }

  saveState(): DeviceState {
    return {
      cmos: this.cmos.slice(),
      index: this.#index,
      baseSeconds: this.#baseSeconds,
      lastUpdateSecond: this.#lastUpdateSecond,
    };
  }

  loadState(state: DeviceState): void {
    this.cmos.set(state.cmos as Uint8Array);
    this.#index = state.index as number;
    this.#baseSeconds = state.baseSeconds as number;
    this.#lastUpdateSecond = state.lastUpdateSecond as number;
    this.#periodicTimer.cancel();
    this.#secondTimer.cancel();
    this.#armPeriodic();
    this.#armSecond();
  }
}

/** The RTC/CMOS of a PC on ISA IRQ 8 (`mc146818rtc`). */
export default {
  kind: "device",
  name: "mc146818rtc",
  summary: "Motorola MC146818 real-time clock and CMOS memory",
  bus: "ISA",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): Rtc {
    const m = machine;
    const isa = m.findService(ISA_BUS);
    const rtc = new Rtc("rtc", m.loop, isa?.irq(8) ?? null, m, { base: m.config.rtcBase });
    m.provide(RTC_CMOS, rtc);
    return rtc;
  },
} satisfies DeviceDescriptor;
