// BlockGraph with the real file protocol and raw format, plus a tiny overlay format made here

import assert from "node:assert/strict";
import * as path from "node:path";
import type { BlockNode, OpenContext } from "../core/block/driver.ts";
import { BlockGraph } from "../core/block/graph.ts";
import { errorChainMessage } from "../core/errors.ts";
import { type FormatDescriptor, Registry } from "../core/plugin.ts";
import { RawNode } from "../plugins/formats/raw.ts";
import raw from "../plugins/formats/raw.ts";
import file from "../plugins/protocols/file.ts";
import hostDevice from "../plugins/protocols/host_device.ts";
import { tempDir } from "./test_util.ts";

// A format whose first 512 bytes are "OVLY" + a backing name; guest bytes follow.
const HEADER = 512;
const encoder = new TextEncoder();
const overlay: FormatDescriptor = {
  kind: "format",
  name: "overlay",
  summary: "test overlay",
  options: [],
  probe: (h) => (h[0] === 0x4f && h[1] === 0x56 && h[2] === 0x4c && h[3] === 0x59 ? 100 : 0),
  async create(filename, size, opts, ctx) {
    await ctx.createFile(filename, HEADER + size, {});
    const node = await ctx.openFile(filename, { readOnly: false });
    await node.write(0, encoder.encode(`OVLY${opts.backing_file ?? ""}\0`));
    await node.close();
  },
  async open(fileNode: BlockNode, _opts, ctx: OpenContext) {
    const header = new Uint8Array(HEADER);
    await fileNode.read(0, header);
    const name = new TextDecoder().decode(header.subarray(4, header.indexOf(0, 4)));
    const backing = name && !ctx.options.noBacking ? await ctx.openBacking(name, undefined) : null;
    const node = new RawNode(fileNode, { offset: HEADER });
    return Object.assign(node, { driver: "overlay", backing, backingFilename: name || undefined });
  },
};

function graph(): BlockGraph {
  return new BlockGraph(new Registry().addAll([file, hostDevice, raw, overlay]));
}

Deno.test("BlockGraph.openImage() probes raw for a file no format claims", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await g.createImage("raw", path.join(dir, "a.raw"), 1 << 20, {});
    const node = await g.openImage(path.join(dir, "a.raw"), { readOnly: true });
    assert.equal(node.driver, "raw");
    assert.equal(node.size(), 1 << 20);
    await node.close();
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() resolves a relative backing name against the image's directory", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await Deno.mkdir(path.join(dir, "sub"));
    await g.createImage("raw", path.join(dir, "base.raw"), 4096, {});
    await g.createImage("overlay", path.join(dir, "sub", "top.img"), 4096, {
      backing_file: "../base.raw",
    });
    const node = await g.openImage(path.join(dir, "sub", "top.img"), { readOnly: true });
    assert.equal(node.backing?.driver, "raw");
    assert.equal(node.backing?.filename, `${dir}/sub/../base.raw`);
    await node.close();
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() reports a missing backing file with its resolved name", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await g.createImage("overlay", path.join(dir, "top.img"), 4096, { backing_file: "gone.raw" });
    await assert.rejects(g.openImage(path.join(dir, "top.img")), (e) => {
      assert.match(
        errorChainMessage(e),
        /^Could not open '.*top\.img': Could not open backing file: Could not open '.*gone\.raw': No such file or directory$/,
      );
      return true;
    });
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() refuses a backing loop instead of recursing", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await g.createImage("overlay", path.join(dir, "a.img"), 4096, { backing_file: "b.img" });
    await g.createImage("overlay", path.join(dir, "b.img"), 4096, { backing_file: "a.img" });
    await assert.rejects(g.openImage(path.join(dir, "a.img")), (e) => {
      assert.match(errorChainMessage(e), /Backing file loop/);
      return true;
    });
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() names an unknown format as qemu-img does", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await g.createImage("raw", path.join(dir, "a.raw"), 4096, {});
    await assert.rejects(
      g.openImage(path.join(dir, "a.raw"), { format: "vmdk9" }),
      (e) => /Unknown file format 'vmdk9'/.test(errorChainMessage(e)),
    );
  } finally {
    await cleanup();
  }
});

