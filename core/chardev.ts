// Character device backends (stdio, file, null, in-memory) that serial ports and consoles talk to

import { UsageError } from "./errors.ts";
import { hostIoError } from "./errors.ts";

/** The device side of a chardev (a UART): told when input bytes are waiting. */
export interface ChardevFrontend {
  /** Input arrived; pull it with {@linkcode Chardev.readInput} while there is room. */
  inputAvailable(): void;
}

/**
 * A character device backend. Output is synchronous (a guest's port write must not
 * wait); input is buffered in the backend and pulled by the frontend, so a UART with a
 * full FIFO simply leaves bytes queued.
 */
export interface Chardev {
  /** The chardev id (`serial0`, `char0`). */
  readonly id: string;
  /** Sends guest output to the backend. */
  write(data: Uint8Array): void;
  /** Connects the frontend that consumes input; one frontend per chardev. */
  connect(frontend: ChardevFrontend | null): void;
  /** Input bytes waiting. */
  readonly pendingInput: number;
  /** Takes up to `max` waiting input bytes. */
  readInput(max: number): Uint8Array;
  /** Releases host resources (restores the terminal mode). */
  close(): Promise<void>;
}

/** Shared input queue and frontend handling for the backends below. */
abstract class ChardevBase implements Chardev {
  #frontend: ChardevFrontend | null = null;
  #input: number[] = [];

  constructor(readonly id: string) {}

  abstract write(data: Uint8Array): void;

