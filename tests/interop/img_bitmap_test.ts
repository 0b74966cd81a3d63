// qcow2 persistent dirty bitmaps across vmkit and qemu-img 7.2: made by one, read and changed by the other; hostile bitmap directories

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../core/block/graph.ts";
import type { Machine } from "../../core/machine.ts";
import { buildRegistry } from "../../cli/registry.ts";
import { buildSystemSetup } from "../../cli/system/config.ts";
import { parseSystemArgs } from "../../cli/system/options.ts";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  readBytes,
  runCommand,
  runTool,
  runToolOk,
  tempDir,
} from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG || !haveProgram("qemu-io");
const NEEDS = ignore ? " (ignored: qemu-img and qemu-io are not installed)" : "";
const CS = 65536;

async function qemuIo(dir: string, file: string, ...commands: string[]): Promise<void> {
  const r = await runCommand("qemu-io", [
    "-f",
    "qcow2",
    ...commands.flatMap((c) => ["-c", c]),
    file,
  ], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
}

/** The bitmaps extension of an image: where it sits in the header and what it says. */
function bitmapsExt(file: string): { at: number; nb: number; dirSize: number; dirOffset: number } {
  const head = readBytes(file).subarray(0, CS);
  const v = new DataView(head.buffer, head.byteOffset);
  for (let at = v.getUint32(100); at + 32 <= head.length;) {
    const type = v.getUint32(at);
    const len = v.getUint32(at + 4);
    if (type === 0) break;
    if (type === 0x23852875) {
      return {
        at: at + 8,
        nb: v.getUint32(at + 8),
        dirSize: Number(v.getBigUint64(at + 16)),
        dirOffset: Number(v.getBigUint64(at + 24)),
      };
    }
    at += 8 + ((len + 7) & ~7);
  }
  throw new Error(`${file} has no bitmaps extension`);
}

function patch(file: string, offset: number, bytes: Uint8Array): void {
  const f = Deno.openSync(file, { write: true });
  try {
    f.seekSync(offset, Deno.SeekMode.Start);
    f.writeSync(bytes);
  } finally {
    f.close();
  }
}

function be32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function be64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

function be16(n: number): Uint8Array {
  return new Uint8Array([n >> 8, n & 0xff]);
}

function flagsOf(info: string): unknown[] {
  const data = JSON.parse(info)["format-specific"].data;
  return (data.bitmaps ?? []).map((b: { name: string; flags: string[]; granularity: number }) => [
    b.name,
    b.flags,
    b.granularity,
  ]);
}

Deno.test({
  name:
    `img bitmap: bitmaps made and dirtied by vmkit are what qemu-img makes, and qemu-img reads and merges them${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const side of ["vmkit", "qemu-img"]) {
        await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", `${side}.qcow2`, "16M"], dir);
        await qemuIo(dir, `${side}.qcow2`, "write -P 1 0 1M");
        const run = (...args: string[]) => runToolOk(side, args, dir);
        await run("bitmap", "--add", `${side}.qcow2`, "b0");
        await run("bitmap", "--add", "-g", "4k", "--disable", `${side}.qcow2`, "b1");
        // bench -w is a writer: the enabled bitmap records it.
        await run("bench", "-w", "-c", "5", "-s", "4k", "-S", "3M", "-o", "5k", `${side}.qcow2`);
        await run("bitmap", "--merge", "b0", "--enable", `${side}.qcow2`, "b1");
      }
      assert.deepEqual(
        readBytes(path.join(dir, "vmkit.qcow2")),
        readBytes(path.join(dir, "qemu-img.qcow2")),
        "the same bytes as qemu-img's",
      );
      const info = await runToolOk("qemu-img", ["info", "--output=json", "vmkit.qcow2"], dir);
      assert.deepEqual(flagsOf(info.stdout), [["b0", ["auto"], 65536], ["b1", ["auto"], 4096]]);
      const check = await runTool("qemu-img", ["check", "vmkit.qcow2"], dir);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      // qemu-img merges a vmkit bitmap into an image of its own.
      await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", "other.qcow2", "16M"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", "other.qcow2", "copy"], dir);
      await runToolOk("qemu-img", [
        "bitmap",
        "--merge",
        "b1",
        "-b",
        "vmkit.qcow2",
        "other.qcow2",
        "copy",
      ], dir);
      assert.equal((await runTool("qemu-img", ["check", "other.qcow2"], dir)).code, 0);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img bitmap: vmkit reads, clears, merges and removes bitmaps qemu-io dirtied, and qemu-img checks the result${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", "q.qcow2", "8M"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", "q.qcow2", "a"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", "-g", "1M", "q.qcow2", "b"], dir);
      await qemuIo(dir, "q.qcow2", "write -P 3 100k 300k", "write -z 5M 64k", "discard 7M 64k");
      // Both sides work on copies made alike (cp keeps the holes: `disk size` agrees).
      const copy = path.join(dir, "c.qcow2");
      for (const name of ["v.qcow2", "c.qcow2"]) {
        const r = await runCommand("cp", ["-a", path.join(dir, "q.qcow2"), path.join(dir, name)]);
        assert.equal(r.code, 0, r.stderr);
      }
      for (
        const args of [
          ["bitmap", "--clear", "X.qcow2", "a"],
          ["bitmap", "--merge", "b", "X.qcow2", "a"],
          ["bitmap", "--disable", "X.qcow2", "b"],
          ["info", "--output=json", "X.qcow2"],
          ["bitmap", "--remove", "X.qcow2", "b"],
          ["info", "X.qcow2"],
        ]
      ) {
        const ours = await runTool("vmkit", args.map((a) => a.replace("X", "v")), dir);
        const theirs = await runTool("qemu-img", args.map((a) => a.replace("X", "c")), dir);
        assert.equal(ours.code, theirs.code, args.join(" "));
        assert.equal(ours.stderr, theirs.stderr.replaceAll("c.qcow2", "v.qcow2"));
        assert.equal(ours.stdout, theirs.stdout.replaceAll("c.qcow2", "v.qcow2"));
      }
      assert.deepEqual(readBytes(path.join(dir, "v.qcow2")), readBytes(copy));
      assert.equal((await runTool("qemu-img", ["check", "v.qcow2"], dir)).code, 0);
    } finally {
      await cleanup();
    }
  },
});

/** Writes `sectors` (512 bytes each, from `data`) at `lba` of the primary IDE master by PIO. */
async function ideWrite(machine: Machine, lba: number, data: Uint8Array): Promise<number> {
  const io = machine.io;
  const sectors = data.length / 512;
  io.out(0x1f6, 1, 0xe0 | ((lba >> 24) & 0x0f));
  io.out(0x1f2, 1, sectors);
  io.out(0x1f3, 1, lba & 0xff);
  io.out(0x1f4, 1, (lba >> 8) & 0xff);
  io.out(0x1f5, 1, (lba >> 16) & 0xff);
  io.out(0x1f7, 1, 0x30); // WRITE SECTORS
  for (let s = 0; s < sectors; s++) {
    while ((io.in(0x1f7, 1) & 0x88) !== 0x08) {
      await new Promise((r) => setTimeout(r, 1));
    }
    for (let i = s * 512; i < (s + 1) * 512; i += 2) io.out(0x1f0, 2, data[i] | (data[i + 1] << 8));
  }
  while (machine.loop.pendingIo > 0 || (io.in(0x1f7, 1) & 0x80) !== 0) {
    await new Promise((r) => setTimeout(r, 1));
  }
  return io.in(0x1f7, 1);
}

Deno.test({
  name:
    `system-x86_64: a guest writing a qcow2 disk with bitmaps keeps them in use while it runs and stores them dirty at exit, as QEMU${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = path.join(dir, "disk.qcow2");
      const ref = path.join(dir, "ref.qcow2");
      await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", disk, "8M"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", disk, "live"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", "--disable", disk, "frozen"], dir);
      Deno.copyFileSync(disk, ref);
      const registry = await buildRegistry();
      const setup = await buildSystemSetup(
        parseSystemArgs(["-drive", `file=${disk},format=qcow2,if=ide`]).opts,
        undefined,
        { registry, graph: new BlockGraph(registry), stdio: {} },
      );
      const config = { ...setup.config, firmware: new Uint8Array(256 * 1024) };
      const machine = registry.require("machine", "pc").create(config) as Machine;
      for (const d of setup.devices) machine.createDevice(d.model, d.opts);
      await machine.realize();
      try {
        // QEMU requires bitmaps to be marked in use while the image is open for writing.
        const during = await runToolOk("qemu-img", ["info", "-U", "--output=json", disk], dir);
        assert.deepEqual(flagsOf(during.stdout), [
          ["live", ["in-use", "auto"], 65536],
          ["frozen", ["in-use"], 65536],
        ]);
        const status = await ideWrite(machine, 2048, new Uint8Array(4096).fill(0x5a));
        assert.equal(status & 0x01, 0, `the write succeeds (status ${status.toString(16)})`);
      } finally {
        for (const b of setup.backends) await b.close();
      }
      // qemu-io writing the same bytes to a copy leaves the same file, bitmaps included.
      await qemuIo(dir, ref, "write -P 0x5a 1M 4k");
      assert.deepEqual(readBytes(disk), readBytes(ref), "the image qemu-io leaves");
      const after = await runToolOk("qemu-img", ["info", "--output=json", disk], dir);
      assert.deepEqual(flagsOf(after.stdout), [
        ["live", ["auto"], 65536],
        ["frozen", [], 65536],
      ]);
      assert.equal((await runTool("qemu-img", ["check", disk], dir)).code, 0);
    } finally {
      await cleanup();
    }
  },
});

