// The Monitor: one machine's run state and command table, and the HMP and QMP sessions on it

import { errorChainMessage } from "../errors.ts";
import { LineEditor } from "./readline.ts";
import type { Machine } from "../machine.ts";
import { addBuiltinCommands } from "./builtins.ts";
import { watchBalloon } from "./balloon.ts";
import {
  checkQmpArgs,
  CommandTable,
  extraneous,
  monitorCommands,
  type MonitorContext,
  MonitorError,
  type MonitorHost,
} from "./commands.ts";

/** Where a session writes: a socket, stdio, the multiplexer. */
export interface MonitorOutput {
  write(text: string): void;
  /** Closes the connection (after quit). */
  close?(): void;
}

/** One connected client: it is given the bytes it sent. */
export interface MonitorSession {
  receive(data: Uint8Array): void;
  /** Settles once the commands received so far have been answered. */
  idle(): Promise<void>;
  /** The client went away. */
  detach(): void;
}

/**
 * The monitors of one machine: tracks the run state (`running`, `paused`, `shutdown`),
 * carries out stop, cont, reset and quit, and sends QMP events to every QMP session.
 *
 * @example
 * ```ts ignore
 * const monitor = new Monitor(machine, host);
 * const session = monitor.attachQmp({ write: (text) => socket.write(text) });
 * session.receive(new TextEncoder().encode('{"execute": "qmp_capabilities"}\n'));
 * ```
 */
export class Monitor implements MonitorContext {
  readonly machine: Machine;
  readonly host: MonitorHost;
  readonly table: CommandTable;
  #status = "running";
  #qmpSessions = new Set<QmpListener>();
  #hostReason: string | null = null;
  #quitting = false;
  /** Resets asked for by a command, settled at the next run event. */
  #afterRunEvent: (() => void)[] = [];
  #throttled = new Map<string, { data?: Record<string, unknown>; pending: boolean }>();

