// The i8259A programmable interrupt controller pair of a PC, with the PIIX edge/level registers (ELCR)

import type { InterruptSource } from "../../core/cpu.ts";
import {
  assignState,
  cloneState,
  type Device,
  type DeviceContext,
  type DeviceState,
  PIC,
  type QtreeNode,
} from "../../core/device.ts";
import type { IrqController } from "../../core/irq.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/** The registers of one 8259A. */
interface ChipState {
  [key: string]: number | boolean;
  irr: number;
  imr: number;
  isr: number;
  /** Input levels last seen (edge detection). */
  lastLevel: number;
  /** Level-triggered inputs (ELCR bits). */
  elcr: number;
  /** The IRQ with the lowest priority is (priorityAdd - 1) & 7; rotation moves it. */
  priorityAdd: number;
  vectorBase: number;
  /** 0 = operational, 2..4 = expecting ICW2..ICW4. */
  initStep: number;
  icw4Needed: boolean;
  single: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  specialMask: boolean;
  readIsr: boolean;
  poll: boolean;
}

function newChip(): ChipState {
  return {
    irr: 0,
    imr: 0,
    isr: 0,
    lastLevel: 0,
    elcr: 0,
    priorityAdd: 0,
    vectorBase: 0,
    initStep: 0,
    icw4Needed: false,
    single: false,
    autoEoi: false,
    rotateOnAutoEoi: false,
    specialFullyNested: false,
    specialMask: false,
    readIsr: false,
    poll: false,
  };
}

function resetChip(c: ChipState): void {
  const elcr = c.elcr;
  Object.assign(c, newChip());
  c.elcr = elcr;
}

/** The priority (0 highest .. 7 lowest, 8 none) of the best bit of `mask` after rotation. */
function bestPriority(c: ChipState, mask: number): number {
  if (mask === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + c.priorityAdd) & 7))) === 0) p++;
  return p;
}

/**
 * The IRQ a chip would deliver now, or -1. `cascadeIrq` is the input the slave hangs
 * on (master only), which special fully nested mode lets through while in service.
 */
function chipPendingIrq(c: ChipState, cascadeIrq: number): number {
  const pending = c.irr & ~c.imr;
  const p = bestPriority(c, pending);
  if (p === 8) return -1;
  let inService = c.isr;
  if (c.specialMask) inService &= ~c.imr;
  if (c.specialFullyNested && cascadeIrq >= 0) inService &= ~(1 << cascadeIrq);
  const cur = bestPriority(c, inService);
  return p < cur ? (p + c.priorityAdd) & 7 : -1;
}

function setChipInput(c: ChipState, irq: number, level: boolean): void {
  const mask = 1 << irq;
  if (c.elcr & mask) {
    // Level triggered: the request follows the line.
    if (level) {
      c.irr |= mask;
      c.lastLevel |= mask;
    } else {
      c.irr &= ~mask;
      c.lastLevel &= ~mask;
    }
  } else if (level) {
    // Edge triggered: a rising edge latches a request until acknowledged.
    if ((c.lastLevel & mask) === 0) c.irr |= mask;
    c.lastLevel |= mask;
  } else {
    c.lastLevel &= ~mask;
  }
}

/** Acknowledges `irq` on a chip (the INTA cycle): moves it from IRR to ISR. */
function chipAck(c: ChipState, irq: number): void {
  const mask = 1 << irq;
  if (c.autoEoi) {
    if (c.rotateOnAutoEoi) c.priorityAdd = (irq + 1) & 7;
  } else {
    c.isr |= mask;
  }
  // An edge request is consumed; a level request stays while the line is high.
  if ((c.elcr & mask) === 0) c.irr &= ~mask;
}

const MASTER = 0;
const SLAVE = 1;
const CASCADE_IRQ = 2;

/** Options of {@linkcode PicPair}. */
export interface PicPairOptions {
  /** Called when the INTR output to the CPU changes. */
  onOutput?: (level: boolean) => void;
  /** Register the ports 0x20, 0xa0 and ELCR 0x4d0 in the machine (default true). */
  registerPorts?: boolean;
}

/**
 * The master and slave i8259A of a PC (ports 0x20-0x21, 0xa0-0xa1) and the PIIX ELCR
 * registers (0x4d0-0x4d1) that make inputs level triggered. It is the IrqController
 * for ISA IRQs 0-15 and, in legacy mode, the CPU's InterruptSource.
 */
