// Tests of qcow2 bitmaps in use: marked in use while open for writing, fed by writes, stored at close

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../../core/block/graph.ts";
import { errorChainMessage } from "../../../core/errors.ts";
import { Registry } from "../../../core/plugin.ts";
import fileProtocol from "../../protocols/file.ts";
import raw from "../raw.ts";
import qcow2 from "./mod.ts";
import type { BlockNode } from "../../../core/block/driver.ts";
import type { Qcow2Node } from "./node.ts";

async function withImage(fn: (g: BlockGraph, img: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "vmkit-qcow2-bitmaps-" });
  try {
    const g = new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2]));
    const img = path.join(dir, "a.qcow2");
    await g.createImage("qcow2", img, 8 << 20, {});
    await fn(g, img);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** The bitmaps `info` lists: name and flags. */
function flags(node: BlockNode): string[][] {
  const bitmaps = (node.formatInfo?.()?.data.bitmaps ?? []) as { name: string; flags: string[] }[];
  return bitmaps.map((b) => [b.name, ...b.flags]);
}

Deno.test("Qcow2Bitmaps.store() keeps what writes dirtied, and an open for writing marks bitmaps in use", async () => {
  await withImage(async (g, img) => {
    let node = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    await node.dirtyBitmaps.addBitmap("live", 65536);
    await node.dirtyBitmaps.addBitmap("frozen", 4096, { disabled: true });
    await node.write(70000, new Uint8Array(10));
    await node.close();

    // Stored newest first, as QEMU walks its bitmaps.
    // A reader beside a writer in one process shares everything (-U), or the locks refuse it.
    const reader = await g.openImage(img, { readOnly: true, forceShare: true }) as Qcow2Node;
    assert.deepEqual(flags(reader), [["frozen"], ["live", "auto"]]);
    const writer = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    // The reader sees what is on disk now: both in use until the writer closes.
    assert.deepEqual(flags(reader), [["frozen", "in-use"], ["live", "in-use", "auto"]]);
    await writer.writeZeroes(3 << 20, 65536);
    await writer.discard(5 << 20, 65536);
    await writer.close();
    await reader.close();

    node = await g.openImage(img, { readOnly: true }) as Qcow2Node;
    const [live, frozen] = node.dirtyBitmaps!.bitmaps();
    assert.deepEqual([...live.dirtyRanges()], [[65536, 65536], [3 << 20, 65536], [5 << 20, 65536]]);
    assert.equal(frozen.name, "frozen");
    assert.ok(frozen.isEmpty());
    const check = await node.check("none");
    assert.equal(check.leaks + check.corruptions, 0, check.messages.join("\n"));
    await node.close();
  });
});

Deno.test("Qcow2Bitmaps.removeBitmap() frees the directory, table and data clusters", async () => {
  await withImage(async (g, img) => {
    let node = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    await node.dirtyBitmaps.addBitmap("b", 65536);
    await node.write(0, new Uint8Array(65536 * 3));
    await node.close();
    node = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    await node.dirtyBitmaps.removeBitmap("b");
    assert.deepEqual(node.dirtyBitmaps.bitmaps(), []);
    await node.close();
    node = await g.openImage(img, { readOnly: true }) as Qcow2Node;
    assert.deepEqual(flags(node), []);
    const check = await node.check("none");
    assert.equal(check.leaks + check.corruptions, 0, check.messages.join("\n"));
    await node.close();
  });
});

Deno.test("Qcow2Node.truncate() refuses while a bitmap is in use, and resizes the others", async () => {
  await withImage(async (g, img) => {
    let node = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    await node.dirtyBitmaps.addBitmap("b", 65536);
    await node.write(7 << 20, new Uint8Array(512));
    await node.truncate(16 << 20);
    await node.write(15 << 20, new Uint8Array(512));
    await node.close();
    node = await g.openImage(img, { readOnly: true }) as Qcow2Node;
    assert.deepEqual([...node.dirtyBitmaps.bitmaps()[0].dirtyRanges()], [
      [7 << 20, 65536],
      [15 << 20, 65536],
    ]);
    await node.close();
    // A bitmap left in use (a writer that never closed) cannot follow a resize.
    const dead = await g.openImage(img, { readOnly: false }) as Qcow2Node;
    // The dead writer's process would have taken its locks with it: this open takes none.
    const other = await g.openImage(img, {
      readOnly: false,
      protocolOptions: { locking: "off" },
    }) as Qcow2Node;
    await assert.rejects(
      () => other.truncate(32 << 20),
      (e) => errorChainMessage(e).includes("Bitmap 'b' is inconsistent and cannot be used"),
    );
    await other.close();
    await dead.close();
  });
});
