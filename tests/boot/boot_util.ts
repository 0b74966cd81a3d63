// Shared by the firmware and boot tests: run vmkit until its console says something, boot sectors

import { AL, Assembler, AX, DS, DX, SI } from "../../plugins/machines/x86_asm.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, runVmkit } from "../test_util.ts";

/** The SeaBIOS image `-M pc` loads, and the skip note for tests that need it. */
export const BIOS = "/usr/share/seabios/bios-256k.bin";
export const HAVE_BIOS = (() => {
  try {
    return Deno.statSync(BIOS).isFile;
  } catch {
    return false;
  }
})();
export const NEEDS_BIOS = HAVE_BIOS
  ? ""
  : ` (ignored: ${BIOS} is missing; apt-get install seabios)`;

/**
 * Runs `vmkit ARGS` and collects its stdout until `until` matches, it ends, or
 * `timeoutMs` passes, then stops it. Returns what it printed, with its stderr appended
 * (so a failure shows what vmkit said there too).
 */
export function runVmkitUntil(
  args: string[],
  until: RegExp,
  timeoutMs: number,
): Promise<string> {
  return runProgramUntil(
    Deno.execPath(),
    ["run", "-A", "--quiet", MAIN, ...args],
    until,
    timeoutMs,
  );
}

/** {@linkcode runVmkitUntil} for any program (real QEMU beside vmkit). */
export async function runProgramUntil(
  program: string,
  args: string[],
  until: RegExp,
  timeoutMs: number,
): Promise<string> {
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
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

/**
 * Runs `program args` with SeaBIOS's debug port (CONFIG_DEBUG_IO, port 0x402) going to
 * the file `log` until the log matches `until` (or `timeoutMs` passes), then stops it;
 * returns the debug log, with the program's stderr appended.
 */
export async function debugLogUntil(
  program: string,
  args: string[],
  log: string,
  until: RegExp,
  timeoutMs: number,
): Promise<string> {
  const child = new Deno.Command(program, {
    args: [
      ...args,
      "-chardev",
      `file,id=dbg,path=${log}`,
      "-device",
      "isa-debugcon,iobase=0x402,chardev=dbg",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const deadline = Date.now() + timeoutMs;
  let text = "";
  try {
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      try {
        text = await Deno.readTextFile(log);
      } catch {
        continue; // not created yet
      }
      if (until.test(text)) break;
    }
  } finally {
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

/**
 * A boot sector that writes `message` to COM1 and halts; `prelude`, when given, adds its
 * own code first, which starts with AX = DS = 0 and must leave DS = 0 (the message is read
 * through it).
 */
export function bootSector(message: string, prelude?: (a: Assembler) => void): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  a.xor(AX, AX);
  a.mov(DS, AX);
  prelude?.(a);
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
  const sector = new Uint8Array(512);
  sector.set(a.assemble());
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/**
 * Writes `base.raw` in `dir` (`bytes` long, {@linkcode bootSector} of `message` first) and
 * a qcow2 overlay `top.qcow2` on it made by `vmkit img create` (the backing file named
 * relative to the overlay); returns the overlay's path.
 */
export async function bootSectorOverlay(
  dir: string,
  message: string,
  bytes: number,
): Promise<string> {
  const image = new Uint8Array(bytes);
  image.set(bootSector(message));
  await Deno.writeFile(path.join(dir, "base.raw"), image);
  const create = await runVmkit(
    ["img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2"],
    { cwd: dir },
  );
  assert.equal(create.code, 0, create.stderr);
  return path.join(dir, "top.qcow2");
}
