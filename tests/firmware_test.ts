// Firmware lookup as a user meets it: -bios and romfile= names in the current directory,
// VMKIT_FIRMWARE_PATH, -L help, and a machine with no SeaBIOS installed (the demo)

import { SEABIOS, skipUnless } from "./skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { FIRMWARE_PATH_ENV } from "../core/firmware.ts";
import { haveProgram, ROOT, runCommand, runVmkit, tempDir } from "./test_util.ts";

/** The value the test BIOS writes to isa-debug-exit, and the exit status that gives. */
const EXIT_VALUE = 0x2a;
const EXIT_STATUS = (EXIT_VALUE << 1) | 1;

/**
 * A 64 KiB BIOS image whose reset vector (F000:FFF0) writes {@linkcode EXIT_VALUE} to
 * isa-debug-exit at 0xf4: `mov al, 0x2a; out 0xf4, al; hlt; jmp $-1`.
 */
function exitBios(): Uint8Array {
  const bios = new Uint8Array(0x10000);
  bios.set([0xb0, EXIT_VALUE, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd], 0xfff0);
  return bios;
}

const EXIT_DEVICE = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"];
const HAVE_QEMU_SYSTEM = haveProgram("qemu-system-x86_64");

Deno.test("vmkit system-x86_64 -bios test.bin uses ./test.bin before the data directories, as QEMU does", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await Deno.writeFile(path.join(dir, "test.bin"), exitBios());
    const args = ["-bios", "test.bin", "-display", "none", "-vga", "none", ...EXIT_DEVICE];
    const r = await runVmkit(["system-x86_64", ...args], { cwd: dir });
    assert.equal(r.code, EXIT_STATUS, r.stderr);
    assert.equal(r.stderr, "");
    if (HAVE_QEMU_SYSTEM) {
      // The oracle: QEMU 7.2 runs the same file from the same directory.
      const q = await runCommand("qemu-system-x86_64", [...args, "-nodefaults"], { cwd: dir });
      assert.equal(q.code, EXIT_STATUS, q.stderr);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("vmkit system-x86_64 with VMKIT_FIRMWARE_PATH empty runs the default VGA without its BIOS, warning once", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await Deno.writeFile(path.join(dir, "test.bin"), exitBios());
    const env = { [FIRMWARE_PATH_ENV]: "" };
    const r = await runVmkit(
      ["system-x86_64", "-bios", "test.bin", "-display", "none", ...EXIT_DEVICE],
      { cwd: dir, env },
    );
    assert.equal(r.code, EXIT_STATUS, r.stderr);
    assert.equal(
      r.stderr,
      'vmkit: warning: VGA BIOS "vgabios-stdvga.bin" not found (Debian package seabios, or -L DIR): ' +
        "the VGA runs without its option ROM, so the BIOS shows no video\n",
    );
    // A ROM the user names is required, in QEMU's words.
    const named = await runVmkit(
      ["system-x86_64", "-bios", "test.bin", "-vga", "none", "-device", "VGA,romfile=vga.bin"],
      { cwd: dir, env },
    );
    assert.equal(named.code, 1);
    assert.match(named.stderr, /^vmkit: failed to find romfile "vga\.bin" \(searched: vga\.bin\)/);
    // ...and found in the current directory like -bios.
    await Deno.writeFile(path.join(dir, "vga.bin"), new Uint8Array(0x9000).fill(0xcc));
    const found = await runVmkit(
      [
        "system-x86_64",
        "-bios",
        "test.bin",
        "-display",
        "none",
        "-vga",
        "none",
        "-device",
        "VGA,romfile=vga.bin",
        ...EXIT_DEVICE,
      ],
      { cwd: dir, env },
    );
    assert.equal(found.code, EXIT_STATUS, found.stderr);
    assert.equal(found.stderr, "");
  } finally {
    await cleanup();
  }
});

