// Ethernet II framing and ARP (RFC 826) for the user-mode network

/** Bytes of an Ethernet II header (destination, source, EtherType). */
export const ETH_HLEN = 14;
/** The shortest frame on the wire, without the FCS. */
export const ETH_ZLEN = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;
/** ff:ff:ff:ff:ff:ff. */
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** One received frame, its payload a view into it. */
export interface EthernetFrame {
  dst: Uint8Array;
  src: Uint8Array;
  type: number;
  payload: Uint8Array;
}

/** Splits a frame into header and payload; null when it is shorter than the header. */
export function parseEthernet(frame: Uint8Array): EthernetFrame | null {
  if (frame.length < ETH_HLEN) return null;
  return {
    dst: frame.subarray(0, 6),
    src: frame.subarray(6, 12),
    type: (frame[12] << 8) | frame[13],
    payload: frame.subarray(ETH_HLEN),
  };
}

/** Builds a frame, padded with zeros to the 60-byte minimum. */
export function buildEthernet(
  dst: Uint8Array,
  src: Uint8Array,
  type: number,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(Math.max(ETH_ZLEN, ETH_HLEN + payload.length));
  out.set(dst.subarray(0, 6), 0);
  out.set(src.subarray(0, 6), 6);
  out[12] = type >> 8;
  out[13] = type & 0xff;
  out.set(payload, ETH_HLEN);
  return out;
}

/** An ARP packet for IPv4 over Ethernet. */
export interface ArpPacket {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

/** Reads an Ethernet/IPv4 ARP packet; null for any other hardware or protocol type. */
export function parseArp(payload: Uint8Array): ArpPacket | null {
  if (payload.length < 28) return null;
  const v = new DataView(payload.buffer, payload.byteOffset, 28);
  if (v.getUint16(0) !== 1 || v.getUint16(2) !== ETHERTYPE_IPV4) return null;
  if (payload[4] !== 6 || payload[5] !== 4) return null;
  return {
    op: v.getUint16(6),
    senderMac: payload.slice(8, 14),
    senderIp: v.getUint32(14),
    targetMac: payload.slice(18, 24),
    targetIp: v.getUint32(24),
  };
}

/** Builds the 28 bytes of an ARP packet. */
export function buildArp(p: ArpPacket): Uint8Array {
  const out = new Uint8Array(28);
  const v = new DataView(out.buffer);
  v.setUint16(0, 1);
  v.setUint16(2, ETHERTYPE_IPV4);
  out[4] = 6;
  out[5] = 4;
  v.setUint16(6, p.op);
  out.set(p.senderMac, 8);
  v.setUint32(14, p.senderIp);
  out.set(p.targetMac, 18);
  v.setUint32(24, p.targetIp);
  return out;
}
