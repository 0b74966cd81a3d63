// The i8042 keyboard controller (ports 0x60/0x64) with a PS/2 keyboard and mouse, and port 0x92

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  ISA_BUS,
  type QtreeNode,
} from "../../core/device.ts";
import { KEYBOARD } from "../../core/device.ts";
import { displayRegistry, type InputEvent } from "../../core/display.ts";
import type { IrqLine } from "../../core/irq.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

const STAT_OBF = 0x01;
const STAT_SYS = 0x04;
const STAT_CMD = 0x08;
const STAT_UNLOCKED = 0x10;
const STAT_AUX_OBF = 0x20;

const CMD_KBD_INT = 0x01;
const CMD_AUX_INT = 0x02;
const CMD_SYS = 0x04;
const CMD_KBD_DISABLE = 0x10;
const CMD_AUX_DISABLE = 0x20;
const CMD_TRANSLATE = 0x40;

/** Output port bits: bit 0 is the CPU reset line (active low), bit 1 the A20 gate. */
const OUT_RESET = 0x01;
const OUT_A20 = 0x02;
const OUT_KBD_OBF = 0x10;
const OUT_AUX_OBF = 0x20;

const ACK = 0xfa;

/**
 * Scancode set 2 of each set 1 code 0x00-0x5f (0 where set 1 has no key). The same
 * table serves 0xe0-prefixed keys: set 2 prefixes them with 0xe0 as set 1 does.
 */
// deno-fmt-ignore
const SET1_TO_SET2 = [
  0x00, 0x76, 0x16, 0x1e, 0x26, 0x25, 0x2e, 0x36, 0x3d, 0x3e, 0x46, 0x45, 0x4e, 0x55, 0x66, 0x0d,
  0x15, 0x1d, 0x24, 0x2d, 0x2c, 0x35, 0x3c, 0x43, 0x44, 0x4d, 0x54, 0x5b, 0x5a, 0x14, 0x1c, 0x1b,
  0x23, 0x2b, 0x34, 0x33, 0x3b, 0x42, 0x4b, 0x4c, 0x52, 0x0e, 0x12, 0x5d, 0x1a, 0x22, 0x21, 0x2a,
  0x32, 0x31, 0x3a, 0x41, 0x49, 0x4a, 0x59, 0x7c, 0x11, 0x29, 0x58, 0x05, 0x06, 0x04, 0x0c, 0x03,
  0x0b, 0x83, 0x0a, 0x01, 0x09, 0x77, 0x7e, 0x6c, 0x75, 0x7d, 0x7b, 0x6b, 0x73, 0x74, 0x79, 0x69,
  0x72, 0x7a, 0x70, 0x71, 0x84, 0x00, 0x61, 0x78, 0x07, 0x00, 0x00, 0x1f, 0x27, 0x2f, 0x00, 0x00,
];

/**
 * The bytes a key press or release sends, from its set 1 code (0xe0xx for prefixed
 * keys): set 1 codes with the release bit 0x80 when the controller translates or the
 * keyboard is in set 1, else set 2 codes with the 0xf0 release prefix.
 */
export function keyBytes(scancode: number, down: boolean, set: number): number[] {
  const prefix = scancode > 0xff ? [0xe0] : [];
  const code = scancode & 0x7f;
  if (set === 1) return [...prefix, down ? code : code | 0x80];
  const code2 = SET1_TO_SET2[code] ?? 0;
  if (code2 === 0) return [];
  return down ? [...prefix, code2] : [...prefix, 0xf0, code2];
}

/**
 * Bytes a PS/2 device queues: input events up to PS2_QUEUE_SIZE, command replies up
 * to PS2_QUEUE_HEADROOM more (QEMU's ps2.c numbers). A guest that writes commands
 * without reading the answers loses the newest answers instead of growing the queue.
 */
export const PS2_QUEUE_SIZE = 16;
export const PS2_QUEUE_HEADROOM = 8;
/** Host key events that may wait for room in the keyboard queue (a typing burst's worth). */
export const HOST_KEY_BACKLOG = 1024;

