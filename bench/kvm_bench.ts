// accel=kvm: exits per second for port I/O and MMIO, and time to the SeaBIOS banner, vmkit vs QEMU+KVM

import * as path from "node:path";
import { AL, type Assembler, dword, EAX, EBX, ECX, ESI } from "../plugins/machines/x86_asm.ts";
import { multibootGuest } from "../tools/demo_guest.ts";
import { runProgramUntil, runVmkitUntil } from "../tests/boot/boot_util.ts";
import { haveQemuKvm, kvmUnavailable } from "../tests/kvm/kvm_util.ts";
import { bestOf, printTable, ROOT, type Row, scratch, SHORT } from "./bench_util.ts";

const QEMU = "qemu-system-x86_64";
const MAIN = path.join(ROOT, "cli", "main.ts");
/** Exits per measured run; QEMU and vmkit run the same kernel with the same N. */
const EXITS = SHORT ? 200_000 : 1_000_000;
const RUNS = SHORT ? 1 : 3;
/** A port no device of vmkit claims and QEMU's pc sinks (port 80h): every OUT exits. */
const BENCH_PORT = 0x80;
/** A guest-physical address in the PCI hole that neither machine maps: every store exits. */
const BENCH_MMIO = 0xd0000000;
const BIOS = "/usr/share/seabios/bios-256k.bin";
const BANNER = /SeaBIOS \(version/;

/** A Multiboot guest whose loop does `access` N times (N from `-append N`), then exits. */
function exitLoopGuest(access: (a: Assembler) => void): Uint8Array {
  return multibootGuest((a) => {
    a.mov(EBX, dword(null, 0x9f000)).mov(ESI, dword(EBX, 16)).call("parse_count").mov(ECX, EAX);
    a.test(ECX, ECX).jcc("z", "done");
    a.label("again");
    access(a);
    a.dec(ECX).jcc("nz", "again");
    a.label("done");
  });
}

/** The port I/O guest: `out 80h, al` per iteration. */
export function portIoGuest(): Uint8Array {
  return exitLoopGuest((a) => a.out(BENCH_PORT, AL));
}

/** The MMIO guest: a 32-bit store to an unmapped address per iteration. */
export function mmioGuest(): Uint8Array {
  return exitLoopGuest((a) => a.mov(dword(null, BENCH_MMIO), EAX));
}

/** How a run is set up: vCPUs, and (vmkit) whether vCPUs run on their own threads. */
interface RunShape {
  smp: number;
  /** VMKIT_KVM_THREADS for vmkit (unset: the default, threads from -smp 2). */
  threads?: "0" | "1";
}

/** Wall seconds of one run of `program` booting `kernel` with N on its command line. */
async function kernelSeconds(
  program: string,
  kernel: string,
  n: number,
  shape: RunShape,
): Promise<number> {
  const prefix = program === "vmkit" ? [Deno.execPath(), "run", "-A", "--quiet", MAIN] : [QEMU];
  const args = [
    ...prefix.slice(1),
    ...(program === "vmkit" ? ["system-x86_64"] : []),
    "-accel",
    "kvm",
    "-M",
    "pc",
    "-m",
    "128",
    "-smp",
    String(shape.smp),
    "-nographic",
    "-nodefaults",
    "-kernel",
    kernel,
    "-append",
    String(n),
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ];
  const t0 = performance.now();
  const out = await new Deno.Command(prefix[0], {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: shape.threads === undefined ? {} : { VMKIT_KVM_THREADS: shape.threads },
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  // The guest writes 0 to isa-debug-exit: both exit with (0 << 1) | 1 = 1.
  if (out.code !== 1) {
    throw new Error(`${program} exited with ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return seconds;
}

/** Exits per second: N exits' wall time minus the same kernel's at N = 0 (start-up, boot). */
async function exitsPerSecond(
  program: string,
  kernel: string,
  shape: RunShape = { smp: 1 },
): Promise<number> {
  const empty = await bestOf(RUNS + 1, () => kernelSeconds(program, kernel, 0, shape));
  const full = await bestOf(RUNS, () => kernelSeconds(program, kernel, EXITS, shape));
  return EXITS / Math.max(full - empty, 1e-3);
}

/** Seconds from start until the SeaBIOS banner appears on the serial console. */
async function bannerSeconds(program: string): Promise<number> {
  const args = ["-accel", "kvm", "-m", "64", "-nographic", "-nodefaults", "-serial", "stdio"];
  const t0 = performance.now();
  const out = program === "vmkit"
    ? await runVmkitUntil(["system-x86_64", ...args], BANNER, 120_000)
    : await runProgramUntil(QEMU, args, BANNER, 120_000);
  const seconds = (performance.now() - t0) / 1000;
  if (!BANNER.test(out)) throw new Error(`${program}: no SeaBIOS banner in 120 s: ${out}`);
  return seconds;
}

/** The KVM rows: port I/O and MMIO exits per second, and seconds to the SeaBIOS banner. */
export async function kvmRows(): Promise<Row[]> {
  const why = kvmUnavailable();
  if (why !== null) {
    console.log(`kvm bench skipped: KVM cannot be used here: ${why}`);
    return [];
  }
  const withQemu = haveQemuKvm();
  const rows: Row[] = [];
  const { dir, cleanup } = await scratch();
  try {
    const port = path.join(dir, "port.bin");
    const mmio = path.join(dir, "mmio.bin");
    await Deno.writeFile(port, portIoGuest());
    await Deno.writeFile(mmio, mmioGuest());
    // The loop runs on the boot vCPU; with -smp 2 the other waits for a SIPI, and the
    // exits cross from vmkit's vCPU thread to the main thread's devices and back.
    const cases: [string, string, RunShape][] = [
      ["port I/O exits (out 80h), -smp 1", port, { smp: 1 }],
      ["port I/O exits, -smp 1, vCPU thread", port, { smp: 1, threads: "1" }],
      ["port I/O exits, -smp 2 (vCPU threads)", port, { smp: 2 }],
      ["MMIO exits (store to unmapped)", mmio, { smp: 1 }],
    ];
    for (const [name, kernel, shape] of cases) {
      // Interleaved, so both sides see the same load from other jobs.
      const qemu = withQemu ? await exitsPerSecond(QEMU, kernel, shape) : undefined;
      const vmkit = await exitsPerSecond("vmkit", kernel, shape);
      rows.push({
        name,
        unit: "kexits/s",
        qemu: qemu && qemu / 1000,
        vmkit: vmkit / 1000,
        higherIsBetter: true,
      });
    }
    try {
      Deno.statSync(BIOS);
      const qemu = withQemu ? await bestOf(RUNS, () => bannerSeconds(QEMU)) : undefined;
      const vmkit = await bestOf(RUNS, () => bannerSeconds("vmkit"));
      rows.push({ name: "SeaBIOS banner (-m 64)", unit: "s", qemu, vmkit, higherIsBetter: false });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  } finally {
    await cleanup();
  }
  return rows;
}

if (import.meta.main) {
  printTable(
    `accel=kvm: vmkit vs ${QEMU} -accel kvm${SHORT ? " (short)" : ""}`,
    await kvmRows(),
  );
}
