// HMP `commit` on an open graph: the running read-only backing node reads what a
// read-write node of the same file wrote, and the emptied top reads through it

import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../core/block/graph.ts";
import { Registry } from "../../core/plugin.ts";
import qcow2 from "../../plugins/formats/qcow2/mod.ts";
import raw from "../../plugins/formats/raw.ts";
import fileProtocol from "../../plugins/protocols/file.ts";
import { runCommand, tempDir } from "../../tests/test_util.ts";
import { commitToBacking } from "./monitor.ts";

async function run(program: string, args: string[]): Promise<string> {
  const r = await runCommand(program, args);
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Asserts every byte of `buf` is `byte` (without node:assert's slow diff of big arrays). */
function assertFilled(buf: Uint8Array, byte: number, what: string): void {
  const bad = buf.findIndex((b) => b !== byte);
  assert.equal(bad, -1, `${what}: byte ${bad} is ${buf[bad]}, not ${byte}`);
}

Deno.test({
  name: "commit: the graph's read-only backing node sees the committed data, the top is empty",
  ignore: skipUnless(import.meta, "qemu-img", "qemu-io"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    const graph = () => new BlockGraph(new Registry().addAll([fileProtocol, raw, qcow2]));
    try {
      const base = path.join(dir, "base.qcow2");
      const top = path.join(dir, "top.qcow2");
      await run("qemu-img", ["create", "-q", "-f", "qcow2", base, "1G"]);
      await run("qemu-io", ["-c", "write -P 0x41 0 64k", base]);
      await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top]);
      // 900M lies under an L1 entry the base has not used: its L1 table changes.
      await run("qemu-io", ["-c", "write -P 0x42 1M 64k", "-c", "write -P 0x44 900M 64k", top]);
      const node = await graph().openImage(top, { readOnly: false });
      try {
        assert.equal(node.backing?.readOnly, true);
        // The backing node caches its L1 and the L2 table of the first 512M.
        const buf = new Uint8Array(65536);
        await node.backing!.read(1 << 20, buf);
        assertFilled(buf, 0, "read");
        await node.backing!.read(900 << 20, buf);
        assertFilled(buf, 0, "read");
        // As cli/system/mod.ts opens it: the chain already holds the base's image locks.
        await commitToBacking(
          node,
          () => graph().openImage(base, { readOnly: false, protocolOptions: { locking: "off" } }),
        );
        // The top holds nothing now; what it read before comes from the base.
        for (const at of [1 << 20, 900 << 20]) {
          assert.equal((await node.blockStatus(at, 65536)).allocated, false);
        }
        await node.read(0, buf);
        assertFilled(buf, 0x41, "read");
        await node.read(1 << 20, buf);
        assertFilled(buf, 0x42, "read");
        await node.read(900 << 20, buf);
        assertFilled(buf, 0x44, "read");
        // The guest keeps writing to the emptied top.
        await node.write(2 << 20, new Uint8Array(4096).fill(0x45));
        await node.flush();
      } finally {
        await node.close();
      }
      assert.match(await run("qemu-img", ["check", top]), /No errors were found/);
      assert.match(await run("qemu-img", ["check", base]), /No errors were found/);
      const read = await run("qemu-io", [
        "-c",
        "read -P 0x42 1M 64k",
        "-c",
        "read -P 0x44 900M 64k",
        "-c",
        "read -P 0x45 2M 4k",
        top,
      ]);
      assert.doesNotMatch(read, /Pattern verification failed/, read);
    } finally {
      await cleanup();
    }
  },
});
