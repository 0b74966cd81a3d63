// The NAT socket layer: the host sockets behind the guest's connections (node:net and
// node:dgram), their events delivered through the machine's event loop

import * as dgram from "node:dgram";
import * as net from "node:net";
import type { EventLoop } from "../../../core/event_loop.ts";

/** What a host TCP connection reports, always from the event loop (between CPU slices). */
export interface HostTcpEvents {
  onConnect(): void;
  onData(bytes: Uint8Array): void;
  /** The host closed its side (FIN). */
  onEnd(): void;
  /** The connection failed or was reset; nothing more comes. */
  onError(): void;
}

/** One host TCP connection. */
export interface HostTcp {
  /** Queues bytes for the host; false once the kernel's buffer is full (pause the guest). */
  write(bytes: Uint8Array): boolean;
  /** Bytes queued and not yet taken by the host kernel. */
  readonly pendingBytes: number;
  /** Sends FIN after what is queued. */
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  /** Sets who gets the events (a forwarded connection learns its owner after accept). */
  setEvents(events: HostTcpEvents): void;
}

/** One host UDP socket. */
export interface HostUdp {
  send(bytes: Uint8Array, host: string, port: number): void;
  close(): void;
}

/** A listening host socket of a `hostfwd` rule. */
export interface HostListener {
  /** The port it listens on (the one asked for, or the kernel's pick for port 0). */
  readonly port: number;
  close(): void;
}

/**
 * Opens host sockets for the stack and counts them: while any is open the machine's
 * loop keeps a host source, so a halted guest waits for their events instead of
 * being declared idle. Every event runs as deferred work on the loop.
 */
export class HostSockets {
  #open = new Set<{ close(): void }>();
  #removeSource: (() => void) | null = null;
  /** Host connections and sockets opened so far (for tests and the monitor). */
  opened = 0;

  constructor(readonly loop: EventLoop) {}

  #track(handle: { close(): void }): void {
    this.#open.add(handle);
    this.opened++;
    if (!this.#removeSource) this.#removeSource = this.loop.addHostSource();
  }

  #untrack(handle: { close(): void }): void {
    this.#open.delete(handle);
    if (this.#open.size === 0 && this.#removeSource) {
      this.#removeSource();
      this.#removeSource = null;
    }
  }

  /** Host handles open now. */
  get openCount(): number {
    return this.#open.size;
  }

  #wrap(socket: net.Socket, events: HostTcpEvents | null): HostTcp {
    let ev = events;
    let done = false;
    const run = (fn: (e: HostTcpEvents) => void) => {
      this.loop.defer(() => {
        if (ev) fn(ev);
      });
    };
    const handle = {
      close: () => socket.destroy(),
    };
    this.#track(handle);
    const finish = () => {
      if (done) return;
      done = true;
      this.#untrack(handle);
    };
    socket.on("connect", () => run((e) => e.onConnect()));
    socket.on("data", (chunk: Uint8Array) => {
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice();
      run((e) => e.onData(bytes));
    });
    socket.on("end", () => run((e) => e.onEnd()));
    socket.on("error", () => {
      finish();
      run((e) => e.onError());
    });
    socket.on("close", () => finish());
    return {
      write: (bytes) => (socket.destroyed ? false : socket.write(bytes)),
      get pendingBytes() {
        return socket.writableLength;
      },
      end: () => {
        if (!socket.destroyed) socket.end();
      },
      destroy: () => {
        socket.destroy();
        finish();
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      setEvents: (e) => void (ev = e),
    };
  }

  /** Connects to `host:port`; `events.onConnect` or `events.onError` follows. */
  connectTcp(host: string, port: number, events: HostTcpEvents): HostTcp {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    socket.setNoDelay(true);
    return this.#wrap(socket, events);
  }

  /** A UDP socket bound to an ephemeral port; datagrams arrive at `onMessage`. */
  openUdp(onMessage: (bytes: Uint8Array, host: string, port: number) => void): HostUdp {
    const socket = dgram.createSocket("udp4");
    let closed = false;
    const handle = {
      close: () => {
        if (!closed) socket.close();
        closed = true;
      },
    };
    this.#track(handle);
    socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
      const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice();
      this.loop.defer(() => {
        if (!closed) onMessage(bytes, rinfo.address, rinfo.port);
      });
    });
    socket.on("error", () => {
      handle.close();
      this.#untrack(handle);
    });
    socket.bind(0);
    return {
      send: (bytes, host, port) => {
        if (!closed) socket.send(bytes, port, host, () => {});
      },
      close: () => {
        handle.close();
        this.#untrack(handle);
      },
    };
  }

  /**
   * Listens on `addr:port` for TCP; each connection comes to `onAccept` paused, with no
   * events until it calls `setEvents` (then `resume`).
   */
  listenTcp(addr: string, port: number, onAccept: (conn: HostTcp) => void): Promise<HostListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
        socket.setNoDelay(true);
        const conn = this.#wrap(socket, null);
        this.loop.defer(() => onAccept(conn));
      });
      const handle = { close: () => server.close() };
      server.once("error", (e) => reject(e));
      server.listen(port, addr, () => {
        this.#track(handle);
        const bound = server.address();
        resolve({
          port: typeof bound === "object" && bound ? bound.port : port,
          close: () => {
            server.close();
            this.#untrack(handle);
          },
        });
      });
    });
  }

  /** Listens on `addr:port` for UDP; each datagram comes to `onMessage` with a reply path. */
  listenUdp(
    addr: string,
    port: number,
    onMessage: (bytes: Uint8Array, reply: (bytes: Uint8Array) => void, from: string) => void,
  ): Promise<HostListener> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket("udp4");
      const handle = { close: () => socket.close() };
      socket.once("error", (e) => reject(e));
      socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
        const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice();
        const reply = (b: Uint8Array) => socket.send(b, rinfo.port, rinfo.address, () => {});
        this.loop.defer(() => onMessage(bytes, reply, `${rinfo.address}:${rinfo.port}`));
      });
      socket.bind(port, addr, () => {
        this.#track(handle);
        resolve({
          port: socket.address().port,
          close: () => {
            socket.close();
            this.#untrack(handle);
          },
        });
      });
    });
  }

  /** Closes everything still open. */
  closeAll(): void {
    for (const h of [...this.#open]) {
      try {
        h.close();
      } catch {
        // Already closed.
      }
      this.#untrack(h);
    }
  }
}