/**
 * `h.qcow2` in `dir`: 64 MiB, with the bitmaps `names` added by qemu-img.
 * @returns its path and the table offset of each bitmap, in directory order
 */
async function imageWithBitmaps(
  dir: string,
  names: string[],
): Promise<{ file: string; tables: number[] }> {
  const file = path.join(dir, "h.qcow2");
  await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", file, "64M"], dir);
  for (const name of names) await runToolOk("qemu-img", ["bitmap", "--add", file, name], dir);
  const dirOffset = bitmapsExt(file).dirOffset;
  const entries = new DataView(
    readBytes(file).slice(dirOffset, dirOffset + 32 * names.length).buffer,
  );
  return { file, tables: names.map((_, i) => Number(entries.getBigUint64(i * 32))) };
}

/** Where the bitmap tables of 'b0' and 'b1' are. */
interface Tables {
  b0: number;
  b1: number;
}

/** A hostile change to an image with bitmaps 'b0' and 'b1'. */
interface Attack {
  name: string;
  patch(file: string, tables: Tables): void;
  /** qemu-img refuses it too: the message and exit code must be the same. */
  sameAsQemu: boolean;
}

const ATTACKS: Attack[] = [
  {
    name: "a bitmap directory pointing out of the file",
    sameAsQemu: true,
    patch: (f) => patch(f, bitmapsExt(f).at + 16, be64(2 ** 50)),
  },
  {
    name: "a bitmap directory size past QEMU's limit (gigabytes)",
    sameAsQemu: true,
    patch: (f) => patch(f, bitmapsExt(f).at + 8, be64(2 ** 33)),
  },
  {
    name: "a bitmap count past QEMU's limit",
    sameAsQemu: true,
    patch: (f) => patch(f, bitmapsExt(f).at, be32(0xffffffff)),
  },
  {
    name: "more bitmaps in the directory than the header says",
    sameAsQemu: true,
    patch: (f) => patch(f, bitmapsExt(f).at, be32(1)),
  },
  {
    name: "a bitmap name length past the limit",
    sameAsQemu: true,
    patch: (f) => {
      const ext = bitmapsExt(f);
      patch(f, ext.at + 8, be64(24 + 1024));
      patch(f, ext.at, be32(1));
      patch(f, ext.dirOffset + 18, be16(1024));
    },
  },
  {
    name: "a bitmap table size that would take gigabytes",
    sameAsQemu: true,
    patch: (f) => patch(f, bitmapsExt(f).dirOffset + 8, be32(0x8000000)),
  },
  {
    name: "a bitmap table entry with reserved bits",
    sameAsQemu: true,
    patch: (f, t) => patch(f, t.b0, be64(0xff00000000000000)),
  },
  {
    name: "two bitmaps of the same name",
    sameAsQemu: true,
    patch: (f) => {
      const ext = bitmapsExt(f);
      patch(f, ext.dirOffset + 32 + 25, new TextEncoder().encode("0"));
    },
  },
  {
    name: "two bitmaps sharing one table",
    sameAsQemu: false,
    patch: (f, t) => patch(f, bitmapsExt(f).dirOffset + 32, be64(t.b0)),
  },
];

