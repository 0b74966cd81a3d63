import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import { GUEST_RAM } from "../../core/device.ts";
import type { Machine } from "../../core/machine.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import {
  encodeState,
  loadMachineState,
  saveMachineState,
  streamBytes,
} from "../../core/vmstate.ts";
import { X86State } from "../../core/x86_state.ts";
import { createPcMachine } from "./pc.ts";
import { testConfig } from "./test_util.ts";

const BIOS_PATH = "/usr/share/seabios/bios-256k.bin";
const CPU_MODULE = new URL("../cpus/x86/mod.ts", import.meta.url);

function exists(path: string | URL): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const missing = exists(BIOS_PATH) ? "" : `${BIOS_PATH} is not installed`;

async function pcMachine(): Promise<{ machine: Machine; serial: MemoryChardev }> {
  const cpuPlugin = (await import(CPU_MODULE.href)).default as CpuDescriptor;
  const serial = new MemoryChardev("serial0");
  const machine = createPcMachine(testConfig({
    ramBytes: 64 << 20,
    firmware: Deno.readFileSync(BIOS_PATH),
    serial: [serial],
    rtcBase: new Date("2026-01-02T03:04:05Z"),
    createCpu: (m, index) => cpuPlugin.create(m.cpuContext(index), {}) as CpuBackend,
  }));
  await machine.realize();
  return { machine, serial };
}

/** What must agree between two runs: the CPU, RAM, the clock, every device. */
function fingerprint(machine: Machine): string[] {
  const st = new X86State();
  machine.cpus[0].getState!(st);
  const ram = machine.service(GUEST_RAM);
  let h = 0;
  for (let i = 0; i < ram.length; i += 4) h = (Math.imul(h, 31) + ram[i] + (ram[i + 1] << 8)) | 0;
  const out = [`clock ${machine.loop.nowNs}`, `ram ${h}`, `cpu ${Array.from(st.bytes).join(",")}`];
  for (const d of machine.devices) {
    out.push(`${d.id} ${Array.from(encodeState(d.saveState())).join(",")}`);
  }
  return out;
}

Deno.test({
  name: "saveMachineState() then loadMachineState(): a restored pc machine runs SeaBIOS on " +
    "exactly as the original" + (missing ? ` (ignored: ${missing})` : ""),
  ignore: skipUnless(import.meta, { ok: missing === "", missing: missing }),
  async fn() {
    for (const at of [3_000_000, 30_000_000]) {
      const a = await pcMachine();
      await a.machine.run({ maxInstructions: at });
      const saved = streamBytes(saveMachineState(a.machine));
      const serialBefore = a.serial.text().length;
      await a.machine.run({ maxInstructions: 3_000_000 });

      const b = await pcMachine();
      loadMachineState(b.machine, saved);
      await b.machine.run({ maxInstructions: 3_000_000 });

      assert.equal(b.serial.text(), a.serial.text().slice(serialBefore), `serial after ${at}`);
      const fa = fingerprint(a.machine), fb = fingerprint(b.machine);
      for (let i = 0; i < fa.length; i++) {
        assert.equal(fb[i], fa[i], `${fa[i].split(" ")[0]} differs after a restore at ${at}`);
      }
    }
  },
});
