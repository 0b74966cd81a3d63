// Interop: `vmkit img` and real qemu-img on vhdx and qcow (version 1) images, both directions

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../core/block/graph.ts";
import { Registry } from "../../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../../plugins/mod.ts";
import { encodeHeader, parseHeader } from "../../plugins/formats/vhdx/header.ts";
import { encodeLogEntry } from "../../plugins/formats/vhdx/log.ts";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  readBytes,
  runCommand,
  runTool,
  runVmkit,
  tempDir,
} from "../test_util.ts";

const HAVE_QEMU_IO = haveProgram("qemu-io");
const ignore = !HAVE_QEMU_IMG || !HAVE_QEMU_IO;
const NEEDS = ignore
  ? " (ignored: qemu-img and qemu-io are not installed; apt-get install qemu-utils)"
  : "";
if (ignore) console.log(`img_vhdx_qcow_test: skipping${NEEDS}`);

const MiB = 1 << 20;

async function vmkitOk(args: string[], cwd: string) {
  const r = await runVmkit(["img", ...args], { cwd });
  assert.equal(r.code, 0, `vmkit img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function qemuOk(args: string[], cwd: string, program = "qemu-img") {
  const r = await runCommand(program, args, { cwd });
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** The same command through qemu-img and through vmkit started as qemu-img: same stdout and code. */
async function sameResult(args: string[], dir: string, what = args.join(" ")) {
  const theirs = await runTool("qemu-img", args, dir);
  const ours = await runTool("vmkit", args, dir);
  assert.equal(ours.stdout, theirs.stdout, `stdout of ${what}`);
  assert.equal(ours.code, theirs.code, `exit code of ${what}: ${ours.stderr}`);
  return { ours, theirs };
}

/** info json and map json agree (and human info, with `human`). */
async function assertSameView(file: string, dir: string, human = false) {
  const j = ["info", "--output=json", file];
  const ours = JSON.parse((await vmkitOk(j, dir)).stdout);
  const theirs = JSON.parse((await qemuOk(j, dir)).stdout);
  assert.deepEqual(ours, theirs, `info json of ${file}`);
  if (human) await sameResult(["info", file], dir);
  await sameResult(["map", "--output=json", file], dir);
}

/** A raw file with random data, text, written zeroes and holes, not block aligned. */
async function patternedRaw(file: string, bytes: number): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  await f.truncate(bytes);
  const random = new Uint8Array(60_000);
  for (let at = 4096; at + 3 * random.length < bytes; at += 3_300_000) {
    crypto.getRandomValues(random);
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(random);
    await f.write(new TextEncoder().encode("vhdx and qcow ".repeat(5000)).subarray(0, 60_000));
    await f.write(new Uint8Array(60_000));
  }
  f.close();
}

/** Zeroes what differs between two creations: creator, header GUIDs, sequence, checksums, page 83. */
function maskedVhdx(bytes: Uint8Array): Uint8Array {
  const b = bytes.slice();
  b.fill(0, 8, 0x10000);
  for (const at of [0x10000, 0x20000]) b.fill(0, at + 4, at + 48);
  const v = new DataView(b.buffer);
  const metadataOffset = Number(v.getBigUint64(0x30000 + 16 + 32 + 16, true));
  b.fill(0, metadataOffset + 0x10000 + 16, metadataOffset + 0x10000 + 32);
  return b;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test({
  name: `img create -f vhdx writes what qemu-img create writes, minus GUIDs and clocks${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // [options, size, compare every view (info, map, check) or only info json and check]
      const sets: [string, string, boolean][] = [
        ["", "100M", true],
        ["", "1000", false],
        ["", "0", true],
        ["subformat=fixed", "10M", false],
        ["subformat=fixed,block_state_zero=off", "10M", true],
        ["block_size=1536K,log_size=1536K", "20M", false],
        ["block_size=512M", "64T", false],
      ];
      for (const [i, [o, size, full]] of sets.entries()) {
        const args = ["create", "-f", "vhdx", ...(o ? ["-o", o] : [])];
        const a = await vmkitOk([...args, `ours${i}.vhdx`, size], dir);
        const b = await qemuOk([...args, `theirs${i}.vhdx`, size], dir);
        assert.equal(a.stdout.replace("ours", "theirs"), b.stdout, `Formatting line of ${o}`);
        const ours = readBytes(path.join(dir, `ours${i}.vhdx`));
        const theirs = readBytes(path.join(dir, `theirs${i}.vhdx`));
        assert.equal(ours.length, theirs.length, `file size of -o ${o} ${size}`);
        assert.ok(sameBytes(maskedVhdx(ours), maskedVhdx(theirs)), `bytes of -o ${o} ${size}`);
        if (full) await assertSameView(`ours${i}.vhdx`, dir, i === 0);
        else {
          const j = ["info", "--output=json", `ours${i}.vhdx`];
          assert.deepEqual(
            JSON.parse((await vmkitOk(j, dir)).stdout),
            JSON.parse((await qemuOk(j, dir)).stdout),
          );
        }
        await qemuOk(["check", `ours${i}.vhdx`], dir);
        await Deno.remove(path.join(dir, `ours${i}.vhdx`));
        await Deno.remove(path.join(dir, `theirs${i}.vhdx`));
      }
      // Refused options: the same message, and no file.
      for (const o of ["block_size=3M", "log_size=5G", "log_size=0", "subformat=foo"]) {
        const r = await runTool("vmkit", ["create", "-f", "vhdx", "-o", o, "bad.vhdx", "10M"], dir);
        const q = await runTool(
          "qemu-img",
          ["create", "-f", "vhdx", "-o", o, "q.vhdx", "10M"],
          dir,
        );
        assert.notEqual(r.code, 0, o);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.equal(r.stderr.replace("bad.vhdx", "q.vhdx"), q.stderr, `error of ${o}`);
      }
      const r = await runTool("vmkit", ["create", "-f", "vhdx", "big.vhdx", "65T"], dir);
      assert.equal(r.stderr, "qemu-img: big.vhdx: Image size too large; max of 64TB\n");
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `vhdx images qemu-img and qemu-io write read the same in vmkit${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // 20 MiB + 3 sectors: a partial last block of every block size.
      await patternedRaw(path.join(dir, "src.raw"), 20 * MiB + 1536);
      const targets: [string, string][] = [
        ["a.vhdx", ""],
        ["b.vhdx", "subformat=fixed"],
        ["c.vhdx", "subformat=fixed,block_state_zero=off"],
        ["d.vhdx", "block_size=1M,block_state_zero=off"],
      ];
      for (const [name, o] of targets) {
        await qemuOk(["convert", "-O", "vhdx", ...(o ? ["-o", o] : []), "src.raw", name], dir);
        await vmkitOk(["compare", "-f", "raw", "-F", "vhdx", "src.raw", name], dir);
        await assertSameView(name, dir, name === "a.vhdx");
        if (name === "a.vhdx") await sameResult(["check", name], dir);
      }
      // qemu-io writes into an image vmkit created: vmkit reads QEMU's log-allocated blocks.
      await vmkitOk(["create", "-f", "vhdx", "-o", "block_size=1M", "w.vhdx", "8M"], dir);
      await qemuOk(
        [
          "-f",
          "vhdx",
          "-c",
          "write -P 0x5a 0 1M",
          "-c",
          "write -P 0xa5 3584K 1M",
          "-c",
          "write -P 0x11 8388096 512",
          "w.vhdx",
        ],
        dir,
        "qemu-io",
      );
      await qemuOk(["convert", "-O", "raw", "w.vhdx", "w-qemu.raw"], dir);
      await vmkitOk(["convert", "-O", "raw", "w.vhdx", "w-vmkit.raw"], dir);
      assert.deepEqual(
        readBytes(path.join(dir, "w-vmkit.raw")),
        readBytes(path.join(dir, "w-qemu.raw")),
      );
      await assertSameView("w.vhdx", dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `vhdx images vmkit writes pass qemu-img check and compare${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(path.join(dir, "src.raw"), 20 * MiB + 1536);
      const targets: [string, string][] = [
        ["a.vhdx", ""],
        ["b.vhdx", "subformat=fixed"],
        ["c.vhdx", "subformat=fixed,block_state_zero=off"],
        ["d.vhdx", "block_size=1M,log_size=2M"],
        ["e.vhdx", "block_state_zero=off"],
      ];
      for (const [name, o] of targets) {
        await vmkitOk(["convert", "-O", "vhdx", ...(o ? ["-o", o] : []), "src.raw", name], dir);
        await qemuOk(["check", name], dir);
        await qemuOk(["compare", "-f", "raw", "-F", "vhdx", "src.raw", name], dir);
        await assertSameView(name, dir);
      }
      // vmkit writes into an image QEMU created and wrote: present and zero blocks alike.
      await qemuOk(["create", "-f", "vhdx", "-o", "block_size=1M", "q.vhdx", "21M"], dir);
      await qemuOk(["-f", "vhdx", "-c", "write -P 0x77 0 3M", "q.vhdx"], dir, "qemu-io");
      await vmkitOk(["convert", "-n", "-f", "raw", "-O", "vhdx", "src.raw", "q.vhdx"], dir);
      await qemuOk(["check", "q.vhdx"], dir);
      await qemuOk(["compare", "-f", "raw", "-F", "vhdx", "src.raw", "q.vhdx"], dir);
    } finally {
      await cleanup();
    }
  },
});

