// Emulation speed: Multiboot loop guests on vmkit's x86 interpreter and on qemu-system-i386 -accel tcg

import * as path from "node:path";
import { MemoryChardev } from "../core/chardev.ts";
import { runPcKernel } from "../tools/demo_guest.ts";
import { type LoopGuest, loopGuests } from "./guests/loops.ts";
import { bestOf, have, printTable, type Row, scratch, SHORT } from "./bench_util.ts";

const QEMU = "qemu-system-i386";

/**
 * Iterations per run. QEMU's TCG is far faster than an interpreter, so it gets more
 * iterations for the same wall time; both run the very same kernel file, which reads
 * N from `-append`. The rep guest moves 8 KiB per iteration and gets 1/200 of the count.
 */
const VMKIT_ITERATIONS = SHORT ? 2_000_000 : 20_000_000;
const QEMU_ITERATIONS = SHORT ? 50_000_000 : 500_000_000;
const RUNS = SHORT ? 1 : 3;
/** QEMU's start-up time varies by tens of ms; its baseline always takes the best of several. */
const QEMU_STARTUP_RUNS = SHORT ? 2 : 3;

function iterations(guest: LoopGuest, base: number): number {
  return guest.bytesPerIteration ? Math.round(base / 200) : base;
}

/**
 * Seconds vmkit spends in the loop: `machine.run()` wall time (machine construction
 * excluded) at N iterations minus the same at N = 0, so boot ROM and setup cancel out.
 * Also checks the retired instruction count against the guest's formula.
 */
async function vmkitLoopSeconds(guest: LoopGuest, n: number): Promise<number> {
  const run = (count: number) =>
    runPcKernel(guest.image, { serial: new MemoryChardev("serial0"), cmdline: String(count) });
  const empty = await run(0);
  const full = await run(n);
  const extra = full.instructions - empty.instructions - guest.perIteration * n;
  // Parsing a longer number on the command line costs a few dozen instructions.
  if (full.exit.reason !== "exit" || extra < 0 || extra > 200) {
    throw new Error(
      `${guest.name}: expected ${guest.perIteration * n} loop instructions, got ${
        full.instructions - empty.instructions
      } (${full.exit.reason})`,
    );
  }
  return Math.max(full.seconds - empty.seconds, 1e-6);
}

/** Wall seconds of one QEMU run of `kernel` with N on the command line. */
async function qemuSeconds(kernel: string, n: number): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(QEMU, {
    args: [
      "-accel",
      "tcg",
      "-M",
      "pc",
      "-nographic",
      "-kernel",
      kernel,
      "-append",
      String(n),
      "-device",
      "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  // The guest writes 0 to isa-debug-exit: QEMU exits with (0 << 1) | 1 = 1.
  if (out.code !== 1) {
    throw new Error(`${QEMU} exited with ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return seconds;
}

/**
 * One row per loop guest: MIPS (rep movs/stos: MiB/s) on vmkit and on QEMU. QEMU's
 * time is its process wall time at N minus the best time of the same kernel at N = 0
 * (QEMU start, SeaBIOS, option ROMs, the multiboot loader), so only the loop remains.
 */
export async function emulationLoopRows(): Promise<Row[]> {
  const rows: Row[] = [];
  const withQemu = have(QEMU);
  const { dir, cleanup } = await scratch();
  try {
    for (const guest of loopGuests()) {
      const kernel = path.join(dir, `${guest.name.replace(/[^a-z0-9]+/g, "_")}.bin`);
      await Deno.writeFile(kernel, guest.image);
      const rate = (n: number, seconds: number) =>
        guest.bytesPerIteration
          ? (guest.bytesPerIteration * n) / seconds / 2 ** 20
          : (guest.perIteration * n) / seconds / 1e6;

      const nv = iterations(guest, VMKIT_ITERATIONS);
      const vmkitSeconds = await bestOf(RUNS, () => vmkitLoopSeconds(guest, nv));
      let qemu: number | undefined;
      if (withQemu) {
        const nq = iterations(guest, QEMU_ITERATIONS);
        const startup = await bestOf(QEMU_STARTUP_RUNS, () => qemuSeconds(kernel, 0));
        const total = await bestOf(RUNS, () => qemuSeconds(kernel, nq));
        qemu = rate(nq, Math.max(total - startup, 1e-3));
      }
      rows.push({
        name: `${guest.name} (${guest.perIteration} insns/iter)`,
        unit: guest.bytesPerIteration ? "MiB/s" : "MIPS",
        qemu,
        vmkit: rate(nv, vmkitSeconds),
        higherIsBetter: true,
      });
    }
  } finally {
    await cleanup();
  }
  return rows;
}

if (import.meta.main) {
  printTable(
    `Emulation loops: vmkit (interpreter + block translator) vs ${QEMU} -accel tcg${
      SHORT ? " (short)" : ""
    }`,
    await emulationLoopRows(),
  );
}
