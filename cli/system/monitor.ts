// -monitor and -qmp: the transports (stdio, unix and tcp/telnet sockets) the Monitor's
// HMP and QMP sessions run on, and the -nographic serial/monitor multiplexer on stdio

import type { Chardev, ChardevFrontend } from "../../core/chardev.ts";
import { displayRegistry } from "../../core/display.ts";
import { findFirmware } from "../../core/firmware.ts";
import { COLOUR_BLUE, COLOUR_WHITE, findVgaFont, TextConsole } from "../../core/text_console.ts";
import { UsageError } from "../../core/errors.ts";
import type { BlockIo } from "../../core/block/backend.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { DriveConfig, Machine } from "../../core/machine.ts";
import {
  Monitor,
  type MonitorHost,
  type MonitorOutput,
  type MonitorSession,
} from "../../core/monitor/mod.ts";
import { addSnapshotCommands } from "../../core/monitor/snapshots.ts";
import { snapshotTable } from "../../core/block/snapshot_table.ts";
import type { MonitorSpec } from "./monitor_spec.ts";
import { type RelayConn, SocketRelay } from "./relay/socket_relay.ts";

/** Unsent answer bytes past which a monitor connection stops reading requests. */
const MONITOR_READ_PAUSE_BYTES = 1 << 20;
/** Unsent bytes past which a client that reads nothing is disconnected. */
const MONITOR_MAX_UNSENT_BYTES = 16 << 20;
/** What `commit` copies at a time: QEMU's COMMIT_BUF_SIZE (2048 sectors). */
const COMMIT_BUF_BYTES = 1 << 20;

/**
 * The clients connected to each listening monitor of one run, for `info chardev`'s peer:
 * {@linkcode startMonitors} records them, {@linkcode monitorHost} reads them. One per
 * machine, so two machines in one process never see each other's clients.
 */
export class MonitorPeers {
  #bySpec = new Map<MonitorSpec, RelayConn[]>();

  /** Records a client of `spec`'s monitor. */
  add(spec: MonitorSpec, conn: RelayConn): void {
    this.#bySpec.set(spec, [...(this.#bySpec.get(spec) ?? []), conn]);
  }

