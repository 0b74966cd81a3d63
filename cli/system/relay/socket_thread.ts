// The VNC server's sockets (and the browser console's HTTP and WebSocket) on a thread of their own: while a guest keeps the main thread busy, sockets there go unread for up to a second or more, so reads and writes are done here and relayed
//
// Messages (main -> thread): ListenRequest once, then RelayCommand. (thread -> main):
// RelayEvent. The listen answer goes through the shared `box` because the main thread
// waits for it synchronously (the command line reports a port in use at once).

import { requestHostAttention } from "../../../core/host_attention.ts";
import { ChunkQueue } from "./chunk_queue.ts";

/** Asks the thread to listen; it answers in `box` (see {@linkcode BOX_STATE}). */
export interface ListenRequest {
  op: "listen";
  /**
   * TCP: `hostname` and the ports to try in order; unix: `path`; web: HTTP on `hostname`
   * and `ports[0]` serving `page` at `/` and RFB over a WebSocket at `/websockify`.
   */
  transport: "tcp" | "unix" | "web";
  hostname?: string;
  ports?: number[];
  path?: string;
  page?: string;
  box: SharedArrayBuffer;
  /** The main thread's host-attention word (core/host_attention.ts), set after each event. */
  attention?: SharedArrayBuffer;
  /** Unread bytes a connection may leave with the main thread before reading pauses. */
  maxUnreadBytes: number;
}

/** What the main thread asks about one connection, or the listener. */
export type RelayCommand =
  | { op: "write"; id: number; seq: number; bytes: ArrayBuffer }
  | { op: "consumed"; id: number; bytes: number }
  | { op: "close"; id: number }
  | { op: "stop" };

/** What the thread reports. */
export type RelayEvent =
  | {
    op: "open";
    id: number;
    transport: "tcp" | "unix" | "websocket";
    hostname: string;
    port: number;
  }
  | { op: "data"; id: number; bytes: ArrayBuffer }
  | { op: "written"; id: number; seq: number; ok: boolean }
  | { op: "end"; id: number }
  | { op: "stopped" };

/** Bytes a WebSocket may hold unsent before a write waits (one update in flight, as TCP). */
const MAX_WEBSOCKET_BUFFERED = 4 << 20;

/** `box` layout (Int32 slots): the state, the port listened on, the error text's length. */
export const BOX_STATE = 0;
export const BOX_PORT = 1;
export const BOX_ERROR_LENGTH = 2;
/** The error text's bytes start here (in bytes) and may take this many. */
export const BOX_ERROR_OFFSET = 16;
export const BOX_ERROR_MAX = 496;
export const BOX_BYTES = BOX_ERROR_OFFSET + BOX_ERROR_MAX;
/** BOX_STATE values. */
export const STATE_WAITING = 0;
export const STATE_LISTENING = 1;
export const STATE_FAILED = 2;

