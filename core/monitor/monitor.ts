// The Monitor: one machine's run state and command table, and the HMP and QMP sessions on it

import { errorChainMessage } from "../errors.ts";
import { LineEditor } from "./readline.ts";
import type { Machine } from "../machine.ts";
import { addBuiltinCommands } from "./builtins.ts";
import { watchBalloon } from "./balloon.ts";
import {
  checkQmpArgs,
  CommandTable,
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

  systemReset(): void {
    this.#hostReason = "host-qmp-system-reset";
    this.machine.requestReset();
  }

  quit(): void {
    if (this.#quitting) return;
    this.#quitting = true;
    this.emit("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
    this.machine.requestExit(0);
    this.host.quit();
  }

  emit(event: string, data?: Record<string, unknown>): void {
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
    const handle = async (text: string) => {
      let request: unknown;
      try {
        request = JSON.parse(text);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
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
        for (const text of parser.push(data)) queue = queue.then(() => handle(text));
      },
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
      const name = r.execute ?? r["exec-oob"];
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

type QmpListener = (event: Record<string, unknown>) => void;

/**
 * Splits a byte stream into top-level JSON texts (QEMU's JSON lexer does this too: a
 * request may span lines, or several share one). A text past 1 MiB is refused.
 */
export class JsonStreamSplitter {
  #decoder = new TextDecoder();
  #buf = "";
  #depth = 0;
  #inString = false;
  #escape = false;
  #scanned = 0;

  /** Adds bytes; returns the complete texts they finished. */
  push(data: Uint8Array): string[] {
    this.#buf += this.#decoder.decode(data, { stream: true });
    const out: string[] = [];
    let start = 0;
    for (let i = this.#scanned; i < this.#buf.length; i++) {
      const ch = this.#buf[i];
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (ch === "\\") this.#escape = true;
        else if (ch === '"') this.#inString = false;
        continue;
      }
      if (ch === '"') this.#inString = true;
      else if (ch === "{" || ch === "[") this.#depth++;
      else if (ch === "}" || ch === "]") {
        this.#depth--;
        if (this.#depth <= 0) {
          this.#depth = 0;
          out.push(this.#buf.slice(start, i + 1).trim());
          start = i + 1;
        }
      } else if (this.#depth === 0 && (ch === "\n" || ch === "\r")) {
        const text = this.#buf.slice(start, i).trim();
        if (text) out.push(text);
        start = i + 1;
      }
    }
    this.#buf = this.#buf.slice(start);
    this.#scanned = this.#buf.length;
    if (this.#buf.length > 1 << 20) {
      this.#buf = "";
      this.#scanned = 0;
      this.#depth = 0;
      this.#inString = false;
      out.push("<input too long>");
    }
    return out;
  }
}
