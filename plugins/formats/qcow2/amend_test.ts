// Tests of qcow2 amend: compat changes, refcount width, lazy refcounts and the refusals

import assert from "node:assert/strict";
import * as path from "node:path";
import type { BlockNode } from "../../../core/block/driver.ts";
import { BlockGraph } from "../../../core/block/graph.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { Registry } from "../../../core/plugin.ts";
import fileProtocol from "../../protocols/file.ts";
import raw from "../raw.ts";
import { parseCompat } from "./amend.ts";
import qcow2 from "./mod.ts";

async function withImage(
  create: ParsedOptions,
  fn: (g: BlockGraph, img: string) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "vmkit-qcow2-amend-" });
  try {
    const g = new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2]));
    const img = path.join(dir, "a.qcow2");
    await g.createImage("qcow2", img, 1 << 20, { cluster_size: 4096, ...create });
    await fn(g, img);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

async function fill(node: BlockNode): Promise<void> {
  await node.write(0, new Uint8Array(8192).fill(1));
  await node.writeZeroes(4096, 4096);
  await node.writeZeroes(65536, 4096);
  await node.write(200000, new Uint8Array(5000).fill(7));
}

async function readAll(node: BlockNode): Promise<Uint8Array> {
  const buf = new Uint8Array(node.size());
  await node.read(0, buf);
  return buf;
}

async function assertClean(node: BlockNode): Promise<void> {
  const res = await node.check!("none");
  assert.deepEqual([res.corruptions, res.leaks, res.messages], [0, 0, []]);
}

Deno.test("parseCompat() reads QEMU's compat spellings and names a bad one", () => {
  assert.equal(parseCompat("0.10"), 2);
  assert.equal(parseCompat("v3"), 3);
  assert.throws(() => parseCompat("0.9"), /^OptionError: Unknown compatibility level 0\.9$/);
});

Deno.test("Qcow2Node.amend() downgrades to compat 0.10 and back, keeping the guest data", async () => {
  await withImage({}, async (g, img) => {
    let node = await g.openImage(img);
    await fill(node);
    const want = await readAll(node);
    await node.amend!({ compat: "0.10" });
    await node.close();
    node = await g.openImage(img);
    assert.equal(node.formatInfo!()?.data.compat, "0.10");
    assert.deepEqual(await readAll(node), want);
    await assertClean(node);
    await node.amend!({ compat: "1.1", lazy_refcounts: true });
    assert.equal(node.formatInfo!()?.data["lazy-refcounts"], true);
    await node.close();
    node = await g.openImage(img, { readOnly: true });
    assert.deepEqual(await readAll(node), want);
    await node.close();
  });
});

Deno.test("Qcow2Node.amend() rebuilds refcounts at a new width that check() accepts", async () => {
  await withImage({}, async (g, img) => {
    let node = await g.openImage(img);
    await fill(node);
    const want = await readAll(node);
    for (const bits of [64, 1, 8]) {
      await node.amend!({ refcount_bits: bits });
      assert.equal(node.formatInfo!()?.data["refcount-bits"], bits);
      await assertClean(node);
      await node.write(500000, new Uint8Array(4096).fill(bits));
      want.fill(bits, 500000, 504096);
    }
    await node.close();
    node = await g.openImage(img);
    assert.deepEqual(await readAll(node), want);
    await assertClean(node);
    await node.close();
  });
});

Deno.test("Qcow2Node.amend() refuses what the image cannot become, with QEMU's words", async () => {
  await withImage({ refcount_bits: 8 }, async (g, img) => {
    const node = await g.openImage(img);
    try {
      await node.write(0, new Uint8Array(4096).fill(1));
      await node.snapshotCreate!("s1");
      await node.snapshotCreate!("s2");
      await assert.rejects(
        node.amend!({ compat: "0.10" }),
        /compat=0\.10 requires refcount_bits=16/,
      );
      await assert.rejects(
        node.amend!({ lazy_refcounts: true, compat: "0.10" }),
        /Lazy refcounts only supported with compatibility level 1\.1 and above/,
      );
      await assert.rejects(
        node.amend!({ refcount_bits: 1 }),
        /Cannot decrease refcount entry width to 1 bits: Cluster at offset 0x[0-9a-f]+ has a refcount of 3/,
      );
      await assert.rejects(node.amend!({ backing_file: "x" }), /Cannot amend the backing file/);
      await assert.rejects(
        node.amend!({ data_file: "x" }),
        /data-file can only be set for images that use an external data file/,
      );
      await assertClean(node);
    } finally {
      await node.close();
    }
  });
});
