import assert from "node:assert/strict";
import { FONT_HEIGHT, FONT_WIDTH, TEXT_CONSOLE_BACKSCROLL, TextConsole } from "./text_console.ts";

/** A font whose glyph for character c is the byte c on every line (each glyph differs). */
function testFont(): Uint8Array {
  const font = new Uint8Array(256 * FONT_HEIGHT);
  for (let c = 0; c < 256; c++) font.fill(c, c * FONT_HEIGHT, (c + 1) * FONT_HEIGHT);
  return font;
}

function typed(vc: TextConsole, keys: [number, boolean?][]): string {
  const bytes: number[] = [];
  vc.onInput = (data) => bytes.push(...data);
  for (const [keysym, ctrl] of keys) vc.putKeysym(keysym, ctrl ?? false);
  return String.fromCharCode(...bytes);
}

Deno.test("TextConsole.write() places text with CR, LF, BS, TAB and wraps at the last column", () => {
  const vc = new TextConsole("vc0", testFont(), { columns: 10, rows: 3 });
  vc.write("ab\r\ncd\bX\tY");
  assert.deepEqual(vc.lines(), ["ab", "cX      Y", ""]);
  vc.write("\r\n0123456789ab");
  assert.deepEqual(vc.lines(), ["cX      Y", "0123456789", "ab"]);
  assert.deepEqual(vc.cursor, { x: 2, y: 2 });
});

Deno.test("TextConsole.write() follows the VT100 moves and erases a line editor sends", () => {
  const vc = new TextConsole("vc0", testFont(), { columns: 20, rows: 4 });
  // What the monitor's editor writes for "info", two BackSpaces and "fo".
  vc.write("(qemu) info\x1b[D\x1b[K\x1b[D\x1b[Kfo");
  assert.deepEqual(vc.lines()[0], "(qemu) info");
  vc.write("\r\n\x1b[2;5Hxy\x1b[1;1H\x1b[2J");
  assert.deepEqual(vc.lines(), ["", "", "", ""]);
  vc.write("abcdef\x1b[3D\x1b[1K");
  assert.deepEqual(vc.lines()[0], "    ef");
  // Unknown and over-long sequences change nothing else; an ESC not followed by '['
  // drops just the next character, as QEMU's console does.
  vc.write("\x1b[99999999;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7;7zok\x1b(B\x1b]0;t");
  assert.deepEqual(vc.lines()[0], "   okB0;t");
});

Deno.test("TextConsole.update() draws each cell from the font in QEMU's colours, the cursor inverted", () => {
  const vc = new TextConsole("vc0", testFont(), { columns: 4, rows: 2 });
  vc.write("\x1b[1;34;43mA\x1b[0mB");
  const surface = vc.update();
  assert.deepEqual([surface.width, surface.height], [4 * FONT_WIDTH, 2 * FONT_HEIGHT]);
  // 'A' is 0x41 = 0b01000001: bold blue (0x0000ff) on yellow (0xaaaa00).
  const row = [...surface.pixels.subarray(0, 8)];
  assert.deepEqual(row, [
    0xaaaa00,
    0x0000ff,
    0xaaaa00,
    0xaaaa00,
    0xaaaa00,
    0xaaaa00,
    0xaaaa00,
    0x0000ff,
  ]);
  // 'B' is 0x42 = 0b01000010 in white on black.
  assert.equal(surface.pixels[8 + 1], 0xaaaaaa);
  assert.equal(surface.pixels[8 + 0], 0x000000);
  // The cursor is on the space (0x20, ink at x = 2) after it, drawn inverted.
  assert.equal(surface.pixels[16 + 2], 0x000000);
  assert.equal(surface.pixels[16 + 3], 0xaaaaaa);
});

Deno.test("TextConsole keeps TEXT_CONSOLE_BACKSCROLL lines under a flood and scrolls back with Ctrl", () => {
  const vc = new TextConsole("vc0", testFont(), { columns: 8, rows: 4 });
  let text = "";
  for (let i = 0; i < 100_000; i++) text += `${i}\r\n`;
  vc.write(text);
  assert.deepEqual(vc.lines(), ["99997", "99998", "99999", ""]);
  // Ctrl+Page_Up goes back 10 lines at a time, no further than the kept lines.
  for (let i = 0; i < 1000; i++) vc.putKeysym(0xff55, true);
  const oldest = 100_000 - (TEXT_CONSOLE_BACKSCROLL - 1);
  assert.deepEqual(vc.lines()[0], String(oldest));
  vc.putKeysym(0xff54, true); // Ctrl+Down: one line forward
  assert.deepEqual(vc.lines()[0], String(oldest + 1));
  // Output returns the view to the live screen.
  vc.write("x");
  assert.deepEqual(vc.lines(), ["99997", "99998", "99999", "x"]);
});

Deno.test("TextConsole.putKeysym() sends a terminal's bytes and ignores odd keys", () => {
  const vc = new TextConsole("vc0", testFont());
  assert.equal(
    typed(vc, [[0x69], [0x49], [0xff0d], [0xff08], [0xff52], [0xff51], [0xff50], [0xffff]]),
    "iI\r\x08\x1b[A\x1b[D\x1b[1~\x1b[3~",
  );
  assert.equal(typed(vc, [[0x63, true], [0x61, true]]), "\x03\x01");
  // Modifiers, function keys, dead keys, Unicode keysyms and nonsense send nothing.
  assert.equal(
    typed(vc, [[0xffe3], [0xffe9], [0xffbe], [0xfe50], [0x01000416], [0xffffffff], [0], [0x1f]]),
    "",
  );
});

Deno.test("TextConsole refuses a grid it cannot hold", () => {
  assert.throws(() => new TextConsole("vc0", testFont(), { columns: 0, rows: 1 }), RangeError);
  assert.throws(() => new TextConsole("vc0", testFont(), { columns: 5000, rows: 1 }), RangeError);
  assert.throws(() => new TextConsole("vc0", new Uint8Array(16)), RangeError);
});
