// The amd64 guests of issue 14 (tools/fetch_guests.sh --arch=amd64) and their command lines,
// shared by the QEMU side of each test and the vmkit side that waits for long mode

import * as path from "node:path";
import { haveProgram } from "../test_util.ts";
import {
  BOOT_TIMEOUT_MS,
  bootProgram,
  type BootResult,
  bootVmkit,
  GUESTS,
  guideCdArgs,
  guideKernelArgs,
  guideLine,
  kernelArgs,
  missingFiles,
  tail,
} from "./guest_util.ts";

export { AMD64_INITRD, AMD64_KERNEL, kernelArgs, NO_TIMER_CHECK } from "./guest_util.ts";
export const AMD64_ISO = path.join(GUESTS, "boot-amd64.iso");
/** The text of VMKIT-ISO.TXT on boot-amd64.iso; /init prints it as `sr0: <text>`. */
export const AMD64_ISO_MARKER_TEXT = "VMKIT-ISO-MARKER: this file is on boot-amd64.iso";
/** The Debian 12 installer's netboot kernel and initrd, as Debian ships them. */
export const DI_LINUX = path.join(GUESTS, "d-i-netboot-amd64", "linux");
export const DI_INITRD = path.join(GUESTS, "d-i-netboot-amd64", "initrd.gz");
/** memtest86+'s 64-bit build (Debian's memtest86+ package). */
export const MEMTEST = path.join(GUESTS, "memtest86+x64.bin");

/**
 * Why the vmkit side of the amd64 Linux tests is ignored: long mode runs, but in the
 * interpreter only, and an amd64 kernel takes about 9 minutes to boot (tests/cpu_diff/
 * amd64_guest_test.ts; memtest_test.ts runs, its guest is small).
 */
export const NO_LONG_MODE =
  "long mode runs in the interpreter only: an amd64 kernel boots in about 9 minutes, too slow for the suite (issues 13, 14)";

const HAVE_QEMU = haveProgram("qemu-system-x86_64");

/** Why QEMU cannot boot these guest files here ("" when it can), with the fix. */
export function whyNoAmd64(files: readonly string[]): string {
  if (!HAVE_QEMU) return "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)";
  return missingFiles(files).replace(
    "run tools/fetch_guests.sh",
    "run tools/fetch_guests.sh --arch=amd64",
  );
}

/** The test name's suffix for an ignored test. */
export function ignoredNote(why: string): string {
  return why ? ` (ignored: ${why})` : "";
}

/** Who runs a command line: real QEMU, or vmkit. */
export type Side = "qemu" | "vmkit";

/**
 * Runs `qemu-system-x86_64 ARGS` or `vmkit system-x86_64 ARGS` on the very same ARGS.
 * The run is killed once the console matches `stopAt` (if given); `marker` is timed.
 */
export function bootOn(
  side: Side,
  args: readonly string[],
  options: { marker: RegExp; stopAt?: RegExp; timeoutMs?: number; cwd?: string },
): Promise<BootResult> {
  const opts = { timeoutMs: BOOT_TIMEOUT_MS, ...options };
  return side === "qemu"
    ? bootProgram("qemu-system-x86_64", args, opts)
    : bootVmkit(["system-x86_64", ...args], opts);
}

/** Prints the time to a guest's marker, as information for the 3x targets (never checked). */
export function logMarkerTime(side: Side, what: string, marker: string, r: BootResult): void {
  const to = Number.isNaN(r.secondsToMarker)
    ? `no ${marker}`
    : `${r.secondsToMarker.toFixed(1)} s to ${marker}`;
  const end = r.timedOut ? "timed out" : r.code === null ? "stopped" : `exited ${r.code}`;
  console.log(`${side} ${what}: ${to}, ${end} after ${r.seconds.toFixed(1)} s (not checked)`);
}

/** A note for a failed boot whose console shows the timer check failing (see {@linkcode NO_TIMER_CHECK}). */
export function timerCheckNote(text: string): string {
  if (/IO-APIC \+ timer doesn't work/.test(text)) {
    return "\nnote: the kernel's timer check failed and it panicked: the host preempted the " +
      "emulator during check_timer (see NO_TIMER_CHECK in tests/boot/guest_util.ts)";
  }
  return /MP-BIOS bug: 8254 timer not connected/.test(text)
    ? "\nnote: the kernel's timer check failed once (host preemption under TCG), then recovered"
    : "";
}

/** The end of a run's console and stderr for a failure message, with the timer check's note. */
export function bootTail(r: BootResult): string {
  return tail(r) + timerCheckNote(r.text);
}

/** The guide's -kernel line for Debian's amd64 kernel, on the default CPU (qemu64). */
export function amd64KernelArgs(disk: string): string[] {
  return guideKernelArgs("amd64", disk);
}

/**
 * The guide's -boot d line for the amd64 ISOLINUX CD, typed in a folder holding
 * `install.iso` and the raw disk `hda`.
 */
export function amd64IsoArgs(): string[] {
  return guideCdArgs("amd64");
}

/** The Debian 12 installer (netboot) with the guide's devices, its console on the serial port. */
export function installerArgs(disk: string): string[] {
  return guideLine({
    memMiB: 1024,
    kernel: DI_LINUX,
    initrd: DI_INITRD,
    append: "console=ttyS0,115200n8",
    disk,
  });
}

/** memtest86+x64.bin through -kernel, its screen on the serial console. */
export function memtestArgs(): string[] {
  return kernelArgs(512, MEMTEST, "console=ttyS0,115200");
}
