import assert from "node:assert/strict";
import { BlockGraph } from "../../core/block/graph.ts";
import type { PciFunction } from "../../core/device.ts";
import type { Machine } from "../../core/machine.ts";
import { buildRegistry } from "../registry.ts";
import { buildSystemSetup } from "./config.ts";
import { parseSystemArgs } from "./options.ts";

const registry = await buildRegistry();

/** The vendor:device in slot 2 of the pc board a command line builds, or null. */
async function slot2(...args: string[]): Promise<string | null> {
  const setup = await buildSystemSetup(parseSystemArgs(args).opts, undefined, {
    registry,
    graph: new BlockGraph(registry),
    stdio: {},
  });
  const config = { ...setup.config, firmware: new Uint8Array(256 * 1024) };
  const machine = registry.require("machine", "pc").create(config) as Machine;
  for (const d of setup.devices) machine.createDevice(d.model, d.opts);
  const fn = machine.findService<{ functions: (PciFunction | undefined)[] }>("pci")!
    .functions[0x10];
  if (!fn) return null;
  const id = fn.configRead(0, 4);
  return `${(id & 0xffff).toString(16).padStart(4, "0")}:${
    (id >>> 16).toString(16).padStart(4, "0")
  }`;
}

Deno.test("-vga picks the adapter in slot 2: std by default (also with -nographic), cirrus, none", async () => {
  assert.equal(await slot2(), "1234:1111");
  assert.equal(await slot2("-nographic", "-serial", "none"), "1234:1111");
  assert.equal(await slot2("-vga", "std"), "1234:1111");
  assert.equal(await slot2("-vga", "cirrus"), "1013:00b8");
  assert.equal(await slot2("-vga", "none", "-net", "none"), null);
  // QEMU's default NIC then takes the slot.
  assert.equal(await slot2("-vga", "none"), "8086:100e");
});

Deno.test("-nodefaults drops the default VGA as QEMU does, and -vga still adds one", async () => {
  assert.equal(await slot2("-nodefaults"), null);
  assert.equal(await slot2("-nodefaults", "-vga", "cirrus"), "1013:00b8");
  assert.equal(await slot2("-vga", "none", "-net", "none", "-device", "VGA"), "1234:1111");
});
