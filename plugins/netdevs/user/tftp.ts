// A read-only TFTP server (RFC 1350) for `tftp=`: octet and netascii reads by 512-byte
// blocks, confined to the served folder

import type { EventLoop, Timer } from "../../../core/event_loop.ts";

export const TFTP_PORT = 69;
const OP_RRQ = 1;
const OP_WRQ = 2;
const OP_DATA = 3;
const OP_ACK = 4;
const OP_ERROR = 5;
const BLOCK_BYTES = 512;
/** The largest file served: block numbers do not wrap. */
const MAX_FILE_BYTES = 65535 * BLOCK_BYTES;
const MAX_SESSIONS = 16;
const RETRY_NS = 1e9;
const MAX_RETRIES = 5;

interface Session {
  guestAddr: number;
  guestPort: number;
  /** The server's port for this transfer (its TID). */
  port: number;
  data: Uint8Array;
  block: number;
  retries: number;
  timer: Timer;
}

/** Sends a datagram from the server's `srcPort` to the guest. */
export type TftpSend = (
  srcPort: number,
  guestAddr: number,
  guestPort: number,
  b: Uint8Array,
) => void;

/** Builds a TFTP ERROR packet. */
export function tftpError(code: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const out = new Uint8Array(5 + text.length);
  out[1] = OP_ERROR;
  out[3] = code;
  out.set(text, 4);
  return out;
}

/** The TFTP server of one user network. */
export class TftpServer {
  #sessions = new Map<number, Session>();
  #nextPort = 30000;

  constructor(
    readonly root: string,
    readonly loop: EventLoop,
    readonly send: TftpSend,
  ) {}

  /** True when `port` is one of the server's transfer ports. */
  owns(port: number): boolean {
    return this.#sessions.has(port);
  }

  /** A datagram to port 69 (a request) or to a transfer port (an ACK). */
  input(dstPort: number, guestAddr: number, guestPort: number, bytes: Uint8Array): void {
    if (bytes.length < 4) return;
    const op = (bytes[0] << 8) | bytes[1];
    if (dstPort !== TFTP_PORT) {
      const s = this.#sessions.get(dstPort);
      if (!s || s.guestPort !== guestPort || s.guestAddr !== guestAddr) return;
      if (op === OP_ACK && ((bytes[2] << 8) | bytes[3]) === s.block) {
        if (s.block * BLOCK_BYTES > s.data.length) {
          this.#end(s);
          return;
        }
        s.block++;
        s.retries = 0;
        this.#sendBlock(s);
      } else if (op === OP_ERROR) {
        this.#end(s);
      }
      return;
    }
    if (op === OP_WRQ) {
      this.send(TFTP_PORT, guestAddr, guestPort, tftpError(2, "Access violation"));
      return;
    }
    if (op !== OP_RRQ) {
      this.send(TFTP_PORT, guestAddr, guestPort, tftpError(4, "Illegal TFTP operation"));
      return;
    }
    const fields = new TextDecoder().decode(bytes.subarray(2)).split("\0");
    const [name, mode] = fields;
    if (!name || !mode || !["octet", "netascii"].includes(mode.toLowerCase())) {
      this.send(TFTP_PORT, guestAddr, guestPort, tftpError(4, "Unsupported transfer mode"));
      return;
    }
    if (this.#sessions.size >= MAX_SESSIONS) {
      this.send(TFTP_PORT, guestAddr, guestPort, tftpError(0, "Too many transfers"));
      return;
    }
    this.loop.track(this.#open(name)).then((data) => {
      this.loop.defer(() => {
        if (typeof data === "string") {
          const code = data === "Access violation" ? 2 : data === "File not found" ? 1 : 0;
          this.send(TFTP_PORT, guestAddr, guestPort, tftpError(code, data));
          return;
        }
        const port = this.#allocPort();
        const s: Session = {
          guestAddr,
          guestPort,
          port,
          data,
          block: 1,
          retries: 0,
          timer: this.loop.createTimer(`user-tftp ${port}`, () => this.#retry(s)),
        };
        this.#sessions.set(port, s);
        this.#sendBlock(s);
      });
    });
  }

  #allocPort(): number {
    do {
      this.#nextPort = this.#nextPort >= 60000 ? 30000 : this.#nextPort + 1;
    } while (this.#sessions.has(this.#nextPort));
    return this.#nextPort;
  }

  /** Reads a file under the root; a string is the error the guest is told. */
  async #open(name: string): Promise<Uint8Array | string> {
    const parts = name.replaceAll("\\", "/").split("/").filter((p) => p !== "" && p !== ".");
    if (parts.some((p) => p === "..")) return "Access violation";
    try {
      const root = await Deno.realPath(this.root);
      const path = await Deno.realPath(`${root}/${parts.join("/")}`);
      if (path !== root && !path.startsWith(root.endsWith("/") ? root : root + "/")) {
        return "Access violation";
      }
      const info = await Deno.stat(path);
      if (!info.isFile) return "File not found";
      if (info.size > MAX_FILE_BYTES) return "File too large";
      return await Deno.readFile(path);
    } catch {
      return "File not found";
    }
  }

  #sendBlock(s: Session): void {
    const start = (s.block - 1) * BLOCK_BYTES;
    const chunk = s.data.subarray(start, start + BLOCK_BYTES);
    const out = new Uint8Array(4 + chunk.length);
    out[1] = OP_DATA;
    out[2] = s.block >> 8;
    out[3] = s.block & 0xff;
    out.set(chunk, 4);
    this.send(s.port, s.guestAddr, s.guestPort, out);
    s.timer.arm(this.loop.nowNs + RETRY_NS);
  }

  #retry(s: Session): void {
    if (++s.retries > MAX_RETRIES) this.#end(s);
    else this.#sendBlock(s);
  }

  #end(s: Session): void {
    this.loop.deleteTimer(s.timer);
    this.#sessions.delete(s.port);
  }

  close(): void {
    for (const s of [...this.#sessions.values()]) this.#end(s);
  }
}
