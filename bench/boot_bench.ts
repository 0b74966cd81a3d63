// Boot time: Debian's i386 kernel and the test initramfs to a shell prompt, vmkit vs QEMU TCG

import * as path from "node:path";
import {
  INITRD,
  KERNEL,
  missingDevices,
  missingFiles,
  offered,
  SHELL_PROMPT,
} from "../tests/boot/guest_util.ts";
import { have, printTable, ROOT, type Row, scratch, SHORT } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
const QEMUS = ["qemu-system-i386", "qemu-system-x86_64"];
/** Medians of this many boots each; short mode (CI) boots each program once. */
const RUNS = SHORT ? 1 : 3;
/** vmkit's interpreter needs minutes on a loaded machine; QEMU needs seconds. */
const TIMEOUT_MS = Number(Deno.env.get("VMKIT_BOOT_BENCH_TIMEOUT_MS") ?? 30 * 60_000);

/**
 * Test (1)'s command line with guest.shell=1 (tests/boot/linux_i386_test.ts). Without
 * vmkit's virtio and cirrus devices, both sides run without them (`-net none -vga none`).
 */
export function bootArgs(disk: string | undefined): string[] {
  const common = [
    "-name",
    "test",
    "-M",
    "pc",
    "-machine",
    "accel=tcg",
    "-m",
    "768",
    "-smp",
    "2",
    "-nographic",
    "-no-reboot",
    "-kernel",
    KERNEL,
    "-initrd",
    INITRD,
    "-append",
    "console=ttyS0 panic=-1 guest.shell=1",
  ];
  if (!disk) return [...common, "-net", "none", "-vga", "none"];
  return [
    ...common,
    "-drive",
    `file=${disk},if=virtio,index=0,media=disk,format=qcow2`,
    "-net",
    "nic,model=virtio,macaddr=52:54:00:05:11:11",
    "-net",
    "user",
    "-vga",
    "cirrus",
    "-device",
    "virtio-balloon",
  ];
}

/** Wall seconds from spawning `program ARGS` to the shell prompt on its console; kills it then. */
export async function secondsToPrompt(program: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  const decoder = new TextDecoder();
  let text = "";
  let seconds = NaN;
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (SHELL_PROMPT.test(text)) {
        seconds = (performance.now() - t0) / 1000;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
  }
  if (Number.isNaN(seconds)) {
    throw new Error(
      `${program} did not reach the shell prompt: ${text.slice(-800)}\n${
        (await errors).slice(-800)
      }`,
    );
  }
  return seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function medianOf(runs: number, measure: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await measure());
  return median(values);
}

/**
 * One row per QEMU binary: seconds from process start to the guest's shell prompt,
 * QEMU with the same arguments as vmkit; vmkit's median is measured once and shared by
 * both rows (system-i386 and system-x86_64 are the same emulator in vmkit).
 */
export async function bootRows(): Promise<Row[]> {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing) {
    console.log(`boot benchmark skipped: ${missing}`);
    return [];
  }
  const whyNot = missingDevices(offered());
  const full = whyNot === "";
  if (!full) console.log(`boot benchmark without the guide's devices: ${whyNot}`);
  const { dir, cleanup } = await scratch();
  try {
    let disk: string | undefined;
    if (full) {
      disk = path.join(dir, "disk.qcow2");
      const created = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", MAIN, "img", "create", "-q", "-f", "qcow2", disk, "64M"],
      }).output();
      if (!created.success) throw new Error(`vmkit img create ${disk} failed`);
    }
    const args = bootArgs(disk);
    const label = full ? "guide line" : "no virtio/cirrus yet";
    let vmkit: number;
    try {
      vmkit = await medianOf(
        RUNS,
        () =>
          secondsToPrompt(Deno.execPath(), [
            "run",
            "-A",
            "--quiet",
            MAIN,
            "system-x86_64",
            ...args,
          ]),
      );
    } catch (e) {
      // Figures only: a boot that fails is reported, and the other tables still print.
      console.log(`boot benchmark: ${(e as Error).message}`);
      return [];
    }
    const rows: Row[] = [];
    for (const qemu of QEMUS) {
      rows.push({
        name: `i386 -kernel to shell (${label}) vs ${qemu.replace("qemu-system-", "")}`,
        unit: "s",
        qemu: have(qemu) ? await medianOf(RUNS, () => secondsToPrompt(qemu, args)) : undefined,
        vmkit,
        higherIsBetter: false,
      });
    }
    return rows;
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  printTable(
    `Linux boot to the shell prompt: vmkit vs qemu-system-* -accel tcg (median of ${RUNS})`,
    await bootRows(),
  );
}
