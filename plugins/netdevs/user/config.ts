// The options of QEMU's `-netdev user`: the virtual network's addresses, DHCP answers,
// forwarding rules and the policy, checked once at start-up

import { UsageError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { formatIpv4Address, parseIpv4Address } from "./ipv4.ts";

/** A `hostfwd=` rule: connections to the host's `hostAddr:hostPort` go to the guest. */
export interface HostForward {
  protocol: "tcp" | "udp";
  /** The host address to listen on (`0.0.0.0` when the rule leaves it empty). */
  hostAddr: string;
  hostPort: number;
  /** The guest address (0: the first DHCP address). */
  guestAddr: number;
  guestPort: number;
}

/** A `guestfwd=` rule: the guest's TCP connections to `addr:port` reach `target`. */
export interface GuestForward {
  addr: number;
  port: number;
  /** Where on the host: `tcp:HOST:PORT` is the form vmkit takes. */
  targetHost: string;
  targetPort: number;
}

/** Everything the stack needs to know, addresses as 32-bit numbers. */
export interface UserNetConfig {
  network: number;
  netmask: number;
  /** The gateway and host alias (10.0.2.2): reaches the host's loopback. */
  host: number;
  dns: number;
  dhcpStart: number;
  hostname?: string;
  domainname?: string;
  dnssearch: string[];
  restrict: boolean;
  hostfwd: HostForward[];
  guestfwd: GuestForward[];
  tftpRoot?: string;
  tftpServerName?: string;
  bootfile?: string;
  /** The host's resolver that 10.0.2.3 forwards to. */
  resolver: { host: string; port: number };
}

/** The options a `-netdev user` takes (several `hostfwd`/`guestfwd`/`dnssearch` join by "\n"). */
export const USER_OPTIONS = [
  { name: "id", type: "string", help: "netdev id" },
  { name: "ipv4", type: "bool", help: "IPv4 on (the default; off is refused)" },
  { name: "ipv6", type: "bool", help: "IPv6 (vmkit offers none; accepted)" },
  { name: "net", type: "string", help: "guest network ADDR[/MASK] (10.0.2.0/24)" },
  { name: "host", type: "string", help: "the host's address on it (10.0.2.2)" },
  { name: "dhcpstart", type: "string", help: "first DHCP address (10.0.2.15)" },
  { name: "dns", type: "string", help: "the DNS forwarder's guest address (10.0.2.3)" },
  { name: "hostname", type: "string", help: "hostname DHCP gives the guest" },
  { name: "domainname", type: "string", help: "domain name DHCP gives the guest" },
  { name: "dnssearch", type: "string", help: "DNS search domain (several allowed)" },
  { name: "restrict", type: "bool", help: "isolate the guest: no connection leaves it" },
  { name: "hostfwd", type: "string", help: "tcp|udp:[hostaddr]:hostport-[guestaddr]:guestport" },
  { name: "guestfwd", type: "string", help: "[tcp]:server:port-tcp:HOST:PORT" },
  { name: "tftp", type: "string", help: "folder the TFTP server serves (read-only)" },
  { name: "tftp-server-name", type: "string", help: "DHCP option 66" },
  { name: "bootfile", type: "string", help: "the file DHCP names for network boot" },
  { name: "smb", type: "string", help: "not supported" },
  { name: "x-resolver", type: "string", help: "vmkit: the host resolver HOST:PORT for DNS" },
] as const;

function address(opts: ParsedOptions, name: string, fallback: number): number {
  const text = opts[name];
  if (text === undefined) return fallback;
  const addr = parseIpv4Address(String(text));
  if (addr === null) throw new UsageError(`Invalid ${name} address '${text}'`);
  return addr;
}

function parseNet(text: string): { network: number; netmask: number } {
  const [addrText, maskText] = text.split("/", 2);
  const addr = parseIpv4Address(addrText);
  if (addr === null) throw new UsageError(`Invalid net address '${text}'`);
  let netmask = 0xffffff00;
  if (maskText !== undefined) {
    if (/^\d+$/.test(maskText)) {
      const bits = Number(maskText);
      if (bits < 1 || bits > 30) throw new UsageError(`Invalid netmask provided in '${text}'`);
      netmask = (0xffffffff << (32 - bits)) >>> 0;
    } else {
      const m = parseIpv4Address(maskText);
      if (m === null || ((~m >>> 0) & ((~m >>> 0) + 1)) !== 0 || m === 0) {
        throw new UsageError(`Invalid netmask provided in '${text}'`);
      }
      netmask = m;
    }
  }
  return { network: (addr & netmask) >>> 0, netmask };
}

function port(text: string, rule: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`Invalid forwarding rule '${rule}': bad port '${text}'`);
  }
  return Number(text);
}

