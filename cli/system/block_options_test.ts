import assert from "node:assert/strict";
import * as path from "node:path";
import type { BlockBackend } from "../../core/block/backend.ts";
import { BlockGraph } from "../../core/block/graph.ts";
import { errorChainMessage } from "../../core/errors.ts";
import { buildRegistry } from "../registry.ts";
import { openBlockdevs, parseDriveOptions } from "./block_options.ts";
import { buildSystemSetup } from "./config.ts";
import { answerHelpQuery } from "./mod.ts";
import { parseSystemArgs } from "./options.ts";

const registry = await buildRegistry();

async function qcow2Image(dir: string, name: string, size: number): Promise<string> {
  const file = path.join(dir, name);
  await new BlockGraph(registry).createImage("qcow2", file, size, {});
  return file;
}

Deno.test("parseDriveOptions() takes a format's runtime options from its descriptor", () => {
  const o = parseDriveOptions("file=a.qcow2,format=qcow2,l2-cache-size=1M,if=virtio", registry);
  assert.equal(o.drive.if, "virtio");
  assert.deepEqual(o.formatOptions, { "l2-cache-size": 1 << 20 });
  assert.deepEqual(o.protocolOptions, {});
});

Deno.test("parseDriveOptions() refuses an option the named format does not declare, in QEMU's words", () => {
  assert.throws(
    () => parseDriveOptions("file=a.img,format=raw,l2-cache-size=1M", registry),
    /Block format 'raw' does not support the option 'l2-cache-size'/,
  );
  assert.throws(
    () => parseDriveOptions("file=a.img,bogus=1", registry),
    /Invalid parameter 'bogus'/,
  );
});

Deno.test("parseDriveOptions() passes file.NAME= to the protocol's declared open options", () => {
  const o = parseDriveOptions("file=a.img,format=raw,file.locking=off", registry);
  assert.deepEqual(o.protocolOptions, { locking: "off" });
  assert.throws(
    () => parseDriveOptions("file=a.img,format=raw,file.bogus=1", registry),
    /Block protocol 'file' doesn't support the option 'bogus'/,
  );
});

Deno.test("openBlockdevs() opens a qcow2 node on an inline file node, named by node-name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await qcow2Image(dir, "a.qcow2", 1 << 20);
    const graph = new BlockGraph(registry);
    const [drive] = await openBlockdevs([
      `driver=qcow2,node-name=disk0,file.driver=file,file.filename=${file},l2-cache-size=64K`,
    ], graph);
    assert.equal(drive.id, "disk0");
    assert.equal(drive.interface, "none");
    assert.equal(drive.node!.size(), 1 << 20);
    await (drive.node as BlockBackend).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openBlockdevs() stacks a format node on a protocol -blockdev named by file=", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await qcow2Image(dir, "b.qcow2", 2 << 20);
    const graph = new BlockGraph(registry);
    const drives = await openBlockdevs([
      `driver=file,node-name=f0,filename=${file},locking=off`,
      "driver=qcow2,node-name=d0,file=f0,read-only=on",
    ], graph);
    assert.deepEqual(drives.map((d) => [d.id, d.readOnly, d.node!.size()]), [[
      "d0",
      true,
      2 << 20,
    ]]);
    await (drives[0].node as BlockBackend).close();
    await assert.rejects(
      () => openBlockdevs(["driver=qcow2,node-name=d1,file=nope"], graph),
      (e: Error) => /Cannot find device='nope' nor node-name='nope'/.test(errorChainMessage(e)),
    );
    await assert.rejects(
      () =>
        openBlockdevs([`driver=raw,node-name=d2,file.filename=${file},l2-cache-size=1M`], graph),
      (e: Error) => /Parameter 'l2-cache-size' is unexpected/.test(errorChainMessage(e)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("answerHelpQuery() lists a netdev's and a format's declared options", () => {
  const ask = (...args: string[]) => answerHelpQuery(parseSystemArgs(args).opts, registry) ?? "";
  assert.match(ask("-netdev", "user,help"), /^user options:\n(.|\n)*restrict=<bool \(on\/off\)>/);
  assert.match(
    ask("-blockdev", "driver=qcow2,help"),
    /^qcow2 options:\n(.|\n)*l2-cache-size=<size>/,
  );
  assert.match(ask("-drive", "format=raw,help"), /file\.NAME=(.|\n)*locking=/);
  assert.throws(() => ask("-netdev", "tap0,help"), /Parameter 'type' does not accept value 'tap0'/);
});

Deno.test("-blockdev node-name=NAME is the drive -device virtio-blk-pci,drive=NAME takes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await qcow2Image(dir, "c.qcow2", 1 << 20);
    const graph = new BlockGraph(registry);
    const setup = await buildSystemSetup(
      parseSystemArgs([
        "-nodefaults",
        "-blockdev",
        `driver=qcow2,node-name=disk0,file.driver=file,file.filename=${file}`,
        "-device",
        "virtio-blk-pci,drive=disk0",
      ]).opts,
      undefined,
      { registry, graph, stdio: {} },
    );
    const machine = registry.require("machine", "pc")
      .create({ ...setup.config, firmware: new Uint8Array(256 * 1024) });
    for (const d of setup.devices) machine.createDevice(d.model, d.opts);
    assert.equal(machine.drive("disk0").node, setup.backends[0]);
    assert.equal(machine.devices.filter((d) => d.model === "virtio-blk-pci").length, 1);
    await machine.close();
    for (const b of setup.backends) await b.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
