// The 16550A UART (`isa-serial`): registers, 16-byte FIFOs and interrupts, wired to a chardev

import type { Chardev } from "../../core/chardev.ts";
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
  type QtreeNode,
} from "../../core/device.ts";
import type { IrqLine } from "../../core/irq.ts";
import { optNumber, optString } from "../../core/options.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

const UART_IER_RDI = 0x01;
const UART_IER_THRI = 0x02;
const UART_IER_RLSI = 0x04;
const UART_IER_MSI = 0x08;

const UART_IIR_NO_INT = 0x01;
const UART_IIR_MSI = 0x00;
const UART_IIR_THRI = 0x02;
const UART_IIR_RDI = 0x04;
const UART_IIR_RLSI = 0x06;
const UART_IIR_CTI = 0x0c;
const UART_IIR_FIFO_ENABLED = 0xc0;

const UART_LCR_DLAB = 0x80;
const UART_MCR_LOOP = 0x10;

const UART_LSR_DR = 0x01;
const UART_LSR_OE = 0x02;
const UART_LSR_BI = 0x10;
const UART_LSR_THRE = 0x20;
const UART_LSR_TEMT = 0x40;

const UART_FCR_ENABLE = 0x01;
const UART_FCR_CLEAR_RCVR = 0x02;

const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14];

/** The COM port bases and IRQs of a PC, as QEMU assigns `isa-serial` index 0..3. */
export const SERIAL_ISA_PORTS = [
  { iobase: 0x3f8, irq: 4 },
  { iobase: 0x2f8, irq: 3 },
  { iobase: 0x3e8, irq: 4 },
  { iobase: 0x2e8, irq: 3 },
] as const;

interface UartState {
  [key: string]: number | boolean | Uint8Array;
  divisor: number;
  ier: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  /** A THRE interrupt is pending (cleared by reading IIR or writing THR). */
  thrPending: boolean;
  rx: Uint8Array;
  rxHead: number;
  rxCount: number;
}

function newState(): UartState {
  return {
    divisor: 12, // 9600 baud
    ier: 0,
    lcr: 0,
    mcr: 0x08,
    lsr: UART_LSR_THRE | UART_LSR_TEMT,
    msr: 0xb0, // DCD, DSR, CTS: a connected line
    scr: 0,
    fcr: 0,
    thrPending: false,
    rx: new Uint8Array(FIFO_SIZE),
    rxHead: 0,
    rxCount: 0,
  };
}

/**
 * A 16550A UART. Transmission is instant (the byte goes to the chardev when written,
 * so THR is always empty again); received bytes are pulled from the chardev into the
 * receive FIFO while it has room.
 */
export class Uart implements Device {
  readonly model = "isa-serial";
  #s: UartState = newState();
  #chardev: Chardev | null;
  #irq: IrqLine | null;
  #byte = new Uint8Array(1);
  #onInput: () => void;
  #qdev: { index: number; iobase: number; irq: number };

