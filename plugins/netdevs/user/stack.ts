// The user-mode network as the guest sees it (QEMU's slirp layout): a gateway that is
// also the host, a DNS forwarder, a DHCP and a TFTP server, and NAT of the guest's TCP
// and UDP to host sockets

import type { EventLoop, Timer } from "../../../core/event_loop.ts";
import type { UserNetConfig } from "./config.ts";
import { BOOTP_CLIENT_PORT, BOOTP_SERVER_PORT, DhcpServer, parseDhcp } from "./dhcp.ts";
import { DnsForwarder } from "./dns.ts";
import {
  ARPOP_REPLY,
  ARPOP_REQUEST,
  BROADCAST_MAC,
  buildArp,
  buildEthernet,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  parseArp,
  parseEthernet,
} from "./ethernet.ts";
import {
  buildIpv4,
  formatIpv4Address,
  icmpEchoReply,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  parseIpv4,
} from "./ipv4.ts";
import { type HostListener, type HostSockets, type HostTcp, type HostUdp } from "./sockets.ts";
import {
  buildTcp,
  parseTcp,
  resetFor,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  TcpConnection,
  type TcpOutput,
  type TcpState,
} from "./tcp.ts";
import { TFTP_PORT, TftpServer } from "./tftp.ts";
import { buildUdp, parseUdp } from "./udp.ts";

/** TCP connections at once (guest-opened and forwarded). */
export const MAX_TCP_CONNECTIONS = 1024;
/** Host connects in progress at once (a port scan waits for these). */
const MAX_PENDING_CONNECTS = 64;
const MAX_UDP_FLOWS = 256;
const UDP_IDLE_NS = 60e9;
/** Frames held per address while its MAC is being resolved. */
const ARP_QUEUE = 16;

/** Counters for tests and `info usernet`. */
export interface UserNetStats {
  [key: string]: number;
  framesIn: number;
  framesOut: number;
  /** Frames the stack could not read (bad lengths, checksums, unknown types). */
  dropped: number;
  /** Connections and datagrams refused by policy (restrict=on, addresses inside the net). */
  refused: number;
  /** Frames whose handling threw (a bug: every bad input should be a clean drop). */
  errors: number;
}

/**
 * The data in one TCP segment to a NIC that takes large frames: the IPv4 limit of 65535
 * bytes less the IP and TCP headers, rounded down to whole 1460-byte MSS units.
 */
const LARGE_TCP_SEGMENT_BYTES = 44 * 1460;

/** One line of `info usernet`. */
export interface UsernetRow {
  protocol: "TCP" | "UDP";
  /** `HOST_FORWARD`, a TCP state (`ESTABLISHED`), or a UDP flow's `N sec` to expiry. */
  state: string;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
  /** Bytes waiting for the guest to acknowledge, and for the host socket to take. */
  recvQ: number;
  sendQ: number;
}

/** The TCP states as slirp's `info usernet` spells them. */
const TCP_STATE_NAMES: Record<TcpState, string> = {
  "connecting": "SYN_RCVD",
  "syn-sent": "SYN_SENT",
  "syn-received": "SYN_RCVD",
  "established": "ESTABLISHED",
  "closed": "CLOSED",
};

/**
 * `info usernet`'s table for one stack, in QEMU's columns. vmkit's host sockets have no
 * file descriptor a user could look up, so the FD column shows -1.
 */
export function usernetTable(rows: readonly UsernetRow[]): string {
  const line = (r: UsernetRow) =>
    `  ${r.protocol}[${r.state}]`.padEnd(19) + ` ${"-1".padStart(3)} ` +
    `${r.srcAddr.padStart(15)} ${String(r.srcPort).padStart(5)} ` +
    `${r.dstAddr.padStart(15)} ${String(r.dstPort).padStart(5)} ` +
    `${String(r.recvQ).padStart(5)} ${String(r.sendQ).padStart(5)}\n`;
  return "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n" +
    rows.map(line).join("");
}

