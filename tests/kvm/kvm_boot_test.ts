// accel=kvm end to end: SeaBIOS, a boot sector from qcow2 and the Multiboot demo guest, each beside QEMU+KVM

import { SEABIOS, skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { bootSector, HAVE_BIOS, runProgramUntil, runVmkitUntil } from "../boot/boot_util.ts";
import { MAIN, tempDir } from "../test_util.ts";
import { buildDemoGuest, DEMO_BANNER, DEMO_EXIT_CODE } from "../../tools/demo_guest.ts";
import { haveQemuKvm, NEEDS_KVM } from "./kvm_util.ts";

const CAN_RUN = NEEDS_KVM === "";
const WITH_QEMU = haveQemuKvm();
const QEMU_NOTE = WITH_QEMU ? "" : " (QEMU comparison skipped: qemu-system-x86_64 is missing)";
/** SeaBIOS under a paravirtual KVM takes seconds, and the machine is shared: be generous. */
const TIMEOUT_MS = 180_000;

/** A small machine whose only console is the serial port on stdout. */
const SERIAL_CONSOLE = ["-m", "64", "-nographic", "-nodefaults", "-serial", "stdio"];

/** Runs real QEMU until its stdout matches `until` (or the timeout). */
function runQemuUntil(args: string[], until: RegExp, timeoutMs: number): Promise<string> {
  return runProgramUntil("qemu-system-x86_64", args, until, timeoutMs);
}

/**
 * The console lines that matter for a comparison: no escape sequences, no blank lines,
 * nothing from stderr (QEMU warns there that this host lacks the model's SSE3).
 */
function lines(text: string): string[] {
  const stderrAt = text.indexOf("\n--- stderr ---\n");
  return (stderrAt < 0 ? text : text.slice(0, stderrAt))
    // deno-lint-ignore no-control-regex
    .replace(/\x1b(\[[0-9;?]*[a-zA-Z]|c)/g, "")
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

for (const irqchip of ["on", "off", "split"]) {
  Deno.test({
    name:
      `vmkit -accel kvm,kernel-irqchip=${irqchip} runs SeaBIOS through its boot menu prompt to its boot attempts as qemu does${NEEDS_KVM}${
        HAVE_BIOS ? "" : " (ignored: no SeaBIOS)"
      }${QEMU_NOTE}`,
    ignore: skipUnless(import.meta, { ok: CAN_RUN, missing: NEEDS_KVM }, SEABIOS),
    async fn() {
      const args = [
        "-accel",
        `kvm,kernel-irqchip=${irqchip}`,
        ...SERIAL_CONSOLE,
        "-boot",
        "menu=on,splash-time=500",
      ];
      const until = /No bootable device\./;
      const out = await runVmkitUntil(["system-x86_64", ...args], until, TIMEOUT_MS);
      assert.match(out, /SeaBIOS \(version [^)]+\)/, out);
      assert.match(out, /Press ESC for boot menu\./, out);
      assert.match(out, /Booting from Hard Disk\.\.\./, out);
      assert.match(out, /No bootable device/, out);
      if (WITH_QEMU) {
        const qemu = await runQemuUntil(args, until, TIMEOUT_MS);
        // The same banner, prompt, attempts and failures; vmkit's pc board tries the floppy
        // before the disk under -nodefaults (the board's boot order, not the accelerator's).
        assert.deepEqual(lines(out).sort(), lines(qemu).sort());
      }
    },
  });
}

Deno.test({
  name: `vmkit -enable-kvm boots a qcow2 disk's boot sector as qemu -enable-kvm does${NEEDS_KVM}${
    HAVE_BIOS ? "" : " (ignored: no SeaBIOS)"
  }${QEMU_NOTE}`,
  ignore: skipUnless(import.meta, { ok: CAN_RUN, missing: NEEDS_KVM }, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const raw = path.join(dir, "boot.raw");
      const image = new Uint8Array(1 << 20);
      // SeaBIOS's serial console flushes its text lazily while the boot sector writes the
      // UART at once: the sector's first bytes may land among SeaBIOS's last ones, so the
      // marker the run waits for starts a few bytes in.
      image.set(bootSector("... booted under KVM from qcow2"));
      await Deno.writeFile(raw, image);
      const disk = path.join(dir, "boot.qcow2");
      const convert = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", MAIN, "img", "convert", "-O", "qcow2", raw, disk],
      }).outputSync();
      assert.ok(convert.success, new TextDecoder().decode(convert.stderr));
      const args = [
        "-enable-kvm",
        ...SERIAL_CONSOLE,
        "-drive",
        `file=${disk},format=qcow2,if=ide`,
      ];
      const until = /booted under KVM from qcow2/;
      const out = await runVmkitUntil(["system-x86_64", ...args], until, TIMEOUT_MS);
      const text = (t: string) => lines(t).join("").replace(/[.\s]/g, "");
      assert.match(text(out), /BootingfromHardDisk/, out);
      assert.match(out, until, out);
      if (WITH_QEMU) {
        const qemu = await runQemuUntil(args, until, TIMEOUT_MS);
        assert.equal(text(out), text(qemu));
      }
    } finally {
      await cleanup();
    }
  },
});

for (const irqchip of ["on", "off", "split"]) {
  Deno.test({
    name:
      `vmkit -machine accel=kvm,kernel-irqchip=${irqchip} runs the Multiboot demo guest to its isa-debug-exit with QEMU's output${NEEDS_KVM}${QEMU_NOTE}`,
    ignore: skipUnless(import.meta, { ok: CAN_RUN, missing: NEEDS_KVM }),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const kernel = path.join(dir, "demo.bin");
        await Deno.writeFile(kernel, buildDemoGuest());
        const args = [
          "-machine",
          `accel=kvm,kernel-irqchip=${irqchip}`,
          "-nographic",
          "-kernel",
          kernel,
          "-append",
          "greeting=hi",
          "-device",
          "isa-debug-exit,iobase=0xf4,iosize=0x04",
          "-net",
          "none",
        ];
        const out = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args],
          stdin: "null",
        }).outputSync();
        const text = new TextDecoder().decode(out.stdout);
        assert.equal(out.code, DEMO_EXIT_CODE, text + new TextDecoder().decode(out.stderr));
        const guest = lines(text.slice(text.indexOf(DEMO_BANNER)));
        assert.equal(guest[0], DEMO_BANNER);
        assert.ok(guest.includes("Sum of the primes below 10000: 5736396"), text);
        if (WITH_QEMU) {
          const qemu = await runQemuUntil(args, /Bye!/, TIMEOUT_MS);
          // QEMU boots through SeaBIOS and its multiboot option ROM first; the guest's own
          // lines must match (the memory size differs only by what the firmware reserves).
          const qemuGuest = lines(qemu.slice(qemu.indexOf(DEMO_BANNER)));
          const strip = (l: string[]) => l.filter((x) => !x.startsWith("Memory:"));
          assert.deepEqual(strip(guest), strip(qemuGuest));
        }
      } finally {
        await cleanup();
      }
    },
  });
}
