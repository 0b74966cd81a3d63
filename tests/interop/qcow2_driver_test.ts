// Interop tests of the qcow2 driver against the system qemu-img, in both directions

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { BlockGraph } from "../../core/block/graph.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { Registry } from "../../core/plugin.ts";
import qcow2 from "../../plugins/formats/qcow2/mod.ts";
import raw from "../../plugins/formats/raw.ts";
import fileProtocol from "../../plugins/protocols/file.ts";

const QEMU_IMG = "/usr/bin/qemu-img";
const haveQemuImg = fs.existsSync(QEMU_IMG);
const why = haveQemuImg ? "" : " (ignored: qemu-img is not installed)";
const MIB = 1024 * 1024;

function graph(): BlockGraph {
  return new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2]));
}

function qemuImg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const out = new Deno.Command(QEMU_IMG, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function tmpDir(): string {
  return Deno.makeTempDirSync({ prefix: "vmkit-qcow2-" });
}

/** Guest content with data, zero runs and repeated runs, the same for a given seed. */
function pattern(size: number, seed: number): Uint8Array {
  const buf = new Uint8Array(size);
  let x = seed * 2654435761 >>> 0;
  for (let off = 0; off < size;) {
    x = (x * 1103515245 + 12345) >>> 0;
    const run = 512 * (1 + (x % 300));
    const kind = (x >>> 16) % 4;
    const end = Math.min(size, off + run);
    if (kind === 1) {
      for (let i = off; i < end; i++) buf[i] = (i * 7 + seed) & 0xff;
    } else if (kind === 2) {
      buf.fill((seed + off / 512) & 0xff, off, end);
    } else if (kind === 3) {
      for (let i = off; i < end; i++) {
        x = (x * 1664525 + 1013904223) >>> 0;
        buf[i] = x >>> 24;
      }
    }
    off = end;
  }
  return buf;
}

async function readAll(node: BlockNode): Promise<Uint8Array> {
  const out = new Uint8Array(node.size());
  for (let off = 0; off < out.length; off += MIB) {
    await node.read(off, out.subarray(off, Math.min(out.length, off + MIB)));
  }
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const READ_CASES: [string, string[]][] = [
  ["default v3", []],
  ["compat=0.10", ["-o", "compat=0.10"]],
  ["cluster_size=512", ["-o", "cluster_size=512"]],
  ["cluster_size=2M", ["-o", "cluster_size=2M"]],
  ["extended_l2=on", ["-o", "extended_l2=on"]],
  ["refcount_bits=1", ["-o", "refcount_bits=1"]],
  ["refcount_bits=64", ["-o", "refcount_bits=64"]],
  ["zlib compressed", ["-c"]],
  ["zstd compressed", ["-c", "-o", "compression_type=zstd"]],
  ["compressed with 4k clusters", ["-c", "-o", "cluster_size=4k"]],
  ["data_file", ["-o", "data_file=DIR/data.raw"]],
];

for (const [name, args] of READ_CASES) {
  Deno.test({
    name: `qcow2 open() reads an image qemu-img convert wrote (${name}) as the raw source${why}`,
    ignore: !haveQemuImg,
    fn: async () => {
      const dir = tmpDir();
      try {
        const src = pattern(3 * MIB + 4096, 7);
        const rawPath = path.join(dir, "src.raw");
        const img = path.join(dir, "img.qcow2");
        fs.writeFileSync(rawPath, src);
        const conv = qemuImg(
          "convert",
          "-f",
          "raw",
          "-O",
          "qcow2",
          ...args.map((a) => a.replace("DIR", dir)),
          rawPath,
          img,
        );
        assert.equal(conv.code, 0, conv.stderr);
        const node = await graph().openImage(img, { readOnly: true });
        try {
          assert.equal(firstDifference(await readAll(node), src), -1);
          const result = await node.check!("none");
          assert.deepEqual([result.corruptions, result.leaks], [0, 0], result.messages.join("\n"));
        } finally {
          await node.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: `qcow2 open() reads a backing chain that qemu-img convert -B made${why}`,
  ignore: !haveQemuImg,
  fn: async () => {
    const dir = tmpDir();
    try {
      const base = pattern(2 * MIB, 3);
      const top = base.slice();
      top.set(pattern(300000, 9).subarray(0, 300000), 100000);
      top.fill(0, 1500000, 1700000);
      fs.writeFileSync(path.join(dir, "base.raw"), base);
      fs.writeFileSync(path.join(dir, "top.raw"), top);
      let r = qemuImg(
        "convert",
        "-O",
        "qcow2",
        path.join(dir, "base.raw"),
        path.join(dir, "base.qcow2"),
      );
      assert.equal(r.code, 0, r.stderr);
      r = qemuImg(
        "convert",
        "-O",
        "qcow2",
        "-B",
        "base.qcow2",
        "-F",
        "qcow2",
        path.join(dir, "top.raw"),
        path.join(dir, "top.qcow2"),
      );
      assert.equal(r.code, 0, r.stderr);
      const node = await graph().openImage(path.join(dir, "top.qcow2"), { readOnly: true });
      try {
        assert.equal(node.backingFilename, "base.qcow2");
        assert.equal(firstDifference(await readAll(node), top), -1);
      } finally {
        await node.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  },
});

/** Applies the same writes to our image and to an expected buffer. */
async function exercise(node: BlockNode, expected: Uint8Array, seed: number): Promise<void> {
  const cs = node.clusterSize ?? 65536;
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) >>> 0);
  for (let i = 0; i < 40; i++) {
    const len = 1 + (next() % (3 * cs));
    const off = next() % (expected.length - len);
    const kind = next() % 6;
    if (kind <= 3) {
      const data = pattern(len + (512 - (len % 512)), next() % 1000).subarray(0, len);
      await node.write(off, data);
      expected.set(data, off);
    } else if (kind === 4) {
      await node.writeZeroes(off, len, { unmap: (next() & 1) === 1 });
      expected.fill(0, off, off + len);
    } else {
      // A discard's content is undefined: zero it through writeZeroes afterwards to compare.
      await node.discard(off, len);
      await node.writeZeroes(off, len);
      expected.fill(0, off, off + len);
    }
  }
  await node.flush();
}

const WRITE_CASES = [
  "",
  "compat=0.10",
  "cluster_size=4k",
  "cluster_size=512",
  "extended_l2=on",
  "extended_l2=on,cluster_size=16k",
  "refcount_bits=1",
  "refcount_bits=2",
  "refcount_bits=4",
  "refcount_bits=8",
  "refcount_bits=32",
  "refcount_bits=64",
  "lazy_refcounts=on",
  "preallocation=metadata",
  "data_file=DIR/data.raw",
  "data_file=DIR/data.raw,data_file_raw=on",
];

for (const opts of WRITE_CASES) {
  Deno.test({
    name: `qcow2 write() leaves an image qemu-img check accepts and compare matches (${
      opts || "defaults"
    })${why}`,
    ignore: !haveQemuImg,
    fn: async () => {
      const dir = tmpDir();
      try {
        const g = graph();
        const img = path.join(dir, "img.qcow2");
        const size = 4 * MIB;
        await g.createImage(
          "qcow2",
          img,
          size,
          g.parseCreateOptions("qcow2", opts.replaceAll("DIR", dir)),
        );
        const expected = new Uint8Array(size);
        const node = await g.openImage(img);
        try {
          await exercise(node, expected, opts.length + 1);
          assert.equal(firstDifference(await readAll(node), expected), -1);
        } finally {
          await node.close();
        }
        fs.writeFileSync(path.join(dir, "expected.raw"), expected);
        const check = qemuImg("check", img);
        assert.equal(check.code, 0, check.stdout + check.stderr);
        assert.match(check.stdout, /No errors were found on the image/);
        const cmp = qemuImg(
          "compare",
          "-f",
          "qcow2",
          "-F",
          "raw",
          img,
          path.join(dir, "expected.raw"),
        );
        assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
        const reopened = await g.openImage(img, { readOnly: true });
        try {
          const ours = await reopened.check!("none");
          assert.deepEqual([ours.corruptions, ours.leaks], [0, 0], ours.messages.join("\n"));
        } finally {
          await reopened.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: `qcow2 write() copies partial clusters from the backing file${why}`,
  ignore: !haveQemuImg,
  fn: async () => {
    const dir = tmpDir();
    try {
      const base = pattern(2 * MIB, 5);
      fs.writeFileSync(path.join(dir, "base.raw"), base);
      const r = qemuImg(
        "convert",
        "-O",
        "qcow2",
        path.join(dir, "base.raw"),
        path.join(dir, "base.qcow2"),
      );
      assert.equal(r.code, 0, r.stderr);
      for (const extra of ["", ",extended_l2=on"]) {
        const g = graph();
        const top = path.join(dir, `top${extra ? "x" : ""}.qcow2`);
        await g.createImage(
          "qcow2",
          top,
          2 * MIB,
          g.parseCreateOptions("qcow2", `backing_file=base.qcow2,backing_fmt=qcow2${extra}`),
        );
        const expected = base.slice();
        const node = await g.openImage(top);
        try {
          await exercise(node, expected, 99);
          assert.equal(firstDifference(await readAll(node), expected), -1);
        } finally {
          await node.close();
        }
        fs.writeFileSync(path.join(dir, "expected.raw"), expected);
        const check = qemuImg("check", top);
        assert.equal(check.code, 0, check.stdout + check.stderr);
        const cmp = qemuImg(
          "compare",
          "-f",
          "qcow2",
          "-F",
          "raw",
          top,
          path.join(dir, "expected.raw"),
        );
        assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  },
});

for (const type of ["zlib", "zstd"]) {
  Deno.test({
    name: `qcow2 writeCompressed() stores ${type} clusters qemu-img reads back${why}`,
    ignore: !haveQemuImg,
    fn: async () => {
      const dir = tmpDir();
      try {
        const g = graph();
        const img = path.join(dir, "c.qcow2");
        const size = 2 * MIB;
        await g.createImage(
          "qcow2",
          img,
          size,
          g.parseCreateOptions("qcow2", `compression_type=${type}`),
        );
        const expected = pattern(size, 11);
        const node = await g.openImage(img);
        try {
          for (let off = 0; off < size; off += 65536) {
            await node.writeCompressed!(off, expected.subarray(off, off + 65536));
          }
          // Overwrite part of a compressed cluster: it becomes a normal one.
          const patch = pattern(5000, 4);
          await node.write(70000, patch);
          expected.set(patch, 70000);
          assert.equal(firstDifference(await readAll(node), expected), -1);
        } finally {
          await node.close();
        }
        fs.writeFileSync(path.join(dir, "expected.raw"), expected);
        const check = qemuImg("check", img);
        assert.equal(check.code, 0, check.stdout + check.stderr);
        const cmp = qemuImg(
          "compare",
          "-f",
          "qcow2",
          "-F",
          "raw",
          img,
          path.join(dir, "expected.raw"),
        );
        assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: `qcow2 create() writes the same bytes as qemu-img create${why}`,
  ignore: !haveQemuImg,
  fn: async () => {
    const dir = tmpDir();
    try {
      const cases = [
        "",
        "compat=0.10",
        "cluster_size=512",
        "cluster_size=4k",
        "extended_l2=on",
        "refcount_bits=1",
        "refcount_bits=64,lazy_refcounts=on",
        "compression_type=zstd",
      ];
      for (const opts of cases) {
        const g = graph();
        const ours = path.join(dir, "ours.qcow2");
        const theirs = path.join(dir, "theirs.qcow2");
        await g.createImage("qcow2", ours, 64 * MIB, g.parseCreateOptions("qcow2", opts));
        const r = qemuImg(
          "create",
          "-q",
          "-f",
          "qcow2",
          ...(opts ? ["-o", opts] : []),
          theirs,
          "64M",
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(firstDifference(fs.readFileSync(ours), fs.readFileSync(theirs)), -1, opts);
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `qcow2 formatInfo() matches the format-specific data of qemu-img info${why}`,
  ignore: !haveQemuImg,
  fn: async () => {
    const dir = tmpDir();
    try {
      for (
        const opts of [
          "",
          "compat=0.10",
          "extended_l2=on,lazy_refcounts=on",
          `data_file=${dir}/d.raw,data_file_raw=on`,
        ]
      ) {
        const img = path.join(dir, "i.qcow2");
        const r = qemuImg("create", "-q", "-f", "qcow2", ...(opts ? ["-o", opts] : []), img, "1M");
        assert.equal(r.code, 0, r.stderr);
        const info = JSON.parse(qemuImg("info", "--output=json", img).stdout);
        const node = await graph().openImage(img, { readOnly: true });
        try {
          const ours = node.formatInfo!()!;
          assert.equal(JSON.stringify(ours.data), JSON.stringify(info["format-specific"].data));
          const human = qemuImg("info", img).stdout.split("Format specific information:\n")[1];
          assert.deepEqual(ours.humanLines, human.trimEnd().split("\n"));
        } finally {
          await node.close();
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `qcow2 measure() gives qemu-img measure's numbers${why}`,
  ignore: !haveQemuImg,
  fn: () => {
    const cases: [number, string][] = [
      [64 * MIB, ""],
      [10 * 1024 * MIB, "cluster_size=4k"],
      [1000 * MIB + 512, "cluster_size=512,refcount_bits=64"],
      [100 * 1024 * MIB, "extended_l2=on"],
      [3 * MIB, "cluster_size=2M,refcount_bits=1"],
    ];
    const g = graph();
    for (const [size, opts] of cases) {
      const r = qemuImg(
        "measure",
        "-O",
        "qcow2",
        "--size",
        String(size),
        ...(opts ? ["-o", opts] : []),
        "--output=json",
      );
      assert.equal(r.code, 0, r.stderr);
      const theirs = JSON.parse(r.stdout);
      const ours = qcow2.measure(size, 0, g.parseCreateOptions("qcow2", opts));
      assert.deepEqual([ours.required, ours.fullyAllocated], [
        theirs.required,
        theirs["fully-allocated"],
      ], opts);
    }
  },
});

Deno.test({
  name: `qcow2 check() reports leaks and corruptions with qemu-img's lines${why}`,
  ignore: !haveQemuImg,
  fn: async () => {
    const dir = tmpDir();
    try {
      const rawPath = path.join(dir, "p.raw");
      const src = new Uint8Array(4 * MIB);
      src.fill(0x5a, 70000, 70005);
      fs.writeFileSync(rawPath, src);
      const img = path.join(dir, "c.qcow2");
      assert.equal(
        qemuImg("convert", "-O", "qcow2", "-o", "cluster_size=4k", rawPath, img).code,
        0,
      );
      // Refcount block at 0x2000: cluster 4 (the L2 table) 0, cluster 5 (data) 2, cluster 7 1.
      const fd = fs.openSync(img, "r+");
      fs.writeSync(fd, new Uint8Array([0, 0, 0, 2]), 0, 4, 0x2000 + 8);
      fs.writeSync(fd, new Uint8Array([0, 1]), 0, 2, 0x2000 + 14);
      fs.closeSync(fd);
      const theirs = qemuImg("check", img);
      const node = await graph().openImage(img, { readOnly: true });
      try {
        const ours = await node.check!("none");
        assert.deepEqual(ours.messages, theirs.stderr.trimEnd().split("\n"));
        assert.equal(ours.corruptions, 3);
        assert.equal(ours.leaks, 1);
        assert.match(theirs.stdout, new RegExp(`Image end offset: ${ours.imageEndOffset}`));
      } finally {
        await node.close();
      }
      const node2 = await graph().openImage(img);
      try {
        const fixed = await node2.check!("all");
        assert.equal(fixed.failed, undefined);
        assert.equal(fixed.corruptionsFixed, 1);
        assert.equal(fixed.leaksFixed, 1);
      } finally {
        await node2.close();
      }
      const after = qemuImg("check", img);
      assert.equal(after.code, 0, after.stdout + after.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  },
});
