// The human monitor's line editor: echo, cursor movement, editing keys and history,
// redrawn with the same terminal sequences QEMU's readline sends

const ESC = "\x1b";
/** Lines kept in the history, as QEMU's READLINE_MAX_CMDS. */
export const READLINE_MAX_CMDS = 64;
/** The longest line (QEMU's READLINE_CMD_BUF_SIZE less its terminator). */
export const READLINE_MAX_LINE = 4095;

/**
 * Turns the bytes a client types into command lines, echoing as it goes: printable
 * characters insert at the cursor; Backspace, Delete, Ctrl-A/E/B/F/K/U/W and the arrow,
 * Home and End keys edit; Up and Down walk the history. After each key the line is
 * redrawn as QEMU does: the cursor goes back to the start (`ESC [D` per column), the
 * line is printed and the rest of the screen line erased (`ESC [K`), then the cursor
 * moves to its place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineEditor } from "./readline.ts";
 *
 * let screen = "";
 * const editor = new LineEditor((text) => (screen += text));
 * assert.deepEqual(editor.feed("in"), []);
 * assert.equal(screen, "i\x1b[K\x1b[Din\x1b[K");
 * assert.deepEqual(editor.feed("fo\r"), ["info"]);
 * ```
 */
export class LineEditor {
  #write: (text: string) => void;
  #buf = "";
  #cursor = 0;
  #shown = "";
  #shownCursor = 0;
  #history: string[] = [];
  /** Position in the history while walking it (history.length: the line being typed). */
  #historyIndex = 0;
  #escape: "" | "esc" | "csi" = "";
  #csiParam = "";
  #lastWasCr = false;

  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** Feeds typed text; returns the lines completed by Enter (the echo is written). */
  feed(text: string): string[] {
    const lines: string[] = [];
    for (const ch of text) {
      const line = this.#key(ch);
      if (line !== null) lines.push(line);
    }
    return lines;
  }

  /** Forgets what was shown (a new prompt was printed). */
  newPrompt(): void {
    this.#shown = "";
    this.#shownCursor = 0;
  }

  #key(ch: string): string | null {
    const code = ch.codePointAt(0)!;
    const wasCr = this.#lastWasCr;
    this.#lastWasCr = false;
    if (this.#escape === "esc") {
      this.#escape = ch === "[" || ch === "O" ? "csi" : "";
      this.#csiParam = "";
      return null;
    }
    if (this.#escape === "csi") {
      if (/[0-9;]/.test(ch)) {
        this.#csiParam += ch;
        return null;
      }
      this.#escape = "";
      this.#csiKey(ch, this.#csiParam);
      this.#update();
      return null;
    }
    switch (code) {
      case 0x1b:
        this.#escape = "esc";
        return null;
      case 0x0d:
        this.#lastWasCr = true;
        return this.#enter();
      case 0x0a:
        // CR LF is one Enter.
        return wasCr ? null : this.#enter();
      case 0x01: // Ctrl-A
        this.#cursor = 0;
        break;
      case 0x05: // Ctrl-E
        this.#cursor = this.#buf.length;
        break;
      case 0x02: // Ctrl-B
        if (this.#cursor > 0) this.#cursor--;
        break;
      case 0x06: // Ctrl-F
        if (this.#cursor < this.#buf.length) this.#cursor++;
        break;
      case 0x0b: // Ctrl-K: erase to the end
        this.#buf = this.#buf.slice(0, this.#cursor);
        break;
      case 0x15: // Ctrl-U: erase to the start
        this.#buf = this.#buf.slice(this.#cursor);
        this.#cursor = 0;
        break;
      case 0x17: { // Ctrl-W: erase the word before the cursor
        let start = this.#cursor;
        while (start > 0 && this.#buf[start - 1] === " ") start--;
        while (start > 0 && this.#buf[start - 1] !== " ") start--;
        this.#buf = this.#buf.slice(0, start) + this.#buf.slice(this.#cursor);
        this.#cursor = start;
        break;
      }
      case 0x08:
      case 0x7f: // Backspace
        if (this.#cursor > 0) {
          this.#buf = this.#buf.slice(0, this.#cursor - 1) + this.#buf.slice(this.#cursor);
          this.#cursor--;
        }
        break;
      default:
        if (code < 0x20) return null;
        if (this.#buf.length >= READLINE_MAX_LINE) return null;
        this.#buf = this.#buf.slice(0, this.#cursor) + ch + this.#buf.slice(this.#cursor);
        this.#cursor += ch.length;
    }
    this.#update();
    return null;
  }

  #csiKey(final: string, param: string): void {
    switch (final) {
      case "A":
        return this.#walkHistory(-1);
      case "B":
        return this.#walkHistory(1);
      case "C":
        if (this.#cursor < this.#buf.length) this.#cursor++;
        return;
      case "D":
        if (this.#cursor > 0) this.#cursor--;
        return;
      case "H":
        this.#cursor = 0;
        return;
      case "F":
        this.#cursor = this.#buf.length;
        return;
      case "~":
        if (param === "1" || param === "7") this.#cursor = 0;
        else if (param === "4" || param === "8") this.#cursor = this.#buf.length;
        else if (param === "3" && this.#cursor < this.#buf.length) {
          this.#buf = this.#buf.slice(0, this.#cursor) + this.#buf.slice(this.#cursor + 1);
        }
    }
  }

  #walkHistory(step: number): void {
    const next = this.#historyIndex + step;
    if (next < 0 || next > this.#history.length) return;
    this.#historyIndex = next;
    this.#buf = next === this.#history.length ? "" : this.#history[next];
    this.#cursor = this.#buf.length;
  }

  #enter(): string {
    const line = this.#buf;
    if (line.length > 0 && this.#history.at(-1) !== line) {
      this.#history.push(line);
      if (this.#history.length > READLINE_MAX_CMDS) this.#history.shift();
    }
    this.#historyIndex = this.#history.length;
    this.#buf = "";
    this.#cursor = 0;
    this.#write("\r\n");
    this.newPrompt();
    return line;
  }

  // Redraws what changed since the last update.
  #update(): void {
    let out = "";
    if (this.#buf !== this.#shown) {
      out += `${ESC}[D`.repeat(this.#shownCursor) + this.#buf + `${ESC}[K`;
      this.#shown = this.#buf;
      this.#shownCursor = this.#buf.length;
    }
    if (this.#cursor !== this.#shownCursor) {
      const delta = this.#cursor - this.#shownCursor;
      out += (delta > 0 ? `${ESC}[C` : `${ESC}[D`).repeat(Math.abs(delta));
      this.#shownCursor = this.#cursor;
    }
    if (out) this.#write(out);
  }
}
