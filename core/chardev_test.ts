import assert from "node:assert/strict";
import { FileChardev, MemoryChardev, NullChardev, openChardev, StdioChardev } from "./chardev.ts";

Deno.test("MemoryChardev.connect() tells the frontend about queued input", () => {
  const dev = new MemoryChardev("c");
  dev.input("ab");
  let told = 0;
  dev.connect({ inputAvailable: () => told++ });
  assert.equal(told, 1);
  assert.equal(dev.pendingInput, 2);
  assert.deepEqual(dev.readInput(1), new Uint8Array([0x61]));
  assert.equal(dev.pendingInput, 1);
});

Deno.test("MemoryChardev.onOutput() sees the whole output after each write", () => {
  const dev = new MemoryChardev("c");
  const seen: string[] = [];
  dev.onOutput((t) => seen.push(t));
  dev.write(new Uint8Array([0x41]));
  dev.write(new Uint8Array([0x42]));
  assert.deepEqual(seen, ["A", "AB"]);
});

Deno.test("FileChardev.write() writes to the host file", async () => {
  const path = await Deno.makeTempFile();
  const dev = new FileChardev("f", path);
  dev.write(new TextEncoder().encode("hello"));
  await dev.close();
  assert.equal(await Deno.readTextFile(path), "hello");
  await Deno.remove(path);
});

Deno.test("StdioChardev handles the Ctrl-A escape when given a handler", async () => {
  const keys: number[] = [];
  const out: number[] = [];
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array([0x61, 0x01, 0x78, 0x01, 0x01, 0x62]));
      c.close();
    },
  });
  const dev = new StdioChardev("s", {
    stdin: stream,
    stdout: { writeSync: (d) => (out.push(...d), d.length) },
    onEscape: (k) => (keys.push(k), k === 0x78),
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(keys, [0x78]);
  assert.deepEqual(dev.readInput(10), new Uint8Array([0x61, 0x01, 0x62]));
  dev.write(new Uint8Array([0x43]));
  assert.deepEqual(out, [0x43]);
  await dev.close();
});

Deno.test("openChardev() knows null, file: and refuses unknown backends", () => {
  assert.ok(openChardev("n", "null") instanceof NullChardev);
  assert.throws(() => openChardev("x", "bogus:1"), /'bogus' is not a valid char driver/);
});
