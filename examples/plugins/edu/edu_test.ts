// The edu example plugin, tested as an outside plugin is: through --plugin, by a guest
// program, against QEMU's own edu device; and its answers to a hostile guest

import { ESBUILD, skipUnless } from "../../../tests/skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  IrqLine,
  Machine,
  PCI_BUS,
  PCI_COMMAND,
  type PciBus,
  type PciFunction,
} from "../../../mod.ts";
import edu, {
  Edu,
  EDU_DMA_CMD,
  EDU_DMA_COUNT,
  EDU_DMA_DST,
  EDU_DMA_SRC,
  EDU_FACTORIAL,
  EDU_ID,
  EDU_ID_VALUE,
  EDU_IRQ_ACK,
  EDU_IRQ_RAISE,
  EDU_IRQ_STATUS,
  EDU_LIVENESS,
  EDU_STATUS,
  factorial32,
} from "./edu.ts";
import { HAVE_ESBUILD, haveProgram, ROOT } from "../../../tests/test_util.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PLUGIN = path.join(HERE, "edu.ts");

/** A machine with RAM at 0 and a one-slot PCI bus published under the typed PCI_BUS key. */
function testMachine(): { machine: Machine; intx: IrqLine; plugged: PciFunction[] } {
  const machine = new Machine({
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: () => {
      throw new Error("no CPU in this test");
    },
  });
  machine.memory.addRam("ram", 0, 1 << 20);
  const intx = new IrqLine("inta");
  const plugged: PciFunction[] = [];
  const bus: PciBus = {
    plug: (fn) => plugged.push(fn) - 1,
    intx: () => intx,
  };
  machine.provide(PCI_BUS, bus);
  return { machine, intx, plugged };
}

function createEdu(): { machine: Machine; edu: Edu; intx: IrqLine } {
  const { machine, intx } = testMachine();
  const device = edu.create(machine, {});
  device.config.configWrite(PCI_COMMAND, 2, 0x6); // memory space and bus master
  return { machine, edu: device, intx };
}

Deno.test("factorial32() wraps at 32 bits and is 0 from 34! on", () => {
  assert.equal(factorial32(0), 1);
  assert.equal(factorial32(12), 479001600);
  assert.equal(factorial32(13), 1932053504, "13! mod 2^32");
  assert.equal(factorial32(33), 2147483648);
  assert.equal(factorial32(34), 0);
  assert.equal(factorial32(0xffffffff), 0);
});

Deno.test("Edu answers ID and liveness, computes a factorial and raises INTx when MSI is off", () => {
  const { machine, edu, intx } = createEdu();
  assert.equal(edu.read(EDU_ID, 4), EDU_ID_VALUE);
  assert.equal(edu.read(EDU_ID, 2), 0xffff, "only 4-byte accesses below 0x80");
  edu.write(EDU_LIVENESS, 4, 0x0f0f0f0f);
  assert.equal(edu.read(EDU_LIVENESS, 4), 0xf0f0f0f0);
  edu.write(EDU_STATUS, 4, 0x80);
  edu.write(EDU_FACTORIAL, 4, 5);
  assert.equal(edu.read(EDU_STATUS, 4) & 1, 1, "computing");
  edu.write(EDU_FACTORIAL, 4, 7); // ignored while computing
  machine.loop.advanceBy(0);
  assert.equal(edu.read(EDU_FACTORIAL, 4), 120);
  assert.equal(edu.read(EDU_IRQ_STATUS, 4), 1);
  assert.equal(intx.level, true);
  edu.write(EDU_IRQ_ACK, 4, 1);
  assert.equal(intx.level, false);
  edu.write(EDU_IRQ_RAISE, 4, 0x40);
  assert.equal(intx.level, true);
  edu.config.configWrite(PCI_COMMAND, 2, 0x406); // INTx disable takes the line down
  assert.equal(intx.level, false);
});