/**
 * Makes `file` (a QEMU-created 64 MiB vhdx with 8 MiB blocks and block 0 written)
 * look like QEMU was killed in the middle of a metadata update: the headers name
 * a log, and the log holds two entries that were never applied: the first changes
 * data in block 0 (one sector written, two zeroed), the second maps block 1 to a
 * new block at the end of the file (whose first sector was already written, as QEMU
 * writes data before the BAT entry).
 */
function makeDirty(file: string): { expected: Uint8Array } {
  const img = readBytes(file);
  const v = new DataView(img.buffer);
  const h = [
    parseHeader(img.subarray(0x10000, 0x11000)),
    parseHeader(img.subarray(0x20000, 0x21000)),
  ];
  const cur = h[0]!.sequenceNumber > h[1]!.sequenceNumber ? h[0]! : h[1]!;
  const logGuid = crypto.getRandomValues(new Uint8Array(16));
  const batOffset = Number(v.getBigUint64(0x30000 + 16 + 16, true));
  const block0 = Number(v.getBigUint64(batOffset, true) & ~0xfffffn);
  const newBlock = Math.ceil(img.length / MiB) * MiB;
  const fileEnd = newBlock + 8 * MiB;
  const grown = new Uint8Array(fileEnd);
  grown.set(img);
  grown.fill(0xab, newBlock, newBlock + 4096);
  for (const [i, at] of [0x10000, 0x20000].entries()) {
    const block = grown.slice(at, at + 4096);
    encodeHeader({ ...cur, sequenceNumber: cur.sequenceNumber + 1 + i, logGuid }, block);
    grown.set(block.subarray(0, 80), at);
  }
  const sector = new Uint8Array(4096).fill(0xcd);
  const fields = { logGuid, tail: 0, flushedFileOffset: fileEnd, lastFileOffset: fileEnd };
  const e1 = encodeLogEntry({ ...fields, sequenceNumber: 41 }, [
    { fileOffset: block0 + 8192, data: sector },
  ], [{ fileOffset: block0 + 65536, length: 8192 }]);
  const batSector = grown.slice(batOffset, batOffset + 4096);
  new DataView(batSector.buffer).setBigUint64(8, BigInt(newBlock) | 6n, true);
  const e2 = encodeLogEntry({ ...fields, sequenceNumber: 42 }, [
    { fileOffset: batOffset, data: batSector },
  ]);
  grown.set(e1, MiB);
  grown.set(e2, MiB + e1.length);
  Deno.writeFileSync(file, grown);
  const expected = new Uint8Array(64 * MiB);
  expected.fill(0x11, 0, MiB);
  expected.fill(0xcd, 8192, 12288);
  expected.fill(0, 65536, 65536 + 8192);
  expected.fill(0xab, 8 * MiB, 8 * MiB + 4096);
  return { expected };
}

