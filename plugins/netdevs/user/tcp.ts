// TCP (RFC 9293) between the guest and the stack: each guest connection is spliced to a
// host socket (and each hostfwd connection to a new connection into the guest)

import type { EventLoop, Timer } from "../../../core/event_loop.ts";
import { internetChecksum, IPPROTO_TCP, onesSum, pseudoHeaderSum } from "./ipv4.ts";
import type { HostTcp } from "./sockets.ts";

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
/** The MSS the stack announces and uses when the guest names none larger (RFC 9293 3.7.1). */
export const TCP_MSS = 1460;
const DEFAULT_GUEST_MSS = 536;
/** The receive window the stack offers (no window scaling). */
const MAX_WINDOW = 65535;
/** Bytes queued toward the host past which the offered window shrinks to zero. */
const HOST_BACKLOG_BYTES = 256 * 1024;
/** Bytes from the host waiting for the guest past which the host socket is paused. */
const GUEST_BACKLOG_BYTES = 1024 * 1024;
const RTO_NS = 500e6;
const MAX_RETRIES = 10;

/** One TCP segment. */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** The MSS option of a SYN, when present. */
  mss?: number;
  payload: Uint8Array;
}

/** Reads a segment; null when the header is short, the data offset wrong or the checksum bad. */
export function parseTcp(src: number, dst: number, bytes: Uint8Array): TcpSegment | null {
  if (bytes.length < 20) return null;
  const offset = (bytes[12] >> 4) * 4;
  if (offset < 20 || offset > bytes.length) return null;
  if (onesSum(bytes, pseudoHeaderSum(src, dst, IPPROTO_TCP, bytes.length)) !== 0xffff) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const seg: TcpSegment = {
    srcPort: v.getUint16(0),
    dstPort: v.getUint16(2),
    seq: v.getUint32(4),
    ack: v.getUint32(8),
    flags: bytes[13] & 0x3f,
    window: v.getUint16(14),
    payload: bytes.subarray(offset),
  };
  // Options: only MSS matters; a malformed list ends the walk.
  for (let i = 20; i < offset;) {
    const kind = bytes[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = bytes[i + 1];
    if (i + 1 >= offset || len < 2 || i + len > offset) break;
    if (kind === 2 && len === 4) seg.mss = v.getUint16(i + 2);
    i += len;
  }
  return seg;
}

/** Builds a segment (the IP payload) with its checksum; a SYN carries the MSS option. */
export function buildTcp(src: number, dst: number, seg: TcpSegment): Uint8Array {
  const optBytes = seg.mss !== undefined ? 4 : 0;
  const out = new Uint8Array(20 + optBytes + seg.payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, seg.srcPort);
  v.setUint16(2, seg.dstPort);
  v.setUint32(4, seg.seq >>> 0);
  v.setUint32(8, seg.ack >>> 0);
  out[12] = ((20 + optBytes) / 4) << 4;
  out[13] = seg.flags;
  v.setUint16(14, seg.window);
  if (seg.mss !== undefined) {
    out[20] = 2;
    out[21] = 4;
    v.setUint16(22, seg.mss);
  }
  out.set(seg.payload, 20 + optBytes);
  v.setUint16(16, internetChecksum(out, pseudoHeaderSum(src, dst, IPPROTO_TCP, out.length)));
  return out;
}

/** a < b in sequence space. */
function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** Where a connection's segments to the guest go. */
export interface TcpOutput {
  /** Sends a TCP segment from `src` (the remote as the guest sees it) to `dst` (the guest). */
  sendTcp(src: number, dst: number, tcp: Uint8Array): void;
  /**
   * The largest data segment the guest's NIC takes now, when it takes more than the
   * guest's MSS (a virtio-net with GUEST_TSO4); absent or 0 means the MSS.
   */
  largeSegmentBytes?(): number;
}

/** Connection states, as RFC 9293 names them where they match. */
export type TcpState = "connecting" | "syn-sent" | "syn-received" | "established" | "closed";

let issCounter = (Math.random() * 0xffffffff) >>> 0;

/**
 * One spliced connection: the guest's end at `guestAddr:guestPort`, the far end as the
 * guest sees it at `remoteAddr:remotePort`, and a host socket carrying the bytes.
 */
export class TcpConnection {
  state: TcpState;
  #sndUna: number;
  #sndNxt: number;
  #rcvNxt = 0;
  #guestWindow = 0;
  #guestMss = DEFAULT_GUEST_MSS;
  /** Bytes from the host not yet acknowledged by the guest, starting at sndUna. */
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #hostEnded = false;
  #finSent = false;
  #guestFin = false;
  #retries = 0;
  #paused = false;
  #lastWindow = MAX_WINDOW;
  #timer: Timer;

  constructor(
    readonly key: string,
    readonly guestAddr: number,
    readonly guestPort: number,
    readonly remoteAddr: number,
    readonly remotePort: number,
    readonly host: HostTcp,
    readonly output: TcpOutput,
    readonly loop: EventLoop,
    readonly onClosed: (conn: TcpConnection) => void,
    initial: "connecting" | "syn-sent",
  ) {
    this.state = initial;
    this.#sndUna = this.#sndNxt = issCounter;
    issCounter = (issCounter + 64000) >>> 0;
    this.#timer = loop.createTimer(`user-tcp ${key}`, () => this.#onTimer());
    host.setEvents({
      onConnect: () => this.#hostConnected(),
      onData: (b) => this.#hostData(b),
      onEnd: () => this.#hostEnd(),
      onError: () => this.abort(true),
    });
  }

  /** Bytes from the host the guest has not acknowledged yet (`info usernet`'s RecvQ). */
  get queuedBytes(): number {
    return this.#outBytes;
  }

  /** A guest SYN opened this connection: remember its sequence numbers and MSS. */
  acceptSyn(seg: TcpSegment): void {
    this.#rcvNxt = (seg.seq + 1) >>> 0;
    this.#guestWindow = seg.window;
    if (seg.mss !== undefined) this.#guestMss = Math.max(64, Math.min(seg.mss, TCP_MSS));
  }

  /** Starts a hostfwd connection: SYN to the guest. */
  startToGuest(): void {
    this.#send(TCP_SYN, this.#sndNxt, new Uint8Array(0), TCP_MSS);
    this.#sndNxt = (this.#sndNxt + 1) >>> 0;
    this.#timer.arm(this.loop.nowNs + RTO_NS);
  }

  #window(): number {
    const w = Math.max(0, Math.min(MAX_WINDOW, HOST_BACKLOG_BYTES - this.host.pendingBytes));
    this.#lastWindow = w;
    return w;
  }

  #send(flags: number, seq: number, payload: Uint8Array, mss?: number): void {
    const seg: TcpSegment = {
      srcPort: this.remotePort,
      dstPort: this.guestPort,
      seq,
      ack: flags & TCP_ACK ? this.#rcvNxt : 0,
      flags,
      window: this.#window(),
      mss,
      payload,
    };
    this.output.sendTcp(
      this.remoteAddr,
      this.guestAddr,
      buildTcp(this.remoteAddr, this.guestAddr, seg),
    );
  }

  #hostConnected(): void {
    if (this.state !== "connecting") return;
    this.state = "syn-received";
    this.#send(TCP_SYN | TCP_ACK, this.#sndNxt, new Uint8Array(0), TCP_MSS);
    this.#sndNxt = (this.#sndNxt + 1) >>> 0;
    this.#timer.arm(this.loop.nowNs + RTO_NS);
  }

  #hostData(bytes: Uint8Array): void {
    if (this.state === "closed" || this.#hostEnded) return;
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    if (this.#outBytes > GUEST_BACKLOG_BYTES && !this.#paused) {
      this.#paused = true;
      this.host.pause();
    }
    this.#pump();
  }

  #hostEnd(): void {
    if (this.state === "closed") return;
    this.#hostEnded = true;
    this.#pump();
  }

  /** Bytes of #out from `offset` (relative to sndUna), up to `length`. */
  #slice(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let at = 0;
    let skip = offset;
    for (const chunk of this.#out) {
      if (at >= length) break;
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      const part = chunk.subarray(skip, skip + (length - at));
      out.set(part, at);
      at += part.length;
      skip = 0;
    }
    return out;
  }

  /** Sends what the guest's window allows, then the FIN once the host has ended. */
  #pump(): void {
    if (this.state !== "established") return;
    for (;;) {
      const inFlight = (this.#sndNxt - this.#sndUna) >>> 0;
      const sentData = this.#finSent ? inFlight - 1 : inFlight;
      const unsent = this.#outBytes - sentData;
      const room = this.#guestWindow - inFlight;
      if (unsent > 0 && room <= 0 && !this.#timer.armed) {
        this.#timer.arm(this.loop.nowNs + RTO_NS);
      }
      if (unsent <= 0 || room <= 0 || this.#finSent) break;
      const n = Math.min(unsent, room, this.output.largeSegmentBytes?.() || this.#guestMss);
      this.#send(TCP_ACK | TCP_PSH, this.#sndNxt, this.#slice(sentData, n));
      this.#sndNxt = (this.#sndNxt + n) >>> 0;
      if (!this.#timer.armed) this.#timer.arm(this.loop.nowNs + RTO_NS);
    }
    const inFlight = (this.#sndNxt - this.#sndUna) >>> 0;
    if (this.#hostEnded && !this.#finSent && inFlight === this.#outBytes) {
      this.#send(TCP_ACK | TCP_FIN, this.#sndNxt, new Uint8Array(0));
      this.#sndNxt = (this.#sndNxt + 1) >>> 0;
      this.#finSent = true;
      if (!this.#timer.armed) this.#timer.arm(this.loop.nowNs + RTO_NS);
    }
  }

  #onTimer(): void {
    if (this.state === "closed") return;
    if (this.#lastWindow === 0 && this.state === "established") {
      // The offered window was zero: tell the guest once the host has drained.
      if (this.#window() > 0) this.#send(TCP_ACK, this.#sndNxt, new Uint8Array(0));
    }
    if (this.#sndUna === this.#sndNxt) {
      if (this.#outBytes > 0 && this.#guestWindow === 0 && this.state === "established") {
        // Data waits on a zero window: probe it with one byte (RFC 9293 3.8.6.1).
        this.#guestWindow = 1;
        this.#pump();
        this.#guestWindow = 0;
      } else if (this.#lastWindow === 0) {
        this.#timer.arm(this.loop.nowNs + RTO_NS);
      }
      return;
    }
    if (++this.#retries > MAX_RETRIES) {
      this.abort(true);
      return;
    }
    // Go back to the first unacknowledged byte.
    if (this.state === "syn-received") {
      this.#send(TCP_SYN | TCP_ACK, this.#sndUna, new Uint8Array(0), TCP_MSS);
    } else if (this.state === "syn-sent") {
      this.#send(TCP_SYN, this.#sndUna, new Uint8Array(0), TCP_MSS);
    } else {
      this.#sndNxt = this.#sndUna;
      this.#finSent = false;
      const guestWindow = this.#guestWindow;
      // A zero window is probed with one byte (RFC 9293 3.8.6.1).
      if (guestWindow === 0) this.#guestWindow = 1;
      this.#pump();
      this.#guestWindow = guestWindow;
    }
    this.#timer.arm(this.loop.nowNs + RTO_NS * Math.min(16, 2 ** this.#retries));
  }

  /** A segment from the guest for this connection. */
  input(seg: TcpSegment): void {
    if (this.state === "closed") return;
    if (seg.flags & TCP_RST) {
      this.abort(false);
      return;
    }
    if (this.state === "connecting") return; // the SYN's retransmit; the host answers first
    if (this.state === "syn-sent") {
      if ((seg.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK) || seg.ack !== this.#sndNxt) {
        if (seg.flags & TCP_ACK) this.#rst(seg);
        return;
      }
      this.acceptSyn(seg);
      this.#sndUna = this.#sndNxt;
      this.state = "established";
      this.#retries = 0;
      this.#timer.cancel();
      this.#send(TCP_ACK, this.#sndNxt, new Uint8Array(0));
      this.host.resume();
      this.#pump();
      return;
    }
    if (seg.flags & TCP_SYN) {
      // A retransmitted SYN: answer with our SYN-ACK again.
      if (this.state === "syn-received") {
        this.#send(TCP_SYN | TCP_ACK, this.#sndUna, new Uint8Array(0), TCP_MSS);
      }
      return;
    }
    if (!(seg.flags & TCP_ACK)) return;
    if (seqLt(this.#sndUna, seg.ack) && seqLe(seg.ack, this.#sndNxt)) {
      let acked = (seg.ack - this.#sndUna) >>> 0;
      if (this.state === "syn-received") {
        this.state = "established";
        acked--;
      }
      if (this.#finSent && seg.ack === this.#sndNxt) acked--;
      this.#drop(Math.max(0, acked));
      this.#sndUna = seg.ack;
      this.#retries = 0;
      if (this.#sndUna === this.#sndNxt) this.#timer.cancel();
      else this.#timer.arm(this.loop.nowNs + RTO_NS);
    } else if (this.state === "syn-received") {
      return;
    }
    this.#guestWindow = seg.window;
    let payload = seg.payload;
    let seq = seg.seq;
    if (payload.length > 0 || seg.flags & TCP_FIN) {
      if (seqLt(seq, this.#rcvNxt)) {
        // Bytes the host already has: keep only the new tail.
        const old = (this.#rcvNxt - seq) >>> 0;
        payload = old >= payload.length ? payload.subarray(payload.length) : payload.subarray(old);
        seq = this.#rcvNxt;
      }
      if (seq !== this.#rcvNxt || this.#guestFin) {
        this.#send(TCP_ACK, this.#sndNxt, new Uint8Array(0));
      } else {
        if (payload.length > 0) {
          this.host.write(payload.slice());
          this.#rcvNxt = (this.#rcvNxt + payload.length) >>> 0;
        }
        if (seg.flags & TCP_FIN && (seg.seq + seg.payload.length) >>> 0 === this.#rcvNxt) {
          this.#rcvNxt = (this.#rcvNxt + 1) >>> 0;
          this.#guestFin = true;
          this.host.end();
        }
        this.#send(TCP_ACK, this.#sndNxt, new Uint8Array(0));
        if (this.#lastWindow === 0 && !this.#timer.armed) {
          this.#timer.arm(this.loop.nowNs + RTO_NS);
        }
      }
    }
    if (this.#guestFin && this.#finSent && this.#sndUna === this.#sndNxt) {
      this.#close();
      return;
    }
    this.#pump();
  }

  #drop(bytes: number): void {
    let left = Math.min(bytes, this.#outBytes);
    this.#outBytes -= left;
    while (left > 0 && this.#out.length > 0) {
      const first = this.#out[0];
      if (first.length <= left) {
        left -= first.length;
        this.#out.shift();
      } else {
        this.#out[0] = first.subarray(left);
        left = 0;
      }
    }
    if (this.#paused && this.#outBytes < GUEST_BACKLOG_BYTES / 4) {
      this.#paused = false;
      this.host.resume();
    }
  }

  #rst(seg: TcpSegment): void {
    const rst: TcpSegment = {
      srcPort: this.remotePort,
      dstPort: this.guestPort,
      seq: seg.ack,
      ack: 0,
      flags: TCP_RST,
      window: 0,
      payload: new Uint8Array(0),
    };
    this.output.sendTcp(
      this.remoteAddr,
      this.guestAddr,
      buildTcp(this.remoteAddr, this.guestAddr, rst),
    );
  }

  /** Ends the connection at once; `tellGuest` sends it a RST. */
  abort(tellGuest: boolean): void {
    if (this.state === "closed") return;
    if (tellGuest && this.state !== "connecting") {
      this.#send(TCP_RST | TCP_ACK, this.#sndNxt, new Uint8Array(0));
    } else if (tellGuest) {
      // The host refused: the guest's SYN gets a RST|ACK.
      this.#send(TCP_RST | TCP_ACK, 0, new Uint8Array(0));
    }
    this.#close();
  }

  #close(): void {
    this.state = "closed";
    this.loop.deleteTimer(this.#timer);
    this.host.destroy();
    this.#out = [];
    this.#outBytes = 0;
    this.onClosed(this);
  }
}

/** The RST|ACK (or RST) that answers a segment for no connection (RFC 9293 3.10.7.1). */
export function resetFor(seg: TcpSegment): TcpSegment {
  const empty = new Uint8Array(0);
  if (seg.flags & TCP_ACK) {
    return {
      srcPort: seg.dstPort,
      dstPort: seg.srcPort,
      seq: seg.ack,
      ack: 0,
      flags: TCP_RST,
      window: 0,
      payload: empty,
    };
  }
  let len = seg.payload.length;
  if (seg.flags & TCP_SYN) len++;
  if (seg.flags & TCP_FIN) len++;
  return {
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq: 0,
    ack: (seg.seq + len) >>> 0,
    flags: TCP_RST | TCP_ACK,
    window: 0,
    payload: empty,
  };
}
