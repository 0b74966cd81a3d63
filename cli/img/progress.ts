// The `-p` progress bar: redrawn in place on a terminal, as qemu-img's "(NN.NN/100%)"

import { writeOut } from "../output.ts";

/** Prints `    (12.34/100%)` and redraws it as work advances, at most every 1%. */
export class Progress {
  #lastShown = -1;
  readonly #tty: boolean;

  constructor() {
    this.#tty = Deno.stdout.isTerminal();
    this.#show(0);
  }

  /** Reports `done` of `total` units. */
  update(done: number, total: number): void {
    const pct = total > 0 ? Math.min(100, (done * 100) / total) : 100;
    if (pct - this.#lastShown >= 1 || pct === 100) this.#show(pct);
  }

  /** Shows 100% and ends the line. */
  finish(): void {
    this.#show(100);
    writeOut("\n");
  }

  #show(pct: number): void {
    if (pct === this.#lastShown) return;
    this.#lastShown = pct;
    // On a terminal the bar is redrawn in place; elsewhere each step is its own line.
    writeOut(`${this.#tty ? "\r" : ""}    (${pct.toFixed(2)}/100%)${this.#tty ? "" : "\n"}`);
  }
}