/** Reads `tcp|udp:[hostaddr]:hostport-[guestaddr]:guestport` as QEMU's slirp_hostfwd. */
export function parseHostForward(rule: string): HostForward {
  const bad = (why: string) => new UsageError(`Invalid host forwarding rule '${rule}' (${why})`);
  let rest = rule;
  let protocol: "tcp" | "udp" = "tcp";
  const first = rest.indexOf(":");
  if (first < 0) throw bad("Missing : separator");
  const p = rest.slice(0, first);
  if (p === "udp") protocol = "udp";
  else if (p !== "tcp" && p !== "") throw bad("Bad protocol name");
  rest = rest.slice(first + 1);
  const dash = rest.indexOf("-");
  if (dash < 0) throw bad("Missing - separator");
  const [hostSide, guestSide] = [rest.slice(0, dash), rest.slice(dash + 1)];
  const hc = hostSide.lastIndexOf(":");
  if (hc < 0) throw bad("Missing : separator");
  const hostAddr = hostSide.slice(0, hc) || "0.0.0.0";
  if (parseIpv4Address(hostAddr) === null) throw bad("Bad host address");
  const gc = guestSide.lastIndexOf(":");
  if (gc < 0) throw bad("Missing : separator");
  const guestText = guestSide.slice(0, gc);
  const guestAddr = guestText === "" ? 0 : parseIpv4Address(guestText);
  if (guestAddr === null) throw bad("Bad guest address");
  return {
    protocol,
    hostAddr,
    hostPort: port(hostSide.slice(hc + 1), rule),
    guestAddr,
    guestPort: port(guestSide.slice(gc + 1), rule),
  };
}

/** Reads `[tcp]:server:port-tcp:HOST:PORT`. */
export function parseGuestForward(rule: string): GuestForward {
  const bad = (why: string) => new UsageError(`Invalid guest forwarding rule '${rule}' (${why})`);
  const m = /^(tcp)?:([^:]+):(\d+)-(.*)$/.exec(rule);
  if (!m) throw bad("expected [tcp]:server:port-tcp:HOST:PORT");
  const addr = parseIpv4Address(m[2]);
  if (addr === null) throw bad("Bad guest address");
  const target = /^tcp:([^:]+):(\d+)$/.exec(m[4]);
  if (!target) {
    throw new UsageError(
      `guestfwd target '${m[4]}' is not supported by vmkit: use tcp:HOST:PORT`,
    );
  }
  return {
    addr,
    port: port(m[3], rule),
    targetHost: target[1],
    targetPort: port(target[2], rule),
  };
}

/** The first `nameserver` of /etc/resolv.conf, or 127.0.0.1 when there is none. */
export function hostResolver(): { host: string; port: number } {
  try {
    const text = Deno.readTextFileSync("/etc/resolv.conf");
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/m.exec(text);
    if (m) return { host: m[1], port: 53 };
  } catch {
    // No resolv.conf: the loopback, as slirp does.
  }
  return { host: "127.0.0.1", port: 53 };
}

function list(value: unknown): string[] {
  return value === undefined ? [] : String(value).split("\n").filter((s) => s !== "");
}

/** Checks the options and fills in slirp's defaults. */
export function userNetConfig(opts: ParsedOptions): UserNetConfig {
  if (opts.ipv4 === false) {
    throw new UsageError("IPv4 must be enabled: vmkit's user networking has no IPv6");
  }
  if (opts.smb !== undefined) throw new UsageError("smb= is not supported by vmkit");
  const { network, netmask } = parseNet(String(opts.net ?? "10.0.2.0/24"));
  const inNet = (a: number) => ((a & netmask) >>> 0) === network;
  const host = address(opts, "host", network + 2);
  const dns = address(opts, "dns", network + 3);
  const dhcpStart = address(opts, "dhcpstart", network + 15);
  for (const [name, a] of [["host", host], ["dns", dns], ["dhcpstart", dhcpStart]] as const) {
    if (!inNet(a)) {
      throw new UsageError(
        `The ${name} address ${formatIpv4Address(a)} is not in net ${formatIpv4Address(network)}`,
      );
    }
  }
  if (host === dns) throw new UsageError("The host and dns addresses must differ");
  let resolver = hostResolver();
  if (opts["x-resolver"] !== undefined) {
    const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(String(opts["x-resolver"]));
    if (!m) throw new UsageError(`Invalid x-resolver '${opts["x-resolver"]}': use ADDR[:PORT]`);
    resolver = { host: m[1], port: m[2] ? Number(m[2]) : 53 };
  }
  const hostfwd = list(opts.hostfwd).map(parseHostForward);
  for (const f of hostfwd) if (f.guestAddr === 0) f.guestAddr = dhcpStart;
  const str = (k: string) => (opts[k] === undefined ? undefined : String(opts[k]));
  return {
    network,
    netmask,
    host,
    dns,
    dhcpStart,
    hostname: str("hostname"),
    domainname: str("domainname"),
    dnssearch: list(opts.dnssearch),
    restrict: opts.restrict === true,
    hostfwd,
    guestfwd: list(opts.guestfwd).map(parseGuestForward),
    tftpRoot: str("tftp"),
    tftpServerName: str("tftp-server-name"),
    bootfile: str("bootfile"),
    resolver,
  };
}
