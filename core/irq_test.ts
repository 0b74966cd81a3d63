import assert from "node:assert/strict";
import { controllerLines, fanOut, IrqLine } from "./irq.ts";

Deno.test("IrqLine.set() reports only changes of level", () => {
  const seen: boolean[] = [];
  const line = new IrqLine("x", (l) => seen.push(l));
  line.set(false);
  line.set(true);
  line.set(true);
  line.set(false);
  assert.deepEqual(seen, [true, false]);
  assert.equal(line.level, false);
});

Deno.test("IrqLine.connect() re-sends a high level to the new handler", () => {
  const line = new IrqLine("x");
  line.raise();
  const seen: boolean[] = [];
  line.connect((l) => seen.push(l));
  assert.deepEqual(seen, [true]);
});

Deno.test("controllerLines() drives the matching controller pins", () => {
  const pins: [number, boolean][] = [];
  const lines = controllerLines("irq", 4, { setIrq: (pin, level) => pins.push([pin, level]) });
  lines[3].raise();
  lines[1].pulse();
  assert.deepEqual(pins, [[3, true], [1, true], [1, false]]);
  assert.equal(lines[2].name, "irq2");
});

Deno.test("fanOut() calls every handler", () => {
  const seen: string[] = [];
  const h = fanOut((l) => seen.push(`a${l}`), (l) => seen.push(`b${l}`));
  h(true);
  assert.deepEqual(seen, ["atrue", "btrue"]);
});