  /** Forgets a client that went away. */
  remove(spec: MonitorSpec, conn: RelayConn): void {
    const left = (this.#bySpec.get(spec) ?? []).filter((c) => c !== conn);
    if (left.length > 0) this.#bySpec.set(spec, left);
    else this.#bySpec.delete(spec);
  }

  /** The clients of `spec`'s monitor, oldest first. */
  of(spec: MonitorSpec): readonly RelayConn[] {
    return this.#bySpec.get(spec) ?? [];
  }
}

/** The running monitors of one vmkit: close() stops listening and hangs up on clients. */
export interface MonitorServers {
  readonly monitor: Monitor;
  close(): Promise<void>;
}

/**
 * Starts the monitors `specs` names on `machine`: listens on their sockets (and waits
 * for the first client of a `wait=on` one), or reads stdin.
 */
export async function startMonitors(
  machine: Machine,
  specs: readonly MonitorSpec[],
  host: MonitorHost,
  options: {
    startPaused?: boolean;
    mux?: StdioMux;
    keepAlive?: boolean;
    /** The VGA 8x16 font a `vc` monitor draws with. */
    font?: Uint8Array;
    /** Where the connected clients are recorded (the same object the host was given). */
    peers?: MonitorPeers;
  } = {},
): Promise<MonitorServers> {
  const peers = options.peers ?? new MonitorPeers();
  const monitor = new Monitor(machine, host, { startPaused: options.startPaused });
  addSnapshotCommands(monitor.table, snapshotTable);
  // The sockets live on threads of their own (relay/socket_thread.ts), so a client's
  // request reaches a busy guest's main thread at the end of the current CPU slice.
  const relays: SocketRelay[] = [];
  const conns = new Set<RelayConn>();
  /** Each connection's answers still being written. */
  const flushes = new Map<RelayConn, () => Promise<void>>();
  const cleanups: (() => void)[] = [];
  // The guest may halt with nothing pending; a monitor can still wake it.
  if (options.keepAlive ?? true) cleanups.push(machine.loop.addHostSource());
  const waits: Promise<void>[] = [];
  const encoder = new TextEncoder();

  const serve = (conn: RelayConn, spec: MonitorSpec) => {
    const mode = spec.mode;
    conns.add(conn);
    peers.add(spec, conn);
    // Answers go out in order; the bytes not yet taken by the client are counted, so a
    // client that does not read is not answered into unbounded memory.
    let unsentBytes = 0;
    let sending = Promise.resolve();
    const writeAll = async (data: Uint8Array) => {
      for (let done = 0; done < data.length;) done += await conn.write(data.subarray(done));
    };
    const out: MonitorOutput = {
      write: (text) => {
        const data = encoder.encode(text);
        if (unsentBytes + data.length > MONITOR_MAX_UNSENT_BYTES) {
          // Events keep coming while the client reads nothing: hang up on it.
          try {
            conn.close();
          } catch {
            // already closed
          }
          return;
        }
        // Started now when nothing is queued (so an answer written just before quit
        // closes the connection still goes out), else after what is queued.
        const write = unsentBytes === 0 ? writeAll(data) : sending.then(() => writeAll(data));
        unsentBytes += data.length;
        sending = write.catch(() => {}).finally(() => {
          unsentBytes -= data.length;
        });
        flushes.set(conn, () => sending);
      },
      close: () => conn.close(),
    };
    const session = mode === "hmp" ? monitor.attachHmp(out) : monitor.attachQmp(out);
    (async () => {
      const buf = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          session.receive(buf.slice(0, n));
          machine.loop.wake();
          // QEMU stops reading a monitor while its requests are queued: answer these
          // first, and wait for the client to take a backlog of answers.
          await session.idle();
          if (unsentBytes > MONITOR_READ_PAUSE_BYTES) await sending;
        }
      } catch {
        // the peer went away
      }
      session.detach();
      conns.delete(conn);
      peers.remove(spec, conn);
      flushes.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    })();
  };

  for (const [index, spec] of specs.entries()) {
    if (spec.transport === "vc") {
      attachVc(monitor, spec, spec.label ?? `compat_monitor${index}`, options.font);
      continue;
    }
    if (spec.transport === "stdio") {
      if (options.mux) {
        options.mux.attach(monitor, spec.mode);
        continue;
      }
      const session = attachStdio(monitor, spec.mode);
      cleanups.push(session);
      continue;
    }
    let relay: SocketRelay;
    try {
      if (spec.transport === "unix") {
        try {
          Deno.removeSync(spec.path!);
        } catch {
          // nothing there
        }
        relay = SocketRelay.listen({ transport: "unix", path: spec.path! });
      } else {
        relay = SocketRelay.listen({ transport: "tcp", hostname: spec.host!, ports: [spec.port!] });
      }
    } catch (e) {
      throw new UsageError(
        `${spec.mode === "hmp" ? "-monitor" : "-qmp"} ${spec.text}: ${(e as Error).message}`,
      );
    }
    relays.push(relay);
    let firstConnected!: () => void;
    if (spec.wait) waits.push(new Promise<void>((resolve) => (firstConnected = resolve)));
    (async () => {
      for await (const conn of relay) {
        serve(conn, spec);
        firstConnected?.();
      }
    })();
  }
  for (const w of waits) await w;
  return {
    monitor,
    close: async () => {
      // The last answers (quit's) go out first, unless the client stopped reading.
      await Promise.race([
        Promise.all([...flushes.values()].map((f) => f())),
        new Promise((r) => Deno.unrefTimer(setTimeout(r, 2000))),
      ]);
      for (const c of conns) c.close();
      // Stops listening and ends the threads.
      await Promise.all(relays.map((r) => r.close()));
      for (const spec of specs) {
        if (spec.transport === "unix") {
          try {
            await Deno.remove(spec.path!);
          } catch {
            // gone already
          }
        }
      }
      for (const c of cleanups) c();
    },
  };
}

/**
 * A monitor on a text console of the display (`-monitor vc`): console N+1 after the
 * graphics card's, titled `LABEL console` on blue as in QEMU; keys typed on it while a
 * display client shows it go to the monitor's line editor.
 */
function attachVc(monitor: Monitor, spec: MonitorSpec, label: string, font?: Uint8Array): void {
  if (!font) throw new UsageError(`-monitor ${spec.text}: no VGA font to draw a vc with`);
  const machine = monitor.machine;
  const vc = new TextConsole(label, font, { columns: spec.columns!, rows: spec.rows! });
  vc.setColours(COLOUR_WHITE, COLOUR_BLUE);
  vc.write(`${label} console\r\n`);
  vc.resetColours();
  displayRegistry(machine).addConsole(vc);
  const session = spec.mode === "hmp"
    ? monitor.attachHmp({ write: (text) => vc.write(text) })
    : monitor.attachQmp({ write: (text) => vc.write(text) });
  vc.onInput = (bytes) => {
    session.receive(bytes);
    machine.loop.wake();
  };
}

