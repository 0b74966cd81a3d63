// The DNS forwarder behind 10.0.2.3: guest queries go to the host's resolver unchanged
// but for their ID, and answers come back from 10.0.2.3:53

import type { EventLoop } from "../../../core/event_loop.ts";
import type { HostSockets, HostUdp } from "./sockets.ts";

/** Queries waiting for an answer at once; more are dropped (the guest retries). */
const MAX_PENDING = 256;
/** Virtual time after which an unanswered query is forgotten. */
const QUERY_TIMEOUT_NS = 10e9;

interface Pending {
  guestPort: number;
  guestAddr: number;
  id: number;
  deadlineNs: number;
}

/**
 * Forwards DNS over UDP. Each query gets a fresh ID toward the resolver (two guest
 * processes may use the same one); the answer gets the guest's ID back.
 */
export class DnsForwarder {
  #socket: HostUdp | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Queries sent to the resolver. */
  forwarded = 0;

  constructor(
    readonly resolver: { host: string; port: number },
    readonly sockets: HostSockets,
    readonly loop: EventLoop,
    /** Sends an answer to the guest. */
    readonly answer: (guestAddr: number, guestPort: number, payload: Uint8Array) => void,
  ) {}

  /** A query from `guestAddr:guestPort`; false when it was not a DNS query or was dropped. */
  query(guestAddr: number, guestPort: number, payload: Uint8Array): boolean {
    // A query: a 12-byte header, QR clear, at least one question.
    if (payload.length < 12 || payload.length > 4096 || payload[2] & 0x80) return false;
    if (((payload[4] << 8) | payload[5]) === 0) return false;
    const now = this.loop.nowNs;
    for (const [k, p] of this.#pending) if (p.deadlineNs < now) this.#pending.delete(k);
    if (this.#pending.size >= MAX_PENDING) return false;
    let id = this.#nextId;
    while (this.#pending.has(id)) id = (id + 1) & 0xffff || 1;
    this.#nextId = (id + 1) & 0xffff || 1;
    this.#pending.set(id, {
      guestAddr,
      guestPort,
      id: (payload[0] << 8) | payload[1],
      deadlineNs: now + QUERY_TIMEOUT_NS,
    });
    const out = payload.slice();
    out[0] = id >> 8;
    out[1] = id & 0xff;
    this.#socket ??= this.sockets.openUdp((bytes, host, port) => this.#reply(bytes, host, port));
    this.#socket.send(out, this.resolver.host, this.resolver.port);
    this.forwarded++;
    return true;
  }

  #reply(bytes: Uint8Array, host: string, port: number): void {
    if (host !== this.resolver.host || port !== this.resolver.port || bytes.length < 12) return;
    const id = (bytes[0] << 8) | bytes[1];
    const p = this.#pending.get(id);
    if (!p || !(bytes[2] & 0x80)) return;
    this.#pending.delete(id);
    const out = bytes.slice();
    out[0] = p.id >> 8;
    out[1] = p.id & 0xff;
    this.answer(p.guestAddr, p.guestPort, out);
  }

  close(): void {
    this.#socket?.close();
    this.#socket = null;
    this.#pending.clear();
  }
}