export class PicPair implements Device, IrqController, InterruptSource {
  readonly model = "i8259";
  #irqCounts = new Array<number>(16).fill(0);
  #statLevels = new Array<boolean>(16).fill(false);
  #chips: [ChipState, ChipState] = [newChip(), newChip()];
  #output = false;
  #onOutput: (level: boolean) => void;
  /** Spurious interrupts delivered (an acknowledge found nothing). */
  spurious = 0;

  constructor(readonly id: string, machine: DeviceContext | null, options: PicPairOptions = {}) {
    this.#onOutput = options.onOutput ?? (() => {});
    if (machine && options.registerPorts !== false) {
      const handler = (chip: number) => ({
        read: (port: number) => this.readPort(chip, port & 1),
        write: (port: number, _size: 1 | 2 | 4, value: number) =>
          this.writePort(chip, port & 1, value & 0xff),
      });
      machine.io.register(`${id}-master`, 0x20, 2, handler(MASTER));
      machine.io.register(`${id}-slave`, 0xa0, 2, handler(SLAVE));
      machine.io.register(`${id}-elcr`, 0x4d0, 2, {
        read: (port) => this.#chips[port & 1].elcr,
        write: (port, _size, value) => this.setElcr(port & 1, value),
      });
    }
  }

  /** Sets the ELCR of a chip; some inputs are always edge (IRQ 0, 1, 2, 8, 13). */
  setElcr(chip: number, value: number): void {
    this.#chips[chip].elcr = value & (chip === MASTER ? 0xf8 : 0xde);
    this.#update();
  }