interface UdpFlow {
  key: string;
  guestAddr: number;
  guestPort: number;
  /** The far end as the guest sees it. */
  remoteAddr: number;
  remotePort: number;
  socket: HostUdp;
  host: string;
  hostPort: number;
  lastNs: number;
}

/** The MAC the stack answers with for one of its addresses: 52:55 then the IPv4 address. */
export function stackMac(addr: number): Uint8Array {
  return new Uint8Array([
    0x52,
    0x55,
    addr >>> 24,
    (addr >>> 16) & 0xff,
    (addr >>> 8) & 0xff,
    addr & 0xff,
  ]);
}

/** One user network: takes the guest's frames, sends frames back through `toGuest`. */
export class UserStack {
  readonly stats: UserNetStats = {
    framesIn: 0,
    framesOut: 0,
    dropped: 0,
    refused: 0,
    errors: 0,
  };
  readonly dhcp: DhcpServer;
  readonly dns: DnsForwarder;
  readonly tftp: TftpServer | null;
  readonly tcp = new Map<string, TcpConnection>();
  #udp = new Map<string, UdpFlow>();
  #arp = new Map<number, Uint8Array>();
  #arpWaiting = new Map<number, Uint8Array[]>();
  #listeners: HostListener[] = [];
  /** hostfwd=udp: alias-side port to the host client's reply path. */
  #udpForwards = new Map<
    number,
    { reply: (b: Uint8Array) => void; guestPort: number; guest: number }
  >();
  #nextPort = 49152;
  #pendingConnects = 0;
  #udpTimer: Timer;
  #closed = false;

  constructor(
    readonly config: UserNetConfig,
    readonly loop: EventLoop,
    readonly sockets: HostSockets,
    readonly toGuest: (frame: Uint8Array) => void,
    /** True while the guest's NIC takes TCP frames past the MTU (see `largeTcpReceive`). */
    readonly guestTakesLargeTcp: () => boolean = () => false,
  ) {
    this.dhcp = new DhcpServer(config);
    this.dns = new DnsForwarder(config.resolver, sockets, loop, (addr, port, payload) => {
      this.#sendUdp(config.dns, 53, addr, port, payload);
    });
    this.tftp = config.tftpRoot === undefined ? null : new TftpServer(
      config.tftpRoot,
      loop,
      (src, addr, port, b) => this.#sendUdp(config.host, src, addr, port, b),
    );
    this.#udpTimer = loop.createTimer("user-udp-expiry", () => this.#expireUdp());
  }

