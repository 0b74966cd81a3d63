// The display contract: surfaces, dirty rectangles, the registry's screendump and hostile PPM input

import assert from "node:assert/strict";
import * as path from "node:path";
import {
  decodePpm,
  DISPLAY,
  DisplayRegistry,
  displayRegistry,
  DisplaySurface,
  encodePpm,
  type InputEvent,
} from "./display.ts";
import type { ServiceKey } from "./device.ts";
import { UsageError } from "./errors.ts";

Deno.test("DisplaySurface: dirty rectangles are clipped, and stacked ones merge", () => {
  const s = new DisplaySurface(10, 10);
  s.takeDirty();
  s.markDirty(-5, 8, 10, 10);
  s.markDirty(20, 0, 1, 1); // outside
  assert.deepEqual(s.takeDirty(), [{ x: 0, y: 8, width: 5, height: 2 }]);
  s.markDirty(2, 0, 3, 1);
  s.markDirty(2, 1, 3, 4);
  assert.deepEqual(s.takeDirty(), [{ x: 2, y: 0, width: 3, height: 5 }]);
});

Deno.test("DisplaySurface: a bad or huge size is a RangeError, the same size keeps the pixels", () => {
  const s = new DisplaySurface(4, 4);
  s.pixels[0] = 7;
  s.resize(4, 4);
  assert.equal(s.pixels[0], 7);
  for (const [w, h] of [[0, 4], [4, -1], [1.5, 2], [100000, 100000], [NaN, 1]]) {
    assert.throws(() => s.resize(w, h), RangeError);
  }
  assert.deepEqual([s.width, s.height], [4, 4]);
});

Deno.test("encodePpm/decodePpm round trip", () => {
  const s = new DisplaySurface(3, 2);
  s.pixels.set([0x010203, 0xffffff, 0, 0x800000, 0x008000, 0x000080]);
  const image = decodePpm(encodePpm(s));
  assert.deepEqual([image.width, image.height], [3, 2]);
  assert.deepEqual([...image.pixels], [...s.pixels]);
});

Deno.test("decodePpm: hostile input is a clear RangeError, never a huge allocation", () => {
  const enc = (text: string) => new TextEncoder().encode(text);
  const cases = [
    enc(""),
    enc("P3\n1 1\n255\n000"),
    enc("P6\n1 1\n65535\n\0\0\0\0\0\0"),
    enc("P6\n99999999 99999999\n255\n"),
    enc("P6\n-1 2\n255\n"),
    enc("P6\n2 2\n255\n\0\0\0"), // truncated
    enc("P6" + " ".repeat(1000)),
  ];
  for (const bytes of cases) assert.throws(() => decodePpm(bytes), RangeError);
});

Deno.test("DisplayRegistry: screendump writes console 0 as PPM; no console or a bad path is QEMU's error", async () => {
  const registry = new DisplayRegistry();
  const dir = await Deno.makeTempDir();
  try {
    const file = path.join(dir, "shot.ppm");
    await assert.rejects(() => registry.screendump(file), {
      message: "There is no console to take a screendump from",
    });
    const surface = new DisplaySurface(2, 2);
    surface.pixels.fill(0x336699);
    let updates = 0;
    registry.addConsole({
      id: "vga0",
      update: () => {
        updates++;
        return surface;
      },
    });
    await registry.screendump(file);
    assert.equal(updates, 1, "the console is brought up to date first");
    const bytes = await Deno.readFile(file);
    assert.deepEqual(bytes, encodePpm(surface));
    await assert.rejects(() => registry.screendump(file, 1), UsageError);
    // An unwritable path: QEMU's message.
    const missing = path.join(dir, "no-such-dir", "shot.ppm");
    await assert.rejects(() => registry.screendump(missing), {
      name: "IoError",
      message: `failed to open file '${missing}': No such file or directory`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("displayRegistry: the first device publishes it, later ones share it; input reaches every handler", () => {
  const services = new Map<string, unknown>();
  const ctx = {
    findService: <T>(key: ServiceKey<T>) => services.get(key.name) as T | undefined,
    provide: <T>(key: ServiceKey<T>, value: T) => void services.set(key.name, value),
  };
  const a = displayRegistry(ctx);
  assert.equal(displayRegistry(ctx), a);
  assert.equal(services.get(DISPLAY.name), a);
  const seen: InputEvent[] = [];
  a.addInputHandler((e) => seen.push(e));
  a.addInputHandler((e) => seen.push(e));
  a.sendInput({ type: "key", scancode: 0x1e, down: true });
  assert.equal(seen.length, 2);
});