Deno.test("FileNode.writeZeroes() punches a hole that block status reports as zero", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    const name = path.join(dir, "z.raw");
    await g.createImage("raw", name, 1 << 20, {});
    const node = await g.openImage(name, { format: "raw" });
    await node.write(0, new Uint8Array(1 << 20).fill(7));
    await node.writeZeroes(65536, 65536, { unmap: true });
    const s = await node.blockStatus(65536, 65536);
    assert.equal(s.zero, true);
    const back = new Uint8Array(65536);
    await node.read(65536, back);
    assert.ok(back.every((b) => b === 0));
    await node.read(0, back);
    assert.ok(back.every((b) => b === 7));
    await node.close();
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() opens a character device through host_device, as QEMU's probe_device chooses", async () => {
  const g = graph();
  assert.equal(g.protocolFor("/dev/null").name, "host_device");
  assert.equal(g.protocolFor("/etc/hostname").name, "file");
  const node = await g.openImage("/dev/null", { format: "raw", readOnly: true });
  assert.equal(node.driver, "raw");
  assert.equal(node.file?.driver, "host_device");
  assert.equal(node.size(), 0);
  await node.close();
});

Deno.test("BlockGraph.openImage() carries a named protocol through, and file refuses a device in QEMU's words", async () => {
  const g = graph();
  await assert.rejects(
    g.openImage("/dev/null", { format: "raw", protocol: "file", readOnly: true }),
    (e) =>
      errorChainMessage(e) ===
        "Could not open '/dev/null': 'file' driver requires '/dev/null' to be a regular file",
  );
  const { dir, cleanup } = await tempDir();
  try {
    const name = path.join(dir, "a.raw");
    await g.createImage("raw", name, 1 << 20, {});
    await assert.rejects(
      g.openImage(name, { format: "raw", protocol: "host_device" }),
      (e) =>
        errorChainMessage(e) ===
          `Could not open '${name}': 'host_device' driver requires '${name}' to be either a character or block device`,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() makes the protocol node the image when the format names a protocol (driver=file)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    const name = path.join(dir, "a.raw");
    await g.createImage("raw", name, 1 << 20, {});
    const node = await g.openImage(name, { format: "file" });
    assert.equal(node.driver, "file");
    assert.equal(node.file, null);
    assert.equal(node.restrictsBlockZero, undefined);
    await node.write(0, new Uint8Array(512).fill(1));
    await node.close();
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.openImage() keeps the probed raw node's block 0 guard on a host device", async () => {
  const g = graph();
  const node = await g.openImage("/dev/null", {});
  assert.equal(node.driver, "raw");
  assert.equal(node.restrictsBlockZero, true);
  await node.close();
});

Deno.test("BlockGraph.openImage() with autoReadOnly opens a directory read-only and refuses it as no regular file", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const g = graph();
    await assert.rejects(
      g.openImage(dir, {}),
      (e) =>
        errorChainMessage(e) === `Could not open '${dir}': Could not open '${dir}': Is a directory`,
    );
    await assert.rejects(
      g.openImage(dir, { autoReadOnly: true }),
      (e) =>
        errorChainMessage(e) ===
          `Could not open '${dir}': 'file' driver requires '${dir}' to be a regular file`,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("BlockGraph.createImage() on a device goes through host_device, which cannot grow it, as QEMU says", async () => {
  const g = graph();
  await assert.rejects(
    g.createImage("raw", "/dev/null", 1 << 20, {}),
    (e) => errorChainMessage(e) === "Cannot grow device files",
  );
  // Nothing to grow: the device is left as it is and the create succeeds.
  await g.createImage("raw", "/dev/null", 0, {});
});
