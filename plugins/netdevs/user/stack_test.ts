import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import { EventLoop } from "../../../core/event_loop.ts";
import { userNetConfig } from "./config.ts";
import { HostSockets } from "./sockets.ts";
import { UserStack } from "./stack.ts";
import { DHCPACK, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST } from "./dhcp.ts";
import {
  ARPOP_REPLY,
  ARPOP_REQUEST,
  buildArp,
  buildEthernet,
  ETHERTYPE_ARP,
  parseArp,
} from "./ethernet.ts";
import { formatIpv4Address, ICMP_ECHO, internetChecksum, IPPROTO_ICMP } from "./ipv4.ts";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "./tcp.ts";
import {
  dhcpMessage,
  dhcpOptions,
  GATEWAY_MAC,
  GUEST_IP,
  GUEST_MAC,
  guestIp,
  guestTcp,
  guestUdp,
  harness,
  HOST_IP,
  ip,
  readFrame,
} from "./test_util.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("UserStack answers DHCP discover with an offer and request with an ack of 10.0.2.15", () => {
  const h = harness({
    hostname: "guest1",
    domainname: "example.test",
    dnssearch: "a.test\nb.test",
  });
  h.stack.input(dhcpMessage(DHCPDISCOVER, 0x1234));
  assert.equal(h.out.length, 1);
  const offer = readFrame(h.out.shift()!);
  assert.equal(offer.ipv4!.dst, 0xffffffff);
  assert.equal(offer.udp!.srcPort, 67);
  assert.equal(offer.udp!.dstPort, 68);
  const p = offer.udp!.payload;
  assert.equal(p[0], 2, "BOOTREPLY");
  assert.equal(new DataView(p.buffer, p.byteOffset).getUint32(4), 0x1234);
  assert.equal(formatIpv4Address(new DataView(p.buffer, p.byteOffset).getUint32(16)), "10.0.2.15");
  const o = dhcpOptions(p);
  assert.deepEqual([...o.get(53)!], [DHCPOFFER]);
  assert.deepEqual([...o.get(1)!], [255, 255, 255, 0]);
  assert.deepEqual([...o.get(3)!], [10, 0, 2, 2]);
  assert.deepEqual([...o.get(6)!], [10, 0, 2, 3]);
  assert.deepEqual([...o.get(51)!], [0, 1, 0x51, 0x80]);
  assert.equal(new TextDecoder().decode(o.get(12)), "guest1");
  assert.equal(new TextDecoder().decode(o.get(15)), "example.test");
  assert.deepEqual([...o.get(119)!], [
    1,
    97,
    4,
    116,
    101,
    115,
    116,
    0,
    1,
    98,
    4,
    116,
    101,
    115,
    116,
    0,
  ]);
  h.stack.input(dhcpMessage(DHCPREQUEST, 0x1234, ip("10.0.2.15"), HOST_IP));
  const ack = readFrame(h.out.shift()!);
  assert.deepEqual([...dhcpOptions(ack.udp!.payload).get(53)!], [DHCPACK]);
  assert.equal(h.stack.dhcp.leases.get("52:54:00:12:34:56"), ip("10.0.2.15"));
  h.close();
});

Deno.test("UserStack gives dhcpstart= and bootfile= and leaves router and DNS out with restrict=on", () => {
  const h = harness({
    net: "192.168.76.0/24",
    dhcpstart: "192.168.76.9",
    bootfile: "pxe.0",
    restrict: true,
  });
  h.stack.input(dhcpMessage(DHCPDISCOVER, 7));
  const offer = readFrame(h.out.shift()!);
  const p = offer.udp!.payload;
  assert.equal(
    formatIpv4Address(new DataView(p.buffer, p.byteOffset).getUint32(16)),
    "192.168.76.9",
  );
  assert.equal(
    formatIpv4Address(new DataView(p.buffer, p.byteOffset).getUint32(20)),
    "192.168.76.2",
  );
  assert.equal(new TextDecoder().decode(p.subarray(108, 113)), "pxe.0");
  const o = dhcpOptions(p);
  assert.equal(o.has(3), false);
  assert.equal(o.has(6), false);
  assert.equal(new TextDecoder().decode(o.get(67)), "pxe.0");
  h.close();
});

