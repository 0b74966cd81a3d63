// A read-only TFTP server (RFC 1350) for `tftp=`: octet and netascii reads, confined to the
// served folder, with the option extension (RFC 2347) for blksize (RFC 2348), tsize and
// timeout (RFC 2349), which iPXE and PXELINUX ask for

import type { EventLoop, Timer } from "../../../core/event_loop.ts";

export const TFTP_PORT = 69;
const OP_RRQ = 1;
const OP_WRQ = 2;
const OP_DATA = 3;
const OP_ACK = 4;
const OP_ERROR = 5;
const OP_OACK = 6;
/** The block size without a `blksize` option (RFC 1350). */
const BLOCK_BYTES = 512;
/**
 * The largest block size granted: a block in one unfragmented Ethernet frame (1500 bytes
 * less the IP, UDP and TFTP headers, rounded down as slirp does to 1428).
 */
const MAX_BLOCK_BYTES = 1428;
/** RFC 2348's smallest block size. */
const MIN_BLOCK_BYTES = 8;
/** The largest file served: block numbers do not wrap. */
const MAX_FILE_BYTES = 65535 * MAX_BLOCK_BYTES;
const MAX_SESSIONS = 16;
/** Bytes of open transfers held at once: a guest opening many large ones is refused. */
const MAX_HELD_BYTES = 256 * 1024 * 1024;
const RETRY_NS = 1e9;
const MAX_RETRIES = 5;

interface Session {
  guestAddr: number;
  guestPort: number;
  /** The server's port for this transfer (its TID). */
  port: number;
  data: Uint8Array;
  /** The block size agreed (512 unless `blksize` asked for another). */
  blockBytes: number;
  /** The block last sent and not yet acknowledged; 0 while the OACK waits for its ACK. */
  block: number;
  /** The OACK sent for the options, repeated until the guest acknowledges it. */
  oack: Uint8Array | null;
  retryNs: number;
  retries: number;
  timer: Timer;
}

/** The options of a read request (RFC 2347), lower-cased names; unknown ones ignored. */
function readOptions(fields: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === "") break;
    out.set(fields[i].toLowerCase(), fields[i + 1]);
  }
  return out;
}

/** A decimal option value, or NaN when it is not one. */
function optionNumber(text: string | undefined): number {
  return text !== undefined && /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
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
        if (s.block > 0 && s.block * s.blockBytes > s.data.length) {
          this.#end(s);
          return;
        }
        s.oack = null;
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
    // A request ends with a NUL, so the split leaves an empty last field.
    const [name, mode] = fields;
    const options = readOptions(fields.slice(2));
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
        const held = [...this.#sessions.values()].reduce((n, o) => n + o.data.length, 0);
        if (this.#sessions.size >= MAX_SESSIONS || held + data.length > MAX_HELD_BYTES) {
          this.send(TFTP_PORT, guestAddr, guestPort, tftpError(0, "Too many transfers"));
          return;
        }
        const port = this.#allocPort();
        const agreed = this.#negotiate(options, data.length);
        if (data.length > 65535 * agreed.blockBytes) {
          this.send(TFTP_PORT, guestAddr, guestPort, tftpError(0, "File too large"));
          return;
        }
        const s: Session = {
          guestAddr,
          guestPort,
          port,
          data,
          blockBytes: agreed.blockBytes,
          block: agreed.oack ? 0 : 1,
          oack: agreed.oack,
          retryNs: agreed.retryNs,
          retries: 0,
          timer: this.loop.createTimer(`user-tftp ${port}`, () => this.#retry(s)),
        };
        this.#sessions.set(port, s);
        this.#sendBlock(s);
      });
    });
  }

  /**
   * The options granted: `blksize` (8..65464 asked, at most {@linkcode MAX_BLOCK_BYTES}
   * given), `tsize` (answered with the file's size) and `timeout` (1..255 s). A request
   * with none of them gets plain RFC 1350 (no OACK).
   */
  #negotiate(
    options: Map<string, string>,
    fileBytes: number,
  ): { blockBytes: number; retryNs: number; oack: Uint8Array | null } {
    const answer: string[] = [];
    let blockBytes = BLOCK_BYTES;
    let retryNs = RETRY_NS;
    const blksize = optionNumber(options.get("blksize"));
    if (blksize >= MIN_BLOCK_BYTES && blksize <= 65464) {
      blockBytes = Math.min(blksize, MAX_BLOCK_BYTES);
      answer.push("blksize", String(blockBytes));
    }
    if (options.has("tsize") && optionNumber(options.get("tsize")) === 0) {
      answer.push("tsize", String(fileBytes));
    }
    const timeout = optionNumber(options.get("timeout"));
    if (timeout >= 1 && timeout <= 255) {
      retryNs = timeout * 1e9;
      answer.push("timeout", String(timeout));
    }
    if (answer.length === 0) return { blockBytes, retryNs, oack: null };
    const text = new TextEncoder().encode(answer.join("\0") + "\0");
    const oack = new Uint8Array(2 + text.length);
    oack[1] = OP_OACK;
    oack.set(text, 2);
    return { blockBytes, retryNs, oack };
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
    if (s.oack) {
      this.send(s.port, s.guestAddr, s.guestPort, s.oack);
      s.timer.arm(this.loop.nowNs + s.retryNs);
      return;
    }
    const start = (s.block - 1) * s.blockBytes;
    const chunk = s.data.subarray(start, start + s.blockBytes);
    const out = new Uint8Array(4 + chunk.length);
    out[1] = OP_DATA;
    out[2] = s.block >> 8;
    out[3] = s.block & 0xff;
    out.set(chunk, 4);
    this.send(s.port, s.guestAddr, s.guestPort, out);
    s.timer.arm(this.loop.nowNs + s.retryNs);
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
