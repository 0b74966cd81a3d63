// sendkey (HMP) and send-key (QMP): QEMU's key names as PC scancodes (set 1, what the
// i8042 hands a guest with translation on) through the machine's keyboard

import { KEYBOARD } from "../device.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";
import { MonitorError } from "./commands.ts";

/** QEMU's QKeyCode names and their set 1 make codes (0xe0xx: with the 0xe0 prefix). */
export const QKEYCODE_SCANCODES: Readonly<Record<string, number>> = (() => {
  const t: Record<string, number> = {
    esc: 0x01,
    minus: 0x0c,
    equal: 0x0d,
    backspace: 0x0e,
    tab: 0x0f,
    bracket_left: 0x1a,
    bracket_right: 0x1b,
    ret: 0x1c,
    ctrl: 0x1d,
    semicolon: 0x27,
    apostrophe: 0x28,
    grave_accent: 0x29,
    shift: 0x2a,
    backslash: 0x2b,
    comma: 0x33,
    dot: 0x34,
    slash: 0x35,
    shift_r: 0x36,
    asterisk: 0x37,
    kp_multiply: 0x37,
    alt: 0x38,
    spc: 0x39,
    caps_lock: 0x3a,
    num_lock: 0x45,
    scroll_lock: 0x46,
    kp_subtract: 0x4a,
    kp_add: 0x4e,
    kp_decimal: 0x53,
    sysrq: 0x54,
    less: 0x56,
    f11: 0x57,
    f12: 0x58,
    kp_enter: 0xe01c,
    ctrl_r: 0xe01d,
    kp_divide: 0xe035,
    print: 0xe037,
    alt_r: 0xe038,
    home: 0xe047,
    up: 0xe048,
    pgup: 0xe049,
    left: 0xe04b,
    right: 0xe04d,
    end: 0xe04f,
    down: 0xe050,
    pgdn: 0xe051,
    insert: 0xe052,
    delete: 0xe053,
    meta_l: 0xe05b,
    meta_r: 0xe05c,
    menu: 0xe05d,
  };
  "1234567890".split("").forEach((k, i) => (t[k] = 0x02 + i));
  "qwertyuiop".split("").forEach((k, i) => (t[k] = 0x10 + i));
  "asdfghjkl".split("").forEach((k, i) => (t[k] = 0x1e + i));
  "zxcvbnm".split("").forEach((k, i) => (t[k] = 0x2c + i));
  for (let i = 0; i < 10; i++) t[`f${i + 1}`] = 0x3b + i;
  [0x52, 0x4f, 0x50, 0x51, 0x4b, 0x4c, 0x4d, 0x47, 0x48, 0x49].forEach((
    c,
    i,
  ) => (t[`kp_${i}`] = c));
  return t;
})();

/** The scancode of a QKeyCode name, or of a 0x number (QEMU's "qnum": 0x80 and up are 0xe0 keys). */
function scancodeOf(key: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(key)) {
    const n = Number(key);
    if (n > 0 && n < 0x100) return n & 0x80 ? 0xe000 | (n & 0x7f) : n;
    return undefined;
  }
  return QKEYCODE_SCANCODES[key];
}

/** Presses the keys in order and, `holdMs` later, releases them in reverse (QEMU's order). */
export function sendKeys(ctx: MonitorContext, codes: number[], holdMs: number): void {
  const keyboard = ctx.machine.findService(KEYBOARD);
  if (!keyboard) throw new MonitorError("GenericError", "This machine has no keyboard");
  // Through keyEvent: the guest gets set 2 codes when it turned the i8042's translation off.
  for (const c of codes) keyboard.keyEvent(c, true);
  const release = () => {
    for (const c of codes.toReversed()) keyboard.keyEvent(c, false);
  };
  if (holdMs > 0) setTimeout(release, Math.min(holdMs, 60_000));
  else release();
}

/** Adds `sendkey` to HMP and `send-key` to QMP. */
export function addSendKeyCommands(table: CommandTable): void {
  table.addHmp({
    name: "sendkey",
    params: "keys [hold_ms]",
    help: "send keys to the VM (e.g. 'sendkey ctrl-alt-f1', default hold time=100 ms)",
    run: (ctx, args) => {
      if (args.length === 0) {
        return 'sendkey: string expected\nTry "help sendkey" for more information\n';
      }
      const codes: number[] = [];
      for (const key of args[0].split("-")) {
        const code = scancodeOf(key);
        if (code === undefined) return `invalid parameter: ${key}\n`;
        codes.push(code);
      }
      const hold = args[1] === undefined ? 100 : Number(args[1]);
      sendKeys(ctx, codes, Number.isFinite(hold) ? hold : 100);
      return "";
    },
  });
  table.addQmp({
    name: "send-key",
    args: [{ name: "keys", type: "any" }, { name: "hold-time", type: "int", optional: true }],
    run: (ctx, args) => {
      if (!Array.isArray(args.keys)) {
        throw new MonitorError(
          "GenericError",
          "Invalid parameter type for 'keys', expected: array",
        );
      }
      const codes = args.keys.map((k) => {
        const v = k as { type?: string; data?: unknown };
        const code = v.type === "number" && typeof v.data === "number"
          ? scancodeOf(String(v.data))
          : v.type === "qcode" && typeof v.data === "string"
          ? QKEYCODE_SCANCODES[v.data]
          : undefined;
        if (code === undefined) {
          throw new MonitorError("GenericError", `Invalid parameter '${String(v.data)}'`);
        }
        return code;
      });
      sendKeys(ctx, codes, (args["hold-time"] as number | undefined) ?? 100);
      return {};
    },
  });
}