for (const attack of ATTACKS) {
  Deno.test({
    name:
      `img bitmap/info/check: ${attack.name} is refused in one line, the file unchanged${NEEDS}`,
    ignore,
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const { file, tables } = await imageWithBitmaps(dir, ["b0", "b1"]);
        attack.patch(file, { b0: tables[0], b1: tables[1] });
        const before = readBytes(file);
        for (
          const args of [["info", "h.qcow2"], ["check", "h.qcow2"], [
            "bitmap",
            "--add",
            "h.qcow2",
            "x",
          ]]
        ) {
          const ours = await runTool("vmkit", args, dir);
          assert.notEqual(ours.code, 0, `${args[0]} fails`);
          assert.equal(ours.stderr.trimEnd().split("\n").length, 1, `one line: ${ours.stderr}`);
          assert.match(ours.stderr, /^qemu-img: Could not open 'h.qcow2': /);
          assert.equal(ours.stdout, "");
          assert.deepEqual(readBytes(file), before, `${args[0]} leaves the file unchanged`);
          if (attack.sameAsQemu) {
            const theirs = await runTool("qemu-img", args, dir);
            assert.equal(ours.stderr, theirs.stderr, "qemu-img's words");
            assert.equal(ours.code, theirs.code, "qemu-img's exit code");
            assert.deepEqual(readBytes(file), before);
          }
        }
      } finally {
        await cleanup();
      }
    },
  });
}

