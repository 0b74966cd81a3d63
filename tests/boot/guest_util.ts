// Helpers for the Linux guest boot tests: the guests tools/fetch_guests.sh builds, what
// vmkit's registry offers, running vmkit to a console marker, and reading /init's report

import assert from "node:assert/strict";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { MAIN, ROOT, runCommand, runVmkit, tempDir } from "../test_util.ts";

/** Where tools/fetch_guests.sh leaves the guests. */
export const GUESTS = Deno.env.get("VMKIT_GUESTS") ??
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "vmkit-guests");
export const KERNEL = path.join(GUESTS, "vmlinuz-i386");
export const INITRD = path.join(GUESTS, "initrd-i386.gz");
/** The amd64 guests of issue 14 (tools/fetch_guests.sh --arch=amd64). */
export const AMD64_KERNEL = path.join(GUESTS, "vmlinuz-amd64");
export const AMD64_INITRD = path.join(GUESTS, "initrd-amd64.gz");
export const ISO = path.join(GUESTS, "boot-i386.iso");
/** The text of VMKIT-ISO.TXT on boot-i386.iso; /init prints it as `sr0: <text>`. */
export const ISO_MARKER_TEXT = "VMKIT-ISO-MARKER: this file is on boot-i386.iso";
/** Firmware the boots load: SeaBIOS, and linuxboot_dma.bin for -kernel. */
export const FIRMWARE = ["/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/linuxboot_dma.bin"];

/** /init prints this once its modules are loaded. */
export const READY = /VMKIT-GUEST-READY/;
/** /init prints this after writing the disk, just before `poweroff -f`. */
export const DONE = /VMKIT-GUEST-DONE/;
/**
 * With guest.shell=1: the marker, then busybox ash's prompt (`/ # `, `~ # `), which ash
 * follows with a cursor position query (ESC [6n) to learn the terminal's width.
 */
export const SHELL_PROMPT =
  // deno-lint-ignore no-control-regex
  /VMKIT-GUEST-SHELL[^\n]*\n(?:[\s\S]*\n)?[^\n]*# (?:\x1b\[[0-9;?]*[A-Za-z])*$/;

/** Sector 0 of the disks the tests give the guest, written by the host. */
export function hostSector0(): Uint8Array {
  const sector = new Uint8Array(512).fill(0x2e); // '.'
  sector.set(new TextEncoder().encode("HOST-WROTE-THIS-SECTOR-0"));
  return sector;
}

/** The guest's write: 128 lines of 32 bytes, 4 KiB at byte offset {@linkcode GUEST_WRITE_OFFSET}. */
export function guestPattern(): Uint8Array {
  return new TextEncoder().encode("VMKIT-GUEST-WROTE-THIS.........\n".repeat(128));
}
export const GUEST_WRITE_OFFSET = 1 << 20;

/** Bytes as lowercase hex, the way /init prints `vda:`. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isFile(file: string): boolean {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}

/** Why files a boot needs are missing ("" when all are there), with the fix. */
export function missingFiles(guestFiles: readonly string[]): string {
  const guests = guestFiles.filter((f) => !isFile(f));
  const firmware = FIRMWARE.filter((f) => !isFile(f));
  return [
    guests.length ? `${guests.join(", ")} missing: run tools/fetch_guests.sh` : "",
    firmware.length
      ? `${firmware.join(", ")} missing: apt-get install seabios qemu-system-data`
      : "",
  ].filter((s) => s).join("; ");
}

/** The names (and aliases) of vmkit's registered plugins, by kind. */
export interface Offered {
  device: Set<string>;
  netdev: Set<string>;
  /** Set when the registry could not be read (a plugin mid-edit): why. */
  error?: string;
}

/**
 * Reads vmkit's plugin registry in a child process (a module that does not load then
 * cannot break the test file that asks), as `-device help` would list it.
 */
