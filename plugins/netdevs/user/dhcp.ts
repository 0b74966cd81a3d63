// The DHCP server (RFC 2131, options RFC 2132): leases from dhcpstart, one per MAC address

import type { UserNetConfig } from "./config.ts";

export const BOOTP_SERVER_PORT = 67;
export const BOOTP_CLIENT_PORT = 68;
export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;
/** 99.130.83.99, the magic cookie before the options. */
const DHCP_MAGIC = 0x63825363;
/** Leases the server hands out, as slirp's NB_BOOTP_CLIENTS. */
export const DHCP_LEASES = 16;
/** Lease time in seconds (slirp's LEASE_TIME). */
export const DHCP_LEASE_SECONDS = 86400;
const BOOTP_FIXED_BYTES = 236;
/** The smallest BOOTP message old clients accept (RFC 1542). */
const BOOTP_MIN_BYTES = 300;

/** A request the server read. */
export interface DhcpRequest {
  xid: number;
  flags: number;
  ciaddr: number;
  chaddr: Uint8Array;
  type: number;
  requested?: number;
  serverId?: number;
}

/** Reads a BOOTREQUEST with a DHCP message type; null for anything else. */
export function parseDhcp(bytes: Uint8Array): DhcpRequest | null {
  if (bytes.length < BOOTP_FIXED_BYTES + 4) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (bytes[0] !== 1 || bytes[1] !== 1 || bytes[2] !== 6) return null;
  if (v.getUint32(BOOTP_FIXED_BYTES) !== DHCP_MAGIC) return null;
  const req: DhcpRequest = {
    xid: v.getUint32(4),
    flags: v.getUint16(10),
    ciaddr: v.getUint32(12),
    chaddr: bytes.slice(28, 34),
    type: 0,
  };
  for (let i = BOOTP_FIXED_BYTES + 4; i < bytes.length;) {
    const code = bytes[i];
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    if (i + 1 >= bytes.length) break;
    const len = bytes[i + 1];
    if (i + 2 + len > bytes.length) break;
    const at = i + 2;
    if (code === 53 && len === 1) req.type = bytes[at];
    if (code === 50 && len === 4) req.requested = v.getUint32(at);
    if (code === 54 && len === 4) req.serverId = v.getUint32(at);
    i = at + len;
  }
  return req.type === 0 ? null : req;
}

/** A domain list in DNS wire form, as option 119 carries it (RFC 3397, no compression). */
export function encodeDomainSearch(domains: readonly string[]): Uint8Array {
  const out: number[] = [];
  for (const d of domains) {
    for (const label of d.split(".").filter((l) => l !== "")) {
      const bytes = new TextEncoder().encode(label).subarray(0, 63);
      out.push(bytes.length, ...bytes);
    }
    out.push(0);
  }
  return new Uint8Array(out);
}

/** The reply and where it goes. */
export interface DhcpReply {
  payload: Uint8Array;
  /** The address given (0 for a NAK). */
  yiaddr: number;
}

/** Leases and answers of the user network's DHCP server. */
export class DhcpServer {
  /** MAC (as text) to leased address. */
  readonly leases = new Map<string, number>();

  constructor(readonly config: UserNetConfig) {}

  #macKey(mac: Uint8Array): string {
    return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
  }

  #leaseFor(mac: Uint8Array, wanted?: number): number | null {
    const key = this.#macKey(mac);
    const had = this.leases.get(key);
    if (had !== undefined) return had;
    const used = new Set(this.leases.values());
    const start = this.config.dhcpStart;
    const pool = Array.from({ length: DHCP_LEASES }, (_, i) => (start + i) >>> 0)
      .filter((a) => ((a & this.config.netmask) >>> 0) === this.config.network);
    const pick = wanted !== undefined && pool.includes(wanted) && !used.has(wanted)
      ? wanted
      : pool.find((a) => !used.has(a));
    if (pick === undefined) return null;
    this.leases.set(key, pick);
    return pick;
  }

  /** Answers one request from `mac`; null when it needs no answer. */
  handle(req: DhcpRequest): DhcpReply | null {
    if (req.type === DHCPRELEASE) {
      this.leases.delete(this.#macKey(req.chaddr));
      return null;
    }
    if (req.type === DHCPDISCOVER) {
      const addr = this.#leaseFor(req.chaddr, req.requested);
      return addr === null ? null : { payload: this.#reply(req, DHCPOFFER, addr), yiaddr: addr };
    }
    if (req.type === DHCPREQUEST) {
      if (req.serverId !== undefined && req.serverId !== this.config.host) return null;
      const wanted = req.requested ?? req.ciaddr;
      const addr = this.#leaseFor(req.chaddr, wanted || undefined);
      if (addr === null || (wanted && wanted !== addr)) {
        return { payload: this.#reply(req, DHCPNAK, 0), yiaddr: 0 };
      }
      return { payload: this.#reply(req, DHCPACK, addr), yiaddr: addr };
    }
    return null;
  }

  #reply(req: DhcpRequest, type: number, yiaddr: number): Uint8Array {
    const c = this.config;
    const opts: number[] = [];
    const put = (code: number, data: Uint8Array | number[]) => {
      for (let at = 0; at < data.length || at === 0; at += 255) {
        const part = [...data.slice(at, at + 255)];
        opts.push(code, part.length, ...part);
        if (data.length === 0) break;
      }
    };
    const u32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    const text = (s: string) => new TextEncoder().encode(s).subarray(0, 255);
    put(53, [type]);
    put(54, u32(c.host));
    if (type !== DHCPNAK) {
      put(51, u32(DHCP_LEASE_SECONDS));
      put(1, u32(c.netmask));
      if (!c.restrict) {
        put(3, u32(c.host));
        put(6, u32(c.dns));
      }
      if (c.hostname) put(12, text(c.hostname));
      if (c.domainname) put(15, text(c.domainname));
      if (c.dnssearch.length > 0) put(119, encodeDomainSearch(c.dnssearch));
      if (c.tftpServerName) put(66, text(c.tftpServerName));
      if (c.bootfile) put(67, text(c.bootfile));
    }
    opts.push(255);
    const out = new Uint8Array(Math.max(BOOTP_MIN_BYTES, BOOTP_FIXED_BYTES + 4 + opts.length));
    const v = new DataView(out.buffer);
    out[0] = 2;
    out[1] = 1;
    out[2] = 6;
    v.setUint32(4, req.xid);
    v.setUint16(10, req.flags);
    v.setUint32(16, yiaddr);
    if (type !== DHCPNAK) v.setUint32(20, c.host);
    out.set(req.chaddr, 28);
    if (c.bootfile && type !== DHCPNAK) out.set(text(c.bootfile).subarray(0, 127), 108);
    v.setUint32(BOOTP_FIXED_BYTES, DHCP_MAGIC);
    out.set(opts, BOOTP_FIXED_BYTES + 4);
    return out;
  }
}
