// Steady-state CPU speed on real kernel code: a window of the Debian i386 kernel's boot, in-process

import * as os from "node:os";
import { MemoryChardev } from "../core/chardev.ts";
import type { CpuBackend } from "../core/cpu.ts";
import { type CpuDescriptor, Registry } from "../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { createPcMachine } from "../plugins/machines/pc.ts";
import type { X86Cpu } from "../plugins/cpus/x86/cpu.ts";
import { INITRD, KERNEL } from "../tests/boot/guest_util.ts";
import { loadMachineState, saveMachineState, streamBytes } from "../core/vmstate.ts";

/**
 * Usage: `deno run -A bench/cpu_window_bench.ts [FROM] [COUNT] [ROUNDS]` (millions of
 * instructions; default 150 150 2). Boots the guide's `-kernel` line on `-M pc` with one
 * CPU, runs FROM M instructions, then times the next COUNT M in CPU seconds
 * (`process.cpuUsage`) for each of {@linkcode VARIANTS}, interleaved ROUNDS times.
 * 150..300 M is the kernel's decompressor; 3000 M on is kernel init.
 *
 * `VMKIT_WINDOW_STATE=FILE` saves the machine at FROM into FILE (first run) or starts
 * from FILE instead of running FROM (later runs): a window deep in the boot, such as
 * kernel init's hot loop at 3500 M, then costs seconds per variant instead of minutes
 * (`VMKIT_WINDOW_WARM` M instructions, default 20, run first to compile the hot code).
 */
const [from, count, rounds] = [150, 150, 2].map((d, i) => Number(Deno.args[i] ?? d));

/** The variants: RAM in an ordinary array, RAM in a WebAssembly.Memory, and the wasm tier on. */
const ALL_VARIANTS = ["plain", "wasm-ram", "wasm"] as const;
/**
 * `VMKIT_WINDOW_VARIANTS=wasm` (comma-separated) runs only those, e.g. to compare two
 * checkouts one process each, interleaved by the caller.
 */
const VARIANTS = ALL_VARIANTS.filter((v) =>
  (Deno.env.get("VMKIT_WINDOW_VARIANTS") ?? ALL_VARIANTS.join(",")).split(",").includes(v)
);

async function window(variant: typeof ALL_VARIANTS[number]) {
  const wasm = variant === "wasm";
  Deno.env.set("VMKIT_WASM", wasm ? "1" : "0");
  const cpuPlugin = (await import("../plugins/cpus/x86/mod.ts")).default as CpuDescriptor;
  const machine = createPcMachine({
    ramBytes: 768 << 20,
    smp: 1,
    drives: [],
    serial: [new MemoryChardev("serial0")],
    nographic: true,
    kernel: {
      kernel: Deno.readFileSync(KERNEL),
      kernelName: KERNEL,
      cmdline: "console=ttyS0 panic=-1",
      initrd: Deno.readFileSync(INITRD),
    },
    registry: new Registry().addAll(BUILTIN_PLUGINS),
    allocateRam: variant === "plain" ? undefined : cpuPlugin.allocateRam,
    createCpu: (m, index) =>
      cpuPlugin.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  });
  await machine.realize();
  const statePath = Deno.env.get("VMKIT_WINDOW_STATE");
  let saved: Uint8Array | null = null;
  try {
    if (statePath) saved = Deno.readFileSync(statePath);
  } catch {
    saved = null;
  }
  if (saved !== null) {
    loadMachineState(machine, saved);
    // Compile the window's hot code first, as the run to FROM would have.
    const warm = Number(Deno.env.get("VMKIT_WINDOW_WARM") ?? 20);
    await machine.run({ maxInstructions: warm * 1e6 });
  } else {
    await machine.run({ maxInstructions: from * 1e6 });
    if (statePath) Deno.writeFileSync(statePath, streamBytes(saveMachineState(machine)));
  }
  const cpu = machine.cpus[0] as X86Cpu;
  const i0 = cpu.instructionsRetired;
  const u0 = process.cpuUsage();
  const w = cpu.blocks?.wasm;
  const w0 = w?.retired ?? 0, c0 = w?.compileMs ?? 0, e0 = w?.entries ?? 0;
  const s0 = w?.slowCalls ?? 0, f0 = w?.condCalls ?? 0, g0 = w?.regions ?? 0;
  const t0 = cpu.blocks?.translated ?? 0, v0 = cpu.blocks?.invalidated ?? 0;
  await machine.run({ maxInstructions: count * 1e6 });
  const u = process.cpuUsage(u0);
  const n = cpu.instructionsRetired - i0;
  const s = (u.user + u.system) / 1e6;
  return {
    variant,
    mips: +(n / s / 1e6).toFixed(1),
    cpuSeconds: +s.toFixed(2),
    inWasm: w ? +(((w.retired - w0) / n) * 100).toFixed(1) : 0,
    regions: (w?.regions ?? 0) - g0,
    jsBlocks: (cpu.blocks?.translated ?? 0) - t0,
    invalidated: (cpu.blocks?.invalidated ?? 0) - v0,
    perEntry: w ? +((w.retired - w0) / (w.entries - e0)).toFixed(1) : 0,
    slowPerK: w ? +(((w.slowCalls - s0) / n) * 1000).toFixed(1) : 0,
    condPerK: w ? +(((w.condCalls - f0) / n) * 1000).toFixed(1) : 0,
    compileMs: w ? Math.round(w.compileMs - c0) : 0,
    eip: (cpu.core.eip >>> 0).toString(16),
  };
}

console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (let r = 0; r < rounds; r++) {
  for (const v of VARIANTS) console.log(JSON.stringify(await window(v)));
}
console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
