import assert from "node:assert/strict";
import { PortIoSpace } from "./port_io.ts";

function fixed(value: number) {
  return { read: () => value, write() {} };
}

Deno.test("PortIoSpace.register() refuses fixed ranges that collide", () => {
  const io = new PortIoSpace();
  io.register("pic", 0x20, 2, fixed(1));
  assert.throws(() => io.register("other", 0x21, 4, fixed(2)), /overlap 'pic' at 0x21/);
});

Deno.test("PortIoSpace.register() with overlap lets a guest window cover fixed ports until it moves", () => {
  const io = new PortIoSpace();
  io.register("pic", 0x20, 2, fixed(1));
  io.register("pm", 0x00, 0x40, fixed(2), { overlap: true });
  assert.equal(io.in(0x20, 1), 2, "the later mapping of equal priority answers");
  assert.equal(io.in(0x40, 1), 0xff);
  io.unregister("pm");
  assert.equal(io.in(0x20, 1), 1, "the PIC decodes again");
  // A priority-1 window (a PCI I/O BAR) wins over a later priority-0 one.
  io.register("bar", 0x1f0, 16, fixed(3), { priority: 1, overlap: true });
  io.register("late", 0x1f8, 16, fixed(4), { overlap: true });
  assert.equal(io.in(0x1f8, 1), 3);
  assert.equal(io.in(0x200, 1), 4);
  io.unregister("bar");
  assert.equal(io.in(0x1f8, 1), 4);
  assert.equal(io.in(0x1f0, 1), 0xff);
});
