// `-vnc` and `-display vnc=...`: where the VNC server listens, its options, and starting it on a machine

import { DISPLAY } from "../../../core/display.ts";
import { UsageError } from "../../../core/errors.ts";
import type { Machine } from "../../../core/machine.ts";
import { parseKeyValueList } from "../../../core/options.ts";
import { RfbServer, type SharePolicy } from "./rfb_server.ts";
import { SocketRelay } from "../relay/socket_relay.ts";

/** The first VNC display's TCP port: display N listens on 5900 + N. */
export const VNC_PORT_BASE = 5900;

/** Where a VNC server listens and how it serves. */
export interface VncSpec {
  /** The text given, for messages. */
  text: string;
  transport: "tcp" | "unix";
  /** TCP: the host ("" for every address, as QEMU's `:N`). */
  host: string;
  /** TCP: the display number, and the last one to try when it is taken (`to=`). */
  display: number;
  to: number;
  /** Unix: the socket path. */
  path: string;
  share: SharePolicy;
  /** `password=on`: VNC Authentication with the password the monitor sets. */
  password: boolean;
}

const SHARE_POLICIES: readonly SharePolicy[] = ["allow-exclusive", "force-shared", "ignore"];

/**
 * Parses the argument of `-vnc` (also the value of `-display vnc=`): `:N`, `HOST:N`,
 * `[V6ADDR]:N`, `unix:PATH` or `none`, then `share=`, `to=`, `password=`. Undefined
 * for `none`.
 *
 * @throws UsageError for anything else, naming the part at fault
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseVncSpec } from "./vnc.ts";
 *
 * const spec = parseVncSpec("127.0.0.1:3,share=force-shared")!;
 * assert.deepEqual([spec.host, spec.display, spec.share], ["127.0.0.1", 3, "force-shared"]);
 * assert.equal(parseVncSpec("unix:/tmp/vnc.sock")?.path, "/tmp/vnc.sock");
 * ```
 */
export function parseVncSpec(text: string): VncSpec | undefined {
  const items = parseKeyValueList(text, { impliedKey: "vnc" });
  const address = items.find((i) => i.key === "vnc")?.value ?? "";
  if (address === "none") return undefined;
  const spec: VncSpec = {
    text,
    transport: "tcp",
    host: "",
    display: 0,
    to: 0,
    path: "",
    share: "allow-exclusive",
    password: false,
  };
  if (address.startsWith("unix:")) {
    spec.transport = "unix";
    spec.path = address.slice(5);
    if (spec.path === "") throw new UsageError(`-vnc ${text}: a unix socket path is required`);
  } else {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:]*):(\d+)$/.exec(address);
    if (!match) {
      throw new UsageError(
        `-vnc ${text}: address '${address}' is not HOST:DISPLAY, :DISPLAY or unix:PATH`,
      );
    }
    spec.host = match[1].replace(/^\[(.*)\]$/, "$1");
    spec.display = Number(match[2]);
    if (spec.display > 65535 - VNC_PORT_BASE) {
      throw new UsageError(`-vnc ${text}: display ${spec.display} is out of range`);
    }
    spec.to = spec.display;
  }
  for (const item of items) {
    if (item.key === "vnc") continue;
    switch (item.key) {
      case "share":
        if (!SHARE_POLICIES.includes(item.value as SharePolicy)) {
          throw new UsageError(`-vnc ${text}: unknown vnc share policy '${item.value}'`);
        }
        spec.share = item.value as SharePolicy;
        break;
      case "to": {
        const to = Number(item.value);
        if (!Number.isInteger(to) || to < spec.display || to > 65535 - VNC_PORT_BASE) {
          throw new UsageError(
            `-vnc ${text}: to=${item.value} is not a display number >= the first`,
          );
        }
        spec.to = to;
        break;
      }
      case "password":
        if (item.bare || ["on", "yes", "true"].includes(item.value)) spec.password = true;
        else if (["off", "no", "false"].includes(item.value)) spec.password = false;
        else throw new UsageError(`-vnc ${text}: password=${item.value} is not on or off`);
        break;
      default:
        throw new UsageError(`-vnc ${text}: option '${item.key}' is not supported by vmkit yet`);
    }
  }
  return spec;
}

/**
 * The VNC server the command line asks for: the last `-vnc`, or `-display vnc=...`.
 * `-display none` with no `-vnc` means none.
 */
export function vncSpecFromOptions(
  opts: readonly { name: string; value: string }[],
): VncSpec | undefined {
  let text: string | undefined;
  for (const o of opts) {
    if (o.name === "vnc") text = o.value;
    if (o.name === "display" && /^(type=)?vnc=/.test(o.value)) {
      text = o.value.replace(/^(type=)?vnc=/, "");
    }
  }
  return text === undefined ? undefined : parseVncSpec(text);
}

/** A running VNC server and where it listens. */
export interface VncHandle {
  readonly server: RfbServer;
  /** The TCP port, or the unix path. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The RFB server over `machine`'s display, named as QEMU names it ("QEMU", or
 * "QEMU (NAME)" with `-name NAME`); VNC clients and the browser console share it.
 */
export function rfbServer(
  machine: Machine,
  spec: VncSpec | undefined,
  guestName?: string,
): RfbServer {
  const display = machine.findService(DISPLAY);
  const server = new RfbServer(display, {
    name: guestName ? `QEMU (${guestName})` : "QEMU",
    share: spec?.share,
    passwordRequired: spec?.password,
  });
  display?.addPasswordTarget("vnc", (password) => server.setPassword(password));
  return server;
}

/**
 * Starts listening for VNC clients as `spec` says, served by `server`.
 *
 * @throws UsageError when no display in range can be listened on
 */
export function startVnc(server: RfbServer, spec: VncSpec): VncHandle {
  let relay: SocketRelay;
  let address: string;
  if (spec.transport === "unix") {
    try {
      Deno.removeSync(spec.path);
    } catch {
      // nothing there
    }
    try {
      relay = SocketRelay.listen({ transport: "unix", path: spec.path });
    } catch (error) {
      throw new UsageError(`Failed to start VNC server: ${(error as Error).message}`);
    }
    address = spec.path;
  } else {
    const ports: number[] = [];
    for (let n = spec.display; n <= spec.to; n++) ports.push(VNC_PORT_BASE + n);
    try {
      // The sockets live on their own thread: see socket_thread.ts for why.
      relay = SocketRelay.listen({
        transport: "tcp",
        hostname: spec.host === "" ? "0.0.0.0" : spec.host,
        ports,
      });
    } catch (error) {
      throw new UsageError(
        `Failed to start VNC server: ${(error as Error).message.replace(/ \(os error.*$/s, "")}`,
      );
    }
    address = String(relay.port);
  }
  const accepting = server.accept(relay as AsyncIterable<unknown> as AsyncIterable<Deno.Conn>);
  return {
    server,
    address,
    async close() {
      await relay.close();
      await accepting;
      if (spec.transport === "unix") await Deno.remove(spec.path).catch(() => {});
    },
  };
}
