// Runs the CPUID dump guest (cpuid_guest.asm) under real qemu-system-x86_64 and parses its debugcon lines

import * as path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** One CPUID answer: the input leaf and subleaf and the four output registers. */
export interface CpuidLine {
  leaf: number;
  subleaf: number;
  regs: [number, number, number, number];
}

/** The (leaf, subleaf) pairs the guest asks: every leaf a model of QEMU 7.2 can answer, and some past the ends. */
export function leafList(): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const sub: Record<number, number> = { 4: 5, 7: 3, 0xb: 3, 0xd: 10, 0x14: 2, 0x1f: 3 };
  for (let leaf = 0; leaf <= 0x20; leaf++) {
    for (let s = 0; s < (sub[leaf] ?? 1); s++) out.push([leaf, s]);
  }
  for (const leaf of [0x40000000, 0x40000001, 0x40000010]) out.push([leaf, 0]);
  for (let leaf = 0x80000000; leaf <= 0x80000022; leaf++) {
    for (let s = 0; s < (leaf === 0x8000001d ? 5 : 1); s++) out.push([leaf, s]);
  }
  for (let leaf = 0xc0000000; leaf <= 0xc0000004; leaf++) out.push([leaf, 0]);
  out.push([0x8fffffff, 0], [0xffffffff - 1, 0]);
  return out;
}

/** Assembles the guest for `leaves` into `dir` and returns the binary's path. */
export async function buildGuest(leaves: Array<[number, number]>, dir: string): Promise<string> {
  const inc = leaves.map(([l, s]) => `  dd 0x${l.toString(16)}, 0x${s.toString(16)}`).join("\n");
  await Deno.writeTextFile(path.join(dir, "leaves.inc"), inc + "\n");
  const bin = path.join(dir, "cpuid_guest.bin");
  const out = await new Deno.Command("nasm", {
    args: ["-f", "bin", "-I", dir + "/", "-o", bin, path.join(HERE, "cpuid_guest.asm")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`nasm failed: ${new TextDecoder().decode(out.stderr)}`);
  return bin;
}

/** Runs the guest with `-cpu cpu` (and `extra` arguments) under QEMU TCG; returns its CPUID lines and stderr. */
export function runOnQemu(
  bin: string,
  dir: string,
  cpu: string,
  extra: string[] = [],
): Promise<{ lines: CpuidLine[]; stderr: string }> {
  return runGuest(["qemu-system-x86_64", "-accel", "tcg"], bin, dir, ["-cpu", cpu, ...extra]);
}

/**
 * Runs the guest with `command` (a QEMU or vmkit system emulator and its first arguments)
 * on a 32 MiB pc with `extra` arguments; returns its CPUID lines and stderr.
 */
export async function runGuest(
  command: string[],
  bin: string,
  dir: string,
  extra: string[] = [],
): Promise<{ lines: CpuidLine[]; stderr: string }> {
  const log = path.join(dir, "debugcon.log");
  await Deno.remove(log).catch(() => {});
  const child = new Deno.Command(command[0], {
    args: [
      ...command.slice(1),
      ...["-M", "pc", "-m", "32", ...extra],
      ...["-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot"],
      ...["-debugcon", `file:${log}`, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
      ...["-kernel", bin],
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(out.stderr);
  const text = await Deno.readTextFile(log).catch(() => "");
  const label = `${command[0]} ${extra.join(" ")}`;
  if (!text.includes("\nE\n")) throw new Error(`${label}: the guest did not finish: ${stderr}`);
  return { lines: parseLines(text), stderr };
}

/** Parses `LEAF SUBLEAF EAX EBX ECX EDX` hex lines up to the final `E`. */
export function parseLines(text: string): CpuidLine[] {
  const out: CpuidLine[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(" ");
    if (f.length !== 6) continue;
    const n = f.map((x) => parseInt(x, 16) >>> 0);
    out.push({ leaf: n[0], subleaf: n[1], regs: [n[2], n[3], n[4], n[5]] });
  }
  return out;
}

/** A register as 8 hex digits, for difference reports. */
export function hex(x: number): string {
  return x.toString(16).padStart(8, "0");
}
