// SeaBIOS boots from a virtio-blk disk (a qcow2 overlay on a raw base) next to virtio-net and a balloon

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

/** A boot sector that prints `message` on COM1 and halts. */
function bootSector(message: string): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  a.xor(AX, AX);
  a.mov(DS, AX);
  a.mov(SI, "text");
  a.mov(DX, 0x3f8);
  a.label("loop");
  a.lodsb();
  a.test(AL, AL);
  a.jcc("z", "end");
  a.out(DX, AL);
  a.jmp("loop");
  a.label("end");
  a.cli();
  a.label("stop");
  a.hlt();
  a.jmp("stop");
  a.label("text");
  a.ascii(`${message}\r\n\0`);
  const sector = new Uint8Array(512);
  sector.set(a.assemble());
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** Runs vmkit until its output matches `until` (or `timeoutMs` passes); returns stdout and stderr. */
async function runUntil(args: string[], until: RegExp, timeoutMs: number): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const decoder = new TextDecoder();
  let text = "";
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
      // it already exited
    }
    await child.status;
  }
  return `${text}\n--- stderr ---\n${await errors}`;
}

Deno.test({
  name:
    `vmkit system-x86_64 boots a virtio-blk qcow2 overlay through SeaBIOS's virtio driver${NEEDS}`,
  ignore: !haveBios,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = new Uint8Array(4 << 20);
      image.set(bootSector("hello from a virtio-blk boot sector"));
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
          "-M",
          "pc",
          "-m",
          "256",
          "-drive",
          `file=${path.join(dir, "top.qcow2")},if=virtio,format=qcow2`,
          "-net",
          "nic,model=virtio",
          "-net",
          "user",
          "-device",
          "virtio-balloon",
        ],
        /hello from a virtio-blk boot sector/,
        90_000,
      );
      assert.match(out, /SeaBIOS \(version/, out);
      assert.match(out, /Booting from Hard Disk\.\./, out);
      assert.match(out, /hello from a virtio-blk boot sector/, out);
      assert.doesNotMatch(out, /warning/, out);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 boots -device virtio-blk-pci,disable-modern=on through the legacy interface${NEEDS}`,
  ignore: !haveBios,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("hello over legacy virtio"));
      const disk = path.join(dir, "disk.raw");
      await Deno.writeFile(disk, image);
      const out = await runUntil(
        [
          "system-x86_64",
          "-nographic",
          "-nodefaults",
          "-m",
          "64",
          "-drive",
          `file=${disk},format=raw,if=none,id=d0,cache=writethrough`,
          "-device",
          "virtio-blk-pci,drive=d0,disable-modern=on",
        ],
        /hello over legacy virtio/,
        90_000,
      );
      assert.match(out, /hello over legacy virtio/, out);
    } finally {
      await cleanup();
    }
  },
});