export function offered(): Offered {
  const registry = pathToFileURL(path.join(ROOT, "cli", "registry.ts")).href;
  const script = `import { buildRegistry } from ${JSON.stringify(registry)};
const r = await buildRegistry();
const names = (k) => r.list(k).flatMap((p) => [p.name, ...(p.aliases ?? [])]);
console.log(JSON.stringify({ device: names("device"), netdev: names("netdev") }));`;
  try {
    const out = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const decoder = new TextDecoder();
    if (!out.success) {
      const error = decoder.decode(out.stderr).trim().split("\n")[0];
      return { device: new Set(), netdev: new Set(), error };
    }
    const lists = JSON.parse(decoder.decode(out.stdout));
    return { device: new Set(lists.device), netdev: new Set(lists.netdev) };
  } catch (e) {
    return { device: new Set(), netdev: new Set(), error: (e as Error).message };
  }
}

/**
 * What the guide's command lines need from the registry: each entry is the option that
 * asks for it and the names that satisfy it.
 */
const DEVICE_NEEDS: readonly { option: string; kind: "device" | "netdev"; names: string[] }[] = [
  { option: "-drive if=virtio", kind: "device", names: ["virtio-blk-pci"] },
  { option: "-net nic,model=virtio", kind: "device", names: ["virtio-net-pci"] },
  { option: "-net user", kind: "netdev", names: ["user"] },
  {
    option: "-device virtio-balloon / -balloon virtio",
    kind: "device",
    names: ["virtio-balloon-pci", "virtio-balloon"],
  },
  { option: "-vga cirrus", kind: "device", names: ["cirrus-vga"] },
];

/** Why the full device command line cannot run yet ("" when every device is registered). */
export function missingDevices(have: Offered): string {
  if (have.error) return `vmkit's plugin registry did not load: ${have.error}`;
  const missing = DEVICE_NEEDS.filter((n) => !n.names.some((name) => have[n.kind].has(name)));
  if (missing.length === 0) return "";
  return `not in vmkit's registry yet: ${
    missing.map((n) => `${n.names[0]} (${n.option})`).join(", ")
  }`;
}

/** What one vmkit run printed and how it ended. */
export interface BootResult {
  /** The serial console (stdout). */
  text: string;
  stderr: string;
  /** The exit code, or null when the run was stopped (marker seen, or timeout). */
  code: number | null;
  timedOut: boolean;
  /** Wall seconds from spawning vmkit to the first match of `until` (NaN if none). */
  secondsToMarker: number;
  /** Wall seconds from spawning vmkit to its end. */
  seconds: number;
}

/**
 * Runs `vmkit ARGS` (through `deno run`, as a user would) and collects the console.
 * With `stopAt`, the run is killed once the console matches it; otherwise it runs until
 * it exits. `marker` is only timed. The run is killed after `timeoutMs`.
 */
export function bootVmkit(
  args: readonly string[],
  options: { marker: RegExp; stopAt?: RegExp; timeoutMs: number; cwd?: string },
): Promise<BootResult> {
  return bootProgram(Deno.execPath(), ["run", "-A", "--quiet", MAIN, ...args], options);
}

/** {@linkcode bootVmkit} for any program (real QEMU on the same command line). */
export async function bootProgram(
  program: string,
  args: readonly string[],
  options: { marker: RegExp; stopAt?: RegExp; timeoutMs: number; cwd?: string },
): Promise<BootResult> {
  const t0 = performance.now();
  const child = new Deno.Command(program, {
    args: [...args],
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  let stopped = false;
  let timedOut = false;
  let secondsToMarker = NaN;
  const errors = new Response(child.stderr).text();
  // VMKIT_BOOT_LOG_DIR=DIR: the console also goes to DIR/boot-<pid>.log as it arrives,
  // to watch a boot that takes minutes.
  const logDir = Deno.env.get("VMKIT_BOOT_LOG_DIR");
  const log = logDir
    ? await Deno.open(path.join(logDir, `boot-${child.pid}.log`), { write: true, create: true })
    : undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs);
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      await log?.write(chunk);
      if (Number.isNaN(secondsToMarker) && options.marker.test(text)) {
        secondsToMarker = (performance.now() - t0) / 1000;
      }
      if (options.stopAt?.test(text)) {
        stopped = true;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    log?.close();
    if (stopped || timedOut) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }
  }
  const status = await child.status;
  const seconds = (performance.now() - t0) / 1000;
  return {
    text,
    stderr: await errors,
    code: stopped || timedOut ? null : status.code,
    timedOut,
    secondsToMarker,
    seconds,
  };
}

