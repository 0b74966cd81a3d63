// A listener whose sockets live on their own thread (socket_thread.ts): the VNC server reads clients' requests within milliseconds while the guest keeps the main thread busy

import { HOST_ATTENTION } from "../../../core/host_attention.ts";
import { ChunkQueue } from "./chunk_queue.ts";
import {
  BOX_BYTES,
  BOX_ERROR_LENGTH,
  BOX_ERROR_OFFSET,
  BOX_PORT,
  BOX_STATE,
  type ListenRequest,
  type RelayCommand,
  type RelayEvent,
  STATE_LISTENING,
  STATE_WAITING,
} from "./socket_thread.ts";

/** How long the command line waits for the thread to start and listen. */
const LISTEN_TIMEOUT_MS = 30_000;
/** Bytes a client may have sent that the server has not read yet before its reads pause. */
export const MAX_UNREAD_BYTES = 1 << 20;

/**
 * Where to listen: TCP on `hostname` at the first free of `ports`, a unix socket, or HTTP
 * serving `page` and RFB over a WebSocket at `/websockify` (the browser console).
 */
export type RelayAddress =
  | { transport: "tcp"; hostname: string; ports: number[] }
  | { transport: "unix"; path: string }
  | { transport: "web"; hostname: string; ports: [number]; page: string };

/** How a relayed client is connected. */
export type RemoteTransport = "tcp" | "unix" | "websocket";

/**
 * One client connection seen through the relay: the `read`, `write` and `close` of a
 * Deno.Conn, which is all the RFB server uses.
 */
export class RelayConn {
  readonly remoteAddr: { transport: RemoteTransport; hostname: string; port: number };
  readonly #relay: SocketRelay;
  readonly #id: number;
  #in = new ChunkQueue();
  #ended = false;
  #closed = false;
  #seq = 0;
  #writes = new Map<number, (ok: boolean) => void>();

  constructor(
    relay: SocketRelay,
    id: number,
    remoteAddr: { transport: RemoteTransport; hostname: string; port: number },
  ) {
    this.#relay = relay;
    this.#id = id;
    this.remoteAddr = remoteAddr;
  }

  /** Bytes that arrived from the thread and are not read yet. */
  get buffered(): number {
    return this.#in.buffered;
  }

  /** Bytes that arrived from the thread. */
  deliver(bytes: Uint8Array): void {
    this.#in.push(bytes);
  }

  /** The client went away (or the thread stopped). */
  end(): void {
    this.#ended = true;
    for (const done of this.#writes.values()) done(false);
    this.#writes.clear();
    this.#in.end();
  }

  written(seq: number, ok: boolean): void {
    const done = this.#writes.get(seq);
    this.#writes.delete(seq);
    done?.(ok);
  }

  async read(buf: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    const n = await this.#in.read(buf);
    if (n !== null) this.#relay.command({ op: "consumed", id: this.#id, bytes: n });
    return n;
  }

  /** Resolves once the thread has written all of `bytes` to the socket. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#ended || this.#closed) return Promise.reject(new Error("connection closed"));
    const seq = this.#seq++;
    const copy = bytes.slice().buffer;
    return new Promise((resolve, reject) => {
      this.#writes.set(seq, (ok) => ok ? resolve(bytes.length) : reject(new Error("closed")));
      this.#relay.command({ op: "write", id: this.#id, seq, bytes: copy }, [copy]);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#relay.command({ op: "close", id: this.#id });
    this.end();
  }
}

/**
 * Listens on a thread of its own; connections arrive as {@linkcode RelayConn}s.
 * {@linkcode SocketRelay.listen} waits for the thread's answer, so a port in use is an
 * error at once, as with Deno.listen.
 */
export class SocketRelay {
  readonly #worker: Worker;
  readonly #conns = new Map<number, RelayConn>();
  #pending: RelayConn[] = [];
  #waiting: (() => void) | null = null;
  #stopped = false;
  #stoppedSignal: Promise<void>;
  /** The TCP port listened on (0 for a unix socket). */
  readonly port: number;

  private constructor(worker: Worker, port: number) {
    this.#worker = worker;
    this.port = port;
    let stoppedResolve!: () => void;
    this.#stoppedSignal = new Promise<void>((r) => (stoppedResolve = r));
    worker.onmessage = (e: MessageEvent<RelayEvent>) => {
      const msg = e.data;
      switch (msg.op) {
        case "open": {
          const conn = new RelayConn(this, msg.id, {
            transport: msg.transport,
            hostname: msg.hostname,
            port: msg.port,
          });
          this.#conns.set(msg.id, conn);
          this.#pending.push(conn);
          this.#wake();
          return;
        }
        case "data":
          this.#conns.get(msg.id)?.deliver(new Uint8Array(msg.bytes));
          return;
        case "written":
          this.#conns.get(msg.id)?.written(msg.seq, msg.ok);
          return;
        case "end":
          this.#conns.get(msg.id)?.end();
          this.#conns.delete(msg.id);
          return;
        case "stopped":
          stoppedResolve();
          return;
      }
    };
  }

  /**
   * Starts the thread and listens at `address`.
   *
   * @throws Error with the system's message when no address could be listened on
   */
  static listen(address: RelayAddress): SocketRelay {
    const worker = new Worker(new URL("./socket_thread.ts", import.meta.url).href, {
      type: "module",
    });
    const box = new SharedArrayBuffer(BOX_BYTES);
    const slots = new Int32Array(box);
    const request: ListenRequest = {
      op: "listen",
      ...address,
      box,
      attention: HOST_ATTENTION,
      maxUnreadBytes: MAX_UNREAD_BYTES,
    };
    worker.postMessage(request);
    // The worker loads its module and listens on its own thread while this one waits.
    Atomics.wait(slots, BOX_STATE, STATE_WAITING, LISTEN_TIMEOUT_MS);
    const state = Atomics.load(slots, BOX_STATE);
    if (state !== STATE_LISTENING) {
      worker.terminate();
      const text = new TextDecoder().decode(
        new Uint8Array(box, BOX_ERROR_OFFSET, slots[BOX_ERROR_LENGTH]).slice(),
      );
      throw new Error(state === STATE_WAITING ? "the socket thread did not start" : text);
    }
    return new SocketRelay(worker, slots[BOX_PORT]);
  }

  command(msg: RelayCommand, transfer: Transferable[] = []): void {
    if (!this.#stopped) this.#worker.postMessage(msg, transfer);
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = null;
    w?.();
  }

  /** The connections as they arrive, until {@linkcode SocketRelay.close}. */
  async *[Symbol.asyncIterator](): AsyncGenerator<RelayConn> {
    for (;;) {
      while (this.#pending.length === 0) {
        if (this.#stopped) return;
        await new Promise<void>((r) => (this.#waiting = r));
      }
      yield this.#pending.shift()!;
    }
  }

  /** Stops listening, closes every connection and ends the thread. */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.command({ op: "stop" });
    this.#stopped = true;
    this.#wake();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#stoppedSignal,
      new Promise((r) => (timer = setTimeout(r, 1000))),
    ]);
    clearTimeout(timer);
    for (const c of this.#conns.values()) c.end();
    this.#conns.clear();
    this.#worker.terminate();
  }
}