  /** Sets the level of ISA input `pin` (0..15). */
  setIrq(pin: number, level: boolean): void {
    // `info irq`: rising edges per input, as QEMU's pic_stat_update_irq counts them.
    if (pin < 16 && level !== this.#statLevels[pin]) {
      this.#statLevels[pin] = level;
      if (level) this.#irqCounts[pin]++;
    }
    const chip = pin >> 3;
    setChipInput(this.#chips[chip], pin & 7, level);
    this.#update();
  }

  /** True when the INTR output is asserted. */
  hasPending(): boolean {
    return this.#output;
  }

  /** The INTA cycle: returns the vector of the highest priority request. */
  acknowledge(): number {
    const master = this.#chips[MASTER];
    const slave = this.#chips[SLAVE];
    let vector: number;
    const irq = chipPendingIrq(master, CASCADE_IRQ);
    if (irq < 0) {
      // The request went away before INTA: the 8259 answers with IRQ 7.
      this.spurious++;
      vector = master.vectorBase + 7;
    } else {
      chipAck(master, irq);
      if (irq === CASCADE_IRQ && !master.single) {
        const sirq = chipPendingIrq(slave, -1);
        if (sirq < 0) {
          this.spurious++;
          vector = slave.vectorBase + 7;
        } else {
          chipAck(slave, sirq);
          vector = slave.vectorBase + sirq;
        }
      } else {
        vector = master.vectorBase + irq;
      }
    }
    this.#update();
    return vector;
  }

  /** A read of a chip's command (0) or data (1) port. */
  readPort(chip: number, reg: number): number {
    const c = this.#chips[chip];
    if (c.poll) {
      c.poll = false;
      return this.#pollRead(chip);
    }
    if (reg === 1) return c.imr;
    return c.readIsr ? c.isr : c.irr;
  }

  /** A write of a chip's command (0) or data (1) port. */
  writePort(chip: number, reg: number, value: number): void {
    const c = this.#chips[chip];
    if (reg === 0) {
      if (value & 0x10) {
        // ICW1
        resetChip(c);
        c.icw4Needed = (value & 1) !== 0;
        c.single = (value & 2) !== 0;
        if (value & 0x08) {
          // LTIM: all inputs level triggered (not used by PC firmware).
          c.elcr = 0xff;
        }
        c.initStep = 2;
      } else if (value & 0x08) {
        // OCW3
        if (value & 0x04) c.poll = true;
        if (value & 0x02) c.readIsr = (value & 1) !== 0;
        if (value & 0x40) c.specialMask = (value & 0x20) !== 0;
      } else {
        this.#ocw2(c, value);
      }
    } else {
      switch (c.initStep) {
        case 0:
          c.imr = value;
          break;
        case 2:
          c.vectorBase = value & 0xf8;
          c.initStep = c.single ? (c.icw4Needed ? 4 : 0) : 3;
          break;
        case 3:
          c.initStep = c.icw4Needed ? 4 : 0;
          break;
        case 4:
          c.autoEoi = (value & 0x02) !== 0;
          c.specialFullyNested = (value & 0x10) !== 0;
          c.initStep = 0;
          break;
      }
    }
    this.#update();
  }

  #ocw2(c: ChipState, value: number): void {
    const cmd = value >> 5;
    switch (cmd) {
      case 0: // rotate in automatic EOI mode: clear
      case 4: // set
        c.rotateOnAutoEoi = cmd === 4;
        break;
      case 1: // non-specific EOI
      case 5: { // rotate on non-specific EOI
        const p = bestPriority(c, c.isr);
        if (p !== 8) {
          const irq = (p + c.priorityAdd) & 7;
          c.isr &= ~(1 << irq);
          if (cmd === 5) c.priorityAdd = (irq + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
        c.isr &= ~(1 << (value & 7));
        break;
      case 6: // set priority: the given IRQ becomes the lowest
        c.priorityAdd = (value + 1) & 7;
        break;
      case 7: // rotate on specific EOI
        c.isr &= ~(1 << (value & 7));
        c.priorityAdd = (value + 1) & 7;
        break;
    }
  }

  #pollRead(chip: number): number {
    const c = this.#chips[chip];
    const irq = chipPendingIrq(c, chip === MASTER ? CASCADE_IRQ : -1);
    if (irq < 0) {
      this.#update();
      return 0;
    }
    chipAck(c, irq);
    this.#update();
    return 0x80 | irq;
  }

  #update(): void {
    // The slave's INT output is the master's input 2 (level).
    const slaveIrq = chipPendingIrq(this.#chips[SLAVE], -1);
    setChipInput(this.#chips[MASTER], CASCADE_IRQ, false);
    if (slaveIrq >= 0) {
      const m = this.#chips[MASTER];
      m.irr |= 1 << CASCADE_IRQ;
      m.lastLevel |= 1 << CASCADE_IRQ;
    } else {
      this.#chips[MASTER].irr &= ~(1 << CASCADE_IRQ);
    }
    const out = chipPendingIrq(this.#chips[MASTER], CASCADE_IRQ) >= 0;
    if (out !== this.#output) {
      this.#output = out;
      this.#onOutput(out);
    }
  }

  /** QEMU's two isa-i8259 (listed slave first, as QEMU's newest-first ISA bus does). */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [
        {
          model: "isa-i8259",
          gpios: [["in", "", 8], ["out", "", 1]],
          properties: [
            ["iobase", 0xa0],
            ["elcr_addr", 0x4d1],
            ["elcr_mask", 0xde],
            ["master", false],
          ],
        },
        {
          model: "isa-i8259",
          gpios: [["in", "", 8], ["out", "", 1]],
          properties: [
            ["iobase", 0x20],
            ["elcr_addr", 0x4d0],
            ["elcr_mask", 0xf8],
            ["master", true],
          ],
        },
      ],
    };
  }

  reset(): void {
    resetChip(this.#chips[MASTER]);
    resetChip(this.#chips[SLAVE]);
    this.#chips[MASTER].elcr = 0;
    this.#chips[SLAVE].elcr = 0;
    this.#update();
  }

  irqStatistics(): { name: string; counts: readonly number[] } {
    return { name: "isa-i8259", counts: this.#irqCounts };
  }

  saveState(): DeviceState {
    return { master: cloneState(this.#chips[MASTER]), slave: cloneState(this.#chips[SLAVE]) };
  }

  loadState(state: DeviceState): void {
    assignState(this.#chips[MASTER], state.master as DeviceState, this.model);
    assignState(this.#chips[SLAVE], state.slave as DeviceState, this.model);
    this.#update();
  }
}

/** The PC's i8259 pair; a board creates it and wires the ISA IRQs to it. */
export default {
  kind: "device",
  name: "i8259",
  summary: "Intel 8259A interrupt controller pair with ELCR",
  bus: "ISA",
  category: "Misc",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): PicPair {
    const m = machine;
    const pic = new PicPair("pic", m, { onOutput: (level) => level && m.kick() });
    m.provide(PIC, pic);
    return pic;
  },
} satisfies DeviceDescriptor;