/** Damage that qemu-img opens, reads and reports in its check: vmkit must answer alike. */
const DAMAGE: { name: string; patch(file: string, table: number): void }[] = [
  {
    name: "a bitmap table entry pointing out of the file",
    patch: (f, table) => patch(f, table, be64(2 ** 40)),
  },
  {
    // The table of an in-use bitmap is not read when the image opens: check finds it.
    name: "an in-use bitmap whose table has reserved bits",
    patch: (f, table) => {
      patch(f, table, be64(0xff00000000000000));
      patch(f, bitmapsExt(f).dirOffset + 12, be32(3));
    },
  },
];

for (const damage of DAMAGE) {
  Deno.test({
    name: `img info/check: ${damage.name} is read and reported as qemu-img does${NEEDS}`,
    ignore,
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const { file, tables } = await imageWithBitmaps(dir, ["b0"]);
        damage.patch(file, tables[0]);
        const before = readBytes(file);
        for (
          const args of [
            ["info", "h.qcow2"],
            ["check", "h.qcow2"],
            ["check", "--output=json", "h.qcow2"],
          ]
        ) {
          const ours = await runTool("vmkit", args, dir);
          const theirs = await runTool("qemu-img", args, dir);
          assert.equal(ours.stdout, theirs.stdout, args.join(" "));
          assert.equal(ours.stderr, theirs.stderr, args.join(" "));
          assert.equal(ours.code, theirs.code, args.join(" "));
          assert.deepEqual(readBytes(file), before);
        }
      } finally {
        await cleanup();
      }
    },
  });
}

Deno.test({
  name:
    `img info: an image listing the most bitmaps QEMU allows, each with its table past the end of the file, is read and listed${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, "many.qcow2");
      await runToolOk("qemu-img", ["create", "-q", "-f", "qcow2", file, "64M"], dir);
      await runToolOk("qemu-img", ["bitmap", "--add", file, "b0"], dir);
      // 65535 entries of 32 bytes (names m00000..), tables 1 TiB and more into the file.
      const count = 65535;
      const entries = new Uint8Array(count * 32);
      const v = new DataView(entries.buffer);
      for (let k = 0; k < count; k++) {
        v.setBigUint64(k * 32, BigInt(2 ** 40 + k * CS));
        v.setUint32(k * 32 + 8, 1);
        v.setUint32(k * 32 + 12, 2);
        entries[k * 32 + 16] = 1;
        entries[k * 32 + 17] = 16;
        v.setUint16(k * 32 + 18, 6);
        entries.set(new TextEncoder().encode(`m${String(k).padStart(5, "0")}`), k * 32 + 24);
      }
      const dirOffset = Math.ceil(Deno.statSync(file).size / CS) * CS;
      patch(file, dirOffset, entries);
      const ext = bitmapsExt(file);
      patch(file, ext.at, be32(count));
      patch(file, ext.at + 8, be64(entries.length));
      patch(file, ext.at + 16, be64(dirOffset));
      const info = await runToolOk("vmkit", ["info", "--output=json", "many.qcow2"], dir);
      const listed = flagsOf(info.stdout);
      assert.equal(listed.length, count);
      assert.deepEqual(listed[count - 1], ["m65534", ["auto"], 65536]);
      const human = await runToolOk("vmkit", ["info", "many.qcow2"], dir);
      assert.ok(human.stdout.includes("            name: m65534\n"));
    } finally {
      await cleanup();
    }
  },
});
