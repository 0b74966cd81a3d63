// Tests of the qcow2 node: open rules, dirty repair, resize, snapshots and stats

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { BlockGraph } from "../../../core/block/graph.ts";
import { errorChainMessage } from "../../../core/errors.ts";
import { Registry } from "../../../core/plugin.ts";
import fileProtocol from "../../protocols/file.ts";
import raw from "../raw.ts";
import qcow2 from "./mod.ts";

function setup(): { g: BlockGraph; dir: string; img: string } {
  const dir = Deno.makeTempDirSync({ prefix: "vmkit-qcow2-node-" });
  return {
    g: new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2])),
    dir,
    img: path.join(dir, "a.qcow2"),
  };
}

function patch(file: string, offset: number, bytes: number[]): void {
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, new Uint8Array(bytes), 0, bytes.length, offset);
  fs.closeSync(fd);
}

Deno.test("openQcow2() refuses an unknown incompatible feature bit by name", async () => {
  const { g, dir, img } = setup();
  try {
    await g.createImage("qcow2", img, 1 << 20, {});
    patch(img, 72, [0, 0, 0, 0, 0, 0, 0, 0x20]);
    await assert.rejects(
      () => g.openImage(img),
      (e) =>
        errorChainMessage(e).endsWith(
          "Unsupported qcow2 feature(s): Unknown incompatible feature: 20",
        ),
    );
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("openQcow2() opens a corrupt image read-only but not read/write", async () => {
  const { g, dir, img } = setup();
  try {
    await g.createImage("qcow2", img, 1 << 20, {});
    patch(img, 72, [0, 0, 0, 0, 0, 0, 0, 2]);
    await assert.rejects(
      () => g.openImage(img),
      (e) => /Image is corrupt; cannot be opened read\/write/.test(errorChainMessage(e)),
    );
    const node = await g.openImage(img, { readOnly: true });
    assert.equal(node.formatInfo!()!.data.corrupt, true);
    await node.close();
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("openQcow2() repairs a dirty lazy-refcount image opened read/write", async () => {
  const { g, dir, img } = setup();
  try {
    await g.createImage("qcow2", img, 4 << 20, g.parseCreateOptions("qcow2", "lazy_refcounts=on"));
    const node = await g.openImage(img);
    await node.write(0, new Uint8Array(70000).fill(3));
    assert.equal(node.isDirty!(), true);
    // Simulate a crash: flush data and L2 tables but never clear the dirty bit.
    await node.flush();
    // The crashed writer's locks would have gone with its process: -U, then no locks.
    const ro = await g.openImage(img, { readOnly: true, forceShare: true });
    assert.equal(ro.isDirty!(), true);
    await ro.close();
    const rw = await g.openImage(img, { protocolOptions: { locking: "off" } });
    assert.equal(rw.isDirty!(), false);
    const result = await rw.check!("none");
    assert.deepEqual([result.corruptions, result.leaks], [0, 0]);
    await rw.close();
    await node.close();
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("Qcow2Node.truncate() grows and shrinks the virtual disk", async () => {
  const { g, dir, img } = setup();
  try {
    await g.createImage("qcow2", img, 1 << 20, {});
    const node = await g.openImage(img);
    await node.write(900000, new Uint8Array(1000).fill(9));
    await node.truncate(600 << 20);
    assert.equal(node.size(), 600 << 20);
    await node.write((600 << 20) - 4096, new Uint8Array(4096).fill(1));
    await node.truncate(1 << 20, { shrink: true });
    const buf = new Uint8Array(1000);
    await node.read(900000, buf);
    assert.ok(buf.every((b) => b === 9));
    const result = await node.check!("none");
    assert.deepEqual([result.corruptions, result.leaks], [0, 0], result.messages.join("\n"));
    await node.close();
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("Qcow2Node.stats() counts L2 cache hits and the size covering the disk", async () => {
  const { g, dir, img } = setup();
  try {
    await g.createImage("qcow2", img, 1 << 30, {});
    const node = await g.openImage(img, { readOnly: true });
    const buf = new Uint8Array(4096);
    await node.read(0, buf);
    const stats = node.stats!();
    assert.equal(stats.l2CacheFullCoverageBytes, 131072);
    await node.close();
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
