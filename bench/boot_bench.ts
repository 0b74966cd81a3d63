// Boot time: Debian's i386 and amd64 kernels and the test initramfs to a shell prompt with
// the guide's -kernel line, vmkit vs QEMU TCG

import * as path from "node:path";
import {
  type Arch,
  bootProgram,
  type BootResult,
  bootVmkit,
  GUIDE_LINUX,
  guideKernelArgs,
  missingDevices,
  missingFiles,
  offered,
  SHELL_PROMPT,
} from "../tests/boot/guest_util.ts";
import { whyNoAmd64 } from "../tests/boot/amd64_guests.ts";
import { have, median, printTable, type Row, scratch, SHORT, vmkit } from "./bench_util.ts";

/** Medians of this many boots each; short mode (CI) boots each program once. */
const RUNS = SHORT ? 1 : 3;
/** vmkit's interpreter needs minutes on a loaded machine; QEMU needs seconds. */
const TIMEOUT_MS = Number(Deno.env.get("VMKIT_BOOT_BENCH_TIMEOUT_MS") ?? 30 * 60_000);
/**
 * How long vmkit's first try at the amd64 kernel may take to show the kernel running
 * ("Linux version", printed once it is in long mode) before the timed boots.
 */
const PROBE_MS = Number(Deno.env.get("VMKIT_BOOT_BENCH_PROBE_MS") ?? 60_000);
/** The kernel's real-mode setup on a CPU without long mode (arch/x86/boot/cpu.c), last line. */
const REFUSED = /Unable to boot[^\n]*\n/;
/** The kernel's first line once its setup and decompressor have run. */
const KERNEL_UP = /Linux version/;

/**
 * The guide's -kernel line for `arch` with guest.shell=1 (tests/boot/guest_util.ts, as
 * linux_i386_test.ts and linux_amd64_test.ts boot it). Without vmkit's virtio and cirrus
 * devices (no `disk`), both sides run without them (`-net none -vga none`).
 */
export function bootArgs(arch: Arch, disk: string | undefined): string[] {
  return guideKernelArgs(arch, disk, "guest.shell=1");
}

type Boot = (options: { marker: RegExp; stopAt?: RegExp; timeoutMs: number }) => Promise<
  BootResult
>;

/** The end of a run's console and stderr, short, for a line of the bench's output. */
function ending(r: BootResult): string {
  return `${r.text.slice(-800)}\n${r.stderr.slice(-800)}`;
}

/** Wall seconds from spawning the program to the shell prompt on its console; stops it then. */
async function secondsToPrompt(who: string, boot: Boot): Promise<number> {
  const r = await boot({ marker: SHELL_PROMPT, stopAt: SHELL_PROMPT, timeoutMs: TIMEOUT_MS });
  if (Number.isNaN(r.secondsToMarker)) {
    throw new Error(`${who} did not reach the shell prompt: ${ending(r)}`);
  }
  return r.secondsToMarker;
}

async function medianOf(runs: number, measure: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await measure());
  return median(values);
}

const onQemu = (qemu: string, args: string[]): Boot => (o) => bootProgram(qemu, args, o);
const onVmkit = (args: string[]): Boot => (o) => bootVmkit(["system-x86_64", ...args], o);

/** Lines of text with their white space folded, for a one-line note. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/**
 * vmkit on the amd64 line: first a short try, which ends when the kernel refuses the CPU
 * (no long mode: issue 14), vmkit exits, or the kernel runs; only a kernel that runs is
 * then timed to its shell. Returns the median, or what vmkit (and the kernel on its
 * console) said instead.
 */