Deno.test("UserStack answers ARP for the gateway and the DNS address, not for others", () => {
  const h = harness();
  const ask = (target: string) =>
    h.stack.input(buildEthernet(
      new Uint8Array(6).fill(0xff),
      GUEST_MAC,
      ETHERTYPE_ARP,
      buildArp({
        op: ARPOP_REQUEST,
        senderMac: GUEST_MAC,
        senderIp: GUEST_IP,
        targetMac: new Uint8Array(6),
        targetIp: ip(target),
      }),
    ));
  ask("10.0.2.2");
  ask("10.0.2.3");
  ask("10.0.2.77");
  assert.equal(h.out.length, 2);
  const r = readFrame(h.out[0]);
  const arp = parseArp(r.eth.payload)!;
  assert.equal(arp.op, ARPOP_REPLY);
  assert.deepEqual(arp.senderMac, GATEWAY_MAC);
  assert.equal(arp.senderIp, HOST_IP);
  assert.deepEqual(r.eth.dst, GUEST_MAC);
  assert.equal(parseArp(readFrame(h.out[1]).eth.payload)!.senderIp, ip("10.0.2.3"));
  h.close();
});

Deno.test("UserStack answers an ICMP echo to 10.0.2.2 with the same id, sequence and data", () => {
  const h = harness();
  const icmp = new Uint8Array([ICMP_ECHO, 0, 0, 0, 0x12, 0x34, 0, 7, 1, 2, 3, 4, 5]);
  const sum = internetChecksum(icmp);
  icmp[2] = sum >> 8;
  icmp[3] = sum & 0xff;
  h.stack.input(guestIp(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmp));
  assert.equal(h.out.length, 1);
  const r = readFrame(h.out[0]);
  assert.equal(r.ipv4!.src, HOST_IP);
  assert.equal(r.ipv4!.dst, GUEST_IP);
  assert.deepEqual([...r.ipv4!.payload], [
    0,
    0,
    ...r.ipv4!.payload.slice(2, 4),
    0x12,
    0x34,
    0,
    7,
    1,
    2,
    3,
    4,
    5,
  ]);
  assert.equal(internetChecksum(r.ipv4!.payload), 0);
  // A bad checksum gets nothing.
  icmp[5] ^= 1;
  h.stack.input(guestIp(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmp));
  assert.equal(h.out.length, 1);
  h.close();
});