/**
 * The VGA 8x16 font a `vc` draws with: the one the VGA BIOS (the SeaBIOS vgabios the
 * machine loads) carries, as QEMU's text consoles draw with the same IBM VGA font.
 *
 * @throws UsageError when no VGA BIOS with the font can be found
 */
export function vcFont(dataDirs: readonly string[]): Uint8Array {
  for (const name of ["vgabios-stdvga.bin", "vgabios.bin", "vgabios-cirrus.bin"]) {
    const { path } = findFirmware(name, dataDirs);
    if (path === null) continue;
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch {
      continue;
    }
    const font = findVgaFont(bytes);
    if (font) return font;
  }
  throw new UsageError(
    "-monitor vc needs the VGA font of SeaBIOS's vgabios-stdvga.bin (Debian package seabios)",
  );
}

function attachStdio(monitor: Monitor, mode: "hmp" | "qmp"): () => void {
  const encoder = new TextEncoder();
  const out: MonitorOutput = {
    write: (text) => {
      const data = encoder.encode(text);
      let done = 0;
      while (done < data.length) done += Deno.stdout.writeSync(data.subarray(done));
    },
  };
  const session = mode === "hmp" ? monitor.attachHmp(out) : monitor.attachQmp(out);
  const reader = Deno.stdin.readable.getReader();
  let closed = false;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || closed) break;
        session.receive(value);
        monitor.machine.loop.wake();
      }
    } catch {
      // stdin closed
    }
  })();
  return () => {
    closed = true;
    reader.cancel().catch(() => {});
  };
}

/**
 * The `-nographic` multiplexer: stdio shared by the first serial port and the monitor.
 * Ctrl-A c switches between them, Ctrl-A h lists the keys; the serial port talks to the
 * {@linkcode StdioMux.serial} chardev.
 */
export class StdioMux {
  readonly #stdio: Chardev;
  #frontend: ChardevFrontend | null = null;
  #session: MonitorSession | null = null;
  #focusMonitor = false;
  #held = "";
  readonly serial: Chardev;

