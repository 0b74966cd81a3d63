// Boot tests through the command line: SeaBIOS to its boot menu, and a boot sector the test builds

import assert from "node:assert/strict";
import * as path from "node:path";
import { AL, Assembler, AX, DS, DX, SI } from "../../plugins/machines/x86_asm.ts";
import { MAIN, tempDir } from "../test_util.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const haveBios = (() => {
  try {
    return Deno.statSync(BIOS).isFile;
  } catch {
    return false;
  }
})();
const NEEDS = haveBios ? "" : ` (ignored: ${BIOS} is missing; apt-get install seabios)`;

/**
 * Runs `vmkit ARGS` and collects its stdout until `until` matches or `timeoutMs`
 * passes, then stops it. Returns what it printed.
 */
async function runUntil(args: string[], until: RegExp, timeoutMs: number): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  // Collected so a failure shows what vmkit said on stderr too.
  const errors = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (until.test(text)) break;
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
  const stderr = await errors;
  return stderr ? `${text}\n--- stderr ---\n${stderr}` : text;
}

Deno.test({
  name:
    `vmkit system-x86_64 -nographic -m 128 prints the SeaBIOS banner and its boot attempts${NEEDS}`,
  ignore: !haveBios,
  async fn() {
    const out = await runUntil(
      ["system-x86_64", "-nographic", "-m", "128"],
      /No bootable device|Booting from Hard Disk/,
      60_000,
    );
    assert.match(out, /SeaBIOS \(version [^)]+\)/, out);
    assert.match(out, /Booting from (Hard Disk|Floppy)\.\.\./, out);
  },
});

/** A boot sector that writes `message` to COM1 and halts. */
function bootSector(message: string): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  a.xor(AX, AX);
  a.mov(DS, AX);
  a.mov(SI, "message");
  a.mov(DX, 0x3f8);
  a.label("next");
  a.lodsb();
  a.test(AL, AL);
  a.jcc("z", "done");
  a.out(DX, AL);
  a.jmp("next");
  a.label("done");
  a.cli();
  a.label("halt");
  a.hlt();
  a.jmp("halt");
  a.label("message");
  a.ascii(message + "\r\n\0");
  const code = a.assemble();
  const sector = new Uint8Array(512);
  sector.set(code);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

Deno.test({
  name:
    `vmkit system-x86_64 boots a disk whose boot sector the test built and shows its message${NEEDS}`,
  ignore: !haveBios,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = path.join(dir, "boot.raw");
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("vmkit boot sector test: hello"));
      await Deno.writeFile(disk, image);
      const out = await runUntil(
        [
          "system-x86_64",
          "-nographic",
          "-m",
          "64",
          "-drive",
          `file=${disk},format=raw,if=ide,index=0,media=disk`,
        ],
        /vmkit boot sector test: hello/,
        60_000,
      );
      assert.match(out, /Booting from Hard Disk\.\./, out);
      assert.match(out, /vmkit boot sector test: hello/, out);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 boots from a qcow2 overlay whose backing file holds the boot sector${NEEDS}`,
  ignore: !haveBios,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("booted through qcow2 and its backing file"));
      await Deno.writeFile(path.join(dir, "base.raw"), image);
      const create = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          MAIN,
          "img",
          "create",
          "-q",
          "-f",
          "qcow2",
          "-b",
          "base.raw",
          "-F",
          "raw",
          "top.qcow2",
        ],
        cwd: dir,
      }).outputSync();
      assert.ok(create.success, new TextDecoder().decode(create.stderr));
      const out = await runUntil(
        [
          "system-x86_64",
          "-nographic",
          "-m",
          "64",
          "-drive",
          `file=${path.join(dir, "top.qcow2")},format=qcow2,if=ide,cache=writethrough`,
        ],
        /booted through qcow2 and its backing file/,
        60_000,
      );
      assert.match(out, /booted through qcow2 and its backing file/, out);
    } finally {
      await cleanup();
    }
  },
});
