// A vmkit run for the monitor's Linux tests: the serial console on piped stdio, HMP and
// QMP clients on unix sockets

import * as path from "node:path";
import { MAIN } from "../test_util.ts";
import { INITRD, KERNEL } from "../boot/guest_util.ts";

/**
 * A {@linkcode Vm}'s arguments for the test Linux guest (Debian's i386 kernel and the test
 * initramfs) at a shell on its serial console (guest.shell=1): `-M pc -m MiB -display none
 * -serial stdio`, the kernel with `console=ttyS0 panic=-1 [quiet] guest.shell=1`, `-net
 * none`, then `devices`, and with `qmp` a QMP server on that unix socket. `quiet` keeps
 * kernel lines from coming between a typed command and its answer.
 */
export function shellGuestArgs(guest: {
  memMiB: number;
  quiet?: boolean;
  /** Another initramfs in place of the test one. */
  initrd?: string;
  noReboot?: boolean;
  devices?: readonly string[];
  qmp?: string;
}): string[] {
  return [
    "-M",
    "pc",
    "-m",
    String(guest.memMiB),
    "-display",
    "none",
    "-serial",
    "stdio",
    ...(guest.noReboot ? ["-no-reboot"] : []),
    "-kernel",
    KERNEL,
    "-initrd",
    guest.initrd ?? INITRD,
    "-append",
    `console=ttyS0 panic=-1${guest.quiet ? " quiet" : ""} guest.shell=1`,
    "-net",
    "none",
    ...(guest.devices ?? []),
    ...(guest.qmp === undefined ? [] : ["-qmp", `unix:${guest.qmp},server=on,wait=off`]),
  ];
}

/** A vmkit (or QEMU) run with its serial console on piped stdio and its HMP on a unix socket. */
export class Vm {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  text = "";
  #ended: Promise<void>;
  readonly monitorPath: string;

  /** `program` "qemu" runs real qemu-system-x86_64 on the same arguments. */
  constructor(args: string[], monitorPath: string, program: "vmkit" | "qemu" = "vmkit") {
    this.monitorPath = monitorPath;
    const vmkit = ["run", "-A", "--quiet", MAIN, "system-x86_64"];
    const child = new Deno.Command(program === "qemu" ? "qemu-system-x86_64" : Deno.execPath(), {
      args: [
        ...(program === "qemu" ? [] : vmkit),
        ...args,
        "-monitor",
        `unix:${monitorPath},server=on,wait=off`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const decoder = new TextDecoder();
    // VMKIT_BOOT_LOG_DIR=DIR: the console also goes to DIR/savevm-<pid>.log as it arrives.
    const logDir = Deno.env.get("VMKIT_BOOT_LOG_DIR");
    const log = logDir ? path.join(logDir, `savevm-${child.pid}.log`) : undefined;
    this.#ended = (async () => {
      for await (const chunk of child.stdout) {
        this.text += decoder.decode(chunk);
        if (log) await Deno.writeFile(log, chunk, { append: true });
      }
    })();
  }

  /** Waits until the console matches `re` after `from`; returns the match. */
  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.text.slice(from).match(re);
      if (m) return m;
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${re}; console tail:\n${this.text.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async type(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  /** Runs HMP lines on a fresh connection; returns what each printed. */
  async hmp(...lines: string[]): Promise<string[]> {
    const hmp = await HmpClient.connect(this.monitorPath);
    try {
      const out: string[] = [];
      for (const line of lines) out.push(await hmp.command(line));
      return out;
    } finally {
      hmp.close();
    }
  }

  async end(): Promise<{ code: number; stderr: string }> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 60_000);
    const status = await this.#child.status;
    clearTimeout(timer);
    await this.#ended;
    const stderr = await new Response(this.#child.stderr).text();
    return { code: status.code, stderr };
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}

/** An HMP connection on a unix socket (vmkit's or QEMU's): one command at a time, to its next prompt. */
export class HmpClient {
  #conn: Deno.UnixConn;
  #got = "";
  #buf = new Uint8Array(65536);
  #decoder = new TextDecoder();

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /**
   * Connects to the monitor at `socket`, retrying every 100 ms up to `attempts` times while
   * the emulator starts, and reads its greeting up to the first prompt.
   */
  static async connect(socket: string, attempts = 300): Promise<HmpClient> {
    let conn: Deno.UnixConn | undefined;
    for (let i = 0; !conn; i++) {
      try {
        conn = await Deno.connect({ transport: "unix", path: socket });
      } catch (e) {
        if (i > attempts) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const client = new HmpClient(conn);
    await client.#untilPrompt();
    return client;
  }

  async #untilPrompt(): Promise<void> {
    while (!this.#got.endsWith("(qemu) ")) {
      const n = await this.#conn.read(this.#buf);
      if (n === null) return;
      this.#got += this.#decoder.decode(this.#buf.subarray(0, n));
    }
  }

  /** Runs one line; returns what it printed (past the echo, LF line ends, no prompt). */
  async command(line: string): Promise<string> {
    this.#got = "";
    await this.#conn.write(new TextEncoder().encode(line + "\n"));
    await this.#untilPrompt();
    // Past the echo of the typed line (QEMU's readline redraws it, then CR LF).
    const reply = this.#got.slice(this.#got.indexOf("\n") + 1);
    return reply.replace(/\(qemu\) $/, "").replace(/\r\n/g, "\n");
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** A QMP client on a unix socket: negotiates, runs commands, keeps the events. */
export class QmpClient {
  readonly events: Record<string, unknown>[] = [];
  #conn: Deno.UnixConn;
  #buf = "";
  #replies: Record<string, unknown>[] = [];
  #reading: Promise<void>;
  /** Wakes an execute() waiting for its reply (set while one waits). */
  #changed: (() => void) | undefined;
  #closed = false;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#reading = this.#read();
  }

  static async connect(socket: string): Promise<QmpClient> {
    for (let i = 0;; i++) {
      try {
        const c = new QmpClient(await Deno.connect({ transport: "unix", path: socket }));
        await c.execute("qmp_capabilities");
        return c;
      } catch (e) {
        if (i > 600) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await this.#conn.read(buf).catch(() => null);
      if (n === null) {
        this.#closed = true;
        this.#changed?.();
        return;
      }
      this.#buf += decoder.decode(buf.subarray(0, n));
      let nl;
      while ((nl = this.#buf.indexOf("\n")) >= 0) {
        const line = this.#buf.slice(0, nl).trim();
        this.#buf = this.#buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if ("event" in msg) this.events.push(msg);
        else if ("return" in msg || "error" in msg) this.#replies.push(msg);
      }
      this.#changed?.();
    }
  }

  /**
   * Runs a command; its reply (`{return}` or `{error}`), as soon as it arrives (the QMP
   * latency benchmark times this). Throws when the connection closes first, or after 300 s.
   */
  async execute(name: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const want = this.#replies.length + 1;
    const request = args ? { execute: name, arguments: args } : { execute: name };
    await this.#conn.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const deadline = Date.now() + 300_000;
    while (this.#replies.length < want) {
      if (this.#closed) throw new Error(`no reply to ${name}: the connection closed`);
      if (Date.now() > deadline) throw new Error(`no reply to ${name}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        timer = setTimeout(resolve, 1000);
      });
      clearTimeout(timer);
      this.#changed = undefined;
    }
    return this.#replies[want - 1];
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}