Deno.test("Edu DMA copies guest RAM through its buffer after 100 ms of virtual time", () => {
  const { machine, edu } = createEdu();
  const ram = new Uint8Array(16).map((_, i) => i * 5 + 1);
  machine.memory.dmaWrite(0x1000, ram);
  const dma = (src: number, dst: number, count: number, cmd: number) => {
    edu.write(EDU_DMA_SRC, 4, src);
    edu.write(EDU_DMA_DST, 4, dst);
    edu.write(EDU_DMA_COUNT, 4, count);
    edu.write(EDU_DMA_CMD, 4, cmd);
  };
  dma(0x1000, 0x40000, 16, 1);
  machine.loop.advanceBy(99_000_000);
  assert.equal(edu.read(EDU_DMA_CMD, 4) & 1, 1, "still running");
  machine.loop.advanceBy(1_000_000);
  assert.equal(edu.read(EDU_DMA_CMD, 4) & 1, 0);
  dma(0x40000, 0x2000, 16, 1 | 2 | 4);
  machine.loop.advanceBy(100_000_000);
  const back = new Uint8Array(16);
  machine.memory.dmaRead(0x2000, back);
  assert.deepEqual(back, ram);
  assert.equal(edu.read(EDU_IRQ_STATUS, 4), 0x100);
  assert.equal(edu.guestErrors, 0);
});

Deno.test("Edu refuses a DMA outside its buffer or outside RAM, and the machine goes on", () => {
  const { machine, edu } = createEdu();
  const before = new Uint8Array(64);
  machine.memory.dmaRead(0, before);
  // QEMU's edu stops the whole VM on these (hw_error); the plugin counts and carries on.
  const attacks: [number, number, number, number][] = [
    [0x0, 0x40000 + 4000, 200, 1], // runs past the end of the 4 KiB buffer
    [0x0, 0x3ff00, 0x200, 1], // starts below it
    [0x40000, 0x0, 0xffffffff, 3], // a count of 4 GiB
    [0x40000, 0x0fff_f000, 0x100, 3], // RAM ends at 1 MiB: an unbacked guest address
    [0x40000, 0x0, 0, 3], // nothing to copy
  ];
  for (const [src, dst, count, cmd] of attacks) {
    edu.write(EDU_DMA_SRC, 4, src);
    edu.write(EDU_DMA_DST, 4, dst);
    edu.write(EDU_DMA_COUNT, 4, count);
    edu.write(EDU_DMA_CMD, 4, cmd | 4);
    machine.loop.advanceBy(100_000_000);
    assert.equal(edu.read(EDU_DMA_CMD, 4) & 1, 0, "the run bit clears");
  }
  assert.equal(edu.guestErrors, attacks.length);
  const after = new Uint8Array(64);
  machine.memory.dmaRead(0, after);
  assert.deepEqual(after, before, "no guest memory changed");
  // Without bus mastering the device may not touch memory at all.
  edu.config.configWrite(PCI_COMMAND, 2, 0x2);
  edu.write(EDU_DMA_SRC, 4, 0x40000);
  edu.write(EDU_DMA_DST, 4, 0x0);
  edu.write(EDU_DMA_COUNT, 4, 16);
  edu.write(EDU_DMA_CMD, 4, 3);
  machine.loop.advanceBy(100_000_000);
  assert.equal(edu.guestErrors, attacks.length + 1);
});

Deno.test("Edu state survives saveState()/loadState() and reset() returns it to power-on", () => {
  const { edu } = createEdu();
  edu.write(EDU_LIVENESS, 4, 1);
  edu.write(EDU_IRQ_RAISE, 4, 0x20);
  const saved = edu.saveState();
  edu.reset();
  assert.equal(edu.read(EDU_LIVENESS, 4), 0);
  assert.equal(edu.read(EDU_IRQ_STATUS, 4), 0);
  edu.loadState(saved);
  assert.equal(edu.read(EDU_LIVENESS, 4), 0xfffffffe);
  assert.equal(edu.read(EDU_IRQ_STATUS, 4), 0x20);
});

const HAVE_NASM = haveProgram("nasm");
const HAVE_QEMU = haveProgram("qemu-system-x86_64");

/** The guest's expected report: what QEMU 7.2's own edu prints with the same guest. */
const EXPECTED = `id=010000ed
liveness=edcba987
factorial(12)=1c8cfc00
irq=00000001
irq=00000100
dma=ok
irq=00008000
interrupts=00000003
done
`;

