import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import { createPcMachine } from "./pc.ts";
import { testConfig } from "./test_util.ts";

const BIOS_PATH = "/usr/share/seabios/bios-256k.bin";
const CPU_MODULE = new URL("../cpus/x86/mod.ts", import.meta.url);
/** Enough for SeaBIOS to reach its boot attempts (it needs well under 100M instructions). */
const INSTRUCTION_BUDGET = 400_000_000;

function exists(path: string | URL): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const missing = [
  exists(BIOS_PATH) ? "" : `${BIOS_PATH} is not installed`,
  exists(CPU_MODULE) ? "" : "the x86 CPU plugin (plugins/cpus/x86/mod.ts) does not exist yet",
].filter((s) => s).join(", ");

Deno.test({
  name: "createPcMachine() runs SeaBIOS to its boot attempts on the serial console" +
    (missing ? ` (ignored: ${missing})` : ""),
  ignore: skipUnless(import.meta, { ok: missing === "", missing: missing }),
  async fn() {
    const cpuPlugin = (await import(CPU_MODULE.href)).default as CpuDescriptor;
    const serial = new MemoryChardev("serial0");
    const debug = new MemoryChardev("seabios-log");
    const machine = createPcMachine(testConfig({
      ramBytes: 128 << 20,
      firmware: Deno.readFileSync(BIOS_PATH),
      serial: [serial],
      chardevs: [debug],
      createCpu: (m, index) =>
        cpuPlugin.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
    }));
    // SeaBIOS's own log goes to port 0x402 when it reads back 0xe9 there.
    machine.createDevice("isa-debugcon", { chardev: "seabios-log", iobase: 0x402 });
    serial.onOutput((text) => {
      if (/No bootable device|Booting from Hard Disk/.test(text)) machine.requestExit(0);
    });
    const result = await machine.run({ maxInstructions: INSTRUCTION_BUDGET });
    const context = `\n--- serial ---\n${serial.text().slice(-2000)}\n--- SeaBIOS log ---\n${
      debug.text().slice(-3000)
    }`;
    assert.equal(result.reason, "exit", `SeaBIOS did not reach a boot attempt${context}`);
    assert.match(serial.text(), /SeaBIOS \(version/, context);
    assert.match(serial.text(), /Booting from Hard Disk|No bootable device/, context);
  },
});