/** Prints how long a boot took, as information (never checked: the machine may be loaded). */
export function logTimes(what: string, result: BootResult): void {
  const marker = Number.isNaN(result.secondsToMarker)
    ? "no VMKIT-GUEST-READY"
    : `${result.secondsToMarker.toFixed(1)} s to VMKIT-GUEST-READY`;
  const end = result.timedOut ? "timed out" : result.code === null ? "stopped" : "exited";
  console.log(
    `${what}: ${marker}, ${end} after ${result.seconds.toFixed(1)} s (information, not checked)`,
  );
}

/** The end of a run's console and its stderr, for failure messages. */
export function tail(result: { text: string; stderr: string }): string {
  return `\n--- last serial output ---\n${result.text.slice(-4000)}${
    result.stderr ? `\n--- stderr ---\n${result.stderr.slice(-2000)}` : ""
  }`;
}

/** The lines /init prints after its marker (tools/fetch_guests.sh). */
export interface GuestReport {
  nproc?: number;
  /** Interface name to MAC address. */
  net: Map<string, string>;
  balloon?: "yes" | "no";
  /** The first 32 bytes of /dev/vda in hex. */
  vda?: string;
  /** The marker file on the CD in /dev/sr0. */
  sr0?: string;
  done: boolean;
}

/** Reads /init's report from the console. */
export function parseReport(text: string): GuestReport {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/\r$/, ""));
  const report: GuestReport = { net: new Map(), done: false };
  for (const line of lines) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^nproc=(\d+)$/))) report.nproc = Number(m[1]);
    else if ((m = line.match(/^net: (\S+) (\S+)$/))) report.net.set(m[1], m[2]);
    else if ((m = line.match(/^balloon: (yes|no)$/))) report.balloon = m[1] as "yes" | "no";
    else if ((m = line.match(/^vda: ([0-9a-f]*)$/))) report.vda = m[1];
    else if ((m = line.match(/^sr0: (.*)$/))) report.sr0 = m[1];
    else if (/^VMKIT-GUEST-DONE$/.test(line)) report.done = true;
  }
  return report;
}

/** True when vmkit said it runs fewer vCPUs than `-smp` asked for. */
export function smpRefused(stderr: string): boolean {
  return /vmkit runs 1 vCPU/.test(stderr);
}

/**
 * The boot timeout: VMKIT_LINUX_BOOT_TIMEOUT_MS, or 15 minutes (a boot takes about 5 on
 * an idle 2-core machine; raise it on a loaded one).
 */
export const BOOT_TIMEOUT_MS = Number(Deno.env.get("VMKIT_LINUX_BOOT_TIMEOUT_MS") ?? 15 * 60_000);

/** The guide's network options: one virtio NIC with a fixed MAC on the user netdev. */
export const GUIDE_MAC = "52:54:00:05:11:11";

/**
 * The kernel's boot-time check of the timer interrupt (check_timer) measures ticks against
 * the TSC; under TCG, a host that preempts the emulator in that window makes it fail
 * ("..MP-BIOS bug: 8254 timer not connected to IO-APIC", seen here on a loaded machine
 * and with QEMU stopped 60 ms in every 80), and when every fallback fails too the kernel
 * panics "IO-APIC + timer doesn't work!" (the amd64 guest test's failure once in four
 * runs). `no_timer_check` skips the check, as cirros, lima and libguestfs do under TCG.
 */
export const NO_TIMER_CHECK = "no_timer_check";

/** The guest Linux of each arch the guide's -kernel line boots. */
export type Arch = "i386" | "amd64";

