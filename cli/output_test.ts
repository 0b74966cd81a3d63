import assert from "node:assert/strict";
import { formatG, qemuJson, sizeToStr } from "./output.ts";

Deno.test("formatG() matches C's %.3g", () => {
  assert.equal(formatG(1000, 3), "1e+03");
  assert.equal(formatG(999.7, 3), "1e+03");
  assert.equal(formatG(1.5, 3), "1.5");
  assert.equal(formatG(0.977, 3), "0.977");
  assert.equal(formatG(0.00001234, 3), "1.23e-05");
  assert.equal(formatG(12345, 3), "1.23e+04");
});

Deno.test("sizeToStr() matches qemu-img's human sizes", () => {
  assert.equal(sizeToStr(512), "512 B");
  assert.equal(sizeToStr(1536), "1.5 KiB");
  assert.equal(sizeToStr(200704), "196 KiB");
  assert.equal(sizeToStr(1073741824), "1 GiB");
  assert.equal(sizeToStr(1000), "0.977 KiB");
  assert.equal(sizeToStr(266240), "260 KiB");
});

Deno.test("qemuJson() prints nested objects and skips undefined fields", () => {
  assert.equal(
    qemuJson({ a: { b: 1 }, c: undefined, d: "x" }),
    '{\n    "a": {\n        "b": 1\n    },\n    "d": "x"\n}',
  );
  assert.equal(qemuJson({}), "{\n}");
});

Deno.test("a closed stdout ends the program quietly with 141, as SIGPIPE ends qemu-img", async () => {
  const main = new URL("./main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "img", "--help"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The reader goes before the program has started, so its first write finds no reader.
  await child.stdout.cancel();
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  assert.equal(stderr, "");
  assert.equal(status.code, 141);
});