async function vmkitAmd64(args: string[]): Promise<{ seconds?: number; why?: string }> {
  const boot = onVmkit(args);
  const probe = await boot({
    marker: KERNEL_UP,
    stopAt: new RegExp(`${REFUSED.source}|${KERNEL_UP.source}`),
    timeoutMs: PROBE_MS,
  });
  const said = oneLine(probe.stderr).slice(0, 300);
  const refused = probe.text.match(/[^\n]*This kernel requires[\s\S]*?Unable to boot[^\n]*/);
  if (refused) {
    return {
      why: `vmkit cannot run it yet (no long mode, issue 14): the kernel said "${
        oneLine(refused[0])
      }"${said ? `; vmkit said "${said}"` : ""}`,
    };
  }
  if (Number.isNaN(probe.secondsToMarker)) {
    const lastLine = oneLine(probe.text.trimEnd().split("\n").at(-1) ?? "").slice(-200);
    const how = probe.timedOut
      ? `no "Linux version" within ${PROBE_MS / 1000} s (long mode runs in the interpreter ` +
        `only: about 9 minutes to the shell, docs/x86-long-mode.md)`
      : `vmkit exited ${probe.code} before "Linux version"`;
    return {
      why: `not measured: ${how}${said ? `; vmkit said "${said}"` : ""}${
        lastLine ? `; the console ends "${lastLine}"` : ""
      }`,
    };
  }
  try {
    return { seconds: await medianOf(RUNS, () => secondsToPrompt("vmkit", boot)) };
  } catch (e) {
    return { why: oneLine((e as Error).message).slice(0, 600) };
  }
}

/**
 * One i386 row per QEMU binary and the amd64 row: seconds from process start to the
 * guest's shell prompt, QEMU with the same arguments as vmkit. vmkit's i386 median is
 * measured once and shared by both i386 rows (system-i386 and system-x86_64 are the same
 * emulator in vmkit); the amd64 row is against qemu-system-x86_64.
 */
export async function bootRows(): Promise<Row[]> {
  const whyNot = missingDevices(offered());
  const full = whyNot === "";
  if (!full) console.log(`boot benchmark without the guide's devices: ${whyNot}`);
  const label = full ? "guide line" : "no virtio/cirrus yet";
  const { dir, cleanup } = await scratch();
  const rows: Row[] = [];
  try {
    let disk: string | undefined;
    if (full) {
      disk = path.join(dir, "disk.qcow2");
      await vmkit(["img", "create", "-q", "-f", "qcow2", disk, "64M"]);
    }
    const i386 = bootArgs("i386", disk);
    const missing = missingFiles([GUIDE_LINUX.i386.kernel, GUIDE_LINUX.i386.initrd]);
    let seconds: number | undefined;
    if (missing) {
      console.log(`boot benchmark (i386) skipped: ${missing}`);
    } else {
      try {
        seconds = await medianOf(RUNS, () => secondsToPrompt("vmkit", onVmkit(i386)));
      } catch (e) {
        // Figures only: a boot that fails is reported, and the other rows still print.
        console.log(`boot benchmark (i386): ${(e as Error).message}`);
      }
    }
    if (seconds !== undefined) {
      for (const qemu of ["qemu-system-i386", "qemu-system-x86_64"]) {
        rows.push({
          name: `i386 -kernel to shell (${label}) vs ${qemu.replace("qemu-system-", "")}`,
          unit: "s",
          qemu: have(qemu)
            ? await medianOf(RUNS, () => secondsToPrompt(qemu, onQemu(qemu, i386)))
            : undefined,
          vmkit: seconds,
          higherIsBetter: false,
        });
      }
    }

    const amd64 = bootArgs("amd64", disk);
    const whyNo64 = whyNoAmd64([GUIDE_LINUX.amd64.kernel, GUIDE_LINUX.amd64.initrd]);
    if (whyNo64) {
      console.log(`boot benchmark (amd64) skipped: ${whyNo64}`);
    } else {
      const qemu = "qemu-system-x86_64";
      let qemuSeconds: number | undefined;
      try {
        qemuSeconds = await medianOf(RUNS, () => secondsToPrompt(qemu, onQemu(qemu, amd64)));
      } catch (e) {
        console.log(`boot benchmark (amd64): ${(e as Error).message}`);
      }
      const ours = await vmkitAmd64(amd64);
      rows.push({
        name: `amd64 -kernel to shell (${label}) vs x86_64`,
        unit: "s",
        qemu: qemuSeconds,
        vmkit: ours.seconds,
        note: ours.why,
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