async function buildGuest(dir: string): Promise<string> {
  const out = path.join(dir, "edu_guest.bin");
  const r = await new Deno.Command("nasm", {
    args: ["-f", "bin", "-o", out, path.join(HERE, "edu_guest.asm")],
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return out;
}

/** Runs the guest on vmkit (as `vmkit`, or under `argv0`) or QEMU; returns the debugcon text. */
async function runGuest(
  dir: string,
  guest: string,
  how: { qemu?: boolean; argv0?: string; plugin?: string },
): Promise<{ code: number; text: string; stderr: string }> {
  const log = path.join(dir, `out-${how.qemu ? "qemu" : how.argv0 ?? "vmkit"}.txt`);
  const machineArgs = [
    "-nodefaults",
    "-display",
    "none",
    "-kernel",
    guest,
    "-device",
    "edu",
    "-debugcon",
    `file:${log}`,
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
  ];
  let program = Deno.execPath();
  let args: string[];
  let linkDir: string | undefined;
  if (how.qemu) {
    program = "qemu-system-x86_64";
    args = machineArgs;
  } else {
    const vmkitArgs = ["--plugin", how.plugin ?? PLUGIN];
    if (how.argv0) {
      linkDir = await Deno.makeTempDir();
      program = path.join(linkDir, how.argv0);
      await Deno.symlink(Deno.execPath(), program);
    } else {
      vmkitArgs.push("system-x86_64");
    }
    args = [
      "run",
      "-A",
      "--quiet",
      path.join(ROOT, "cli", "main.ts"),
      ...vmkitArgs,
      ...machineArgs,
    ];
  }
  try {
    const r = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
    let text = "";
    try {
      text = await Deno.readTextFile(log);
    } catch {
      // no output file: the text stays empty and the assertion says so
    }
    return { code: r.code, text, stderr: new TextDecoder().decode(r.stderr) };
  } finally {
    if (linkDir) await Deno.remove(linkDir, { recursive: true });
  }
}

Deno.test({
  name: HAVE_NASM
    ? "a guest drives edu loaded with --plugin: ID, factorial, DMA and MSI, under vmkit and qemu-system-x86_64"
    : "edu guest test (ignored: nasm is not installed)",
  ignore: skipUnless(import.meta, "nasm"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const guest = await buildGuest(dir);
      for (const argv0 of [undefined, "qemu-system-x86_64"]) {
        const r = await runGuest(dir, guest, { argv0 });
        assert.equal(r.text, EXPECTED, `${argv0 ?? "vmkit"}: ${r.stderr}`);
        assert.equal(r.code, 33, r.stderr);
      }
      // Without --plugin there is no edu: it is not a built-in device.
      const plain = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          path.join(ROOT, "cli", "main.ts"),
          "system-x86_64",
          "-device",
          "edu",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.match(
        new TextDecoder().decode(plain.stderr),
        /'edu' is not a valid device model name/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: HAVE_NASM && HAVE_QEMU
    ? "the edu guest prints the same report on QEMU 7.2's own edu device"
    : "edu guest on real QEMU (ignored: nasm or qemu-system-x86_64 is not installed)",
  ignore: skipUnless(import.meta, "nasm", "qemu-system-x86_64"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const guest = await buildGuest(dir);
      const r = await runGuest(dir, guest, { qemu: true });
      assert.equal(r.text, EXPECTED, r.stderr);
      assert.equal(r.code, 33);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: HAVE_NASM && HAVE_ESBUILD
    ? "the edu plugin bundled by vmkit plugin build drives the same guest"
    : "edu bundle test (ignored: nasm or esbuild (npm ci) is not installed)",
  ignore: skipUnless(import.meta, "nasm", ESBUILD),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const bundle = path.join(dir, "edu.js");
      const b = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          path.join(ROOT, "cli", "main.ts"),
          "plugin",
          "build",
          PLUGIN,
          "-o",
          bundle,
        ],
        stderr: "piped",
      }).output();
      assert.equal(b.code, 0, new TextDecoder().decode(b.stderr));
      const guest = await buildGuest(dir);
      const r = await runGuest(dir, guest, { plugin: bundle, argv0: "qemu-system-x86_64" });
      assert.equal(r.text, EXPECTED, r.stderr);
      assert.equal(r.code, 33);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
