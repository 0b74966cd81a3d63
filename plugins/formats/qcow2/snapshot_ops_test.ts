// Tests of qcow2 internal snapshots: create, apply, delete and the checker's view of them

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../../core/block/graph.ts";
import { Registry } from "../../../core/plugin.ts";
import fileProtocol from "../../protocols/file.ts";
import raw from "../raw.ts";
import qcow2 from "./mod.ts";

async function withImage(fn: (g: BlockGraph, img: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "vmkit-qcow2-snap-" });
  try {
    const g = new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2]));
    const img = path.join(dir, "a.qcow2");
    await g.createImage("qcow2", img, 1 << 20, { cluster_size: 4096 });
    await fn(g, img);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("Qcow2Node.snapshotApply() brings back the data of snapshotCreate() and check() stays clean", async () => {
  await withImage(async (g, img) => {
    const node = await g.openImage(img);
    await node.write(0, new Uint8Array(8192).fill(1));
    const info = await node.snapshotCreate!("s1", { dateSec: 1, dateNsec: 2 });
    assert.equal(info.id, "1");
    await node.write(4096, new Uint8Array(4096).fill(2));
    await node.snapshotApply!("s1");
    const back = new Uint8Array(8192);
    await node.read(0, back);
    assert.ok(back.every((b) => b === 1));
    const r = await node.check!("none");
    assert.equal(r.corruptions + r.leaks, 0, r.messages.join("\n"));
    await node.close();
  });
});

Deno.test("Qcow2Node.snapshotDelete() frees what only the snapshot used", async () => {
  await withImage(async (g, img) => {
    const node = await g.openImage(img);
    await node.write(0, new Uint8Array(4096).fill(3));
    await node.snapshotCreate!("s1");
    await node.write(0, new Uint8Array(4096).fill(4));
    await node.snapshotDelete!("1");
    assert.deepEqual(node.snapshots!(), []);
    const r = await node.check!("none");
    assert.equal(r.corruptions + r.leaks, 0, r.messages.join("\n"));
    await assert.rejects(() => node.snapshotApply!("s1"), /Failed to load snapshot/);
    await node.close();
  });
});

Deno.test("Qcow2Node.snapshotLoadTmp() reads the snapshot's data and leaves the file unchanged", async () => {
  await withImage(async (g, img) => {
    const rw = await g.openImage(img);
    await rw.write(0, new Uint8Array(8192).fill(1));
    await rw.snapshotCreate!("s1", { dateSec: 1, dateNsec: 2 });
    await rw.write(0, new Uint8Array(4096).fill(2));
    await rw.close();
    const before = Deno.readFileSync(img);
    const node = await g.openImage(img, { readOnly: true });
    assert.equal(await node.snapshotLoadTmp!("nosuch", undefined), false);
    // By id, by name, and both must match when both are given.
    assert.equal(await node.snapshotLoadTmp!("1", "other"), false);
    assert.equal(await node.snapshotLoadTmp!(undefined, "s1"), true);
    const back = new Uint8Array(8192);
    await node.read(0, back);
    assert.ok(back.every((b) => b === 1));
    await node.close();
    assert.deepEqual(Deno.readFileSync(img), before);
    const writable = await g.openImage(img);
    await assert.rejects(() => writable.snapshotLoadTmp!("1", undefined), /not readonly/);
    await writable.close();
  });
});