/** Appends `bytes` to `queue` unless that would pass `limit` (the whole reply is dropped). */
function enqueue(queue: number[], bytes: number[], limit: number): void {
  if (queue.length + bytes.length > limit) return;
  for (const b of bytes) queue.push(b);
}

/** Hooks the controller drives on the board. */
export interface I8042Hooks {
  /** The CPU reset line was pulsed. */
  reset(): void;
  /** The A20 gate changed. */
  setA20(enabled: boolean): void;
  /** The A20 gate as the board sees it (port 0x92 and the i8042 share it). */
  a20(): boolean;
}

interface KbdState {
  [key: string]: number | boolean | number[];
  status: number;
  commandByte: number;
  outPort: number;
  /** The controller command waiting for its data byte (0 when none). */
  pendingCommand: number;
  /** The keyboard command waiting for its parameter (0 when none). */
  kbdParamFor: number;
  /** The mouse command waiting for its parameter (0 when none). */
  auxParamFor: number;
  /** The byte in the output buffer. */
  data: number;
  kbdQueue: number[];
  auxQueue: number[];
  kbdScanning: boolean;
  scanSet: number;
  auxEnabled: boolean;
  auxSampleRate: number;
  auxResolution: number;
}

function newState(): KbdState {
  return {
    status: STAT_UNLOCKED,
    commandByte: CMD_KBD_INT | CMD_SYS | CMD_TRANSLATE,
    outPort: OUT_RESET | OUT_A20,
    pendingCommand: 0,
    kbdParamFor: 0,
    auxParamFor: 0,
    data: 0,
    kbdQueue: [],
    auxQueue: [],
    kbdScanning: true,
    scanSet: 2,
    auxEnabled: false,
    auxSampleRate: 100,
    auxResolution: 2,
  };
}

/**
 * The i8042 controller of a PC/AT: the self tests and command byte firmware checks,
 * the output port that gates A20 and (pulsed low) resets the CPU, and the PS/2
 * keyboard and mouse answering their command sets.
 */
export class I8042 implements Device {
  readonly model = "i8042";
  #s: KbdState = newState();
  /** Host key events (keyEvent) waiting for room in the keyboard queue. */
  #hostKeys: number[][] = [];
  #kbdIrq: IrqLine | null;
  #auxIrq: IrqLine | null;
  #hooks: I8042Hooks;
  /** The last absolute pointer position and buttons seen (-1: none yet): host side, not saved. */
  #pointerX = -1;
  #pointerY = -1;
  #pointerButtons = 0;