Deno.test({
  name: `a vhdx log left by a crash is refused read-only and replayed read-write, as QEMU${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-f", "vhdx", "base.vhdx", "64M"], dir);
      await qemuOk(["-f", "vhdx", "-c", "write -P 0x11 0 1M", "base.vhdx"], dir, "qemu-io");
      const { expected } = makeDirty(path.join(dir, "base.vhdx"));
      Deno.writeFileSync(path.join(dir, "expected.raw"), expected);
      const dirty = readBytes(path.join(dir, "base.vhdx"));
      for (const name of ["q.vhdx", "v.vhdx"]) Deno.writeFileSync(path.join(dir, name), dirty);

      // Read-only opens refuse the image, the file untouched.
      const q = await runTool("qemu-img", ["info", "v.vhdx"], dir);
      const r = await runTool("vmkit", ["info", "v.vhdx"], dir);
      assert.equal(q.code, 1);
      assert.equal(r.code, 1);
      assert.match(q.stderr, /opened read-only, but contains a log that needs to be replayed/);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(
        r.stderr,
        /^qemu-img: Could not open 'v.vhdx': VHDX image file 'v.vhdx' opened read-only, but contains a log that needs to be replayed/,
      );
      assert.deepEqual(readBytes(path.join(dir, "v.vhdx")), dirty);

      // check -r all replays: the same report from both, and the same data after.
      const qc = await runTool("qemu-img", ["check", "-r", "all", "q.vhdx"], dir);
      const vc = await runTool("vmkit", ["check", "-r", "all", "v.vhdx"], dir);
      assert.equal(vc.stdout, qc.stdout);
      assert.equal(vc.code, qc.code);
      assert.match(vc.stdout, /1 corruptions/);
      for (const name of ["q.vhdx", "v.vhdx"]) {
        await qemuOk(["compare", "-f", "raw", "-F", "vhdx", "expected.raw", name], dir);
        await vmkitOk(["compare", "-f", "raw", "-F", "vhdx", "expected.raw", name], dir);
        await qemuOk(["check", name], dir);
      }

      // A log whose entries fail their checksum is no log: the image opens as it was.
      Deno.writeFileSync(path.join(dir, "bad.vhdx"), dirty);
      const f = await Deno.open(path.join(dir, "bad.vhdx"), { write: true });
      await f.seek(MiB + 100, Deno.SeekMode.Start);
      await f.write(new Uint8Array([0x55]));
      await f.seek(MiB + 3 * 4096 + 100, Deno.SeekMode.Start);
      await f.write(new Uint8Array([0x55]));
      f.close();
      await sameResult(["info", "bad.vhdx"], dir);
      await qemuOk(["convert", "-O", "raw", "bad.vhdx", "bad-q.raw"], dir);
      await vmkitOk(["convert", "-O", "raw", "bad.vhdx", "bad-v.raw"], dir);
      assert.deepEqual(
        readBytes(path.join(dir, "bad-v.raw")),
        readBytes(path.join(dir, "bad-q.raw")),
      );
    } finally {
      await cleanup();
    }
  },
});

/** Runs vmkit on a damaged file: one error line, no stack trace, non-zero exit, file untouched. */
async function assertCleanFailure(args: string[], file: string, dir: string, message: RegExp) {
  const before = readBytes(path.join(dir, file));
  const r = await runTool("vmkit", args, dir);
  assert.notEqual(r.code, 0, `${args.join(" ")} should fail`);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.match(r.stderr, message);
  assert.deepEqual(readBytes(path.join(dir, file)), before, `${file} changed`);
  return r;
}

Deno.test({
  name: `malformed vhdx and qcow images fail with one clear line and stay unchanged${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-f", "vhdx", "good.vhdx", "64M"], dir);
      await qemuOk(["-f", "vhdx", "-c", "write -P 0x11 0 9M", "good.vhdx"], dir, "qemu-io");
      const good = readBytes(path.join(dir, "good.vhdx"));
      const write = (name: string, bytes: Uint8Array) =>
        Deno.writeFileSync(path.join(dir, name), bytes);

      write("short.vhdx", good.slice(0, 70_000));
      await assertCleanFailure(["info", "short.vhdx"], "short.vhdx", dir, /truncated/);

      const noHeaders = good.slice();
      noHeaders[0x10000 + 20] ^= 1;
      noHeaders[0x20000 + 20] ^= 1;
      write("nohdr.vhdx", noHeaders);
      await assertCleanFailure(
        ["info", "nohdr.vhdx"],
        "nohdr.vhdx",
        dir,
        /No valid VHDX header found/,
      );
      await assertCleanFailure(
        ["check", "-r", "all", "nohdr.vhdx"],
        "nohdr.vhdx",
        dir,
        /No valid VHDX header found/,
      );

      const badRegion = good.slice();
      badRegion[0x30000 + 40] ^= 0x40;
      write("region.vhdx", badRegion);
      await assertCleanFailure(["info", "region.vhdx"], "region.vhdx", dir, /region table/);
      assert.notEqual((await runTool("qemu-img", ["info", "region.vhdx"], dir)).code, 0);

      // Truncated in the middle of a payload block: QEMU's message at open, its report in check.
      write("trunc.vhdx", good.slice(0, 12 * MiB));
      const r = await assertCleanFailure(
        ["info", "trunc.vhdx"],
        "trunc.vhdx",
        dir,
        /VHDX BAT entry 0 end offset 16777215 points after end of file \(12582912\)\. Image has probably been truncated/,
      );
      const q = await runTool("qemu-img", ["info", "trunc.vhdx"], dir);
      assert.equal(q.code, r.code);
      await sameResult(["check", "trunc.vhdx"], dir);

      // qcow: a truncated L1 table, a bad cluster size, a file with only the magic.
      await qemuOk(["create", "-f", "qcow", "good.qcow", "10M"], dir);
      const qcow = readBytes(path.join(dir, "good.qcow"));
      write("short.qcow", qcow.slice(0, 60));
      await assertCleanFailure(["info", "short.qcow"], "short.qcow", dir, /L1 table/);
      const bits = qcow.slice();
      bits[32] = 20;
      write("bits.qcow", bits);
      await assertCleanFailure(
        ["info", "bits.qcow"],
        "bits.qcow",
        dir,
        /Cluster size must be between 512 and 64k/,
      );
      assert.notEqual((await runTool("qemu-img", ["info", "bits.qcow"], dir)).code, 0);
      await assertCleanFailure(
        ["convert", "-f", "qcow", "-O", "raw", "bits.qcow", "out.raw"],
        "bits.qcow",
        dir,
        /Cluster size/,
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `qcow images qemu-img writes (plain, compressed, with backing) read the same in vmkit${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(path.join(dir, "src.raw"), 12 * MiB + 1536);
      await qemuOk(["create", "-f", "qcow", "p.qcow", "12M"], dir);
      await qemuOk(["-f", "qcow", "-c", "write -P 0x5a 0 1M", "p.qcow"], dir, "qemu-io");
      await qemuOk(["-f", "qcow", "-c", "write -P 0x33 5000K 300K", "p.qcow"], dir, "qemu-io");
      await qemuOk(["convert", "-O", "qcow", "src.raw", "full.qcow"], dir);
      // qemu-img 7.2 exits 1 after a complete compressed convert to qcow (its final empty
      // compressed write fails silently), so the data is checked with compare instead.
      const c = await runCommand("qemu-img", [
        "convert",
        "-c",
        "-O",
        "qcow",
        "src.raw",
        "comp.qcow",
      ], {
        cwd: dir,
      });
      assert.ok(c.code === 0 || (c.code === 1 && c.stderr === ""), c.stderr);
      await qemuOk(["compare", "src.raw", "comp.qcow"], dir);
      await qemuOk(["create", "-f", "qcow", "-b", "comp.qcow", "-F", "qcow", "over.qcow"], dir);
      await qemuOk(["-f", "qcow", "-c", "write -P 0x44 1M 4K", "over.qcow"], dir, "qemu-io");
      for (const name of ["p.qcow", "full.qcow", "comp.qcow", "over.qcow"]) {
        await qemuOk(["convert", "-O", "raw", name, `${name}.q.raw`], dir);
        await vmkitOk(["convert", "-f", "qcow", "-O", "raw", name, `${name}.v.raw`], dir);
        assert.deepEqual(
          readBytes(path.join(dir, `${name}.v.raw`)),
          readBytes(path.join(dir, `${name}.q.raw`)),
          `data of ${name}`,
        );
        await assertSameView(name, dir, name === "over.qcow");
        if (name === "p.qcow") await sameResult(["check", name], dir);
      }
      await vmkitOk(["compare", "-F", "qcow", "src.raw", "comp.qcow"], dir);
      await sameResult(["info", "--backing-chain", "over.qcow"], dir);
      await sameResult(["map", "--output=json", "-U", "over.qcow"], dir);
      // vmkit writes qcow: a whole image, and over compressed clusters.
      await vmkitOk(["convert", "-O", "qcow", "src.raw", "ours.qcow"], dir);
      await qemuOk(["compare", "src.raw", "ours.qcow"], dir);
      await assertSameView("ours.qcow", dir);
      // Partial writes into an overlay copy the rest of each cluster from the backing file.
      const g = new BlockGraph(new Registry().addAll(BUILTIN_PLUGINS));
      const node = await g.openImage(path.join(dir, "over.qcow"), { readOnly: false });
      await node.write(1000, new Uint8Array(100).fill(0x7a));
      await node.write(5_000_000, new Uint8Array(70_000).fill(0x7b));
      await node.close();
      const expected = readBytes(path.join(dir, "over.qcow.q.raw"));
      expected.fill(0x7a, 1000, 1100);
      expected.fill(0x7b, 5_000_000, 5_070_000);
      await qemuOk(["convert", "-O", "raw", "over.qcow", "over-after.raw"], dir);
      assert.ok(sameBytes(readBytes(path.join(dir, "over-after.raw")), expected));
      // Rewriting compressed clusters in place (the overlay's view changes with them).
      await vmkitOk(["convert", "-n", "-O", "qcow", "p.qcow.q.raw", "comp.qcow"], dir);
      await qemuOk(["compare", "p.qcow.q.raw", "comp.qcow"], dir);
      // vmkit converts qcow to qcow2 and qemu-img agrees on the data.
      await vmkitOk(["convert", "-O", "qcow2", "over.qcow", "over.qcow2"], dir);
      await qemuOk(["compare", "over.qcow", "over.qcow2"], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img create -f qcow writes the bytes qemu-img create writes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-f", "qcow", "base.qcow", "10M"], dir);
      const sets: string[][] = [["1000"], ["5G"], ["-b", "base.qcow", "-F", "qcow", "20M"]];
      for (const [i, extra] of sets.entries()) {
        const a = await vmkitOk(["create", "-f", "qcow", `ours${i}.qcow`, ...extra], dir);
        const b = await qemuOk(["create", "-f", "qcow", `theirs${i}.qcow`, ...extra], dir);
        assert.equal(a.stdout.replace("ours", "theirs"), b.stdout);
        assert.deepEqual(
          readBytes(path.join(dir, `ours${i}.qcow`)),
          readBytes(path.join(dir, `theirs${i}.qcow`)),
          `create -f qcow ${extra.join(" ")}`,
        );
        if (i === 2) await assertSameView(`ours${i}.qcow`, dir, true);
      }
      await qemuOk(["-f", "qcow", "-c", "write -P 0x61 0 64K", "ours1.qcow"], dir, "qemu-io");
      await sameResult(["map", "--output=json", "ours1.qcow"], dir);
    } finally {
      await cleanup();
    }
  },
});

/**
 * Writes of every alignment around the 4 KiB sparse grid: data, zeroes written as data
 * (`write -P 0`, which qemu-img keeps as data in the file) and untouched ranges that
 * stay holes in the vhdx file inside allocated blocks, plus blocks never allocated.
 */
const QEMU_IO_WRITES = [
  "write -P 0x11 0 1K", // data, then a hole to the end of the 1 MiB block
  "write -P 0x22 1M 5K", // data ending off the 4 KiB grid
  "write -P 0x33 1060K 3K", // a hole of 31 KiB between two data runs
  "write -P 0 2M 64K", // zeroes as data
  "write -P 0x44 2112K 512", // one sector after the written zeroes
  "write -P 0x55 3M 1K", // then 1 MiB untouched ...
  "write -P 0x66 5M 1M", // ... and block 4 never allocated
  "write -P 0x77 7167K 1K", // data at the very end of the image
];

Deno.test({
  name: `img convert of vhdx holes and unallocated blocks writes what qemu-img writes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-f", "vhdx", "-o", "block_size=1M", "h.vhdx", "7M"], dir);
      const writes = QEMU_IO_WRITES.flatMap((w) => ["-c", w]);
      await qemuOk(["-f", "vhdx", ...writes, "h.vhdx"], dir, "qemu-io");
      // qemu-img also lays its zeroes out as holes: a converted bench-like image.
      await qemuOk(["convert", "-f", "vhdx", "-O", "raw", "h.vhdx", "h.raw"], dir);
      await qemuOk(["convert", "-f", "raw", "-O", "vhdx", "h.raw", "q.vhdx"], dir);
      // The same images with every hole written out as zeroes: vmkit reads and scans them.
      for (const name of ["h.vhdx", "q.vhdx"]) {
        await Deno.writeFile(path.join(dir, `dense-${name}`), readBytes(path.join(dir, name)));
      }
      const mapOf = async (f: string) =>
        (await qemuOk(["map", "--output=json", "-f", "raw", f], dir)).stdout;
      const cases: [string, string[]][] = [
        ["default", []],
        ["-S 3072", ["-S", "3072"]],
        ["-S 64k", ["-S", "64k"]],
        ["-S 0", ["-S", "0"]],
      ];
      for (const src of ["h.vhdx", "q.vhdx"]) {
        for (const [label, opts] of cases) {
          const what = `${src} ${label}`;
          const out = (tag: string) => path.join(dir, `out-${tag}.raw`);
          for (const tag of ["q", "v", "dense"]) await Deno.remove(out(tag)).catch(() => {});
          await qemuOk(["convert", ...opts, "-f", "vhdx", "-O", "raw", src, out("q")], dir);
          await vmkitOk(["convert", ...opts, "-f", "vhdx", "-O", "raw", src, out("v")], dir);
          await vmkitOk([
            "convert",
            ...opts,
            "-f",
            "vhdx",
            "-O",
            "raw",
            `dense-${src}`,
            out("dense"),
          ], dir);
          assert.deepEqual(readBytes(out("v")), readBytes(out("q")), `bytes of ${what}`);
          // Skipping the holes unread leaves the same ranges unwritten as reading and
          // scanning them does.
          assert.equal(await mapOf(out("v")), await mapOf(out("dense")), `allocation of ${what}`);
          // And as qemu-img, whose sparse rules vmkit follows sector by sector (-S 3072
          // included: its runs end on 2 KiB boundaries).
          assert.equal(
            await mapOf(out("v")),
            await mapOf(out("q")),
            `qemu's allocation of ${what}`,
          );
        }
        // Into an existing image that does not read as zero (-n): zero runs are written.
        const q = path.join(dir, "n-q.raw");
        const v = path.join(dir, "n-v.raw");
        for (const f of [q, v]) {
          await Deno.writeFile(f, new Uint8Array(7 * MiB).fill(0xee));
        }
        await qemuOk(["convert", "-n", "-f", "vhdx", "-O", "raw", src, q], dir);
        await vmkitOk(["convert", "-n", "-f", "vhdx", "-O", "raw", src, v], dir);
        assert.deepEqual(readBytes(v), readBytes(q), `bytes of ${src} -n`);
      }
      // map still shows everything as data, as qemu-img does for vhdx.
      const theirs = await qemuOk(["map", "--output=json", "h.vhdx"], dir);
      const ours = await vmkitOk(["map", "--output=json", "h.vhdx"], dir);
      assert.equal(ours.stdout, theirs.stdout);
    } finally {
      await cleanup();
    }
  },
});
