// Seeded malformed-frame fuzzing of the user network: mutated and random frames never make
// the stack throw, and never open a host socket the options do not allow

import assert from "node:assert/strict";
import { EventLoop } from "../../../core/event_loop.ts";
import { userNetConfig } from "./config.ts";
import { DHCPDISCOVER, DHCPREQUEST } from "./dhcp.ts";
import { ARPOP_REQUEST, buildArp, buildEthernet, ETHERTYPE_ARP } from "./ethernet.ts";
import { formatIpv4Address, ICMP_ECHO, IPPROTO_ICMP, parseIpv4Address } from "./ipv4.ts";
import {
  type HostSockets,
  HostSockets as RealSockets,
  type HostTcp,
  type HostUdp,
} from "./sockets.ts";
import { UserStack } from "./stack.ts";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from "./tcp.ts";
import {
  dhcpMessage,
  GUEST_IP,
  GUEST_MAC,
  guestIp,
  guestTcp,
  guestUdp,
  harness,
  HOST_IP,
  ip,
  prng,
} from "./test_util.ts";

/** Valid frames of every kind the stack reads, to mutate. */
function corpus(): Uint8Array[] {
  const text = (s: string) => new TextEncoder().encode(s);
  return [
    dhcpMessage(DHCPDISCOVER, 1),
    dhcpMessage(DHCPREQUEST, 2, ip("10.0.2.15"), HOST_IP),
    buildEthernet(
      new Uint8Array(6).fill(0xff),
      GUEST_MAC,
      ETHERTYPE_ARP,
      buildArp({
        op: ARPOP_REQUEST,
        senderMac: GUEST_MAC,
        senderIp: GUEST_IP,
        targetMac: new Uint8Array(6),
        targetIp: HOST_IP,
      }),
    ),
    guestIp(
      GUEST_IP,
      HOST_IP,
      IPPROTO_ICMP,
      new Uint8Array([ICMP_ECHO, 0, 0xf7, 0xfe, 0, 1, 0, 0]),
    ),
    guestTcp(HOST_IP, { srcPort: 1234, dstPort: 80, seq: 1, flags: TCP_SYN, mss: 1460 }),
    guestTcp(HOST_IP, {
      srcPort: 1234,
      dstPort: 80,
      seq: 2,
      ack: 9,
      flags: TCP_ACK | TCP_PSH,
      payload: text("GET /"),
    }),
    guestTcp(HOST_IP, { srcPort: 1234, dstPort: 80, seq: 7, ack: 9, flags: TCP_ACK | TCP_FIN }),
    guestTcp(ip("93.184.216.34"), { srcPort: 1235, dstPort: 443, seq: 1, flags: TCP_SYN }),
    guestUdp(
      ip("10.0.2.3"),
      5353,
      53,
      text("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"),
    ),
    guestUdp(HOST_IP, 5000, 69, text("\x00\x01boot.bin\x00octet\x00")),
    guestUdp(HOST_IP, 5000, 9999, text("hello")),
  ];
}

/** One malformed frame: a mutation of a corpus frame, or random bytes. */
function malformed(rand: () => number, base: Uint8Array[]): Uint8Array {
  const pick = base[Math.floor(rand() * base.length)];
  let f = pick.slice();
  const kind = Math.floor(rand() * 6);
  if (kind === 0) {
    // Flip a few bytes anywhere.
    for (let n = 1 + Math.floor(rand() * 4); n > 0; n--) {
      f[Math.floor(rand() * f.length)] = rand() * 256;
    }
  } else if (kind === 1) {
    // Truncate.
    f = f.subarray(0, Math.floor(rand() * f.length));
  } else if (kind === 2) {
    // A header field (lengths, IHL, data offset, flags) set to a random value.
    const fields = [14, 16, 17, 20, 21, 23, 34 + 4, 34 + 5, 34 + 12, 34 + 13, 38, 39];
    const at = fields[Math.floor(rand() * fields.length)];
    if (at < f.length) f[at] = rand() * 256;
  } else if (kind === 3) {
    // Junk appended.
    const extra = new Uint8Array(Math.floor(rand() * 200));
    for (let i = 0; i < extra.length; i++) extra[i] = rand() * 256;
    const g = new Uint8Array(f.length + extra.length);
    g.set(f);
    g.set(extra, f.length);
    f = g;
  } else if (kind === 4) {
    // Random bytes of a random length, with a valid Ethernet type now and then.
    f = new Uint8Array(Math.floor(rand() * 1600));
    for (let i = 0; i < f.length; i++) f[i] = rand() * 256;
    if (f.length > 14 && rand() < 0.5) {
      f[12] = 8;
      f[13] = rand() < 0.5 ? 0 : 6;
    }
  } else {
    // A mutated payload with the IPv4 header checksum made right, so deeper layers see it.
    for (let n = 1 + Math.floor(rand() * 3); n > 0; n--) {
      const at = 34 + Math.floor(rand() * Math.max(1, f.length - 34));
      if (at < f.length) f[at] = rand() * 256;
    }
  }
  return f;
}

