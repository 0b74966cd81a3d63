// Test helpers: assemble NASM sources from testdata/ and run them on a bare machine

import { type RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";

/** True when `nasm` runs on this host. */
export const HAVE_NASM: boolean = (() => {
  try {
    return new Deno.Command("nasm", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

/** Assembles `testdata/<name>.asm` as a flat binary and returns its bytes. */
export function assemble(name: string): Uint8Array {
  const dir = new URL("./testdata/", import.meta.url).pathname;
  const out = Deno.makeTempFileSync({ suffix: ".bin" });
  try {
    const r = new Deno.Command("nasm", {
      args: ["-f", "bin", "-i", dir, "-o", out, `${dir}${name}.asm`],
    }).outputSync();
    if (!r.success) throw new Error(`nasm failed: ${new TextDecoder().decode(r.stderr)}`);
    return Deno.readFileSync(out);
  } finally {
    Deno.removeSync(out, { recursive: true });
  }
}

/** What a test program did. */
export interface ProgramRun {
  exit: RunExit;
  /** Every OUT to ports 0x80..0x8f as `port:value` in hex. */
  reports: string[];
  cpu: X86Cpu;
  ram: Uint8Array;
}

/**
 * Loads `image` at 0x7C00 of a machine with 16 MiB of RAM and runs it from 0000:7C00
 * in real mode until it halts, shuts down or spends `maxInstructions`.
 */
export function runProgram(
  image: Uint8Array,
  options: { model?: string; maxInstructions?: number } = {},
): ProgramRun {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 16 << 20);
  ram.set(image, 0x7c00);
  const io = new PortIoSpace();
  const reports: string[] = [];
  io.register("reports", 0x80, 16, {
    read: () => 0,
    write: (port, _size, value) => void reports.push(`${port.toString(16)}:${value.toString(16)}`),
  });
  const cpu = new X86Cpu({ memory, io }, findModel(options.model ?? "qemu32")!);
  cpu.jumpReal(0, 0x7c00);
  let exit = cpu.run(options.maxInstructions ?? 1_000_000);
  while (exit === 4) exit = cpu.run(options.maxInstructions ?? 1_000_000);
  return { exit, reports, cpu, ram };
}