/** What the thread relays for: a socket, or a browser's WebSocket seen as one. */
interface Stream {
  read(buf: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

interface Relayed {
  conn: Stream;
  unread: number;
  resume: (() => void) | null;
  writes: Promise<void>;
}

// Only when loaded as a Worker: the module is also imported for its types and constants.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  let attention: Int32Array | undefined;
  const post = (event: RelayEvent, transfer: Transferable[] = []) => {
    scope.postMessage(event, transfer);
    // A busy main thread turns its event loop at the end of its current CPU slice.
    if (attention) requestHostAttention(attention);
  };
  const conns = new Map<number, Relayed>();
  let listener: Deno.Listener | undefined;
  let maxUnread = 1 << 20;
  let nextId = 1;

  const answer = (box: SharedArrayBuffer, state: number, port: number, error = "") => {
    const slots = new Int32Array(box);
    const text = new TextEncoder().encode(error).subarray(0, BOX_ERROR_MAX);
    new Uint8Array(box, BOX_ERROR_OFFSET, BOX_ERROR_MAX).set(text);
    slots[BOX_PORT] = port;
    slots[BOX_ERROR_LENGTH] = text.length;
    Atomics.store(slots, BOX_STATE, state);
    Atomics.notify(slots, BOX_STATE);
  };

  const pump = async (id: number, relayed: Relayed) => {
    try {
      for (;;) {
        while (relayed.unread > maxUnread) {
          await new Promise<void>((r) => (relayed.resume = r));
        }
        const buf = new Uint8Array(65536);
        const n = await relayed.conn.read(buf);
        if (n === null) break;
        relayed.unread += n;
        const bytes = buf.buffer.slice(0, n);
        post({ op: "data", id, bytes }, [bytes]);
      }
    } catch {
      // reset: the same as a close
    }
    post({ op: "end", id });
  };

  const accept = async (l: Deno.Listener) => {
    try {
      for await (const conn of l) {
        const id = nextId++;
        const relayed: Relayed = { conn, unread: 0, resume: null, writes: Promise.resolve() };
        conns.set(id, relayed);
        const addr = conn.remoteAddr;
        if (addr.transport === "tcp") {
          (conn as Deno.TcpConn).setNoDelay(true);
          post({ op: "open", id, transport: "tcp", hostname: addr.hostname, port: addr.port });
        } else {
          post({ op: "open", id, transport: "unix", hostname: "", port: 0 });
        }
        pump(id, relayed);
      }
    } catch {
      // the listener was closed
    }
  };

  /** The WebSocket's binary messages as a stream; a write waits while the browser is behind. */
  const webSocketStream = (ws: WebSocket): Stream => {
    const input = new ChunkQueue();
    let closed = false;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) input.push(new Uint8Array(e.data));
    };
    ws.onclose = ws.onerror = () => {
      closed = true;
      input.end();
    };
    return {
      read: (buf) => input.read(buf),
      async write(bytes) {
        if (closed || ws.readyState !== WebSocket.OPEN) throw new Error("closed");
        ws.send(bytes.slice());
        while (ws.bufferedAmount > MAX_WEBSOCKET_BUFFERED && !closed) {
          await new Promise((r) => setTimeout(r, 10));
        }
        return bytes.length;
      },
      close() {
        closed = true;
        try {
          ws.close();
        } catch {
          // already closed
        }
        input.end();
      },
    };
  };

  let http: Deno.HttpServer<Deno.NetAddr> | undefined;
  const serveWeb = (msg: ListenRequest): void => {
    http = Deno.serve(
      { hostname: msg.hostname!, port: msg.ports![0], onListen: () => {} },
      (request) => {
        const url = new URL(request.url);
        if (url.pathname === "/websockify") {
          if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
            return new Response("a WebSocket is expected here\n", { status: 426 });
          }
          const { socket, response } = Deno.upgradeWebSocket(request);
          socket.onopen = () => {
            const id = nextId++;
            const relayed: Relayed = {
              conn: webSocketStream(socket),
              unread: 0,
              resume: null,
              writes: Promise.resolve(),
            };
            conns.set(id, relayed);
            post({ op: "open", id, transport: "websocket", hostname: "", port: 0 });
            pump(id, relayed);
          };
          return response;
        }
        if (url.pathname === "/" || url.pathname === "/index.html") {
          return new Response(msg.page ?? "", {
            headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
          });
        }
        return new Response("not found\n", { status: 404 });
      },
    );
  };

  scope.onmessage = (e: MessageEvent<ListenRequest | RelayCommand>) => {
    const msg = e.data;
    switch (msg.op) {
      case "listen": {
        maxUnread = msg.maxUnreadBytes;
        attention = msg.attention && new Int32Array(msg.attention);
        let error = "";
        if (msg.transport === "web") {
          try {
            serveWeb(msg);
          } catch (err) {
            answer(msg.box, STATE_FAILED, 0, (err as Error).message);
            scope.close();
            return;
          }
          answer(msg.box, STATE_LISTENING, http!.addr.port);
          return;
        }
        if (msg.transport === "unix") {
          try {
            listener = Deno.listen({ transport: "unix", path: msg.path! });
          } catch (err) {
            error = (err as Error).message;
          }
        } else {
          for (const port of msg.ports ?? []) {
            try {
              listener = Deno.listen({ transport: "tcp", hostname: msg.hostname!, port });
              break;
            } catch (err) {
              error = (err as Error).message;
            }
          }
        }
        if (!listener) {
          answer(msg.box, STATE_FAILED, 0, error);
          scope.close();
          return;
        }
        const addr = listener.addr;
        answer(msg.box, STATE_LISTENING, addr.transport === "tcp" ? addr.port : 0);
        accept(listener);
        return;
      }
      case "write": {
        const relayed = conns.get(msg.id);
        if (!relayed) {
          post({ op: "written", id: msg.id, seq: msg.seq, ok: false });
          return;
        }
        const bytes = new Uint8Array(msg.bytes);
        relayed.writes = relayed.writes.then(async () => {
          let at = 0;
          while (at < bytes.length) at += await relayed.conn.write(bytes.subarray(at));
        }).then(
          () => post({ op: "written", id: msg.id, seq: msg.seq, ok: true }),
          () => post({ op: "written", id: msg.id, seq: msg.seq, ok: false }),
        );
        return;
      }
      case "consumed": {
        const relayed = conns.get(msg.id);
        if (!relayed) return;
        relayed.unread -= msg.bytes;
        const resume = relayed.resume;
        relayed.resume = null;
        resume?.();
        return;
      }
      case "close": {
        const relayed = conns.get(msg.id);
        conns.delete(msg.id);
        try {
          relayed?.conn.close();
        } catch {
          // already closed
        }
        return;
      }
      case "stop": {
        try {
          listener?.close();
        } catch {
          // already closed
        }
        http?.shutdown().catch(() => {});
        for (const r of conns.values()) {
          try {
            r.conn.close();
          } catch {
            // already closed
          }
        }
        conns.clear();
        post({ op: "stopped" });
        return;
      }
    }
  };
}