/** A loopback server that records what it gets and answers `reply` to the first data. */
function loopbackServer(reply: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const got: string[] = [];
  let accepted = 0;
  const done = (async () => {
    for await (const conn of listener) {
      accepted++;
      (async () => {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        if (n) {
          got.push(new TextDecoder().decode(buf.subarray(0, n)));
          await conn.write(new TextEncoder().encode(reply));
        }
        try {
          conn.closeWrite();
          while ((await conn.read(buf)) !== null) { /* drain */ }
        } catch { /* reset */ }
        conn.close();
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    got,
    get accepted() {
      return accepted;
    },
    close: () => {
      listener.close();
      return done;
    },
  };
}

Deno.test({
  name: "UserStack splices a guest TCP connection to 10.0.2.2 onto the host's loopback",
  ...opts,
  fn: async () => {
    const server = loopbackServer("world");
    const h = harness();
    const g = { srcPort: 40000, dstPort: server.port };
    h.stack.input(guestTcp(HOST_IP, { ...g, seq: 1000, flags: TCP_SYN, mss: 1460 }));
    await h.settle(() => h.out.length > 0);
    const synAck = readFrame(h.out.shift()!).tcp!;
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    assert.equal(synAck.ack, 1001);
    assert.equal(synAck.mss, 1460);
    let seq = 1001;
    const ack0 = (synAck.seq + 1) >>> 0;
    h.stack.input(guestTcp(HOST_IP, { ...g, seq, ack: ack0, flags: TCP_ACK }));
    h.stack.input(guestTcp(HOST_IP, {
      ...g,
      seq,
      ack: ack0,
      flags: TCP_ACK | TCP_PSH,
      payload: new TextEncoder().encode("hello"),
    }));
    seq += 5;
    const received: string[] = [];
    let fin = false;
    let rcv = ack0;
    await h.settle(() => {
      for (const f of h.out.splice(0)) {
        const t = readFrame(f).tcp!;
        if (t.payload.length) received.push(new TextDecoder().decode(t.payload));
        rcv = (t.seq + t.payload.length + (t.flags & TCP_FIN ? 1 : 0)) >>> 0;
        if (t.flags & TCP_FIN) fin = true;
      }
      return fin;
    });
    assert.deepEqual(server.got, ["hello"]);
    assert.equal(received.join(""), "world");
    assert.ok(fin, "the host's close reaches the guest as FIN");
    h.stack.input(guestTcp(HOST_IP, { ...g, seq, ack: rcv, flags: TCP_ACK | TCP_FIN }));
    await h.settle(() => h.stack.tcp.size === 0);
    assert.equal(h.stack.tcp.size, 0);
    h.close();
    await server.close();
  },
});

Deno.test({
  name: "UserStack with restrict=on answers a guest SYN with RST and opens no host socket",
  ...opts,
  fn: async () => {
    const server = loopbackServer("x");
    const h = harness({ restrict: true });
    h.stack.input(
      guestTcp(HOST_IP, { srcPort: 40001, dstPort: server.port, seq: 5, flags: TCP_SYN }),
    );
    h.stack.input(guestUdp(HOST_IP, 40002, server.port, new Uint8Array([1, 2, 3])));
    h.stack.input(guestUdp(ip("10.0.2.3"), 40003, 53, new Uint8Array(20).fill(1)));
    await h.settle(() => h.out.length > 0);
    const rst = readFrame(h.out[0]).tcp!;
    assert.equal(rst.flags, TCP_RST | TCP_ACK);
    assert.equal(rst.ack, 6);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.sockets.opened, 0);
    assert.equal(server.accepted, 0);
    assert.equal(h.stack.stats.refused, 3);
    h.close();
    await server.close();
  },
});

Deno.test({
  name: "UserStack carries guestfwd= to its host target even with restrict=on, and nothing else",
  ...opts,
  fn: async () => {
    const server = loopbackServer("x");
    const h = harness({
      restrict: true,
      guestfwd: `tcp:10.0.2.100:1234-tcp:127.0.0.1:${server.port}`,
    });
    const fwd = ip("10.0.2.100");
    h.stack.input(guestTcp(fwd, { srcPort: 40011, dstPort: 1234, seq: 9, flags: TCP_SYN }));
    await h.settle(() => h.out.length > 0 && server.accepted > 0);
    const synAck = readFrame(h.out.shift()!).tcp!;
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    assert.equal(synAck.ack, 10);
    assert.equal(server.accepted, 1, "the host target got the connection");
    // Another port of the same address is not a rule: refused, no host socket.
    h.stack.input(guestTcp(fwd, { srcPort: 40012, dstPort: 1235, seq: 5, flags: TCP_SYN }));
    await h.settle(() => h.out.length > 0);
    assert.equal(readFrame(h.out.shift()!).tcp!.flags, TCP_RST | TCP_ACK);
    assert.equal(h.sockets.opened, 1);
    h.close();
    await server.close();
  },
});

Deno.test({
  name:
    "UserStack forwards DNS to 10.0.2.3 to the configured resolver and answers from 10.0.2.3:53",
  ...opts,
  fn: async () => {
    const resolver = dgram.createSocket("udp4");
    const seen: number[] = [];
    resolver.on("message", (msg: Uint8Array, r: { address: string; port: number }) => {
      seen.push((msg[0] << 8) | msg[1]);
      const out = new Uint8Array(msg);
      out[2] |= 0x80;
      resolver.send(out, r.port, r.address);
    });
    await new Promise<void>((resolve) => resolver.bind(0, "127.0.0.1", resolve));
    const h = harness({ "x-resolver": `127.0.0.1:${resolver.address().port}` });
    const query = new Uint8Array([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 120, 0, 0, 1, 0, 1]);
    h.stack.input(guestUdp(ip("10.0.2.3"), 33333, 53, query));
    await h.settle(() => h.out.length > 0);
    const r = readFrame(h.out[0]);
    assert.equal(r.ipv4!.src, ip("10.0.2.3"));
    assert.equal(r.udp!.srcPort, 53);
    assert.equal(r.udp!.dstPort, 33333);
    assert.deepEqual([...r.udp!.payload.subarray(0, 3)], [0xab, 0xcd, 0x81]);
    assert.equal(seen.length, 1);
    h.close();
    resolver.close();
  },
});

/** Connects to hostfwd's host port and plays the guest's side of an exchange on port 80. */
async function hostfwdRoundTrip(h: ReturnType<typeof harness>): Promise<void> {
  {
    const [port] = h.stack.forwardedPorts;
    // The guest's MAC is known from its DHCP.
    h.stack.input(dhcpMessage(DHCPDISCOVER, 1));
    h.out.length = 0;
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    await h.settle(() => h.out.length > 0);
    const syn = readFrame(h.out.shift()!);
    assert.equal(syn.tcp!.flags, TCP_SYN);
    assert.equal(syn.tcp!.dstPort, 80);
    assert.equal(syn.ipv4!.dst, GUEST_IP);
    assert.equal(syn.ipv4!.src, HOST_IP);
    assert.deepEqual(syn.eth.dst, GUEST_MAC);
    const g = { srcPort: 80, dstPort: syn.tcp!.srcPort };
    h.stack.input(
      guestTcp(HOST_IP, { ...g, seq: 500, ack: syn.tcp!.seq + 1, flags: TCP_SYN | TCP_ACK }),
    );
    await client.write(new TextEncoder().encode("GET /"));
    let data = "";
    await h.settle(() => {
      for (const f of h.out.splice(0)) data += new TextDecoder().decode(readFrame(f).tcp!.payload);
      return data.length >= 5;
    });
    assert.equal(data, "GET /");
    h.stack.input(guestTcp(HOST_IP, {
      ...g,
      seq: 501,
      ack: syn.tcp!.seq + 6,
      flags: TCP_ACK | TCP_PSH,
      payload: new TextEncoder().encode("200 OK"),
    }));
    const buf = new Uint8Array(64);
    let n: number | null = null;
    const reading = client.read(buf).then((got) => (n = got));
    await h.settle(() => n !== null);
    await reading;
    assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "200 OK");
    client.close();
  }
}

Deno.test({
  name: "UserStack hostfwd=tcp makes a host connection into a guest connection to port 80",
  ...opts,
  fn: async () => {
    const h = harness({ hostfwd: "tcp:127.0.0.1:0-:80" });
    await h.stack.start();
    await hostfwdRoundTrip(h);
    h.close();
  },
});

Deno.test({
  name:
    "UserStack with restrict=on refuses the guest's outbound connection and still carries hostfwd",
  ...opts,
  fn: async () => {
    const server = loopbackServer("x");
    const h = harness({ restrict: true, hostfwd: "tcp:127.0.0.1:0-:80" });
    await h.stack.start();
    h.stack.input(
      guestTcp(HOST_IP, { srcPort: 40001, dstPort: server.port, seq: 5, flags: TCP_SYN }),
    );
    await h.settle(() => h.out.length > 0);
    assert.equal(readFrame(h.out.shift()!).tcp!.flags, TCP_RST | TCP_ACK);
    await hostfwdRoundTrip(h);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.accepted, 0, "the guest's own connection never reached the host");
    assert.equal(h.stack.stats.refused, 1);
    h.close();
    await server.close();
  },
});

Deno.test({
  name: "UserStack survives a port scan and a SYN flood to the loopback (RSTs, bounded state)",
  ...opts,
  fn: async () => {
    const h = harness();
    for (let i = 0; i < 2000; i++) {
      // Ports 1..2000 on 127.0.0.1 through 10.0.2.2: mostly closed.
      h.stack.input(
        guestTcp(HOST_IP, { srcPort: 20000 + (i % 5000), dstPort: 1 + i, seq: i, flags: TCP_SYN }),
      );
    }
    assert.ok(h.stack.tcp.size <= 64, `${h.stack.tcp.size} connections`);
    await h.settle(() => h.stack.tcp.size === 0);
    const rsts = h.out.map((f) => readFrame(f).tcp).filter((t) => t && t.flags & TCP_RST).length;
    assert.ok(rsts > 1900, `${rsts} RSTs`);
    h.close();
  },
});

Deno.test({
  name: "UserStack carries 1 MiB from a loopback server to the guest in order, within its window",
  ...opts,
  fn: async () => {
    const data = new Uint8Array(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      const conn = await listener.accept();
      await conn.write(data);
      conn.close();
    })();
    const h = harness();
    const g = { srcPort: 41000, dstPort: (listener.addr as Deno.NetAddr).port };
    h.stack.input(guestTcp(HOST_IP, { ...g, seq: 100, flags: TCP_SYN, mss: 1460, window: 8192 }));
    await h.settle(() => h.out.length > 0);
    const synAck = readFrame(h.out.shift()!).tcp!;
    let rcv = (synAck.seq + 1) >>> 0;
    const ack = (window = 8192) =>
      h.stack.input(guestTcp(HOST_IP, { ...g, seq: 101, ack: rcv, flags: TCP_ACK, window }));
    ack();
    const got: Uint8Array[] = [];
    let bytes = 0;
    let fin = false;
    let maxInFlight = 0;
    await h.settle(() => {
      let sent = 0;
      for (const f of h.out.splice(0)) {
        const t = readFrame(f).tcp!;
        sent += t.payload.length;
        if (t.seq !== rcv) continue; // out of order: the guest drops it
        got.push(t.payload.slice());
        bytes += t.payload.length;
        rcv = (rcv + t.payload.length + (t.flags & TCP_FIN ? 1 : 0)) >>> 0;
        if (t.flags & TCP_FIN) fin = true;
      }
      maxInFlight = Math.max(maxInFlight, sent);
      if (sent > 0) ack();
      h.loop.advanceBy(1e6);
      return fin;
    });
    assert.ok(fin, `FIN after ${bytes} bytes`);
    assert.equal(bytes, data.length);
    const all = new Uint8Array(bytes);
    let at = 0;
    for (const p of got) {
      all.set(p, at);
      at += p.length;
    }
    assert.deepEqual(all, data);
    assert.ok(maxInFlight <= 8192, `${maxInFlight} bytes sent past an 8 KiB window`);
    h.close();
    listener.close();
    await serving;
  },
});

