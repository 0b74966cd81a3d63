// `-vnc` parsing and the monitor's screendump (HMP and QMP, PPM and PNG) on a board with a VGA

import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, DISPLAY } from "../../../core/display.ts";
import { decodePng } from "../../../core/display_png.ts";
import { Monitor, type MonitorHost } from "../../../core/monitor/mod.ts";
import { createPcMachine } from "../../../plugins/machines/pc.ts";
import { testConfig } from "../../../plugins/machines/test_util.ts";
import { addScreendumpCommands, parseVncSpec, parseWebDisplay, vncSpecFromOptions } from "./mod.ts";

/** A monitor host with nothing attached, as QEMU 7.2. */
const HOST: MonitorHost = {
  version: { major: 7, minor: 2, micro: 0, package: "" },
  chardevs: () => [],
  drives: () => [],
  quit: () => {},
};

Deno.test("parseVncSpec() reads QEMU's forms and refuses the rest with the part at fault", () => {
  assert.deepEqual(
    [parseVncSpec(":1")!.host, parseVncSpec(":1")!.display, parseVncSpec(":1")!.transport],
    ["", 1, "tcp"],
  );
  assert.equal(parseVncSpec("[::1]:2")!.host, "::1");
  assert.equal(parseVncSpec("localhost:5,to=9")!.to, 9);
  assert.equal(parseVncSpec("unix:/run/vm.sock,share=ignore")!.share, "ignore");
  assert.equal(parseVncSpec("none"), undefined);
  assert.throws(() => parseVncSpec("5900"), /is not HOST:DISPLAY/);
  assert.throws(() => parseVncSpec(":1,share=maybe"), /unknown vnc share policy 'maybe'/);
  assert.throws(() => parseVncSpec(":3,to=2"), /to=2/);
  assert.equal(parseVncSpec(":1,password=on")!.password, true);
  assert.equal(parseVncSpec(":1")!.password, false);
  assert.throws(() => parseVncSpec(":1,password=maybe"), /password=maybe/);
  assert.throws(() => parseVncSpec(":1,websocket=on"), /'websocket' is not supported/);
  assert.throws(() => parseVncSpec(":70000"), /out of range/);
  assert.equal(
    vncSpecFromOptions([{ name: "display", value: "vnc=127.0.0.1:4" }])?.display,
    4,
  );
  assert.equal(vncSpecFromOptions([{ name: "display", value: "none" }]), undefined);
});

Deno.test("screendump: HMP and QMP write PPM and PNG of the VGA's screen with QEMU's errors", async () => {
  const machine = createPcMachine(testConfig({ vga: "std" }));
  addScreendumpCommands(machine);
  const monitor = new Monitor(machine, HOST);
  const dir = await Deno.makeTempDir();
  try {
    const ppm = path.join(dir, "a.ppm");
    const png = path.join(dir, "a.png");
    assert.equal(await monitor.hmp(`screendump ${ppm}`), "");
    assert.equal(await monitor.hmp(`screendump ${png} -f png`), "");
    const a = decodePpm(await Deno.readFile(ppm));
    const b = await decodePng(await Deno.readFile(png));
    assert.deepEqual(b, a);
    assert.equal(
      await monitor.hmp(`screendump ${png} -f jpg`),
      "Error: invalid parameter value: jpg\n",
    );
    assert.match(await monitor.hmp(`screendump ${ppm} nosuchdev`), /Device 'nosuchdev' not found/);
    const sent: string[] = [];
    const session = monitor.attachQmp({ write: (t) => sent.push(t) });
    const send = (o: unknown) => session.receive(new TextEncoder().encode(JSON.stringify(o)));
    send({ execute: "qmp_capabilities" });
    send({ execute: "screendump", arguments: { filename: png, format: "png" }, id: 1 });
    send({ execute: "screendump", arguments: { filename: png, format: "jpg" }, id: 2 });
    send({ execute: "change-vnc-password", arguments: { password: "x" }, id: 3 });
    const deadline = Date.now() + 5000;
    const replies = () =>
      sent.join("").split("\r\n").filter((l) => l).map((l) => JSON.parse(l))
        .filter((m) => m.id !== undefined);
    while (replies().length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(replies(), [
      { return: {}, id: 1 },
      {
        error: { class: "GenericError", desc: "Parameter 'format' does not accept value 'jpg'" },
        id: 2,
      },
      { error: { class: "GenericError", desc: "Could not set password" }, id: 3 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await machine.close();
  }
});

Deno.test("parseWebDisplay() reads web and web=HOST:PORT, and leaves other displays alone", () => {
  assert.deepEqual(parseWebDisplay("web"), { host: "127.0.0.1", port: 5800 });
  assert.deepEqual(parseWebDisplay("web=0.0.0.0:8080"), { host: "0.0.0.0", port: 8080 });
  assert.deepEqual(parseWebDisplay("web=:8081"), { host: "127.0.0.1", port: 8081 });
  assert.deepEqual(parseWebDisplay("web=[::1]:9000"), { host: "::1", port: 9000 });
  assert.equal(parseWebDisplay("none"), undefined);
  assert.equal(parseWebDisplay("vnc=:1"), undefined);
  assert.throws(() => parseWebDisplay("web=8080"), /is not HOST:PORT/);
  assert.throws(() => parseWebDisplay("web=h:99999"), /is not HOST:PORT/);
});

Deno.test("HMP change vnc password sets the VNC server's password with QEMU 7.2's answers", async () => {
  const machine = createPcMachine(testConfig({ vga: "std" }));
  addScreendumpCommands(machine);
  const monitor = new Monitor(machine, HOST);
  try {
    // No VNC server with password=on: QEMU's two lines (its ${dpy} unexpanded).
    assert.equal(
      await monitor.hmp("change vnc password secret"),
      "If you want use passwords please enable password auth using '-vnc ${dpy},password'.\n" +
        "Error: Could not set password\n",
    );
    const set: string[] = [];
    machine.findService(DISPLAY)!.addPasswordTarget("vnc", (p) => {
      set.push(p);
      return true;
    });
    assert.equal(await monitor.hmp("change vnc password secret"), "");
    assert.equal(await monitor.hmp("change vnc passwd abc"), "");
    assert.deepEqual(set, ["secret", "abc"]);
    assert.equal(await monitor.hmp("change vnc foo bar"), "Expected 'password' after 'vnc'\n");
    assert.equal(
      await monitor.hmp("change vnc password x ro"),
      "Parameter 'read-only-mode' is invalid for VNC\n",
    );
    // Everything else is still the removable-media change.
    assert.match(await monitor.hmp("change nosuchdrive /tmp/x.iso"), /nosuchdrive/);
    assert.deepEqual(set, ["secret", "abc"]);
  } finally {
    await machine.close();
  }
});
