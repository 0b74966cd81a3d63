// The VNC server: RFB 3.3/3.7/3.8 (RFC 6143) over a machine's display, several clients at once, none able to stall the guest

import { type DisplayRegistry, DisplaySurface, type InputEvent } from "../../../core/display.ts";
import { loadZlib } from "../../../core/zlib.ts";
import { RfbConnection } from "./rfb_connection.ts";

export {
  ENCODING_COPYRECT,
  ENCODING_DESKTOP_SIZE,
  ENCODING_QEMU_EXTENDED_KEY_EVENT,
  ENCODING_RAW,
  ENCODING_TIGHT,
  ENCODING_ZRLE,
  MAX_CUT_TEXT_BYTES,
  MAX_QUEUED_BYTES,
} from "./rfb_connection.ts";
export { tileRects } from "./rfb_changes.ts";

/** Connections served at once; more are closed at once (each holds a copy of the screen). */
export const MAX_CLIENTS = 16;
/**
 * How often the screen is looked at for changes while a client is connected: QEMU's
 * 30 ms, growing by 50 ms each look that finds nothing up to 1 s, and back to 30 ms on a
 * change or client input (QEMU's VNC_REFRESH_INTERVAL_BASE/INC; its maximum is 3 s).
 */
export const REFRESH_INTERVAL_MS = 30;
export const REFRESH_INTERVAL_INC_MS = 50;
export const REFRESH_INTERVAL_MAX_MS = 1000;

/** Who may keep a connection when another connects (`share=`), as QEMU names the policies. */
export type SharePolicy = "allow-exclusive" | "force-shared" | "ignore";

/** What a VNC server serves. */
export interface RfbServerOptions {
  /** The desktop name clients show: QEMU's "QEMU" or "QEMU (<-name>)". */
  name: string;
  share?: SharePolicy;
  /** The screen-change check period (tests and benches shorten it). */
  refreshMs?: number;
  /**
   * `password=on`: clients must pass VNC Authentication with the password the monitor
   * sets; until one is set, nobody gets in (as in QEMU).
   */
  passwordRequired?: boolean;
}

/** Counters a test or bench reads. */
export interface RfbStats {
  connections: number;
  updates: number;
  rects: number;
  bytesSent: number;
  /** Connections closed for a protocol violation. */
  rejected: number;
}

/** The bytes a connection has sent that are not yet parsed. */

export class RfbServer {
  readonly name: string;
  readonly stats: RfbStats = { connections: 0, updates: 0, rects: 0, bytesSent: 0, rejected: 0 };
  readonly #display: DisplayRegistry | undefined;
  readonly #share: SharePolicy;
  readonly #refreshMs: number;
  readonly #clients = new Set<RfbConnection>();
  /** True when clients must authenticate (`password=on`). */
  readonly passwordRequired: boolean;
  /** The VNC password (`change-vnc-password`, `set_password`); null: none set. */
  password: string | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #intervalMs: number;
  #lastRefresh = -Infinity;
  #wakeQueued = false;
  /** Screen looks taken (a test reads it to see requests do not force renders). */
  refreshes = 0;
  #blank = new DisplaySurface(640, 480);
  #width = 0;
  #height = 0;
  /** The console the clients were last sent (a switch redraws them all). */
  #shown = 0;

  constructor(display: DisplayRegistry | undefined, options: RfbServerOptions) {
    this.#display = display;
    this.name = options.name;
    this.#share = options.share ?? "allow-exclusive";
    this.passwordRequired = options.passwordRequired ?? false;
    this.#refreshMs = options.refreshMs ?? REFRESH_INTERVAL_MS;
    this.#intervalMs = this.#refreshMs;
  }

  /**
   * Sets the password clients authenticate with; false on a server started without
   * `password=on`, which stays open to all (QEMU 7.2 answers "Could not set password").
   */
  setPassword(password: string): boolean {
    if (!this.passwordRequired) return false;
    this.password = password;
    return true;
  }

  /** Clients connected now. */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** Serves one connection until it closes (refused at once past {@linkcode MAX_CLIENTS}). */
  async serve(conn: Deno.Conn): Promise<void> {
    if (this.#clients.size >= MAX_CLIENTS) {
      this.stats.rejected++;
      conn.close();
      return;
    }
    await loadZlib();
    const client = new RfbConnection(this, conn);
    this.#clients.add(client);
    this.stats.connections++;
    this.#schedule();
    await client.serve();
  }

