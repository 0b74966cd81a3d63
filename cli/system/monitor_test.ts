import assert from "node:assert/strict";
import { monitorHost, MonitorPeers } from "./monitor.ts";
import { monitorSpecs, parseMonitorSpec } from "./monitor_spec.ts";
import type { RelayConn } from "./relay/socket_relay.ts";

Deno.test("parseMonitorSpec() takes QEMU's -monitor and -qmp forms and refuses others with one line", () => {
  assert.deepEqual(parseMonitorSpec("hmp", "telnet:127.0.0.1:4444,server=on,wait=off"), {
    mode: "hmp",
    transport: "tcp",
    host: "127.0.0.1",
    port: 4444,
    wait: false,
    text: "telnet:127.0.0.1:4444,server=on,wait=off",
  });
  assert.equal(parseMonitorSpec("qmp", "tcp::4444,server,nowait")?.host, "0.0.0.0");
  assert.equal(parseMonitorSpec("qmp", "unix:/tmp/s,server=on")?.wait, true);
  assert.equal(parseMonitorSpec("hmp", "stdio")?.transport, "stdio");
  assert.equal(parseMonitorSpec("hmp", "none"), null);
  assert.throws(() => parseMonitorSpec("qmp", "unix:/tmp/s"), /-qmp unix:\/tmp\/s: .*server=on/);
  assert.throws(() => parseMonitorSpec("qmp", "tcp:host:99999,server=on"), /expected HOST:PORT/);
  assert.throws(() => parseMonitorSpec("hmp", "vcx"), /'vcx' is not a valid char driver/);
  assert.throws(
    () => parseMonitorSpec("hmp", "unix:/x,server=on,bogus=1"),
    /Invalid parameter 'bogus'/,
  );
  assert.throws(
    () => monitorSpecs([{ name: "monitor", value: "stdio" }, { name: "qmp", value: "stdio" }]),
    /cannot use stdio by multiple character devices/,
  );
});

Deno.test("parseMonitorSpec() takes vc, vc:WxH in pixels and vc:NCxMC in characters as QEMU does", () => {
  assert.deepEqual(parseMonitorSpec("hmp", "vc"), {
    mode: "hmp",
    transport: "vc",
    wait: false,
    columns: 80,
    rows: 30,
    text: "vc",
  });
  const pixels = parseMonitorSpec("hmp", "vc:800x600")!;
  assert.deepEqual([pixels.columns, pixels.rows], [100, 37]);
  const chars = parseMonitorSpec("hmp", "vc:80Cx24C")!;
  assert.deepEqual([chars.columns, chars.rows], [80, 24]);
  assert.throws(() => parseMonitorSpec("hmp", "vc:0x0"), /-monitor vc:0x0: a vc is 1x1 to/);
  assert.throws(() => parseMonitorSpec("hmp", "vc:99999Cx2C"), /a vc is 1x1 to 1024x512/);
  assert.throws(() => parseMonitorSpec("hmp", "vc:big"), /expected vc, vc:WIDTHxHEIGHT/);
  const mon = monitorSpecs([
    { name: "chardev", value: "vc,id=mon0,cols=100,rows=40" },
    { name: "mon", value: "chardev=mon0" },
  ]);
  assert.deepEqual([mon[0].transport, mon[0].columns, mon[0].rows, mon[0].label], [
    "vc",
    100,
    40,
    "mon0",
  ]);
});

Deno.test("MonitorPeers keeps one run's monitor clients: two machines given one spec do not share them", () => {
  const [spec] = monitorSpecs([{
    name: "monitor",
    value: "tcp:127.0.0.1:4444,server=on,wait=off",
  }]);
  const host = (peers: MonitorPeers) =>
    monitorHost({
      version: "7.2.0",
      vmkitVersion: "0",
      chardevs: [],
      drives: [],
      specs: [spec],
      peers,
      quit: () => {},
    });
  const first = new MonitorPeers(), second = new MonitorPeers();
  const client = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
  } as unknown as RelayConn;
  first.add(spec, client);
  const filename = (peers: MonitorPeers) => host(peers).chardevs!()[0].filename;
  assert.equal(filename(first), "tcp:127.0.0.1:4444,server=on <-> 127.0.0.1:50000");
  assert.equal(filename(second), "disconnected:tcp:127.0.0.1:4444,server=on");
  first.remove(spec, client);
  assert.equal(filename(first), "disconnected:tcp:127.0.0.1:4444,server=on");
});
