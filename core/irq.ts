// Interrupt request lines: a device drives a level, an interrupt controller listens

/** Receives the level changes of one line (an interrupt controller's input pin). */
export type IrqHandler = (level: boolean) => void;

/**
 * One interrupt request line. A device holds the line and drives its level; the
 * controller input it is wired to is called on every change of level. Whether a
 * controller reacts to the edge or to the level is the controller's business
 * (the i8259 in edge mode latches a rising edge, in level mode follows the level).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine } from "./irq.ts";
 *
 * const seen: boolean[] = [];
 * const line = new IrqLine("uart", (level) => seen.push(level));
 * line.raise();
 * line.raise(); // no change, no call
 * line.lower();
 * line.pulse();
 * assert.deepEqual(seen, [true, false, true, false]);
 * ```
 */
export class IrqLine {
  #level = false;
  #handler: IrqHandler;

  /**
   * @param name what the line is, for debugging (`isa-irq4`)
   * @param handler the controller input; a line with no handler goes nowhere
   */
  constructor(readonly name: string, handler: IrqHandler = () => {}) {
    this.#handler = handler;
  }

  /** The level the device drives now. */
  get level(): boolean {
    return this.#level;
  }

  /** Drives the line to `level`; the handler sees only changes. */
  set(level: boolean): void {
    if (level === this.#level) return;
    this.#level = level;
    this.#handler(level);
  }

  /**
   * Sets the level a saved state recorded without calling the handler (loadvm): the
   * receiving controller restores its own view of the line from its own state.
   */
  restoreLevel(level: boolean): void {
    this.#level = level;
  }

  /** Drives the line high. */
  raise(): void {
    this.set(true);
  }

  /** Drives the line low. */
  lower(): void {
    this.set(false);
  }

  /** A rising then a falling edge (what an edge-triggered source such as the PIT's OUT0 does). */
  pulse(): void {
    this.set(true);
    this.set(false);
  }

  /** Rewires the line to another controller input, re-sending the current level. */
  connect(handler: IrqHandler): void {
    this.#handler = handler;
    if (this.#level) handler(true);
  }
}

/** A device that has numbered interrupt inputs (a PIC, an IOAPIC). */
export interface IrqController {
  /** Sets the level of input `pin`. */
  setIrq(pin: number, level: boolean): void;
}

/**
 * Fans one source out to several controller inputs, as ISA IRQ lines of a PC reach
 * both the i8259 and the IOAPIC.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine, fanOut } from "./irq.ts";
 *
 * const a: boolean[] = [];
 * const b: boolean[] = [];
 * const line = new IrqLine("irq4", fanOut((l) => a.push(l), (l) => b.push(l)));
 * line.raise();
 * assert.deepEqual([a, b], [[true], [true]]);
 * ```
 */
export function fanOut(...handlers: IrqHandler[]): IrqHandler {
  return (level) => {
    for (const h of handlers) h(level);
  };
}

/**
 * Makes the lines `0..count-1` of a controller, each named `${prefix}${n}`.
 *
 * @returns an array where entry `n` drives `controller.setIrq(n, level)`
 */
export function controllerLines(
  prefix: string,
  count: number,
  controller: IrqController,
): IrqLine[] {
  const lines: IrqLine[] = [];
  for (let n = 0; n < count; n++) {
    lines.push(new IrqLine(`${prefix}${n}`, (level) => controller.setIrq(n, level)));
  }
  return lines;
}
