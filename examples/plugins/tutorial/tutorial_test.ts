// The docs/plugins.md tutorial plugins, loaded as a reader would load them, and judged by
// real qemu-img where it can read the result

import { skipUnless } from "../../../tests/skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { IrqLine, ISA_BUS, Machine, Registry } from "../../../mod.ts";
import scratch, { type Scratch } from "./scratch.ts";
import { HAVE_QEMU_IMG } from "../../../tests/test_util.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.resolve(HERE, "..", "..", "..", "cli", "main.ts");
const decoder = new TextDecoder();

/** Runs vmkit as `qemu-img --plugin boxed.ts ARGS` (a symlink gives it that name). */
async function vmkitImg(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const dir = await Deno.makeTempDir();
  const link = path.join(dir, "qemu-img");
  await Deno.symlink(Deno.execPath(), link);
  try {
    const r = await new Deno.Command(link, {
      args: ["run", "-A", "--quiet", MAIN, "--plugin", path.join(HERE, "boxed.ts"), ...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function qemuImg(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("qemu-img", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
}

Deno.test({
  name: HAVE_QEMU_IMG
    ? "boxed: vmkit --plugin creates, converts and checks; real qemu-img reads the same bytes"
    : "boxed tutorial format (ignored: qemu-img is not installed)",
  ignore: skipUnless(import.meta, "qemu-img"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // A source with data, a hole and a tail, made by real qemu-img and qemu-io.
      assert.equal((await qemuImg(["create", "-f", "raw", "src.raw", "4M"], dir)).code, 0);
      await new Deno.Command("qemu-io", {
        args: ["-f", "raw", "-c", "write -P 0x5a 0 64k", "-c", "write -P 0xa5 3M 4k", "src.raw"],
        cwd: dir,
        stdout: "null",
      }).output();
      const conv = await vmkitImg(
        ["convert", "-f", "raw", "-O", "boxed", "src.raw", "a.boxed"],
        dir,
      );
      assert.equal(conv.code, 0, conv.out);
      const info = await vmkitImg(["info", "a.boxed"], dir);
      assert.match(info.out, /file format: boxed\nvirtual size: 4 MiB/);
      assert.equal((await vmkitImg(["check", "a.boxed"], dir)).code, 0);
      // Real qemu-img reads the boxed data as raw from offset 512: the same guest bytes.
      const asRaw = "driver=raw,offset=512,size=4194304,file.driver=file,file.filename=a.boxed";
      const src = "driver=raw,file.driver=file,file.filename=src.raw";
      const cmp = await qemuImg(["compare", "--image-opts", src, asRaw], dir);
      assert.equal(cmp.code, 0, cmp.out);
      // And through the block layer to a qcow2 that real qemu-img checks and compares.
      const q = await vmkitImg(["convert", "-O", "qcow2", "a.boxed", "b.qcow2"], dir);
      assert.equal(q.code, 0, q.out);
      assert.equal((await qemuImg(["check", "b.qcow2"], dir)).code, 0);
      assert.equal((await qemuImg(["compare", "src.raw", "b.qcow2"], dir)).code, 0);
      // A header that claims an impossible size is refused with one line.
      const bad = await Deno.readFile(path.join(dir, "a.boxed"));
      bad.fill(0xff, 8, 16);
      await Deno.writeFile(path.join(dir, "bad.boxed"), bad.subarray(0, 4096));
      const refused = await vmkitImg(["info", "bad.boxed"], dir);
      assert.equal(refused.code, 1);
      assert.match(refused.out, /^qemu-img: Could not open 'bad\.boxed': Invalid virtual size/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("isa-scratch: created through the registry, on its port, raising its ISA IRQ", () => {
  const registry = new Registry();
  registry.add(scratch, "examples/plugins/tutorial/scratch.ts");
  const machine = new Machine({
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    registry,
    createCpu: () => {
      throw new Error("no CPU in this test");
    },
  });
  const lines = Array.from({ length: 16 }, (_, n) => new IrqLine(`isa-irq${n}`));
  machine.provide(ISA_BUS, { irq: (n) => lines[n] });
  const device = machine.createDevice("isa-scratch", { iobase: 0x520, irq: 7 }) as Scratch;
  machine.io.out(0x520, 1, 0x1234);
  assert.equal(machine.io.in(0x520, 1), 0x34, "8 bits kept");
  assert.equal(lines[7].level, false);
  machine.io.out(0x520, 1, 0xff);
  assert.equal(lines[7].level, true);
  const saved = device.saveState();
  machine.reset();
  assert.equal(lines[7].level, false);
  assert.equal(machine.io.in(0x520, 1), 0);
  device.loadState(saved);
  assert.equal(lines[7].level, true);
});
