// UDP datagrams (RFC 768): parse with checksum check, build with checksum

import { internetChecksum, IPPROTO_UDP, onesSum, pseudoHeaderSum } from "./ipv4.ts";

/** One UDP datagram, its payload a view. */
export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** Reads a datagram; null when its length field or a non-zero checksum is wrong. */
export function parseUdp(src: number, dst: number, bytes: Uint8Array): UdpDatagram | null {
  if (bytes.length < 8) return null;
  const length = (bytes[4] << 8) | bytes[5];
  if (length < 8 || length > bytes.length) return null;
  const datagram = bytes.subarray(0, length);
  const sum = (bytes[6] << 8) | bytes[7];
  if (sum !== 0 && onesSum(datagram, pseudoHeaderSum(src, dst, IPPROTO_UDP, length)) !== 0xffff) {
    return null;
  }
  return {
    srcPort: (bytes[0] << 8) | bytes[1],
    dstPort: (bytes[2] << 8) | bytes[3],
    payload: bytes.subarray(8, length),
  };
}

/** Builds a datagram (the IP payload) with its checksum. */
export function buildUdp(
  src: number,
  dst: number,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, out.length);
  out.set(payload, 8);
  const sum = internetChecksum(out, pseudoHeaderSum(src, dst, IPPROTO_UDP, out.length));
  v.setUint16(6, sum === 0 ? 0xffff : sum);
  return out;
}
