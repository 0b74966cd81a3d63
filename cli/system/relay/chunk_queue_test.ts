import assert from "node:assert/strict";
import { ChunkQueue } from "./chunk_queue.ts";

Deno.test("ChunkQueue.read() splits chunks across reads, waits for more, and ends with null", async () => {
  const q = new ChunkQueue();
  q.push(new Uint8Array([1, 2, 3, 4, 5]));
  const buf = new Uint8Array(3);
  assert.equal(await q.read(buf), 3);
  assert.deepEqual([...buf], [1, 2, 3]);
  assert.equal(q.buffered, 2);
  assert.equal(await q.read(buf), 2);
  assert.deepEqual([...buf.subarray(0, 2)], [4, 5]);
  const waiting = q.read(buf);
  q.push(new Uint8Array([6]));
  assert.equal(await waiting, 1);
  assert.equal(buf[0], 6);
  q.push(new Uint8Array([7]));
  q.end();
  assert.equal(await q.read(buf), 1, "what was queued before the end is still read");
  assert.equal(await q.read(buf), null);
});