  connect(frontend: ChardevFrontend | null): void {
    this.#frontend = frontend;
    if (frontend && this.#input.length > 0) frontend.inputAvailable();
  }

  get pendingInput(): number {
    return this.#input.length;
  }

  readInput(max: number): Uint8Array {
    const n = Math.min(max, this.#input.length);
    return Uint8Array.from(this.#input.splice(0, n));
  }

  /** Queues host input for the frontend. */
  protected pushInput(data: Uint8Array): void {
    for (const b of data) this.#input.push(b);
    if (data.length > 0) this.#frontend?.inputAvailable();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * An in-memory chardev: output is collected, input is injected by the caller. Tests
 * use it to watch a guest's serial console.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryChardev } from "./chardev.ts";
 *
 * const dev = new MemoryChardev("serial0");
 * dev.write(new TextEncoder().encode("SeaBIOS"));
 * assert.equal(dev.text(), "SeaBIOS");
 * dev.input("x");
 * assert.deepEqual(dev.readInput(8), new Uint8Array([0x78]));
 * ```
 */
export class MemoryChardev extends ChardevBase {
  #chunks: Uint8Array[] = [];
  #length = 0;
  #listeners: ((text: string) => void)[] = [];

  /** Every byte written so far. */
  get output(): Uint8Array {
    if (this.#chunks.length !== 1) {
      const all = new Uint8Array(this.#length);
      let at = 0;
      for (const c of this.#chunks) {
        all.set(c, at);
        at += c.length;
      }
      this.#chunks = [all];
    }
    return this.#chunks[0] ?? new Uint8Array(0);
  }

  /** The output decoded as text (Latin-1, so every byte shows). */
  text(): string {
    let s = "";
    for (const b of this.output) s += String.fromCharCode(b);
    return s;
  }

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push(data.slice());
    this.#length += data.length;
    if (this.#listeners.length > 0) {
      const text = this.text();
      for (const l of this.#listeners) l(text);
    }
  }

  /** Calls `listener` with the whole output text after every write. */
  onOutput(listener: (text: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Injects input as if typed (a string is sent as Latin-1 bytes). */
  input(data: string | Uint8Array): void {
    const bytes = typeof data === "string"
      ? Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)
      : data;
    this.pushInput(bytes);
  }

  /** Forgets the output collected so far. */
  clear(): void {
    this.#chunks = [];
    this.#length = 0;
  }
}

/** A chardev that drops output and never has input (`-serial null`). */
export class NullChardev extends ChardevBase {
  write(_data: Uint8Array): void {}
}

/** A chardev that writes output to a host file and has no input (`-serial file:out.txt`). */
export class FileChardev extends ChardevBase {
  #file: Deno.FsFile | null;

  /** Opens (creates, truncates) `path` for writing, as QEMU's file backend does. */
  constructor(id: string, readonly path: string, options: { append?: boolean } = {}) {
    super(id);
    try {
      this.#file = Deno.openSync(path, {
        write: true,
        create: true,
        truncate: !options.append,
        append: options.append,
      });
    } catch (error) {
      throw hostIoError(error, `Could not open '${path}'`);
    }
  }

  write(data: Uint8Array): void {
    if (!this.#file) return;
    let done = 0;
    while (done < data.length) done += this.#file.writeSync(data.subarray(done));
  }

  override close(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    return Promise.resolve();
  }
}

/** Options of {@linkcode StdioChardev}. */
export interface StdioChardevOptions {
  /** Put a terminal stdin in raw mode (default: true when stdin is a terminal). */
  raw?: boolean;
  /**
   * Called for the key after Ctrl-A (QEMU's escape: `x` exits, `c` switches to the
   * monitor). Return true when handled; otherwise both bytes go to the guest. Ctrl-A
   * twice sends one Ctrl-A. Without a handler Ctrl-A is an ordinary byte.
   */
  onEscape?: (key: number) => boolean;
  /** Stdin and stdout replacements (for tests). */
  stdin?: ReadableStream<Uint8Array>;
  stdout?: { writeSync(data: Uint8Array): number };
}

const CTRL_A = 0x01;

/**
 * The host's stdin and stdout (`-serial stdio`, `-nographic`). A terminal is put in
 * raw mode so every key reaches the guest, and restored by {@linkcode close}.
 */
export class StdioChardev extends ChardevBase {
  #raw = false;
  #escapePending = false;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #stdout: { writeSync(data: Uint8Array): number };
  #onEscape?: (key: number) => boolean;
  #closed = false;

  constructor(id: string, options: StdioChardevOptions = {}) {
    super(id);
    this.#stdout = options.stdout ?? Deno.stdout;
    this.#onEscape = options.onEscape;
    const isTty = options.stdin === undefined && Deno.stdin.isTerminal();
    if ((options.raw ?? isTty) && isTty) {
      Deno.stdin.setRaw(true);
      this.#raw = true;
    }
    const stream = options.stdin ?? Deno.stdin.readable;
    this.#reader = stream.getReader();
    this.#pump();
  }

  /** True when the terminal was put in raw mode. */
  get raw(): boolean {
    return this.#raw;
  }

  async #pump(): Promise<void> {
    const reader = this.#reader!;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.#closed) return;
        this.#input(value);
      }
    } catch {
      // stdin closed under us: no more input.
    }
  }

  #input(data: Uint8Array): void {
    if (!this.#onEscape) {
      this.pushInput(data);
      return;
    }
    const out: number[] = [];
    for (const b of data) {
      if (this.#escapePending) {
        this.#escapePending = false;
        if (b === CTRL_A) out.push(CTRL_A);
        else if (!this.#onEscape(b)) out.push(CTRL_A, b);
      } else if (b === CTRL_A) {
        this.#escapePending = true;
      } else {
        out.push(b);
      }
    }
    this.pushInput(Uint8Array.from(out));
  }

  write(data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += this.#stdout.writeSync(data.subarray(done));
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#raw) {
      Deno.stdin.setRaw(false);
      this.#raw = false;
    }
    try {
      await this.#reader?.cancel();
    } catch {
      // already closed
    }
    this.#reader?.releaseLock();
    this.#reader = null;
  }
}

/** Options of {@linkcode openChardev}. */
export interface OpenChardevOptions extends StdioChardevOptions {}

/**
 * Opens a chardev from a `-serial` / `-debugcon` style spec: `stdio`, `null`,
 * `file:PATH`, `mon:stdio` (stdio; the monitor mux is the CLI's), or `none` (null).
 */
export function openChardev(id: string, spec: string, options: OpenChardevOptions = {}): Chardev {
  if (spec === "stdio" || spec === "mon:stdio") return new StdioChardev(id, options);
  if (spec === "null" || spec === "none") return new NullChardev(id);
  if (spec.startsWith("file:")) return new FileChardev(id, spec.slice(5));
  throw new UsageError(`'${spec.split(":")[0]}' is not a valid char driver`);
}
