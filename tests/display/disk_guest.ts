// A disk guest on vmkit's pc board for the display tests: SeaBIOS, a VGA, an IDE disk, COM1 watched until the guest says it is done

import assert from "node:assert/strict";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import type { Machine } from "../../core/machine.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import x86 from "../../plugins/cpus/x86/mod.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";
import { MemoryDisk } from "../fuzz/device_machine.ts";
import { haveProgram } from "../test_util.ts";

/** The SeaBIOS image the board runs. */
export const BIOS = "/usr/share/seabios/bios-256k.bin";

/**
 * Why a test comparing vmkit with QEMU on SeaBIOS and `vgaRom` cannot run (the text
 * for its name, empty when it can): SeaBIOS or the VGA BIOS missing, QEMU missing.
 */
export function skipWithoutQemuAndFirmware(vgaRom: string, also: string[] = []): string {
  const haveFirmware = [BIOS, `/usr/share/seabios/${vgaRom}`].every((f) => {
    try {
      return Deno.statSync(f).isFile;
    } catch {
      return false;
    }
  });
  if (!haveFirmware) return " (ignored: SeaBIOS is missing; apt-get install seabios)";
  for (const program of ["qemu-system-x86_64", ...also]) {
    if (!haveProgram(program)) return ` (ignored: ${program} is not installed)`;
  }
  return "";
}

/**
 * Boots `disk` (a raw image, at most 1 MiB) on vmkit with `-vga vga` until COM1 says
 * `done` (or `FAIL`), and returns the machine, still open, for a screendump.
 */
export async function runDiskGuest(
  disk: Uint8Array,
  vga: "std" | "cirrus",
  done: RegExp,
): Promise<{ machine: Machine; serial: MemoryChardev }> {
  const image = new MemoryDisk(1 << 20);
  image.bytes.set(disk);
  const serial = new MemoryChardev("serial0");
  const cpu = x86 as CpuDescriptor;
  const machine = createPcMachine(testConfig({
    ramBytes: 64 << 20,
    firmware: Deno.readFileSync(BIOS),
    serial: [serial],
    vga,
    drives: [{
      id: "ide0-hd0",
      node: image,
      interface: "ide",
      index: 0,
      media: "disk",
      readOnly: false,
    }],
    createCpu: (m, index) => cpu.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  }));
  serial.onOutput((text) => {
    if (done.test(text) || /FAIL/.test(text)) machine.requestExit(0);
  });
  await machine.run({ maxInstructions: 800_000_000 });
  assert.match(serial.text(), done, serial.text());
  return { machine, serial };
}
