// Guest-side frame builders and a stack harness for the user network's tests

import { EventLoop } from "../../../core/event_loop.ts";
import { type UserNetConfig, userNetConfig } from "./config.ts";
import { buildEthernet, ETHERTYPE_IPV4, parseEthernet } from "./ethernet.ts";
import { buildIpv4, IPPROTO_TCP, IPPROTO_UDP, parseIpv4, parseIpv4Address } from "./ipv4.ts";
import { HostSockets } from "./sockets.ts";
import { UserStack } from "./stack.ts";
import { buildTcp, parseTcp, type TcpSegment } from "./tcp.ts";
import { buildUdp, parseUdp } from "./udp.ts";

export const GUEST_MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
export const GATEWAY_MAC = new Uint8Array([0x52, 0x55, 10, 0, 2, 2]);
export const ip = (text: string): number => parseIpv4Address(text)!;
export const GUEST_IP = ip("10.0.2.15");
export const HOST_IP = ip("10.0.2.2");

/** A stack with real host sockets and the frames it sent to the guest. */
export interface Harness {
  loop: EventLoop;
  sockets: HostSockets;
  stack: UserStack;
  config: UserNetConfig;
  /** Frames to the guest not yet taken. */
  out: Uint8Array[];
  /** Runs deferred work and lets host I/O land, until `until` holds (or ~3 s pass). */
  settle(until?: () => boolean): Promise<void>;
  close(): void;
}

export function harness(options: Record<string, string | boolean> = {}): Harness {
  const loop = new EventLoop();
  const sockets = new HostSockets(loop);
  const config = userNetConfig(options);
  const out: Uint8Array[] = [];
  const stack = new UserStack(config, loop, sockets, (f) => out.push(f));
  return {
    loop,
    sockets,
    stack,
    config,
    out,
    async settle(until = () => false) {
      for (let i = 0; i < 300; i++) {
        loop.advanceBy(0);
        if (until()) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      loop.advanceBy(0);
    },
    close() {
      stack.close();
    },
  };
}

/** An IPv4 frame from the guest to the gateway's MAC. */
export function guestIp(
  src: number,
  dst: number,
  protocol: number,
  payload: Uint8Array,
): Uint8Array {
  return buildEthernet(
    GATEWAY_MAC,
    GUEST_MAC,
    ETHERTYPE_IPV4,
    buildIpv4(src, dst, protocol, payload),
  );
}

export function guestUdp(
  dst: number,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
  src = GUEST_IP,
) {
  return guestIp(src, dst, IPPROTO_UDP, buildUdp(src, dst, srcPort, dstPort, payload));
}

export function guestTcp(
  dst: number,
  seg: Partial<TcpSegment> & { srcPort: number; dstPort: number },
) {
  const full: TcpSegment = {
    seq: 0,
    ack: 0,
    flags: 0,
    window: 65535,
    payload: new Uint8Array(0),
    ...seg,
  };
  return guestIp(GUEST_IP, dst, IPPROTO_TCP, buildTcp(GUEST_IP, dst, full));
}

/** Reads a frame to the guest as Ethernet, IPv4 and UDP or TCP (null fields when not). */
export function readFrame(frame: Uint8Array) {
  const eth = parseEthernet(frame)!;
  const ipv4 = eth.type === ETHERTYPE_IPV4 ? parseIpv4(eth.payload) : null;
  const udp = ipv4?.protocol === IPPROTO_UDP ? parseUdp(ipv4.src, ipv4.dst, ipv4.payload) : null;
  const tcp = ipv4?.protocol === IPPROTO_TCP ? parseTcp(ipv4.src, ipv4.dst, ipv4.payload) : null;
  return { eth, ipv4, udp, tcp };
}

/** A DHCP message from the guest (BOOTREQUEST with options 53 and, when given, 50 and 54). */
export function dhcpMessage(type: number, xid: number, requested?: number, server?: number) {
  const b = new Uint8Array(300);
  const v = new DataView(b.buffer);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  v.setUint32(4, xid);
  b.set(GUEST_MAC, 28);
  v.setUint32(236, 0x63825363);
  let at = 240;
  b.set([53, 1, type], at);
  at += 3;
  if (requested !== undefined) {
    b.set([50, 4], at);
    v.setUint32(at + 2, requested);
    at += 6;
  }
  if (server !== undefined) {
    b.set([54, 4], at);
    v.setUint32(at + 2, server);
    at += 6;
  }
  b[at] = 255;
  return guestUdp(0xffffffff, 68, 67, b, 0);
}

/** DHCP options of a reply as code to bytes. */
export function dhcpOptions(payload: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (let i = 240; i < payload.length && payload[i] !== 255;) {
    if (payload[i] === 0) {
      i++;
      continue;
    }
    out.set(payload[i], payload.slice(i + 2, i + 2 + payload[i + 1]));
    i += 2 + payload[i + 1];
  }
  return out;
}

/** A small seeded generator (xorshift32) for repeatable fuzzing. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}