  constructor(stdio: Chardev) {
    this.#stdio = stdio;
    const focused = () => this.#focusMonitor;
    this.serial = {
      id: stdio.id,
      write: (data) => {
        if (!this.#focusMonitor) stdio.write(data);
      },
      connect: (frontend) => {
        this.#frontend = frontend;
        stdio.connect(frontend ? { inputAvailable: () => this.#input() } : null);
      },
      get pendingInput() {
        return focused() ? 0 : stdio.pendingInput;
      },
      readInput: (max) => (this.#focusMonitor ? new Uint8Array(0) : stdio.readInput(max)),
      close: () => stdio.close(),
    };
  }

  /** Connects the monitor that Ctrl-A c switches to. */
  attach(monitor: Monitor, mode: "hmp" | "qmp"): void {
    const encoder = new TextEncoder();
    const out: MonitorOutput = {
      write: (text) => {
        if (this.#focusMonitor) this.#stdio.write(encoder.encode(text));
        // The banner and any output while the console has the focus wait for Ctrl-A c.
        else if (this.#held.length < 1 << 16) this.#held += text;
      },
    };
    this.#session = mode === "hmp" ? monitor.attachHmp(out) : monitor.attachQmp(out);
  }

  /** Handles the key after Ctrl-A; true when it was a mux key. */
  escape(key: number): boolean {
    if (key === 0x63 /* c */) {
      if (!this.#session) return false;
      this.#focusMonitor = !this.#focusMonitor;
      if (this.#focusMonitor) {
        this.#stdio.write(new TextEncoder().encode(this.#held || "\r\n(qemu) "));
        this.#held = "";
      } else this.#input();
      return true;
    }
    if (key === 0x68 /* h */) {
      // QEMU's mux_print_help: each line ends in LF CR.
      const help = "\n\r" + [
        "C-a h    print this help",
        "C-a x    exit emulator",
        "C-a s    save disk data back to file (if -snapshot)",
        "C-a t    toggle console timestamps",
        "C-a b    send break (magic sysrq)",
        "C-a c    switch between console and monitor",
        "C-a C-a  sends C-a",
      ].map((l) => `${l}\n\r`).join("");
      this.#stdio.write(new TextEncoder().encode(help));
      return true;
    }
    return false;
  }

  #input(): void {
    if (this.#focusMonitor && this.#session) {
      const data = this.#stdio.readInput(this.#stdio.pendingInput);
      if (data.length > 0) this.#session.receive(data);
      return;
    }
    this.#frontend?.inputAvailable();
  }
}

/** The facts the monitor shows that the command line decides. */
export interface MonitorHostOptions {
  name?: string;
  version: string;
  vmkitVersion: string;
  chardevs: readonly Chardev[];
  drives: readonly DriveConfig[];
  specs: readonly MonitorSpec[];
  /** The clients of the monitors (give the same object to {@linkcode startMonitors}). */
  peers?: MonitorPeers;
  quit(): void;
  /** Opens an image as a new removable medium (the monitor's change). */
  openMedium?(file: string, format?: string): Promise<BlockIo>;
  /** Opens an image read-write on its own (the backing file the monitor's commit writes). */
  openImage?(file: string, format: string): Promise<BlockNode>;
}

/** Builds the {@linkcode MonitorHost} of a vmkit run. */
export function monitorHost(o: MonitorHostOptions): MonitorHost {
  const [major, minor, micro] = o.version.split(".").map(Number);
  const peers = o.peers ?? new MonitorPeers();
  return {
    name: o.name,
    version: { major, minor, micro, package: ` (vmkit ${o.vmkitVersion})` },
    chardevs: () => {
      const list = o.chardevs.map((c) => ({ label: c.id, filename: chardevFilename(c) }));
      o.specs.forEach((s, i) => {
        list.push({ label: s.label ?? `compat_monitor${i}`, filename: monitorFilename(s, peers) });
      });
      return list.sort((a, b) => (a.label < b.label ? -1 : 1));
    },
    drives: () =>
      o.drives.map((d) => {
        const root = (d.node as { root?: BlockNode } | null)?.root;
        return {
          id: d.id,
          file: d.node ? root?.filename ?? "" : null,
          format: root?.driver,
          readOnly: d.readOnly,
          removable: d.media === "cdrom" || d.interface === "floppy",
          cache: (d.node as { cacheMode?: string } | null)?.cacheMode,
        };
      }),
    quit: o.quit,
    openMedium: o.openMedium,
    commitImage: o.openImage &&
      ((top) =>
        commitToBacking(top, () => o.openImage!(top.backing!.filename, top.backing!.driver))),
  };
}

/**
 * HMP `commit` of one image, as QEMU's bdrv_commit: what `top` holds is copied into its
 * backing file, then the top is emptied where its driver can (qcow2's make_empty). QEMU
 * reopens the backing node read-write; vmkit writes through a read-write node of the
 * same file that `openTarget` opens, then has the graph's read-only backing node read
 * its metadata again. A backing node that cannot do that leaves the top its copy, so
 * that the guest never reads through stale metadata.
 */
export async function commitToBacking(
  top: BlockNode,
  openTarget: () => Promise<BlockNode>,
): Promise<void> {
  const backing = top.backing!;
  const target = await openTarget();
  try {
    await copyAllocated(top, target);
  } finally {
    await target.close();
  }
  if (!backing.invalidateCache || !top.makeEmpty) return;
  await backing.invalidateCache();
  await top.makeEmpty();
  await top.flush();
}

/**
 * Copies what `top` itself holds into `target` as QEMU's `bdrv_commit`: a larger top
 * grows the target first; every allocated run, zero clusters included, is read through
 * the chain and written as data, 1 MiB at a time (COMMIT_BUF_SIZE).
 */
async function copyAllocated(top: BlockNode, target: BlockNode): Promise<void> {
  const size = top.size();
  if (target.size() < size) await target.truncate(size);
  const buf = blockAlignedBuffer(COMMIT_BUF_BYTES);
  for (let pos = 0; pos < size;) {
    const st = await top.blockStatus(pos, Math.min(COMMIT_BUF_BYTES, size - pos));
    const run = Math.max(1, Math.min(st.bytes, size - pos));
    if (st.allocated) {
      const part = buf.subarray(0, run);
      await top.read(pos, part);
      await target.write(pos, part);
    }
    pos += run;
  }
  await target.flush();
}

// QEMU names a listening socket by its address and server=on, "disconnected:" before it
// while no client is connected, and a TCP client's address after it.
function monitorFilename(s: MonitorSpec, peers: MonitorPeers): string {
  if (s.transport === "stdio" || s.transport === "vc") return s.transport;
  const where = s.transport === "unix"
    ? `unix:${s.path},server=on`
    : `${s.text.split(":")[0]}:${s.host}:${s.port},server=on`;
  const conn = peers.of(s)[0];
  if (!conn) return `disconnected:${where}`;
  const peer = conn.remoteAddr;
  return peer.transport === "tcp" ? `${where} <-> ${peer.hostname}:${peer.port}` : where;
}

function chardevFilename(c: Chardev): string {
  const kind = c.constructor.name;
  if (kind === "StdioChardev") return "stdio";
  if (kind === "NullChardev") return "null";
  if (kind === "FileChardev") return "file";
  return kind.replace(/Chardev$/, "").toLowerCase() || "unknown";
}