const SEED = 0x5eed1e55;
const CASES = 30000;

Deno.test({
  name:
    `UserStack with restrict=on takes ${CASES} seeded malformed frames without a throw or a host socket`,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeFile(`${dir}/boot.bin`, new Uint8Array(1500).fill(1));
    const h = harness({ restrict: true, tftp: dir });
    const rand = prng(SEED);
    const base = corpus();
    for (let i = 0; i < CASES; i++) {
      h.stack.input(malformed(rand, base));
      if (i % 1000 === 0) h.loop.advanceBy(1e6);
    }
    await h.settle();
    h.loop.advanceBy(30e9);
    assert.equal(h.stack.stats.errors, 0, "frames whose handling threw");
    assert.equal(h.sockets.opened, 0, "host sockets opened under restrict=on");
    assert.equal(h.stack.stats.framesIn, CASES);
    console.log(
      `malformed-frame fuzz (seed 0x${SEED.toString(16)}): ${CASES} cases, ` +
        `${h.stack.stats.dropped} dropped as unreadable, ${h.stack.stats.refused} refused by policy, ` +
        `${h.stack.stats.framesOut} frames answered`,
    );
    h.close();
    await Deno.remove(dir, { recursive: true });
  },
});

/** Host sockets that record what the stack asks for and open nothing. */
class RecordingSockets extends RealSockets {
  targets: string[] = [];
  override connectTcp(host: string, port: number): HostTcp {
    this.targets.push(`tcp ${host}:${port}`);
    return {
      write: () => true,
      pendingBytes: 0,
      end: () => {},
      destroy: () => {},
      pause: () => {},
      resume: () => {},
      setEvents: () => {},
    };
  }
  override openUdp(): HostUdp {
    return {
      send: (_b: Uint8Array, host: string, port: number) =>
        void this.targets.push(`udp ${host}:${port}`),
      close: () => {},
    };
  }
}

Deno.test(`UserStack with restrict=off asks the host only for allowed targets over ${CASES} malformed frames`, () => {
  const loop = new EventLoop();
  const sockets = new RecordingSockets(loop);
  const config = userNetConfig({ "x-resolver": "127.0.0.1:5399" });
  const stack = new UserStack(config, loop, sockets as HostSockets, () => {});
  const rand = prng(SEED ^ 0xffff);
  const base = corpus();
  for (let i = 0; i < CASES; i++) stack.input(malformed(rand, base));
  assert.equal(stack.stats.errors, 0);
  for (const t of sockets.targets) {
    const [, addr] = /^\S+ ([\d.]+):\d+$/.exec(t)!;
    const a = parseIpv4Address(addr)!;
    const loopback = a >>> 24 === 127;
    const inNet = ((a & config.netmask) >>> 0) === config.network;
    assert.ok(!inNet, `${t}: an address inside the guest network`);
    assert.ok(a >>> 28 < 14 && a >>> 24 !== 0, `${t}: multicast, broadcast or 0/8`);
    // The loopback only through the host alias (to any port) or the configured resolver.
    assert.ok(!loopback || addr === "127.0.0.1", `${t}: another loopback address`);
    assert.notEqual(formatIpv4Address(a), "0.0.0.0");
  }
  assert.ok(sockets.targets.length > 0, "some frames did reach the NAT");
  stack.close();
});
