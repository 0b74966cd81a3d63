// X11 keysyms (what RFB key events carry) to PC scancodes of set 1, for a US keyboard layout

/** Keys of the US layout by character: row strings of set 1 codes from `start`, plain and shifted. */
const ROWS: [number, string, string][] = [
  [0x02, "1234567890-=", "!@#$%^&*()_+"],
  [0x10, "qwertyuiop[]", "QWERTYUIOP{}"],
  [0x1e, "asdfghjkl;'`", 'ASDFGHJKL:"~'],
  [0x2b, "\\zxcvbnm,./", "|ZXCVBNM<>?"],
];

/** Function and keypad keysyms (XK_*, from X11's keysymdef.h) to set 1 codes (0xe0xx: prefixed). */
const SPECIAL: [number, number][] = [
  [0xff08, 0x0e], // BackSpace
  [0xff09, 0x0f], // Tab
  [0xfe20, 0x0f], // ISO_Left_Tab (shift+Tab)
  [0xff0d, 0x1c], // Return
  [0xff13, 0xe046], // Pause (as Ctrl+Break's code; the full Pause sequence is not sent)
  [0xff14, 0x46], // Scroll_Lock
  [0xff15, 0x54], // Sys_Req
  [0xff1b, 0x01], // Escape
  [0xff50, 0xe047], // Home
  [0xff51, 0xe04b], // Left
  [0xff52, 0xe048], // Up
  [0xff53, 0xe04d], // Right
  [0xff54, 0xe050], // Down
  [0xff55, 0xe049], // Page_Up
  [0xff56, 0xe051], // Page_Down
  [0xff57, 0xe04f], // End
  [0xff61, 0xe037], // Print
  [0xff63, 0xe052], // Insert
  [0xff67, 0xe05d], // Menu
  [0xff7f, 0x45], // Num_Lock
  [0xff8d, 0xe01c], // KP_Enter
  [0xff95, 0x47], // KP_Home
  [0xff96, 0x4b], // KP_Left
  [0xff97, 0x48], // KP_Up
  [0xff98, 0x4d], // KP_Right
  [0xff99, 0x50], // KP_Down
  [0xff9a, 0x49], // KP_Page_Up
  [0xff9b, 0x51], // KP_Page_Down
  [0xff9c, 0x4f], // KP_End
  [0xff9d, 0x4c], // KP_Begin
  [0xff9e, 0x52], // KP_Insert
  [0xff9f, 0x53], // KP_Delete
  [0xffaa, 0x37], // KP_Multiply
  [0xffab, 0x4e], // KP_Add
  [0xffac, 0x53], // KP_Separator
  [0xffad, 0x4a], // KP_Subtract
  [0xffae, 0x53], // KP_Decimal
  [0xffaf, 0xe035], // KP_Divide
  [0xffb0, 0x52], // KP_0
  [0xffb1, 0x4f],
  [0xffb2, 0x50],
  [0xffb3, 0x51],
  [0xffb4, 0x4b],
  [0xffb5, 0x4c],
  [0xffb6, 0x4d],
  [0xffb7, 0x47],
  [0xffb8, 0x48],
  [0xffb9, 0x49], // KP_9
  [0xffbd, 0x0d], // KP_Equal (no PC key: the main '=')
  [0xffbe, 0x3b], // F1
  [0xffbf, 0x3c],
  [0xffc0, 0x3d],
  [0xffc1, 0x3e],
  [0xffc2, 0x3f],
  [0xffc3, 0x40],
  [0xffc4, 0x41],
  [0xffc5, 0x42],
  [0xffc6, 0x43],
  [0xffc7, 0x44], // F10
  [0xffc8, 0x57], // F11
  [0xffc9, 0x58], // F12
  [0xffe1, 0x2a], // Shift_L
  [0xffe2, 0x36], // Shift_R
  [0xffe3, 0x1d], // Control_L
  [0xffe4, 0xe01d], // Control_R
  [0xffe5, 0x3a], // Caps_Lock
  [0xffe7, 0x38], // Meta_L
  [0xffe8, 0xe038], // Meta_R
  [0xffe9, 0x38], // Alt_L
  [0xffea, 0xe038], // Alt_R
  [0xfe03, 0xe038], // ISO_Level3_Shift (AltGr)
  [0xffeb, 0xe05b], // Super_L
  [0xffec, 0xe05c], // Super_R
  [0xffff, 0xe053], // Delete
];

const TABLE = new Map<number, number>(SPECIAL);
TABLE.set(0x20, 0x39); // space
for (const [start, plain, shifted] of ROWS) {
  for (let i = 0; i < plain.length; i++) {
    // Latin-1 keysyms are the characters' codes.
    TABLE.set(plain.charCodeAt(i), start + i);
    TABLE.set(shifted.charCodeAt(i), start + i);
  }
}

/**
 * The set 1 scancode of an X11 keysym on a US keyboard (0xe0xx for prefixed keys), or
 * undefined for a keysym no PC key makes. Shifted characters give their key's code: the
 * client sends Shift itself, as every VNC client does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keysymToScancode } from "./keysym.ts";
 *
 * assert.equal(keysymToScancode(0x61), 0x1e); // 'a'
 * assert.equal(keysymToScancode(0x41), 0x1e); // 'A'
 * assert.equal(keysymToScancode(0xff0d), 0x1c); // Return
 * assert.equal(keysymToScancode(0xff52), 0xe048); // Up
 * ```
 */
export function keysymToScancode(keysym: number): number | undefined {
  return TABLE.get(keysym);
}

/**
 * The set 1 code of a QEMU extended key event's XT keycode (RFB encoding -258): the
 * 0xe0 prefix travels as the keycode's bit 7.
 */
export function xtKeycodeToScancode(keycode: number): number | undefined {
  if (keycode <= 0 || keycode > 0xff) return undefined;
  return keycode & 0x80 ? 0xe000 | (keycode & 0x7f) : keycode;
}