Deno.test("vmkit system-x86_64 -L help lists the -L directories, then VMKIT_FIRMWARE_PATH's", async () => {
  const r = await runVmkit(["system-x86_64", "-L", "/opt/roms", "-L", "help"], {
    env: { [FIRMWARE_PATH_ENV]: "/a:/b" },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "/opt/roms\n/a\n/b\n");
  const defaults = await runVmkit(["system-x86_64", "-L", "help"]);
  assert.equal(defaults.stdout, "/usr/share/seabios\n/usr/share/qemu\n/usr/lib/ipxe/qemu\n");
});

Deno.test("vmkit system-x86_64 without SeaBIOS reports the missing BIOS in one line", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const r = await runVmkit(["system-x86_64", "-display", "none", "-L", dir], {
      env: { [FIRMWARE_PATH_ENV]: "" },
    });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `vmkit: Could not find firmware 'bios-256k.bin' (searched: bios-256k.bin, ${dir}/bios-256k.bin); ` +
        "install SeaBIOS (Debian package seabios) or give -bios FILE or -L DIR\n",
    );
  } finally {
    await cleanup();
  }
});

Deno.test("the README's demo runs with no firmware installed and reports the guest's own exit", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const r = await runCommand(
      Deno.execPath(),
      ["run", "-A", "--quiet", path.join(ROOT, "tools", "demo.ts")],
      { cwd: dir, env: { [FIRMWARE_PATH_ENV]: dir } },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /Hello from the vmkit demo guest/);
    assert.match(
      r.stdout,
      /\[the guest wrote 0x10 to isa-debug-exit after \d+ ms: vmkit exits with status 33/,
    );
  } finally {
    await cleanup();
  }
});

/**
 * A 512-byte PCI-less option ROM (0x55 0xaa, one block, the init entry at offset 3) that
 * writes `value` to isa-debug-exit, with the checksum byte that makes the ROM sum to zero.
 */
function exitOptionRom(value: number): Uint8Array {
  const rom = new Uint8Array(512);
  rom.set([0x55, 0xaa, 1, 0xb0, value, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]);
  rom[511] = (256 - rom.reduce((sum, b) => (sum + b) & 0xff, 0)) & 0xff;
  return rom;
}

const HAVE_SEABIOS = (() => {
  try {
    return Deno.statSync("/usr/share/seabios/bios-256k.bin").isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "vmkit system-x86_64 -option-rom rom.bin runs ./rom.bin under SeaBIOS, as QEMU does" +
    (HAVE_SEABIOS ? "" : " (ignored: SeaBIOS is not installed: apt-get install seabios)"),
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await Deno.writeFile(path.join(dir, "rom.bin"), exitOptionRom(0x2b));
      const args = ["-display", "none", "-nodefaults", "-option-rom", "rom.bin", ...EXIT_DEVICE];
      const r = await runVmkit(["system-x86_64", ...args], { cwd: dir });
      assert.equal(r.code, (0x2b << 1) | 1, r.stderr);
      if (HAVE_QEMU_SYSTEM) {
        const q = await runCommand("qemu-system-x86_64", args, { cwd: dir });
        assert.equal(q.code, (0x2b << 1) | 1, q.stderr);
      }
      // A ROM that is nowhere is reported and left out; the machine still starts (QEMU too).
      await Deno.writeFile(path.join(dir, "test.bin"), exitBios());
      const missing = ["-bios", "test.bin", "-display", "none", "-nodefaults", "-option-rom"];
      const m = await runVmkit(["system-x86_64", ...missing, "nope.bin", ...EXIT_DEVICE], {
        cwd: dir,
      });
      assert.equal(m.code, EXIT_STATUS, m.stderr);
      assert.equal(
        m.stderr,
        "vmkit: warning: Could not open option rom 'nope.bin': No such file or directory\n",
      );
      if (HAVE_QEMU_SYSTEM) {
        const q = await runCommand("qemu-system-x86_64", [...missing, "nope.bin", ...EXIT_DEVICE], {
          cwd: dir,
        });
        assert.equal(q.code, EXIT_STATUS, q.stderr);
        assert.equal(q.stderr, "Could not open option rom 'nope.bin': No such file or directory\n");
      }
    } finally {
      await cleanup();
    }
  },
});