Deno.test({
  name: "UserStack serves tftp= files by 512-byte blocks and refuses paths out of the folder",
  ...opts,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const file = new Uint8Array(1300);
    for (let i = 0; i < file.length; i++) file[i] = i & 0xff;
    await Deno.writeFile(`${dir}/pxe.bin`, file);
    const h = harness({ tftp: dir });
    const rrq = (name: string) =>
      h.stack.input(
        guestUdp(HOST_IP, 2000, 69, new TextEncoder().encode(`\0\x01${name}\0octet\0`)),
      );
    rrq("pxe.bin");
    await h.settle(() => h.out.length > 0);
    const got: number[] = [];
    for (let block = 1;; block++) {
      const d = readFrame(h.out.shift()!).udp!;
      assert.deepEqual([...d.payload.subarray(0, 4)], [0, 3, block >> 8, block & 0xff]);
      got.push(...d.payload.subarray(4));
      // The ACK goes to the transfer's own port.
      h.stack.input(
        guestUdp(HOST_IP, 2000, d.srcPort, new Uint8Array([0, 4, block >> 8, block & 0xff])),
      );
      if (d.payload.length < 4 + 512) break;
    }
    assert.deepEqual(new Uint8Array(got), file);
    rrq("../../etc/passwd");
    await h.settle(() => h.out.length > 0);
    const err = readFrame(h.out.shift()!).udp!;
    assert.deepEqual([...err.payload.subarray(0, 4)], [0, 5, 0, 2], "access violation");
    h.stack.input(guestUdp(HOST_IP, 2000, 69, new TextEncoder().encode("\0\x02x\0octet\0")));
    assert.deepEqual([...readFrame(h.out.shift()!).udp!.payload.subarray(0, 4)], [0, 5, 0, 2]);
    h.close();
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "UserStack sends segments past the MSS (up to 64240 bytes) while the guest's NIC takes large TCP frames",
  ...opts,
  fn: async () => {
    const data = new Uint8Array(256 * 1024).fill(0x33);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      const conn = await listener.accept();
      let at = 0;
      while (at < data.length) at += await conn.write(data.subarray(at));
      conn.close();
    })();
    const loop = new EventLoop();
    const out: Uint8Array[] = [];
    const stack = new UserStack(
      userNetConfig({}),
      loop,
      new HostSockets(loop),
      (f) => out.push(f),
      () => true,
    );
    const g = { srcPort: 41000, dstPort: (listener.addr as Deno.NetAddr).port };
    stack.input(guestTcp(HOST_IP, { ...g, seq: 100, flags: TCP_SYN, mss: 1460, window: 65535 }));
    for (let i = 0; i < 300 && out.length === 0; i++) {
      loop.advanceBy(0);
      await new Promise((r) => setTimeout(r, 10));
    }
    const rcv = (readFrame(out.shift()!).tcp!.seq + 1) >>> 0;
    stack.input(guestTcp(HOST_IP, { ...g, seq: 101, ack: rcv, flags: TCP_ACK, window: 65535 }));
    let largest = 0;
    let total = 0;
    for (let i = 0; i < 300 && total < 65535 - 1460; i++) {
      loop.advanceBy(0);
      for (const f of out.splice(0)) {
        const n = readFrame(f).tcp!.payload.length;
        largest = Math.max(largest, n);
        total += n;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(largest > 1460 && largest <= 44 * 1460, `largest segment ${largest}`);
    assert.ok(total <= 65535, "still within the guest's window");
    stack.close();
    listener.close();
    await serving.catch(() => {});
  },
});
