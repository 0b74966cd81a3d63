import assert from "node:assert/strict";
import { monitorSpecs, parseMonitorSpec } from "./monitor.ts";

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
  assert.throws(() => parseMonitorSpec("hmp", "vc"), /'vc' is not a valid char driver/);
  assert.throws(
    () => parseMonitorSpec("hmp", "unix:/x,server=on,bogus=1"),
    /Invalid parameter 'bogus'/,
  );
  assert.throws(
    () => monitorSpecs([{ name: "monitor", value: "stdio" }, { name: "qmp", value: "stdio" }]),
    /cannot use stdio by multiple character devices/,
  );
});
