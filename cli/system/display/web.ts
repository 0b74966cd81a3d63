// `-display web[=HOST:PORT]`: one page with the guest's screen on a canvas; the page speaks RFB to the VNC server over a WebSocket

import { UsageError } from "../../../core/errors.ts";
import { ChunkQueue } from "./chunk_queue.ts";
import type { RfbServer } from "./rfb_server.ts";
import { WEB_PAGE } from "./web_page.ts";

/** Where the browser console listens when `-display web` names no address. */
export const WEB_DEFAULT_HOST = "127.0.0.1";
export const WEB_DEFAULT_PORT = 5800;
/** Bytes the WebSocket may hold unsent before a write waits (one update in flight, as TCP). */
const MAX_BUFFERED_BYTES = 4 << 20;

/** Parses `web[=HOST:PORT]` (the value of `-display`); undefined for any other display. */
export function parseWebDisplay(value: string): { host: string; port: number } | undefined {
  const match = /^(?:type=)?web(?:=(.*))?$/.exec(value.split(",")[0]);
  if (!match) return undefined;
  if (match[1] === undefined || match[1] === "") {
    return { host: WEB_DEFAULT_HOST, port: WEB_DEFAULT_PORT };
  }
  const address = /^(\[[0-9a-fA-F:.]+\]|[^:]*):(\d+)$/.exec(match[1]);
  const port = Number(address?.[2]);
  if (!address || !(port >= 0 && port <= 65535)) {
    throw new UsageError(`-display ${value}: address '${match[1]}' is not HOST:PORT`);
  }
  return { host: address[1].replace(/^\[(.*)\]$/, "$1") || WEB_DEFAULT_HOST, port };
}

/**
 * A WebSocket seen as the byte stream the RFB server reads and writes: binary messages
 * in, binary messages out, and a write that waits while the browser is behind.
 */
class WebSocketConn {
  readonly #ws: WebSocket;
  #in = new ChunkQueue();
  #closed = false;
  readonly remoteAddr = { transport: "websocket" };

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) this.#in.push(new Uint8Array(e.data));
    };
    ws.onclose = () => {
      this.#closed = true;
      this.#in.end();
    };
    ws.onerror = () => {
      this.#closed = true;
      this.#in.end();
    };
  }

  read(buf: Uint8Array): Promise<number | null> {
    return this.#in.read(buf);
  }

  async write(bytes: Uint8Array): Promise<number> {
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN) throw new Error("closed");
    this.#ws.send(bytes.slice());
    while (this.#ws.bufferedAmount > MAX_BUFFERED_BYTES && !this.#closed) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return bytes.length;
  }

  close(): void {
    this.#closed = true;
    try {
      this.#ws.close();
    } catch {
      // already closed
    }
    this.#in.end();
  }
}

/** The running browser console. */
export interface WebHandle {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the page at `/` and RFB over a WebSocket at `/websockify` to `server`.
 *
 * @throws UsageError when the address cannot be listened on
 */
export function startWeb(server: RfbServer, host: string, port: number): WebHandle {
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({ hostname: host, port, onListen: () => {} }, (request) => {
      const url = new URL(request.url);
      if (url.pathname === "/websockify") {
        if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return new Response("a WebSocket is expected here\n", { status: 426 });
        }
        const { socket, response } = Deno.upgradeWebSocket(request);
        socket.onopen = () => {
          server.serve(new WebSocketConn(socket) as unknown as Deno.Conn).catch(() => {});
        };
        return response;
      }
      if (url.pathname === "/" || url.pathname === "/index.html") {
        return new Response(WEB_PAGE.replace("__TITLE__", escapeHtml(server.name)), {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
      }
      return new Response("not found\n", { status: 404 });
    });
  } catch (error) {
    throw new UsageError(
      `Failed to start the web display on ${host}:${port}: ` +
        (error as Error).message.replace(/ \(os error.*$/s, ""),
    );
  }
  return {
    port: http.addr.port,
    async close() {
      await http.shutdown();
    },
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
