import assert from "node:assert/strict";
import { CIRRUS_BLTBUFSIZE, CirrusBlitter } from "./cirrus_blt.ts";
import { CirrusCore } from "./cirrus_core.ts";

const VRAM = 4 << 20;

/** The registers of one blit, as a guest would program GR20-GR33. */
function regs(b: {
  widthBytes: number;
  height: number;
  dstPitch?: number;
  srcPitch?: number;
  dst?: number;
  src?: number;
  mode?: number;
  rop?: number;
  modeExt?: number;
}): Uint8Array {
  const gr = new Uint8Array(256);
  const w = b.widthBytes - 1;
  const h = b.height - 1;
  gr[0x20] = w & 0xff;
  gr[0x21] = (w >> 8) & 0x1f;
  gr[0x22] = h & 0xff;
  gr[0x23] = (h >> 8) & 0x1f;
  gr[0x24] = (b.dstPitch ?? 0) & 0xff;
  gr[0x25] = ((b.dstPitch ?? 0) >> 8) & 0x1f;
  gr[0x26] = (b.srcPitch ?? 0) & 0xff;
  gr[0x27] = ((b.srcPitch ?? 0) >> 8) & 0x1f;
  const dst = b.dst ?? 0;
  const src = b.src ?? 0;
  gr.set([dst & 0xff, (dst >> 8) & 0xff, (dst >> 16) & 0x3f], 0x28);
  gr.set([src & 0xff, (src >> 8) & 0xff, (src >> 16) & 0x3f], 0x2c);
  gr[0x30] = b.mode ?? 0;
  gr[0x32] = b.rop ?? 0x0d;
  gr[0x33] = b.modeExt ?? 0;
  return gr;
}

function blitter() {
  const vram = new Uint8Array(VRAM);
  for (let i = 0; i < vram.length; i++) vram[i] = (i * 7) & 0xff;
  const before = vram.slice();
  const blt = new CirrusBlitter(vram);
  const start = (gr: Uint8Array) =>
    blt.start({ gr, shadowGr0: 0x11, shadowGr1: 0xee, displayBpp: 8 });
  return { vram, before, blt, start };
}

Deno.test("CirrusBlitter copies forward, and backward onto an overlapping place", () => {
  const { vram, before, start } = blitter();
  assert.equal(
    start(regs({ widthBytes: 8, height: 2, dstPitch: 16, srcPitch: 16, dst: 4000 })),
    true,
  );
  assert.deepEqual([...vram.subarray(4000, 4008)], [...before.subarray(0, 8)]);
  assert.deepEqual([...vram.subarray(4016, 4024)], [...before.subarray(16, 24)]);
  // Backward: addresses name the last byte of the first line, lines go down in memory.
  const { vram: v2, before: b2, start: s2 } = blitter();
  s2(
    regs({
      widthBytes: 8,
      height: 2,
      dstPitch: 16,
      srcPitch: 16,
      dst: 1000 + 7 + 16,
      src: 998 + 7 + 16,
      mode: 1,
    }),
  );
  assert.deepEqual([...v2.subarray(1000, 1008)], [...b2.subarray(998, 1006)]);
  assert.deepEqual([...v2.subarray(1016, 1024)], [...b2.subarray(1014, 1022)]);
});

Deno.test("CirrusBlitter applies the ROP of GR32 bytewise and treats unknown codes as no-ops", () => {
  const { vram, before, start } = blitter();
  start(
    regs({ widthBytes: 4, height: 1, dstPitch: 4, srcPitch: 4, dst: 100, src: 200, rop: 0x59 }),
  );
  for (let i = 0; i < 4; i++) assert.equal(vram[100 + i], before[100 + i] ^ before[200 + i]);
  start(
    regs({ widthBytes: 4, height: 1, dstPitch: 4, srcPitch: 4, dst: 300, src: 200, rop: 0x42 }),
  );
  assert.deepEqual([...vram.subarray(300, 304)], [...before.subarray(300, 304)]);
});

Deno.test("CirrusCore keeps the BitBLT size registers to 13 bits: no blit is wider than the line buffer", () => {
  const core = new CirrusCore(VRAM);
  core.reset();
  core.ioWrite(0x3ce, 0x21);
  core.ioWrite(0x3cf, 0xff);
  assert.equal(core.ioRead(0x3cf), 0x1f);
  core.ioWrite(0x3ce, 0x23);
  core.ioWrite(0x3cf, 0xff);
  assert.equal(core.ioRead(0x3cf), 0x1f);
  // The widest a guest can ask, 8192 bytes, fits the buffer and runs.
  const { vram, start } = blitter();
  const gr = regs({
    widthBytes: CIRRUS_BLTBUFSIZE,
    height: 1,
    dstPitch: 100,
    mode: 0xc0,
    modeExt: 4,
  });
  assert.equal(start(gr), true);
  assert.equal(vram[8191], 0xee);
});