  constructor(machine: Machine, host: MonitorHost, options: { startPaused?: boolean } = {}) {
    this.machine = machine;
    this.host = host;
    this.table = monitorCommands(machine);
    const own = new CommandTable();
    addBuiltinCommands(own);
    // Built-ins first; commands plugins added already keep their place over them.
    for (const c of own.qmpCommands()) if (!this.table.qmp(c.name)) this.table.addQmp(c);
    for (const c of own.hmpCommands()) {
      if (!this.table.hmp(c.name.split("|")[0])) this.table.addHmp(c);
    }
    for (const c of own.infoCommands()) {
      if (!this.table.info(c.name.split("|")[0])) this.table.addInfo(c);
    }
    if (options.startPaused) {
      machine.pause();
      this.#status = "prelaunch";
    }
    watchBalloon(machine, (event, data) => this.emit(event, data));
    machine.onRunEvent((event) => {
      for (const settle of this.#afterRunEvent.splice(0)) settle();
      if (event === "reset") {
        const reason = this.#hostReason ?? "guest-reset";
        this.#hostReason = null;
        this.emit("RESET", { guest: reason === "guest-reset", reason });
      } else if (event === "shutdown") {
        this.#status = "shutdown";
        this.emit("SHUTDOWN", { guest: true, reason: "guest-shutdown" });
      }
    });
  }

  /** `running`, `paused`, `prelaunch` (-S) or `shutdown`. */
  get status(): string {
    return this.#status;
  }

  stop(): void {
    if (this.#status !== "running") return;
    this.machine.pause();
    this.#status = "paused";
    this.emit("STOP");
  }

  cont(): void {
    if (this.#status === "running") return;
    if (this.#status === "shutdown") {
      throw new MonitorError("GenericError", "Resetting the Virtual Machine is required");
    }
    this.#status = "running";
    this.emit("RESUME");
    this.machine.resume();
  }

  /**
   * Requests a system reset and, while the machine's run is active, settles once it has
   * been carried out: as in QEMU, whose main loop resets before the monitor reads its
   * next command, the RESET event comes before this command's answer and before
   * anything a later command does (a quit right after a reset).
   */
  async systemReset(): Promise<void> {
    this.#hostReason = "host-qmp-system-reset";
    if (!this.machine.runActive) {
      this.machine.requestReset();
      return;
    }
    const done = new Promise<void>((resolve) => this.#afterRunEvent.push(resolve));
    this.machine.requestReset();
    // (A guard: the run ends some other way without a run event, or never comes round.)
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise((r) => (timer = setTimeout(r, RESET_WAIT_MS)))]);
    clearTimeout(timer);
  }

  quit(): void {
    if (this.#quitting) return;
    this.#quitting = true;
    this.emit("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
    this.machine.requestExit(0);
    this.host.quit();
  }

  emit(event: string, data?: Record<string, unknown>): void {
    const rate = THROTTLED_EVENTS_MS[event];
    if (rate !== undefined) {
      // QEMU's monitor_qapi_event_queue: the first goes out, later ones within the
      // period wait, and only the newest of them is sent when the period ends.
      const held = this.#throttled.get(event);
      if (held) {
        held.data = data;
        held.pending = true;
        return;
      }
      const slot = { data, pending: false };
      this.#throttled.set(event, slot);
      const tick = () => {
        if (!slot.pending) {
          this.#throttled.delete(event);
          return;
        }
        slot.pending = false;
        this.#send(event, slot.data);
        Deno.unrefTimer(setTimeout(tick, rate));
      };
      Deno.unrefTimer(setTimeout(tick, rate));
    }
    this.#send(event, data);
  }

  #send(event: string, data?: Record<string, unknown>): void {
    const now = Date.now();
    const message: Record<string, unknown> = {
      timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 },
      event,
    };
    if (data) message.data = data;
    for (const s of this.#qmpSessions) s(message);
  }

  async hmp(line: string): Promise<string> {
    const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
    if (words.length === 0) return "";
    const command = this.table.hmp(words[0]);
    if (!command) return `unknown command: '${words[0]}'\n`;
    if (command.params === "" && words.length > 1) return extraneous(command.name, words[0]);
    try {
      return await command.run(this, words.slice(1));
    } catch (e) {
      if (e instanceof MonitorError) return `${e.message}\n`;
      return `Error: ${errorChainMessage(e)}\n`;
    }
  }

  /** Starts a human monitor session: prints the banner and the prompt. */
  attachHmp(out: MonitorOutput): MonitorSession {
    const v = this.host.version;
    out.write(
      `QEMU ${v.major}.${v.minor}.${v.micro} monitor - type 'help' for more information\r\n(qemu) `,
    );
    const decoder = new TextDecoder();
    const editor = new LineEditor((text) => out.write(text));
    let queue = Promise.resolve();
    return {
      receive: (data) => {
        for (const line of editor.feed(decoder.decode(data, { stream: true }))) {
          queue = queue.then(async () => {
            const text = await this.hmp(line);
            // After quit the connection closes without a new prompt, as in QEMU.
            out.write(text.replace(/\r?\n/g, "\r\n") + (this.#quitting ? "" : "(qemu) "));
          });
        }
      },
      idle: () => queue,
      detach: () => {},
    };
  }

  /** Starts a QMP session: sends the greeting, then answers one JSON object per request. */
  attachQmp(out: MonitorOutput): MonitorSession {
    const v = this.host.version;
    const send = (value: unknown) =>
      out.write(JSON.stringify(value).replace(/([,:])(?=["{[\d-tfn])/g, "$1 ") + "\r\n");
    send({
      QMP: {
        version: { qemu: { micro: v.micro, minor: v.minor, major: v.major }, package: v.package },
        capabilities: ["oob"],
      },
    });
    let negotiated = false;
    const listener: QmpListener = (event) => {
      if (negotiated) send(event);
    };
    const parser = new JsonStreamSplitter();
    let queue = Promise.resolve();
    const handle = async (item: SplitResult) => {
      if ("error" in item) {
        send({ error: { class: "GenericError", desc: item.error } });
        return;
      }
      let request: unknown;
      try {
        request = JSON.parse(item.text);
      } catch (e) {
        // A bare word is what QEMU's lexer calls an invalid keyword.
        const why = /^[A-Za-z_]\w*$/.test(item.text)
          ? `invalid keyword '${item.text}'`
          : e instanceof Error
          ? e.message
          : String(e);
        send({ error: { class: "GenericError", desc: `JSON parse error, ${why}` } });
        return;
      }
      const reply = await this.#execute(request, negotiated, () => {
        negotiated = true;
      });
      send(reply);
    };
    this.#qmpSessions.add(listener);
    return {
      receive: (data) => {
        for (const item of parser.push(data)) queue = queue.then(() => handle(item));
      },
      idle: () => queue,
      detach: () => {
        this.#qmpSessions.delete(listener);
      },
    };
  }

  async #execute(
    request: unknown,
    negotiated: boolean,
    negotiate: () => void,
  ): Promise<Record<string, unknown>> {
    const withId = (reply: Record<string, unknown>) => {
      if (request && typeof request === "object" && "id" in request) {
        reply.id = (request as Record<string, unknown>).id;
      }
      return reply;
    };
    try {
      if (!request || typeof request !== "object" || Array.isArray(request)) {
        throw new MonitorError("GenericError", "QMP input must be a JSON object");
      }
      const r = request as Record<string, unknown>;
      // QEMU's qmp_dispatch_check_obj, in its order (out-of-band execution is not offered).
      for (const [key, value] of Object.entries(r)) {
        if (key === "execute") {
          if (typeof value !== "string") {
            throw new MonitorError("GenericError", "QMP input member 'execute' must be a string");
          }
        } else if (key === "arguments") {
          if (!value || typeof value !== "object" || Array.isArray(value)) {
            throw new MonitorError(
              "GenericError",
              "QMP input member 'arguments' must be an object",
            );
          }
        } else if (key !== "id") {
          throw new MonitorError("GenericError", `QMP input member '${key}' is unexpected`);
        }
      }
      const name = r.execute;
      if (typeof name !== "string") {
        throw new MonitorError("GenericError", "QMP input lacks member 'execute'");
      }
      if (name === "qmp_capabilities") {
        if (negotiated) {
          throw new MonitorError(
            "CommandNotFound",
            "Capabilities negotiation is already complete, command ignored",
          );
        }
        negotiate();
        return withId({ return: {} });
      }
      if (!negotiated) {
        throw new MonitorError(
          "CommandNotFound",
          "Expecting capabilities negotiation with 'qmp_capabilities'",
        );
      }
      const command = this.table.qmp(name);
      if (!command) {
        throw new MonitorError("CommandNotFound", `The command ${name} has not been found`);
      }
      const args = checkQmpArgs(command, r.arguments);
      const result = await command.run(this, args);
      return withId({ return: result ?? {} });
    } catch (e) {
      const error = e instanceof MonitorError
        ? { class: e.errorClass, desc: e.message }
        : { class: "GenericError", desc: errorChainMessage(e) };
      return withId({ error });
    }
  }
}

/** The longest a `system_reset` waits for the machine to carry it out. */
const RESET_WAIT_MS = 5000;

/** Events QEMU sends at most once per period (ms), the newest winning (monitor/monitor.c). */
const THROTTLED_EVENTS_MS: Readonly<Record<string, number>> = { BALLOON_CHANGE: 1000 };

type QmpListener = (event: Record<string, unknown>) => void;

/** The most bytes one QMP request may take (QEMU's limit is per token, 64 MiB). */
export const QMP_MAX_REQUEST_BYTES = 1 << 20;
/** The deepest nesting a QMP request may have (QEMU's json-streamer MAX_NESTING). */
export const QMP_MAX_NESTING = 1024;

/** One request the splitter found: its text, or why it was refused. */
export type SplitResult = { text: string } | { error: string };

const QUOTE = 0x22, BACKSLASH = 0x5c, LF = 0x0a, CR = 0x0d;
const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;

/**
 * Splits a byte stream into top-level JSON texts (QEMU's JSON lexer does this too: a
 * request may span lines, or several share one). It scans bytes, which UTF-8 allows:
 * the bytes it looks for never occur inside a multi-byte character. A request that
 * grows past {@linkcode QMP_MAX_REQUEST_BYTES} or nests deeper than
 * {@linkcode QMP_MAX_NESTING} is refused once and the rest of it skipped without being
 * kept; a request that is not UTF-8 is refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonStreamSplitter } from "./monitor.ts";
 *
 * const s = new JsonStreamSplitter();
 * const enc = new TextEncoder();
 * assert.deepEqual(s.push(enc.encode('{"execute": "a"}{"exe')), [{ text: '{"execute": "a"}' }]);
 * assert.deepEqual(s.push(enc.encode('cute": "b"}')), [{ text: '{"execute": "b"}' }]);
 * ```
 */
export class JsonStreamSplitter {
  #decoder = new TextDecoder("utf-8", { fatal: true });
  #buf = new Uint8Array(4096);
  #len = 0;
  #depth = 0;
  #inString = false;
  #escape = false;
  /** Skipping the rest of a refused request (its bytes are not kept). */
  #skipping = false;

  /** Adds bytes; returns the requests they finished. */
  push(data: Uint8Array): SplitResult[] {
    const out: SplitResult[] = [];
    for (let i = 0; i < data.length; i++) {
      const b = data[i];
      if (!this.#skipping) this.#keep(b);
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (b === BACKSLASH) this.#escape = true;
        else if (b === QUOTE) this.#inString = false;
      } else if (b === QUOTE) {
        this.#inString = true;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        this.#depth++;
        if (this.#depth > QMP_MAX_NESTING && !this.#skipping) {
          this.#refuse(out, "JSON nesting depth limit exceeded");
        }
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        this.#depth = Math.max(0, this.#depth - 1);
        if (this.#depth === 0) this.#finish(out);
      } else if (this.#depth === 0 && (b === LF || b === CR)) {
        this.#finish(out);
      }
      if (!this.#skipping && this.#len > QMP_MAX_REQUEST_BYTES) {
        this.#refuse(out, `JSON parse error, request longer than ${QMP_MAX_REQUEST_BYTES} bytes`);
      }
    }
    return out;
  }

  #keep(b: number): void {
    if (this.#len === this.#buf.length) {
      const grown = new Uint8Array(this.#buf.length * 2);
      grown.set(this.#buf);
      this.#buf = grown;
    }
    this.#buf[this.#len++] = b;
  }

  #refuse(out: SplitResult[], why: string): void {
    out.push({ error: why });
    this.#skipping = true;
    this.#len = 0;
    if (this.#buf.length > 4096) this.#buf = new Uint8Array(4096);
    // A refused line of junk outside any object ends at its newline.
    if (this.#depth === 0 && !this.#inString) this.#skipping = false;
  }

  #finish(out: SplitResult[]): void {
    if (this.#skipping) {
      this.#skipping = false;
      this.#len = 0;
      return;
    }
    const bytes = this.#buf.subarray(0, this.#len);
    this.#len = 0;
    let text: string;
    try {
      text = this.#decoder.decode(bytes).trim();
    } catch {
      out.push({ error: "JSON parse error, invalid UTF-8 sequence" });
      return;
    }
    if (text) out.push({ text });
    if (this.#buf.length > 4096) this.#buf = new Uint8Array(4096);
  }
}
