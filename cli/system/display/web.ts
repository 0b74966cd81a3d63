// `-display web[=HOST:PORT]`: one page with the guest's screen on a canvas; the page speaks RFB to the VNC server over a WebSocket

import { UsageError } from "../../../core/errors.ts";
import type { RfbServer } from "./rfb_server.ts";
import { SocketRelay } from "../relay/socket_relay.ts";
import { WEB_PAGE } from "./web_page.ts";

/** Where the browser console listens when `-display web` names no address. */
export const WEB_DEFAULT_HOST = "127.0.0.1";
export const WEB_DEFAULT_PORT = 5800;
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
  let relay: SocketRelay;
  try {
    // On the socket thread, as VNC's sockets (socket_thread.ts says why).
    relay = SocketRelay.listen({
      transport: "web",
      hostname: host,
      ports: [port],
      page: WEB_PAGE.replace("__TITLE__", escapeHtml(server.name)),
    });
  } catch (error) {
    throw new UsageError(
      `Failed to start the web display on ${host}:${port}: ` +
        (error as Error).message.replace(/ \(os error.*$/s, ""),
    );
  }
  const accepting = server.accept(relay as AsyncIterable<unknown> as AsyncIterable<Deno.Conn>);
  return {
    port: relay.port,
    async close() {
      await relay.close();
      await accepting;
    },
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