/** Debian's kernel of each arch, the test initramfs, and the `-append` the boot tests give it. */
export const GUIDE_LINUX: Readonly<
  Record<Arch, { kernel: string; initrd: string; append: string }>
> = {
  i386: { kernel: KERNEL, initrd: INITRD, append: "console=ttyS0 panic=-1" },
  amd64: {
    kernel: AMD64_KERNEL,
    initrd: AMD64_INITRD,
    append: `console=ttyS0 panic=-1 ${NO_TIMER_CHECK}`,
  },
};

/**
 * `-M pc -machine accel=tcg -m MiB -nographic -no-reboot -kernel KERNEL [-initrd INITRD]
 * -append APPEND`.
 */
export function kernelArgs(
  memMiB: number,
  kernel: string,
  append: string,
  initrd?: string,
): string[] {
  return [
    "-M",
    "pc",
    "-machine",
    "accel=tcg",
    "-m",
    String(memMiB),
    "-nographic",
    "-no-reboot",
    "-kernel",
    kernel,
    ...(initrd === undefined ? [] : ["-initrd", initrd]),
    "-append",
    append,
  ];
}

/**
 * The guide's devices: the virtio disk (and after it, with `cdrom`, that CD as the ide0
 * slave), the virtio NIC with its MAC on the user netdev, Cirrus VGA, the balloon. The
 * guide's `-balloon virtio` is gone from QEMU 7.2 ("invalid option"): `balloon: "device"`
 * (the default) gives its successor `-device virtio-balloon`, for a line QEMU runs too;
 * `"guide"` the guide's own words (vmkit takes both).
 */
export function guideDevices(
  disk: string,
  format: "qcow2" | "raw",
  options: { balloon?: "device" | "guide"; cdrom?: string } = {},
): string[] {
  return [
    "-drive",
    `file=${disk},if=virtio,index=0,media=disk,format=${format}`,
    ...(options.cdrom === undefined ? [] : ["-drive", `file=${options.cdrom},index=1,media=cdrom`]),
    "-net",
    `nic,model=virtio,macaddr=${GUIDE_MAC}`,
    "-net",
    "user",
    "-vga",
    "cirrus",
    ...(options.balloon === "guide" ? ["-balloon", "virtio"] : ["-device", "virtio-balloon"]),
  ];
}

/**
 * The guide's -boot d line (issue 5; issue 14 for amd64), typed in a folder holding the CD
 * `install.iso` and the raw disk `hda` (see {@linkcode guideCdFolder}), with -nographic
 * for a console on stdio. The i386 line is vmkit's alone and keeps the guide's
 * `-balloon virtio`; the amd64 line runs on QEMU 7.2 too, with `-device virtio-balloon`
 * and `-no-reboot`.
 */
export function guideCdArgs(arch: Arch): string[] {
  return [
    "-name",
    "sles",
    "-machine",
    "accel=tcg",
    "-M",
    "pc",
    "-m",
    "768",
    "-smp",
    "2",
    "-boot",
    "d",
    ...guideDevices("hda", "raw", {
      cdrom: "install.iso",
      balloon: arch === "i386" ? "guide" : "device",
    }),
    "-nographic",
    ...(arch === "i386" ? [] : ["-no-reboot"]),
  ];
}

/**
 * Writes a 64 MiB raw disk image whose sector 0 is {@linkcode hostSector0} (the rest
 * reads as zeros), for the guest's disk or a qcow2 file's backing file.
 */
export async function writeHostDisk(file: string): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true });
  try {
    await f.write(hostSector0());
    await f.truncate(64 << 20);
  } finally {
    f.close();
  }
}

/**
 * The guide's disk in `dir`: `disk.qcow2`, a qcow2 overlay made by `maker` (vmkit img or
 * real qemu-img) on the raw backing file `base.raw` ({@linkcode writeHostDisk}).
 */