  constructor(
    readonly id: string,
    irqs: { kbd: IrqLine | null; aux: IrqLine | null },
    hooks: I8042Hooks,
    machine: DeviceContext | null,
  ) {
    this.#kbdIrq = irqs.kbd;
    this.#auxIrq = irqs.aux;
    this.#hooks = hooks;
    if (machine) {
      machine.io.register(`${id}-data`, 0x60, 1, {
        read: () => this.readData(),
        write: (_p, _s, v) => this.writeData(v & 0xff),
      });
      machine.io.register(`${id}-cmd`, 0x64, 1, {
        read: () => this.readStatus(),
        write: (_p, _s, v) => this.writeCommand(v & 0xff),
      });
      machine.io.register(`${id}-port92`, 0x92, 1, {
        read: () => (this.#hooks.a20() ? 0x02 : 0),
        write: (_p, _s, v) => {
          this.#hooks.setA20((v & 0x02) !== 0);
          if (v & 0x01) this.#hooks.reset();
        },
      });
    }
  }

  /** Queues scancodes as if keys were pressed (host keyboard input). */
  sendScancodes(codes: number[]): void {
    if (!this.#s.kbdScanning) return;
    enqueue(this.#s.kbdQueue, codes, PS2_QUEUE_SIZE);
    this.#refill();
  }

  /**
   * A key pressed or released on the host (VNC, the browser console), named by its set 1
   * code: queued in the set the guest sees (set 1 when the controller translates).
   */
  keyEvent(scancode: number, down: boolean): void {
    const s = this.#s;
    if (!s.kbdScanning) return;
    const set = s.commandByte & CMD_TRANSLATE ? 1 : s.scanSet === 1 ? 1 : 2;
    const bytes = keyBytes(scancode, down, set);
    if (bytes.length === 0) return;
    // A VNC client's typing arrives many keys at once, faster than an emulated guest reads
    // them; QEMU's 16-byte queue would drop some (a lost Shift release sticks). Host keys
    // wait here instead, in order, and enter the queue as the guest makes room.
    if (this.#hostKeys.length < HOST_KEY_BACKLOG) this.#hostKeys.push(bytes);
    this.#drainHostKeys();
    this.#refill();
  }

  /** Moves waiting host keys into the keyboard queue while they fit whole. */
  #drainHostKeys(): void {
    const queue = this.#s.kbdQueue;
    while (this.#hostKeys.length > 0) {
      const next = this.#hostKeys[0];
      if (queue.length + next.length > PS2_QUEUE_SIZE) return;
      for (const b of next) queue.push(b);
      this.#hostKeys.shift();
    }
  }

  /**
   * The host pointer moved or its buttons changed: one PS/2 mouse packet per step of at
   * most 255 counts, while the guest has enabled reporting (0xf4). `dy` grows downwards
   * as on the screen; the packet's Y grows upwards.
   */
  mouseMotion(dx: number, dy: number, buttons: number): void {
    const s = this.#s;
    if (!s.auxEnabled) return;
    dy = -dy;
    do {
      const stepX = Math.max(-255, Math.min(255, dx));
      const stepY = Math.max(-255, Math.min(255, dy));
      dx -= stepX;
      dy -= stepY;
      const head = 0x08 | (buttons & 0x07) | (stepX < 0 ? 0x10 : 0) | (stepY < 0 ? 0x20 : 0);
      // A full queue drops the packet whole (never half a packet).
      enqueue(s.auxQueue, [head, stepX & 0xff, stepY & 0xff], PS2_QUEUE_SIZE);
    } while (dx !== 0 || dy !== 0);
    this.#refill();
  }

  /** Host input from the display (keys and pointer), for the display registry. */
  input(event: InputEvent): void {
    if (event.type === "key") {
      this.keyEvent(event.scancode, event.down);
      return;
    }
    let dx = event.x;
    let dy = event.y;
    if (event.absolute) {
      // A relative mouse follows an absolute pointer by the difference.
      dx = this.#pointerX < 0 ? 0 : event.x - this.#pointerX;
      dy = this.#pointerY < 0 ? 0 : event.y - this.#pointerY;
      this.#pointerX = event.x;
      this.#pointerY = event.y;
    }
    if (dx === 0 && dy === 0 && event.buttons === this.#pointerButtons) return;
    this.#pointerButtons = event.buttons;
    this.mouseMotion(Math.trunc(dx), Math.trunc(dy), event.buttons);
  }

  /** Reads the status register (port 0x64). */
  readStatus(): number {
    return this.#s.status;
  }

  /** Reads the output buffer (port 0x60). */
  readData(): number {
    const s = this.#s;
    const value = s.data;
    s.status &= ~(STAT_OBF | STAT_AUX_OBF);
    this.#updateIrqs();
    this.#refill();
    return value;
  }

  /** Puts a byte from the controller itself in the output buffer queue. */
  #reply(...bytes: number[]): void {
    enqueue(this.#s.kbdQueue, bytes, PS2_QUEUE_SIZE + PS2_QUEUE_HEADROOM);
    this.#refill();
  }

  #auxReply(...bytes: number[]): void {
    enqueue(this.#s.auxQueue, bytes, PS2_QUEUE_SIZE + PS2_QUEUE_HEADROOM);
    this.#refill();
  }

  /** Moves the next queued byte into the output buffer when it is empty. */
  #refill(): void {
    const s = this.#s;
    if (s.status & STAT_OBF) return;
    if (this.#hostKeys.length > 0 && s.kbdScanning) this.#drainHostKeys();
    if (s.kbdQueue.length > 0) {
      s.data = s.kbdQueue.shift()!;
      s.status = (s.status | STAT_OBF) & ~STAT_AUX_OBF;
    } else if (s.auxQueue.length > 0) {
      s.data = s.auxQueue.shift()!;
      s.status |= STAT_OBF | STAT_AUX_OBF;
    }
    this.#updateIrqs();
  }

  /** A controller command (port 0x64). */
  writeCommand(cmd: number): void {
    const s = this.#s;
    s.status |= STAT_CMD;
    if (cmd >= 0x20 && cmd < 0x40) {
      // Read controller RAM; byte 0 is the command byte.
      this.#reply(cmd === 0x20 ? s.commandByte : 0);
      return;
    }
    if (cmd >= 0xf0) {
      // Pulse output port bits low for 6 us; bit 0 low resets the CPU.
      if ((cmd & 1) === 0) this.#hooks.reset();
      return;
    }
    switch (cmd) {
      case 0x60: // write command byte
      case 0xd1: // write output port
      case 0xd2: // write keyboard output buffer
      case 0xd3: // write mouse output buffer
      case 0xd4: // write to mouse
        s.pendingCommand = cmd;
        break;
      case 0xa7:
        s.commandByte |= CMD_AUX_DISABLE;
        break;
      case 0xa8:
        s.commandByte &= ~CMD_AUX_DISABLE;
        break;
      case 0xa9: // test mouse port: OK
      case 0xab: // test keyboard port: OK
        this.#reply(0x00);
        break;
      case 0xaa: // controller self test
        s.status |= STAT_SYS;
        this.#reply(0x55);
        break;
      case 0xad:
        s.commandByte |= CMD_KBD_DISABLE;
        break;
      case 0xae:
        s.commandByte &= ~CMD_KBD_DISABLE;
        break;
      case 0xc0: // read input port
        this.#reply(0x80);
        break;
      case 0xd0: { // read output port
        let out = s.outPort & (OUT_RESET | OUT_A20);
        if (this.#hooks.a20()) out |= OUT_A20;
        else out &= ~OUT_A20;
        if (s.status & STAT_OBF) out |= s.status & STAT_AUX_OBF ? OUT_AUX_OBF : OUT_KBD_OBF;
        this.#reply(out);
        break;
      }
      case 0xdd:
        this.#hooks.setA20(false);
        break;
      case 0xdf:
        this.#hooks.setA20(true);
        break;
      default:
        break; // unknown commands are ignored
    }
  }

  /** A data byte (port 0x60): a command's parameter or a byte for the keyboard. */
  writeData(value: number): void {
    const s = this.#s;
    s.status &= ~STAT_CMD;
    const pending = s.pendingCommand;
    s.pendingCommand = 0;
    switch (pending) {
      case 0x60:
        s.commandByte = value;
        s.status = (s.status & ~STAT_SYS) | (value & CMD_SYS ? STAT_SYS : 0);
        this.#updateIrqs();
        return;
      case 0xd1:
        s.outPort = value;
        this.#hooks.setA20((value & OUT_A20) !== 0);
        if (!(value & OUT_RESET)) this.#hooks.reset();
        return;
      case 0xd2:
        this.#reply(value);
        return;
      case 0xd3:
        this.#auxReply(value);
        return;
      case 0xd4:
        this.#auxCommand(value);
        return;
    }
    this.#kbdCommand(value);
  }

  #updateIrqs(): void {
    const s = this.#s;
    const full = (s.status & STAT_OBF) !== 0;
    const aux = (s.status & STAT_AUX_OBF) !== 0;
    this.#kbdIrq?.set(full && !aux && (s.commandByte & CMD_KBD_INT) !== 0);
    this.#auxIrq?.set(full && aux && (s.commandByte & CMD_AUX_INT) !== 0);
  }

  #kbdCommand(value: number): void {
    const s = this.#s;
    // Writing to the keyboard enables its interface again.
    s.commandByte &= ~CMD_KBD_DISABLE;
    if (s.kbdParamFor) {
      const cmd = s.kbdParamFor;
      s.kbdParamFor = 0;
      if (cmd === 0xf0 && value === 0) this.#reply(ACK, s.scanSet);
      else {
        if (cmd === 0xf0 && value >= 1 && value <= 3) s.scanSet = value;
        this.#reply(ACK);
      }
      return;
    }
    switch (value) {
      case 0xed: // set LEDs
      case 0xf3: // typematic rate
      case 0xf0: // scan code set
        s.kbdParamFor = value;
        this.#reply(ACK);
        break;
      case 0xee: // echo
        this.#reply(0xee);
        break;
      case 0xf2: // identify: MF2 keyboard
        this.#reply(ACK, 0xab, 0x83);
        break;
      case 0xf4:
        s.kbdScanning = true;
        this.#reply(ACK);
        break;
      case 0xf5:
        s.kbdScanning = false;
        this.#reply(ACK);
        break;
      case 0xff: // reset and self test
        s.kbdScanning = true;
        s.scanSet = 2;
        this.#reply(ACK, 0xaa);
        break;
      default:
        this.#reply(ACK);
    }
  }

  #auxCommand(value: number): void {
    const s = this.#s;
    if (s.auxParamFor) {
      const cmd = s.auxParamFor;
      s.auxParamFor = 0;
      if (cmd === 0xf3) s.auxSampleRate = value;
      if (cmd === 0xe8) s.auxResolution = value;
      this.#auxReply(ACK);
      return;
    }
    switch (value) {
      case 0xe8:
      case 0xf3:
        s.auxParamFor = value;
        this.#auxReply(ACK);
        break;
      case 0xe9: // status request
        this.#auxReply(ACK, s.auxEnabled ? 0x20 : 0, s.auxResolution, s.auxSampleRate);
        break;
      case 0xf2: // get device id
        this.#auxReply(ACK, 0x00);
        break;
      case 0xf4:
        s.auxEnabled = true;
        this.#auxReply(ACK);
        break;
      case 0xf5:
        s.auxEnabled = false;
        this.#auxReply(ACK);
        break;
      case 0xff:
        s.auxEnabled = false;
        this.#auxReply(ACK, 0xaa, 0x00);
        break;
      default:
        this.#auxReply(ACK);
    }
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "isa"; nodes: QtreeNode[] } {
    return {
      bus: "isa",
      nodes: [{
        model: "i8042",
        gpios: [
          ["in", "ps2-mouse-input-irq", 1],
          ["in", "ps2-kbd-input-irq", 1],
          ["out", "", 2],
          ["out", "a20", 1],
        ],
        properties: [
          ["extended-state", true],
          ["kbd-throttle", false],
          ["kbd-irq", 1],
          ["mouse-irq", 12],
        ],
      }],
    };
  }

  reset(): void {
    this.#hostKeys = [];
    this.#s = newState();
    this.#kbdIrq?.lower();
    this.#auxIrq?.lower();
  }

  saveState(): DeviceState {
    return structuredClone(this.#s);
  }

  loadState(state: DeviceState): void {
    this.#s = structuredClone(state) as KbdState;
    this.#updateIrqs();
  }
}

/** The PC keyboard controller on ISA IRQ 1 and 12, with port 0x92 (`i8042`). */
export default {
  kind: "device",
  name: "i8042",
  summary: "i8042 PS/2 keyboard and mouse controller",
  bus: "ISA",
  category: "Input",
  userCreatable: false,
  options: [],
  create(machine: DeviceContext): I8042 {
    const m = machine;
    const isa = m.findService(ISA_BUS);
    const i8042 = new I8042("i8042", { kbd: isa?.irq(1) ?? null, aux: isa?.irq(12) ?? null }, {
      reset: () => m.requestReset(),
      setA20: (enabled) => m.setA20(enabled),
      a20: () => m.a20,
    }, m);
    m.provide(KEYBOARD, i8042); // the monitor's sendkey
    displayRegistry(m).addInputHandler((event) => i8042.input(event));
    return i8042;
  },
} satisfies DeviceDescriptor;