  /** Opens the hostfwd listeners; rejects with the reason when one cannot listen. */
  async start(): Promise<void> {
    for (const f of this.config.hostfwd) {
      const where = `${f.protocol}:${f.hostAddr}:${f.hostPort}`;
      try {
        if (f.protocol === "tcp") {
          this.#listeners.push(
            await this.sockets.listenTcp(f.hostAddr, f.hostPort, (conn) => {
              this.#forwardTcp(conn, f.guestAddr, f.guestPort);
            }),
          );
        } else {
          this.#listeners.push(
            await this.sockets.listenUdp(f.hostAddr, f.hostPort, (bytes, reply, from) => {
              this.#forwardUdp(bytes, reply, from, f.guestAddr, f.guestPort);
            }),
          );
        }
      } catch (e) {
        throw new Error(`Could not set up host forwarding rule '${where}'`, { cause: e });
      }
    }
  }

  /**
   * What the stack carries now, for `info usernet`: the hostfwd rules, the spliced TCP
   * connections and the UDP flows, as QEMU's slirp lists its sockets.
   */
  connections(): UsernetRow[] {
    const rows: UsernetRow[] = [];
    this.config.hostfwd.forEach((f, i) => {
      rows.push({
        protocol: f.protocol === "tcp" ? "TCP" : "UDP",
        state: "HOST_FORWARD",
        srcAddr: f.hostAddr === "0.0.0.0" || f.hostAddr === "" ? "*" : f.hostAddr,
        srcPort: this.#listeners[i]?.port ?? f.hostPort,
        dstAddr: formatIpv4Address(f.guestAddr || this.config.dhcpStart),
        dstPort: f.guestPort,
        recvQ: 0,
        sendQ: 0,
      });
    });
    for (const c of this.tcp.values()) {
      rows.push({
        protocol: "TCP",
        state: TCP_STATE_NAMES[c.state],
        srcAddr: formatIpv4Address(c.guestAddr),
        srcPort: c.guestPort,
        dstAddr: formatIpv4Address(c.remoteAddr),
        dstPort: c.remotePort,
        recvQ: c.queuedBytes,
        sendQ: c.host.pendingBytes,
      });
    }
    const now = this.loop.nowNs;
    for (const f of this.#udp.values()) {
      rows.push({
        protocol: "UDP",
        state: `${Math.max(0, Math.ceil((UDP_IDLE_NS - (now - f.lastNs)) / 1e9))} sec`,
        srcAddr: formatIpv4Address(f.guestAddr),
        srcPort: f.guestPort,
        dstAddr: formatIpv4Address(f.remoteAddr),
        dstPort: f.remotePort,
        recvQ: 0,
        sendQ: 0,
      });
    }
    return rows;
  }

  /** How TCP connections reach the guest: through IP, in large segments when its NIC allows. */
  #tcpOutput: TcpOutput = {
    sendTcp: (s, d, tcp) => this.#sendIp(s, d, IPPROTO_TCP, tcp),
    largeSegmentBytes: () => (this.guestTakesLargeTcp() ? LARGE_TCP_SEGMENT_BYTES : 0),
  };

  /** The ports the hostfwd rules listen on, in rule order. */
  get forwardedPorts(): number[] {
    return this.#listeners.map((l) => l.port);
  }

  #isOurs(addr: number): boolean {
    return addr === this.config.host || addr === this.config.dns ||
      this.config.guestfwd.some((g) => g.addr === addr);
  }

  #inNet(addr: number): boolean {
    return ((addr & this.config.netmask) >>> 0) === this.config.network;
  }

  /** One frame from the guest. Never throws: what it cannot read is counted and dropped. */
  input(frame: Uint8Array): void {
    if (this.#closed) return;
    this.stats.framesIn++;
    try {
      if (!this.#input(frame)) this.stats.dropped++;
    } catch {
      this.stats.errors++;
    }
  }

  #input(frame: Uint8Array): boolean {
    const eth = parseEthernet(frame);
    if (!eth) return false;
    if (eth.src[0] & 1) return false; // a multicast source is never a guest
    if (eth.type === ETHERTYPE_ARP) return this.#arpInput(eth.payload, eth.src);
    if (eth.type !== ETHERTYPE_IPV4) return false;
    const ip = parseIpv4(eth.payload);
    if (!ip) return false;
    if (ip.src !== 0 && this.#inNet(ip.src) && !this.#isOurs(ip.src)) {
      this.#learn(ip.src, eth.src);
    }
    switch (ip.protocol) {
      case IPPROTO_UDP:
        return this.#udpInput(ip.src, ip.dst, ip.payload, eth.src);
      case IPPROTO_TCP:
        return this.#tcpInput(ip.src, ip.dst, ip.payload);
      case IPPROTO_ICMP: {
        if (!this.#isOurs(ip.dst)) {
          this.stats.refused++;
          return true;
        }
        const reply = icmpEchoReply(ip.payload);
        if (!reply) return false;
        this.#sendIp(ip.dst, ip.src, IPPROTO_ICMP, reply);
        return true;
      }
    }
    return false;
  }

  #learn(addr: number, mac: Uint8Array): void {
    this.#arp.set(addr, mac.slice(0, 6));
    const waiting = this.#arpWaiting.get(addr);
    if (waiting) {
      this.#arpWaiting.delete(addr);
      for (const f of waiting) {
        f.set(mac.subarray(0, 6), 0);
        this.#emit(f);
      }
    }
  }

  #arpInput(payload: Uint8Array, src: Uint8Array): boolean {
    const arp = parseArp(payload);
    if (!arp) return false;
    if (arp.senderIp !== 0 && this.#inNet(arp.senderIp) && !this.#isOurs(arp.senderIp)) {
      this.#learn(arp.senderIp, arp.senderMac);
    }
    if (arp.op === ARPOP_REQUEST && this.#isOurs(arp.targetIp)) {
      const mac = stackMac(arp.targetIp);
      this.#emit(buildEthernet(
        src,
        mac,
        ETHERTYPE_ARP,
        buildArp({
          op: ARPOP_REPLY,
          senderMac: mac,
          senderIp: arp.targetIp,
          targetMac: arp.senderMac,
          targetIp: arp.senderIp,
        }),
      ));
    }
    return true;
  }

  #emit(frame: Uint8Array): void {
    if (this.#closed) return;
    this.stats.framesOut++;
    this.toGuest(frame);
  }

  /** Sends an IP packet from one of the stack's (or a remote) addresses to the guest. */
  #sendIp(src: number, dst: number, protocol: number, payload: Uint8Array): void {
    const srcMac = stackMac(this.#isOurs(src) ? src : this.config.host);
    const packet = buildIpv4(src, dst, protocol, payload);
    if (dst === 0xffffffff) {
      this.#emit(buildEthernet(BROADCAST_MAC, srcMac, ETHERTYPE_IPV4, packet));
      return;
    }
    const mac = this.#arp.get(dst);
    const frame = buildEthernet(mac ?? BROADCAST_MAC, srcMac, ETHERTYPE_IPV4, packet);
    if (mac) {
      this.#emit(frame);
      return;
    }
    // Ask who has the address; the frame waits for the answer.
    let waiting = this.#arpWaiting.get(dst);
    if (!waiting) this.#arpWaiting.set(dst, waiting = []);
    if (waiting.length < ARP_QUEUE) waiting.push(frame);
    const host = stackMac(this.config.host);
    this.#emit(buildEthernet(
      BROADCAST_MAC,
      host,
      ETHERTYPE_ARP,
      buildArp({
        op: ARPOP_REQUEST,
        senderMac: host,
        senderIp: this.config.host,
        targetMac: new Uint8Array(6),
        targetIp: dst,
      }),
    ));
  }

  #sendUdp(src: number, srcPort: number, dst: number, dstPort: number, payload: Uint8Array) {
    this.#sendIp(src, dst, IPPROTO_UDP, buildUdp(src, dst, srcPort, dstPort, payload));
  }

  /** Where a guest connection to `addr:port` goes on the host; null when it may not. */
  hostTarget(addr: number, port: number): { host: string; port: number } | null {
    const fwd = this.config.guestfwd.find((g) => g.addr === addr && g.port === port);
    if (fwd) return { host: fwd.targetHost, port: fwd.targetPort };
    if (this.config.restrict) return null;
    if (addr === this.config.host) return { host: "127.0.0.1", port };
    if (this.#inNet(addr) || addr === 0 || addr >>> 28 >= 14 || addr >>> 24 === 0) return null;
    if (addr >>> 24 === 127) return null;
    return { host: formatIpv4Address(addr), port };
  }

  #udpInput(src: number, dst: number, bytes: Uint8Array, srcMac: Uint8Array): boolean {
    const udp = parseUdp(src, dst, bytes);
    if (!udp) return false;
    if (udp.dstPort === BOOTP_SERVER_PORT) {
      const req = parseDhcp(udp.payload);
      if (!req) return false;
      req.chaddr = srcMac.slice(0, 6);
      const reply = this.dhcp.handle(req);
      if (reply) {
        if (reply.yiaddr) this.#learn(reply.yiaddr, srcMac);
        this.#sendUdp(
          this.config.host,
          BOOTP_SERVER_PORT,
          0xffffffff,
          BOOTP_CLIENT_PORT,
          reply.payload,
        );
      }
      return true;
    }
    if (src === 0 || !this.#inNet(src)) return false;
    if (
      dst === this.config.host && this.tftp &&
      (udp.dstPort === TFTP_PORT || this.tftp.owns(udp.dstPort))
    ) {
      this.tftp.input(udp.dstPort, src, udp.srcPort, udp.payload);
      return true;
    }
    if (dst === this.config.host && this.#udpForwards.has(udp.dstPort)) {
      const f = this.#udpForwards.get(udp.dstPort)!;
      if (f.guest === src && f.guestPort === udp.srcPort) f.reply(udp.payload.slice());
      return true;
    }
    if (dst === this.config.dns && udp.dstPort === 53) {
      if (this.config.restrict) {
        this.stats.refused++;
        return true;
      }
      this.dns.query(src, udp.srcPort, udp.payload);
      return true;
    }
    const target = this.hostTarget(dst, udp.dstPort);
    if (!target) {
      this.stats.refused++;
      return true;
    }
    const key = `${src}:${udp.srcPort}>${dst}:${udp.dstPort}`;
    let flow = this.#udp.get(key);
    if (!flow) {
      if (this.#udp.size >= MAX_UDP_FLOWS) this.#expireUdp(true);
      const f: UdpFlow = {
        key,
        guestAddr: src,
        guestPort: udp.srcPort,
        remoteAddr: dst,
        remotePort: udp.dstPort,
        host: target.host,
        hostPort: target.port,
        lastNs: this.loop.nowNs,
        socket: this.sockets.openUdp((b, host, port) => {
          if (host !== f.host || port !== f.hostPort) return;
          f.lastNs = this.loop.nowNs;
          this.#sendUdp(f.remoteAddr, f.remotePort, f.guestAddr, f.guestPort, b);
        }),
      };
      flow = f;
      this.#udp.set(key, flow);
      if (!this.#udpTimer.armed) this.#udpTimer.arm(this.loop.nowNs + UDP_IDLE_NS);
    }
    flow.lastNs = this.loop.nowNs;
    flow.socket.send(udp.payload.slice(), flow.host, flow.hostPort);
    return true;
  }

  #expireUdp(oldest = false): void {
    const now = this.loop.nowNs;
    let victim: UdpFlow | null = null;
    for (const f of this.#udp.values()) {
      if (now - f.lastNs >= UDP_IDLE_NS) {
        f.socket.close();
        this.#udp.delete(f.key);
      } else if (!victim || f.lastNs < victim.lastNs) {
        victim = f;
      }
    }
    if (oldest && victim && this.#udp.size >= MAX_UDP_FLOWS) {
      victim.socket.close();
      this.#udp.delete(victim.key);
    }
    if (this.#udp.size > 0) this.#udpTimer.arm(now + UDP_IDLE_NS / 4);
  }

  #tcpInput(src: number, dst: number, bytes: Uint8Array): boolean {
    const seg = parseTcp(src, dst, bytes);
    if (!seg) return false;
    if (src === 0 || !this.#inNet(src)) return false;
    const key = `${src}:${seg.srcPort}>${dst}:${seg.dstPort}`;
    const conn = this.tcp.get(key);
    if (conn) {
      conn.input(seg);
      return true;
    }
    const reset = () => {
      if (!(seg.flags & TCP_RST)) {
        this.#sendIp(dst, src, IPPROTO_TCP, buildTcp(dst, src, resetFor(seg)));
      }
    };
    if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) {
      reset();
      return true;
    }
    const target = this.hostTarget(dst, seg.dstPort);
    if (
      !target || this.tcp.size >= MAX_TCP_CONNECTIONS ||
      this.#pendingConnects >= MAX_PENDING_CONNECTS
    ) {
      this.stats.refused++;
      reset();
      return true;
    }
    this.#pendingConnects++;
    let pending = true;
    const settle = () => {
      if (pending) this.#pendingConnects--;
      pending = false;
    };
    const host = this.sockets.connectTcp(target.host, target.port, {
      onConnect: () => {},
      onData: () => {},
      onEnd: () => {},
      onError: () => {},
    });
    const c = new TcpConnection(
      key,
      src,
      seg.srcPort,
      dst,
      seg.dstPort,
      host,
      this.#tcpOutput,
      this.loop,
      (closed) => {
        settle();
        this.tcp.delete(closed.key);
      },
      "connecting",
    );
    c.acceptSyn(seg);
    // The connection's own handlers take over; count the connect as settled once it is.
    const watch = this.loop.createTimer(`user-tcp-connect ${key}`, () => {
      if (c.state !== "connecting") {
        settle();
        this.loop.deleteTimer(watch);
      } else {
        watch.arm(this.loop.nowNs + 100e6);
      }
    });
    watch.arm(this.loop.nowNs + 100e6);
    this.tcp.set(key, c);
    return true;
  }

  #forwardTcp(host: HostTcp, guestAddr: number, guestPort: number): void {
    if (this.#closed || this.tcp.size >= MAX_TCP_CONNECTIONS) {
      host.destroy();
      return;
    }
    const port = this.#allocPort();
    const key = `${guestAddr}:${guestPort}>${this.config.host}:${port}`;
    const c = new TcpConnection(
      key,
      guestAddr,
      guestPort,
      this.config.host,
      port,
      host,
      this.#tcpOutput,
      this.loop,
      (closed) => this.tcp.delete(closed.key),
      "syn-sent",
    );
    this.tcp.set(key, c);
    c.startToGuest();
  }

  #forwardUdp(
    bytes: Uint8Array,
    reply: (b: Uint8Array) => void,
    from: string,
    guestAddr: number,
    guestPort: number,
  ): void {
    let port = [...this.#udpForwards].find(([, f]) => (f as { from?: string }).from === from)?.[0];
    if (port === undefined) {
      port = this.#allocPort();
      if (this.#udpForwards.size >= MAX_UDP_FLOWS) {
        this.#udpForwards.delete(this.#udpForwards.keys().next().value!);
      }
      this.#udpForwards.set(port, Object.assign({ reply, guestPort, guest: guestAddr }, { from }));
    }
    this.#sendUdp(this.config.host, port, guestAddr, guestPort, bytes);
  }

  #allocPort(): number {
    const used = (p: number) =>
      this.#udpForwards.has(p) || [...this.tcp.values()].some((c) => c.remotePort === p);
    do {
      this.#nextPort = this.#nextPort >= 65535 ? 49152 : this.#nextPort + 1;
    } while (used(this.#nextPort));
    return this.#nextPort;
  }

  /** The state `info usernet` shows: one line per connection and flow. */
  describe(): string[] {
    const lines = [
      "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ",
    ];
    for (const c of this.tcp.values()) {
      lines.push(
        `  TCP[${c.state}] ${formatIpv4Address(c.guestAddr)} ${c.guestPort} ` +
          `${formatIpv4Address(c.remoteAddr)} ${c.remotePort}`,
      );
    }
    for (const f of this.#udp.values()) {
      lines.push(
        `  UDP ${formatIpv4Address(f.guestAddr)} ${f.guestPort} ` +
          `${formatIpv4Address(f.remoteAddr)} ${f.remotePort}`,
      );
    }
    return lines;
  }

  /** Closes every host socket and timer. */
  close(): void {
    if (this.#closed) return;
    for (const c of [...this.tcp.values()]) c.abort(false);
    this.#closed = true;
    for (const l of this.#listeners) l.close();
    for (const f of this.#udp.values()) f.socket.close();
    this.#udp.clear();
    this.dns.close();
    this.tftp?.close();
    this.loop.deleteTimer(this.#udpTimer);
    this.sockets.closeAll();
  }
}