export async function makeGuideDisk(dir: string, maker: "vmkit" | "qemu-img"): Promise<string> {
  const base = path.join(dir, "base.raw");
  const disk = path.join(dir, "disk.qcow2");
  await writeHostDisk(base);
  const args = ["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", disk];
  const created = maker === "vmkit"
    ? await runVmkit(["img", ...args])
    : await runCommand("qemu-img", args);
  assert.equal(created.code, 0, created.stderr);
  return disk;
}

/**
 * Checks /init's report after the guide's line: vda's first bytes as the host wrote them,
 * 2 CPUs (unless vmkit said it runs 1), the NIC's MAC, the balloon, VMKIT-GUEST-DONE, and
 * `who` exiting 0 after the poweroff. `context` gives a failure's console and stderr.
 */
export function assertGuideReport(
  r: BootResult,
  who: string,
  context: (r: BootResult) => string = tail,
): GuestReport {
  const report = parseReport(r.text);
  assert.equal(report.vda, hex(hostSector0().subarray(0, 32)), context(r));
  if (smpRefused(r.stderr)) {
    console.log(`note: -smp 2 ran 1 vCPU ("${r.stderr.trim()}"): nproc=2 not checked`);
  } else {
    assert.equal(report.nproc, 2, context(r));
  }
  assert.equal(report.net.get("eth0"), GUIDE_MAC, context(r));
  assert.equal(report.balloon, "yes", context(r));
  assert.ok(report.done, `no VMKIT-GUEST-DONE${context(r)}`);
  assert.equal(r.code, 0, `${who} did not exit 0 after poweroff${context(r)}`);
  return report;
}

/**
 * Checks a raw image of the guest's disk: sector 0 as the host wrote it
 * ({@linkcode hostSector0}) and the guest's write ({@linkcode guestPattern}) at
 * {@linkcode GUEST_WRITE_OFFSET}.
 */
export async function assertGuestWrote(rawFile: string): Promise<void> {
  const bytes = await Deno.readFile(rawFile);
  assert.deepEqual(bytes.subarray(0, 512), hostSector0());
  assert.deepEqual(
    bytes.subarray(GUEST_WRITE_OFFSET, GUEST_WRITE_OFFSET + 4096),
    guestPattern(),
  );
}

/**
 * A temporary folder holding `install.iso` (a link to `iso`) and the raw disk `hda`
 * ({@linkcode writeHostDisk}), for {@linkcode guideCdArgs} typed in it.
 */
export async function guideCdFolder(
  iso: string,
): Promise<{ dir: string; hda: string; cleanup: () => Promise<void> }> {
  const folder = await tempDir();
  await Deno.symlink(iso, path.join(folder.dir, "install.iso"));
  const hda = path.join(folder.dir, "hda");
  await writeHostDisk(hda);
  return { ...folder, hda };
}

/**
 * The guide's -kernel line around any kernel: `-name test -smp 2`, {@linkcode kernelArgs},
 * and {@linkcode guideDevices} on the qcow2 file `disk`; with no disk, `-net none -vga none`
 * in their place (for a vmkit that does not register them yet, see {@linkcode missingDevices}).
 */
export function guideLine(
  line: { memMiB: number; kernel: string; initrd: string; append: string; disk?: string },
): string[] {
  return [
    "-name",
    "test",
    "-smp",
    "2",
    ...kernelArgs(line.memMiB, line.kernel, line.append, line.initrd),
    ...(line.disk === undefined
      ? ["-net", "none", "-vga", "none"]
      : guideDevices(line.disk, "qcow2")),
  ];
}

/**
 * The guide's -kernel line (issues 1, 3 and 14) for Debian's kernel of `arch` and the test
 * initramfs, 768 MiB, on the default CPU; `append` adds to the kernel's command line (e.g.
 * `guest.shell=1`). QEMU and vmkit (`system-x86_64`) take the same arguments.
 */
export function guideKernelArgs(arch: Arch, disk: string | undefined, append = ""): string[] {
  const linux = GUIDE_LINUX[arch];
  return guideLine({
    memMiB: 768,
    kernel: linux.kernel,
    initrd: linux.initrd,
    append: append ? `${linux.append} ${append}` : linux.append,
    disk,
  });
}
