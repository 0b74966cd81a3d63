// IPv4 (RFC 791) headers, the Internet checksum (RFC 1071) and ICMP echo (RFC 792)

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const ICMP_ECHOREPLY = 0;
export const ICMP_ECHO = 8;
/** The TTL of packets the stack makes, as a host would. */
export const IP_DEFAULT_TTL = 64;

/** One IPv4 packet, its payload a view of exactly the length the header gives. */
export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  payload: Uint8Array;
}

/** `10.0.2.2` as a 32-bit number; null when the text is not a dotted quad. */
export function parseIpv4Address(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let out = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    out = out * 256 + Number(p);
  }
  return out >>> 0;
}

/** A 32-bit address as `10.0.2.2`. */
export function formatIpv4Address(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff].join(".");
}

/** The ones' complement sum of `bytes` folded to 16 bits, added to `initial`. */
export function onesSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const n = bytes.length & ~1;
  for (let i = 0; i < n; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of `bytes` (after `initial`, a partial ones' sum). */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesSum(bytes, initial) & 0xffff;
}

/** The ones' sum of the TCP/UDP pseudo-header (RFC 793 §3.1, RFC 768). */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number) {
  let sum = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Reads an IPv4 packet. Null for anything the stack does not take: another version, a
 * header or total length that does not fit the bytes, a bad header checksum, or a
 * fragment (the guest's MTU is 1500 and vmkit does not reassemble).
 */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet | null {
  if (bytes.length < 20) return null;
  const ihl = (bytes[0] & 0x0f) * 4;
  if (bytes[0] >> 4 !== 4 || ihl < 20 || bytes.length < ihl) return null;
  const total = (bytes[2] << 8) | bytes[3];
  if (total < ihl || total > bytes.length) return null;
  if (onesSum(bytes.subarray(0, ihl)) !== 0xffff) return null;
  const flagsFrag = (bytes[6] << 8) | bytes[7];
  if ((flagsFrag & 0x3fff) !== 0) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, ihl);
  return {
    src: v.getUint32(12),
    dst: v.getUint32(16),
    protocol: bytes[9],
    ttl: bytes[8],
    payload: bytes.subarray(ihl, total),
  };
}

let nextId = 1;

/** Builds an IPv4 packet (no options, DF clear) around `payload`. */
export function buildIpv4(
  src: number,
  dst: number,
  protocol: number,
  payload: Uint8Array,
  ttl = IP_DEFAULT_TTL,
): Uint8Array {
  const out = new Uint8Array(20 + payload.length);
  const v = new DataView(out.buffer);
  out[0] = 0x45;
  v.setUint16(2, out.length);
  v.setUint16(4, nextId);
  nextId = (nextId + 1) & 0xffff;
  out[8] = ttl;
  out[9] = protocol;
  v.setUint32(12, src);
  v.setUint32(16, dst);
  v.setUint16(10, internetChecksum(out.subarray(0, 20)));
  out.set(payload, 20);
  return out;
}

/**
 * The reply to an ICMP echo request addressed to the stack: the same identifier,
 * sequence and data with type 0; null when `icmp` is not a valid echo request.
 */
export function icmpEchoReply(icmp: Uint8Array): Uint8Array | null {
  if (icmp.length < 8 || icmp[0] !== ICMP_ECHO || icmp[1] !== 0) return null;
  if (onesSum(icmp) !== 0xffff) return null;
  const out = icmp.slice();
  out[0] = ICMP_ECHOREPLY;
  out[2] = out[3] = 0;
  const sum = internetChecksum(out);
  out[2] = sum >> 8;
  out[3] = sum & 0xff;
  return out;
}