Deno.test("CirrusBlitter refuses regions that leave VRAM: past the end, below zero, zero pitch", () => {
  const { vram, before, start } = blitter();
  // The last line would end past VRAM.
  assert.equal(
    start(
      regs({ widthBytes: 256, height: 100, dstPitch: 0x1fff, srcPitch: 256, dst: VRAM - 0x10000 }),
    ),
    false,
  );
  // A source that runs past the end.
  assert.equal(
    start(regs({ widthBytes: 256, height: 2, dstPitch: 256, srcPitch: 256, src: VRAM - 300 })),
    false,
  );
  // Backward from near address 0: the lines would go below it.
  assert.equal(
    start(
      regs({ widthBytes: 64, height: 4, dstPitch: 64, srcPitch: 64, dst: 100, src: 5000, mode: 1 }),
    ),
    false,
  );
  // A zero pitch (a fill that would hammer one line, or a copy with no stride).
  assert.equal(start(regs({ widthBytes: 4, height: 4, dstPitch: 0, srcPitch: 4 })), false);
  // Top-of-register addresses wrap to VRAM's size first (22 bits over 4 MiB: no wrap
  // needed; the engine masks every byte anyway).
  assert.equal(
    start(regs({ widthBytes: 16, height: 1, dstPitch: 16, srcPitch: 16, dst: 0x3ffff8 })),
    false,
  );
  assert.deepEqual(vram, before, "no refused blit wrote a byte");
});

Deno.test("CirrusBlitter draws nothing for a forward copy whose pitch is shorter than a line", () => {
  const { vram, before, start } = blitter();
  assert.equal(
    start(regs({ widthBytes: 64, height: 4, dstPitch: 16, srcPitch: 64, dst: 4096 })),
    true,
  );
  assert.deepEqual(vram, before);
});

Deno.test("CirrusBlitter bounds the worst blit a guest can ask: 8192 lines of 8192 bytes at pitch 1", () => {
  const { vram, start } = blitter();
  // Allowed (it stays inside VRAM), so it runs: at most width x height byte operations.
  const gr = regs({ widthBytes: 8192, height: 8192, dstPitch: 1, mode: 0xc0, modeExt: 0x04 });
  assert.equal(start(gr), true);
  assert.equal(vram[0], 0xee, "filled with the foreground");
  assert.equal(vram[8191 + 8191], 0xee, "the last byte of the last line");
  assert.equal(vram[8192 + 8191], ((8192 + 8191) * 7) & 0xff, "nothing past the region");
});

Deno.test("CirrusBlitter: a system-to-screen blit takes exactly its bytes, then the window is memory again", () => {
  const { vram, blt, start } = blitter();
  // 6 bytes of pixels a line (rounded up to 8), 3 lines.
  assert.equal(
    start(regs({ widthBytes: 6, height: 3, dstPitch: 100, dst: 1000, mode: 0x04 })),
    true,
  );
  assert.equal(blt.waiting, true);
  let done = false;
  for (let i = 0; i < 24; i++) done = blt.feed(0xa0 + i) || done;
  assert.equal(done, true);
  assert.equal(blt.waiting, false);
  assert.deepEqual([...vram.subarray(1000, 1006)], [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5]);
  assert.deepEqual([...vram.subarray(1200, 1206)], [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5]);
  // A flood after the end is not taken by the engine.
  for (let i = 0; i < 100_000; i++) assert.equal(blt.feed(0), false);
});

Deno.test("CirrusBlitter refuses both-sides-system blits and screen-to-system blits", () => {
  const { vram, before, blt, start } = blitter();
  assert.equal(start(regs({ widthBytes: 4, height: 1, dstPitch: 4, mode: 0x06 })), false);
  assert.equal(
    start(regs({ widthBytes: 4, height: 1, dstPitch: 4, srcPitch: 4, mode: 0x02 })),
    false,
  );
  assert.equal(blt.waiting, false);
  assert.deepEqual(vram, before);
});

Deno.test("CirrusBlitter pattern and expansion sources wrap inside VRAM at its top", () => {
  const { vram, start } = blitter();
  // A colour expansion whose source lies in the last bytes: it reads (w + 7) / 8 bytes a line.
  assert.equal(
    start(
      regs({
        widthBytes: 64,
        height: 8,
        dstPitch: 64,
        srcPitch: 64,
        dst: 0,
        src: VRAM - 64 * 8,
        mode: 0x80,
      }),
    ),
    true,
  );
  // A pattern at the very top of VRAM is refused (it would not fit), not read past the end.
  assert.equal(
    start(regs({ widthBytes: 8, height: 8, dstPitch: 8, src: VRAM - 8, mode: 0x40 })),
    true,
    "an aligned pattern at the top still fits",
  );
  assert.equal(vram.length, VRAM);
});

Deno.test("CirrusCore: a guest that starts a system-to-screen blit and never feeds it can reset it", () => {
  const core = new CirrusCore(VRAM);
  core.reset();
  const out = (port: number, v: number) => core.ioWrite(port, v);
  const gr = (i: number, v: number) => {
    out(0x3ce, i);
    out(0x3cf, v);
  };
  out(0x3c4, 0x07);
  out(0x3c5, 0x01); // SVGA mode: the window feeds blits
  const r = regs({ widthBytes: 16, height: 4, dstPitch: 16, mode: 0x04 });
  for (let i = 0x20; i <= 0x33; i++) gr(i, r[i]);
  gr(0x31, 0x02);
  assert.equal(core.blitter.waiting, true);
  core.ioWrite(0x3ce, 0x31);
  assert.equal(core.ioRead(0x3cf) & 0x01, 0x01, "busy while it waits");
  assert.equal(core.linearDirect, false, "the aperture feeds the blit, not VRAM");
  gr(0x31, 0x04);
  gr(0x31, 0x00); // reset
  assert.equal(core.blitter.waiting, false);
  assert.equal(core.linearDirect, true);
  core.writeWindow(0, 0x77);
  assert.equal(core.vram[0], 0x77, "the window writes VRAM again");
});
