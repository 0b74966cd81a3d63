// The 8254x transmit path's offloads: checksum insertion (legacy CSO/CSS, or the TCP/IP
// context's IPCSS/IPCSO and TUCSS/TUCSO) and TCP segmentation (TSE) into MSS-sized frames

/** A TCP/IP context descriptor, as the driver last loaded it. */
export interface TxContext {
  ipcss: number;
  ipcso: number;
  ipcse: number;
  tucss: number;
  tucso: number;
  tucse: number;
  /** TUCMD: IP (IPv4), TCP, TSE. */
  tucmd: number;
  paylen: number;
  hdrlen: number;
  mss: number;
}

/** A fresh context (what reset leaves). */
export function emptyTxContext(): TxContext {
  return {
    ipcss: 0,
    ipcso: 0,
    ipcse: 0,
    tucss: 0,
    tucso: 0,
    tucse: 0,
    tucmd: 0,
    paylen: 0,
    hdrlen: 0,
    mss: 0,
  };
}

/** Reads a context descriptor's 16 bytes. */
export function readTxContext(d: Uint8Array): TxContext {
  const v = new DataView(d.buffer, d.byteOffset, 16);
  return {
    ipcss: d[0],
    ipcso: d[1],
    ipcse: v.getUint16(2, true),
    tucss: d[4],
    tucso: d[5],
    tucse: v.getUint16(6, true),
    paylen: v.getUint32(8, true) & 0xfffff,
    tucmd: d[11],
    hdrlen: d[13],
    mss: v.getUint16(14, true),
  };
}

function sum16(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) sum += bytes[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Stores at `cso` the Internet checksum of `frame[css..cse]` (cse 0: to the end), with
 * `extra` added to the sum first. Offsets past the frame are ignored (the guest's bug).
 */
export function insertChecksum(
  frame: Uint8Array,
  css: number,
  cso: number,
  cse: number,
  extra = 0,
) {
  const end = cse === 0 ? frame.length : Math.min(frame.length, cse + 1);
  if (css >= end || cso + 2 > frame.length) return;
  frame[cso] = frame[cso + 1] = 0;
  const sum = ~sum16(frame, css, end, extra) & 0xffff;
  frame[cso] = sum >> 8;
  frame[cso + 1] = sum & 0xff;
}

/** Checksums a whole (non-TSO) frame as its data descriptors' POPTS ask. */
export function offloadChecksums(frame: Uint8Array, ctx: TxContext, ixsm: boolean, txsm: boolean) {
  if (ixsm) insertChecksum(frame, ctx.ipcss, ctx.ipcso, ctx.ipcse);
  if (txsm) {
    // The driver left the pseudo-header sum in the field: it is part of the sum.
    const end = ctx.tucse === 0 ? frame.length : Math.min(frame.length, ctx.tucse + 1);
    if (ctx.tucss < end && ctx.tucso + 2 <= frame.length) {
      const seed = (frame[ctx.tucso] << 8) | frame[ctx.tucso + 1];
      frame[ctx.tucso] = frame[ctx.tucso + 1] = 0;
      const sum = ~sum16(frame, ctx.tucss, end, seed) & 0xffff;
      frame[ctx.tucso] = sum >> 8;
      frame[ctx.tucso + 1] = sum & 0xff;
    }
  }
}

/**
 * Cuts a TSE packet (headers of `ctx.hdrlen` bytes, then the payload) into frames of at
 * most `ctx.mss` payload bytes: each gets the IPv4 total length and a new ID, the TCP
 * sequence number advanced (UDP: the length), FIN and PSH only on the last, and its
 * checksums. Null when the context does not describe a frame the packet can have.
 */
export function segment(packet: Uint8Array, ctx: TxContext, ixsm: boolean, txsm: boolean) {
  const hdr = ctx.hdrlen;
  const tcp = (ctx.tucmd & 0x01) !== 0;
  const ipv4 = (ctx.tucmd & 0x02) !== 0;
  if (hdr === 0 || hdr > packet.length || ctx.mss === 0 || ctx.tucss >= hdr) return null;
  if (ctx.ipcss + 20 > hdr || ctx.tucso + 2 > hdr || (tcp && ctx.tucss + 20 > hdr)) return null;
  const payload = packet.subarray(hdr);
  const frames: Uint8Array[] = [];
  const baseSeq = new DataView(packet.buffer, packet.byteOffset).getUint32(ctx.tucss + 4);
  const baseId = (packet[ctx.ipcss + 4] << 8) | packet[ctx.ipcss + 5];
  const tcpFlags = packet[ctx.tucss + 13];
  for (let off = 0, n = 0; off < payload.length || (off === 0 && n === 0); off += ctx.mss, n++) {
    const chunk = payload.subarray(off, off + ctx.mss);
    const last = off + ctx.mss >= payload.length;
    const frame = new Uint8Array(hdr + chunk.length);
    frame.set(packet.subarray(0, hdr));
    frame.set(chunk, hdr);
    const v = new DataView(frame.buffer);
    if (ipv4) {
      v.setUint16(ctx.ipcss + 2, frame.length - ctx.ipcss);
      v.setUint16(ctx.ipcss + 4, (baseId + n) & 0xffff);
    } else {
      // IPv6: the payload length.
      v.setUint16(ctx.ipcss + 4, frame.length - ctx.ipcss - 40);
    }
    const l4Len = frame.length - ctx.tucss;
    if (tcp) {
      v.setUint32(ctx.tucss + 4, (baseSeq + off) >>> 0);
      if (!last) frame[ctx.tucss + 13] = tcpFlags & ~0x09; // FIN, PSH
    } else {
      v.setUint16(ctx.tucss + 4, l4Len);
    }
    if (ixsm && ipv4) insertChecksum(frame, ctx.ipcss, ctx.ipcso, ctx.ipcse);
    if (txsm) {
      // The field holds the pseudo-header sum without the length: add this frame's.
      const seed = (packet[ctx.tucso] << 8) | packet[ctx.tucso + 1];
      frame[ctx.tucso] = frame[ctx.tucso + 1] = 0;
      let s = seed + l4Len;
      s = (s & 0xffff) + (s >>> 16);
      const sum = ~sum16(frame, ctx.tucss, frame.length, s) & 0xffff;
      frame[ctx.tucso] = sum >> 8;
      frame[ctx.tucso + 1] = sum & 0xff;
    }
    frames.push(frame);
    if (last) break;
  }
  return frames;
}