  constructor(
    readonly id: string,
    chardev: Chardev | null,
    irq: IrqLine | null,
    machine: DeviceContext | null,
    options: { iobase?: number; index?: number; irq?: number } = {},
  ) {
    this.#qdev = {
      index: options.index ?? 0,
      iobase: options.iobase ?? 0x3f8,
      irq: options.irq ?? 4,
    };
    this.#chardev = chardev;
    this.#irq = irq;
    this.#onInput = () => machine?.loop.wake();
    chardev?.connect({
      inputAvailable: () => {
        this.#pullInput();
        this.#onInput();
      },
    });
    if (machine) {
      const iobase = options.iobase ?? 0x3f8;
      machine.io.register(id, iobase, 8, {
        read: (port) => this.read(port - iobase),
        write: (port, _size, value) => this.write(port - iobase, value & 0xff),
      });
    }
  }

  #pullInput(): void {
    const s = this.#s;
    if (!this.#chardev || s.mcr & UART_MCR_LOOP) return;
    const room = FIFO_SIZE - s.rxCount;
    if (room <= 0 || this.#chardev.pendingInput === 0) return;
    const limit = s.fcr & UART_FCR_ENABLE ? room : (s.rxCount === 0 ? 1 : 0);
    if (limit === 0) return;
    for (const b of this.#chardev.readInput(limit)) this.#pushRx(b);
  }

  #pushRx(byte: number): void {
    const s = this.#s;
    const capacity = s.fcr & UART_FCR_ENABLE ? FIFO_SIZE : 1;
    if (s.rxCount >= capacity) {
      s.lsr |= UART_LSR_OE;
    } else {
      s.rx[(s.rxHead + s.rxCount) % FIFO_SIZE] = byte;
      s.rxCount++;
    }
    s.lsr |= UART_LSR_DR;
    this.#updateIrq();
  }

  /** The interrupt identification value (before the FIFO bits). */
  #iir(): number {
    const s = this.#s;
    if ((s.ier & UART_IER_RLSI) && (s.lsr & (UART_LSR_OE | UART_LSR_BI))) return UART_IIR_RLSI;
    if ((s.ier & UART_IER_RDI) && s.rxCount > 0) {
      const trigger = s.fcr & UART_FCR_ENABLE ? TRIGGER_LEVELS[s.fcr >> 6] : 1;
      return s.rxCount >= trigger ? UART_IIR_RDI : UART_IIR_CTI;
    }
    if ((s.ier & UART_IER_THRI) && s.thrPending) return UART_IIR_THRI;
    if ((s.ier & UART_IER_MSI) && (s.msr & 0x0f)) return UART_IIR_MSI;
    return UART_IIR_NO_INT;
  }

  #updateIrq(): void {
    this.#irq?.set(this.#iir() !== UART_IIR_NO_INT);
  }

  /** A read of register `reg` (0..7). */
  read(reg: number): number {
    const s = this.#s;
    switch (reg) {
      case 0: {
        if (s.lcr & UART_LCR_DLAB) return s.divisor & 0xff;
        let value = 0;
        if (s.rxCount > 0) {
          value = s.rx[s.rxHead];
          s.rxHead = (s.rxHead + 1) % FIFO_SIZE;
          s.rxCount--;
        }
        if (s.rxCount === 0) s.lsr &= ~UART_LSR_DR;
        this.#pullInput();
        this.#updateIrq();
        return value;
      }
      case 1:
        return s.lcr & UART_LCR_DLAB ? (s.divisor >> 8) & 0xff : s.ier;
      case 2: {
        const iir = this.#iir();
        if (iir === UART_IIR_THRI) {
          s.thrPending = false;
          this.#updateIrq();
        }
        return iir | (s.fcr & UART_FCR_ENABLE ? UART_IIR_FIFO_ENABLED : 0);
      }
      case 3:
        return s.lcr;
      case 4:
        return s.mcr;
      case 5: {
        const value = s.lsr;
        s.lsr &= ~(UART_LSR_OE | UART_LSR_BI);
        this.#updateIrq();
        return value;
      }
      case 6: {
        if (s.mcr & UART_MCR_LOOP) {
          // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
          const m = s.mcr;
          return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
        }
        const value = s.msr;
        s.msr &= 0xf0; // reading clears the delta bits
        return value;
      }
      default:
        return s.scr;
    }
  }

  /** A write of register `reg` (0..7). */
  write(reg: number, value: number): void {
    const s = this.#s;
    switch (reg) {
      case 0:
        if (s.lcr & UART_LCR_DLAB) {
          s.divisor = (s.divisor & 0xff00) | value;
          return;
        }
        if (s.mcr & UART_MCR_LOOP) {
          this.#pushRx(value);
        } else if (this.#chardev) {
          this.#byte[0] = value;
          this.#chardev.write(this.#byte);
        }
        // Sent at once: THR is empty again and says so.
        s.thrPending = true;
        s.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
        this.#updateIrq();
        return;
      case 1:
        if (s.lcr & UART_LCR_DLAB) {
          s.divisor = (s.divisor & 0xff) | (value << 8);
          return;
        }
        // Enabling the THRE interrupt with THR empty raises it at once (16550 behaviour).
        if ((value & UART_IER_THRI) && !(s.ier & UART_IER_THRI) && (s.lsr & UART_LSR_THRE)) {
          s.thrPending = true;
        }
        s.ier = value & 0x0f;
        this.#updateIrq();
        return;
      case 2:
        if (value & UART_FCR_CLEAR_RCVR) {
          s.rxCount = 0;
          s.rxHead = 0;
          s.lsr &= ~UART_LSR_DR;
        }
        s.fcr = value & 0xc9;
        this.#pullInput();
        this.#updateIrq();
        return;
      case 3:
        s.lcr = value;
        return;
      case 4:
        s.mcr = value & 0x1f;
        this.#pullInput();
        this.#updateIrq();
        return;
      case 5:
      case 6:
        return; // read-only in practice
      default:
        s.scr = value;
    }
  }

  /** The COM port number (QEMU's `index`). */
  get index(): number {
    return this.#qdev.index;
  }

  /** QEMU's isa-serial properties (the chardev is its SerialState's, not listed). */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    const q = this.#qdev;
    return {
      bus: "isa",
      nodes: [{
        model: "isa-serial",
        properties: [["index", q.index], ["iobase", q.iobase], ["irq", q.irq]],
      }],
    };
  }

  reset(): void {
    this.#s = newState();
    this.#irq?.lower();
    this.#pullInput();
  }

  saveState(): DeviceState {
    return structuredClone(this.#s);
  }

  loadState(state: DeviceState): void {
    this.#s = structuredClone(state) as UartState;
    this.#updateIrq();
  }
}

/** `-device isa-serial,chardev=ID[,index=N|iobase=..,irq=..]`: a COM port. */
export default {
  kind: "device",
  name: "isa-serial",
  summary: "16550A UART",
  bus: "ISA",
  category: "Input",
  userCreatable: true,
  options: [
    // -device accepts an id as QEMU does; its help does not list it.
    { name: "id", type: "string", help: "device id", hidden: true },
    { name: "chardev", type: "string", help: "ID of a chardev to use as a backend" },
    { name: "index", type: "number", help: "COM port number (0 = COM1 at 0x3f8, IRQ 4)" },
    { name: "iobase", type: "number", help: "I/O base address" },
    { name: "irq", type: "number", help: "ISA interrupt" },
  ],
  create(machine: DeviceContext, opts): Uart {
    const m = machine;
    let index = optNumber(opts, "index");
    if (index === undefined) {
      // The first index no serial port has (a named one included).
      const taken = m.devices.filter((d) => d instanceof Uart).map((d) => (d as Uart).index);
      index = 0;
      while (taken.includes(index)) index++;
    }
    const defaults = SERIAL_ISA_PORTS[index] ?? SERIAL_ISA_PORTS[0];
    const chardevId = optString(opts, "chardev");
    const chardev = chardevId ? m.chardev(chardevId) : null;
    const irqNumber = optNumber(opts, "irq") ?? defaults.irq;
    const irq = m.findService(ISA_BUS)?.irq(irqNumber) ?? null;
    const id = optString(opts, "id");
    return new Uart(id ?? m.freeId("serial"), chardev, irq, m, {
      iobase: optNumber(opts, "iobase") ?? defaults.iobase,
      index,
      irq: irqNumber,
    });
  },
} satisfies DeviceDescriptor;
