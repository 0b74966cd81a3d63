import assert from "node:assert/strict";
import { parseOptions } from "../../../core/options.ts";
import { parseGuestForward, parseHostForward, USER_OPTIONS, userNetConfig } from "./config.ts";
import { formatIpv4Address } from "./ipv4.ts";

Deno.test("userNetConfig() gives slirp's defaults: 10.0.2.0/24, host .2, DNS .3, DHCP from .15", () => {
  const c = userNetConfig({});
  assert.equal(formatIpv4Address(c.network), "10.0.2.0");
  assert.equal(formatIpv4Address(c.netmask), "255.255.255.0");
  assert.equal(formatIpv4Address(c.host), "10.0.2.2");
  assert.equal(formatIpv4Address(c.dns), "10.0.2.3");
  assert.equal(formatIpv4Address(c.dhcpStart), "10.0.2.15");
  assert.equal(c.restrict, false);
});

Deno.test("userNetConfig() reads net= with a prefix or a mask, and host=/dns=/dhcpstart= inside it", () => {
  const c = userNetConfig(
    parseOptions("net=192.168.5.0/16,host=192.168.1.1,dns=192.168.9.9", USER_OPTIONS),
  );
  assert.equal(formatIpv4Address(c.network), "192.168.0.0");
  assert.equal(formatIpv4Address(c.host), "192.168.1.1");
  assert.equal(formatIpv4Address(c.dhcpStart), "192.168.0.15");
  const m = userNetConfig({ net: "172.16.0.0/255.255.0.0" });
  assert.equal(formatIpv4Address(m.netmask), "255.255.0.0");
  assert.throws(() => userNetConfig({ net: "10.0.2.0/24", host: "10.0.3.2" }), /not in net/);
  assert.throws(() => userNetConfig({ net: "10.0.2.0/255.0.255.0" }), /Invalid netmask/);
  assert.throws(() => userNetConfig({ net: "10.0.2" }), /Invalid net address/);
  assert.throws(() => userNetConfig({ ipv4: false }), /IPv4 must be enabled/);
});

Deno.test("parseHostForward() reads QEMU's hostfwd forms", () => {
  assert.deepEqual(parseHostForward("tcp::5555-:22"), {
    protocol: "tcp",
    hostAddr: "0.0.0.0",
    hostPort: 5555,
    guestAddr: 0,
    guestPort: 22,
  });
  const u = parseHostForward("udp:127.0.0.1:6000-10.0.2.20:7000");
  assert.equal(u.protocol, "udp");
  assert.equal(u.hostAddr, "127.0.0.1");
  assert.equal(formatIpv4Address(u.guestAddr), "10.0.2.20");
  assert.equal(parseHostForward(":127.0.0.1:1-:2").protocol, "tcp");
  assert.throws(() => parseHostForward("sctp::1-:2"), /Bad protocol name/);
  assert.throws(() => parseHostForward("tcp::70000-:22"), /bad port/);
  assert.throws(() => parseHostForward("tcp::5555"), /Missing - separator/);
  assert.throws(() => parseHostForward("tcp:1.2.3:5-:6"), /Bad host address/);
});

Deno.test("userNetConfig() takes several hostfwd= rules, one a line, and fills in the guest address", () => {
  const c = userNetConfig({ hostfwd: "tcp::2222-:22\nudp::5353-:53", dhcpstart: "10.0.2.40" });
  assert.equal(c.hostfwd.length, 2);
  assert.equal(formatIpv4Address(c.hostfwd[0].guestAddr), "10.0.2.40");
  assert.equal(c.hostfwd[1].protocol, "udp");
});

Deno.test("parseGuestForward() takes tcp:HOST:PORT targets and refuses cmd:", () => {
  const g = parseGuestForward("tcp:10.0.2.100:1234-tcp:127.0.0.1:5555");
  assert.equal(formatIpv4Address(g.addr), "10.0.2.100");
  assert.equal(g.port, 1234);
  assert.equal(g.targetHost, "127.0.0.1");
  assert.equal(g.targetPort, 5555);
  assert.throws(() => parseGuestForward("tcp:10.0.2.100:1234-cmd:netcat x"), /not supported/);
});