  /**
   * Accepts connections from `listener` until it closes: a Deno.Listener, or a
   * SocketRelay whose connections are served from a thread of their own.
   */
  async accept(listener: AsyncIterable<Deno.Conn>): Promise<void> {
    try {
      for await (const conn of listener) {
        if (conn.remoteAddr.transport === "tcp" && "setNoDelay" in conn) {
          (conn as Deno.TcpConn).setNoDelay(true);
        }
        this.serve(conn).catch(() => conn.close());
      }
    } catch {
      // the listener was closed
    }
  }

  /** Closes every client and stops looking at the screen. */
  close(): void {
    for (const c of [...this.#clients]) c.close();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * The screen now, brought up to date: the active console's (console 0 unless a client
   * switched with Ctrl-Alt-N), a blank one when the machine has no graphics.
   */
  surface(): DisplaySurface {
    const display = this.#display;
    return display?.console(display.active)?.update() ?? this.#blank;
  }

  /** How many consoles the machine has (more than one: Ctrl-Alt-N switches). */
  get consoleCount(): number {
    return this.#display?.consoles.length ?? 0;
  }

  /** True when the console shown is a text console (keys go to it, not to the guest). */
  get textConsoleShown(): boolean {
    const display = this.#display;
    return display?.console(display.active)?.putKeysym !== undefined;
  }

  /** Shows console `index` to every client, as QEMU's console_select; no such console: nothing. */
  selectConsole(index: number): void {
    if (!this.#display?.select(index)) return;
    this.#quicken();
    this.wake();
  }

  /**
   * A key for the active console when it is a text console (true: taken; releases are
   * taken and ignored); false when the guest's keyboard should have it.
   */
  textKey(keysym: number, ctrl: boolean, down: boolean): boolean {
    const display = this.#display;
    const console = display?.console(display.active);
    if (!console?.putKeysym) return false;
    if (down) {
      console.putKeysym(keysym, ctrl);
      this.#quicken();
    }
    return true;
  }

  /** A client finished its handshake: an exclusive one (shared-flag 0) ends the others. */
  clientInit(client: RfbConnection, shared: boolean): void {
    if (shared || this.#share !== "allow-exclusive") return;
    for (const c of [...this.#clients]) if (c !== client) c.close();
  }

  /** Input from a client to the guest: the screen is looked at often again. */
  input(event: InputEvent): void {
    this.#display?.sendInput(event);
    this.#quicken();
  }

  forget(client: RfbConnection): void {
    this.#clients.delete(client);
    if (this.#clients.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * A client may want an update now (a request arrived or a write finished): the screen
   * is looked at at once unless it was within the refresh period, so a client that
   * floods requests cannot make the guest's screen be rendered more often than that.
   */
  wake(): void {
    if (this.#wakeQueued) return;
    if (performance.now() - this.#lastRefresh < this.#refreshMs) {
      this.#quicken();
      return;
    }
    this.#wakeQueued = true;
    queueMicrotask(() => {
      this.#wakeQueued = false;
      if (this.#refresh()) this.#quicken();
    });
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      const changed = this.#refresh();
      this.#intervalMs = changed
        ? this.#refreshMs
        : Math.min(REFRESH_INTERVAL_MAX_MS, this.#intervalMs + REFRESH_INTERVAL_INC_MS);
      if (this.#clients.size > 0) this.#schedule();
    }, this.#intervalMs);
  }

  /** Back to the quick refresh: something may change soon. */
  #quicken(): void {
    if (this.#intervalMs === this.#refreshMs) return;
    this.#intervalMs = this.#refreshMs;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#schedule();
  }

  /** Looks at the screen and sends updates; true when something changed. */
  #refresh(): boolean {
    this.#lastRefresh = performance.now();
    this.refreshes++;
    const surface = this.surface();
    let dirty = surface.takeDirty();
    const shown = this.#display?.active ?? 0;
    if (shown !== this.#shown) {
      // Another console: all of it is new to the clients.
      this.#shown = shown;
      dirty = [{ x: 0, y: 0, width: surface.width, height: surface.height }];
    }
    const resized = surface.width !== this.#width || surface.height !== this.#height;
    this.#width = surface.width;
    this.#height = surface.height;
    for (const c of this.#clients) {
      if (c.closed) continue;
      if (!resized) c.markDirty(dirty);
      c.maybeUpdate(surface);
    }
    return resized || dirty.length > 0;
  }
}
