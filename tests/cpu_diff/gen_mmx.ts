// MMX items of the CPU differential generator: every MMX form on registers the item loads
// itself, the result stored to the data area, then EMMS (the x87 items find an empty stack)

import { DATA_BASE, DATA_BYTES } from "./layout.ts";
import { hex } from "./rng.ts";
import { type Operands, R32, R64 } from "./gen_operands.ts";

/** MMX forms with an mm/m64 source (the probe test runs each too). */
export const MMX_BINARY = [
  "paddb",
  "paddw",
  "paddd",
  "paddq",
  "psubb",
  "psubw",
  "psubd",
  "psubq",
  "paddsb",
  "paddsw",
  "paddusb",
  "paddusw",
  "psubsb",
  "psubsw",
  "psubusb",
  "psubusw",
  "pmullw",
  "pmulhw",
  "pmulhuw",
  "pmuludq",
  "pmaddwd",
  "psadbw",
  "pavgb",
  "pavgw",
  "pminub",
  "pmaxub",
  "pminsw",
  "pmaxsw",
  "pcmpeqb",
  "pcmpeqw",
  "pcmpeqd",
  "pcmpgtb",
  "pcmpgtw",
  "pcmpgtd",
  "pand",
  "pandn",
  "por",
  "pxor",
  "packsswb",
  "packuswb",
  "packssdw",
  "punpcklbw",
  "punpcklwd",
  "punpckldq",
  "punpckhbw",
  "punpckhwd",
  "punpckhdq",
  "psrlw",
  "psrld",
  "psrlq",
  "psraw",
  "psrad",
  "psllw",
  "pslld",
  "psllq",
]; // deno-fmt-ignore

/** A data-area quadword, any alignment. */
function m64(o: Operands): string {
  return `[${hex(DATA_BASE + o.rng.below(DATA_BYTES - 16))}]`;
}

/**
 * One MMX item: the destination (and a register source) loaded from memory or a general
 * register first, so no value an x87 item left is read (vmkit's x87 registers are doubles).
 */
export function mmxItem(o: Operands): string {
  const di = o.rng.below(8), si = (di + 1 + o.rng.below(7)) & 7;
  const d = `mm${di}`, s = `mm${si}`;
  const gpr = o.rng.pick(o.mode === "long" ? R64 : R32);
  const r32 = o.mode === "pm32" ? gpr : /^r\d/.test(gpr) ? `${gpr}d` : `e${gpr.slice(1)}`;
  o.emit(`movq ${d}, ${m64(o)}`);
  if (o.rng.chance(0.5)) o.emit(`movq ${s}, ${m64(o)}`);
  else o.emit(`movd ${s}, ${r32}`);
  const k = o.rng.below(8);
  let insn: string;
  if (k <= 2) insn = o.put(`${o.rng.pick(MMX_BINARY)} ${d}, ${o.rng.chance(0.3) ? m64(o) : s}`);
  else if (k === 3) {
    const [op, max] = o.rng.pick(
      [
        ["psrlw", 16],
        ["psraw", 16],
        ["psllw", 16],
        ["psrld", 32],
        [
          "psrad",
          32,
        ],
        ["pslld", 32],
        ["psrlq", 64],
        ["psllq", 64],
      ] as const,
    );
    insn = o.put(`${op} ${d}, ${o.rng.chance(0.2) ? o.rng.below(256) : o.rng.below(max + 2)}`);
  } else if (k === 4) {
    insn = o.put(o.rng.pick([
      `pshufw ${d}, ${o.rng.chance(0.5) ? s : m64(o)}, ${o.rng.below(256)}`,
      `pinsrw ${d}, ${r32}, ${o.rng.below(8)}`,
      `pinsrw ${d}, word [${hex(DATA_BASE + o.rng.below(DATA_BYTES - 2))}], ${o.rng.below(8)}`,
      `movq ${d}, ${s}`,
    ]));
  } else if (k === 5) {
    // Into a general register, then stored.
    insn = o.put(o.rng.pick([
      `pextrw ${r32}, ${s}, ${o.rng.below(8)}`,
      `pmovmskb ${r32}, ${s}`,
      `movd ${r32}, ${s}`,
      ...(o.mode === "long" ? [`movq ${gpr}, ${s}`, `movq ${d}, ${gpr}`] : []),
    ]));
  } else if (k === 6) {
    const x = `xmm${o.rng.below(8)}`;
    insn = o.put(o.rng.pick([
      `cvtps2pi ${d}, ${o.rng.chance(0.5) ? x : m64(o)}`,
      `cvttps2pi ${d}, ${o.rng.chance(0.5) ? x : m64(o)}`,
      `cvtpd2pi ${d}, ${x}`,
      `cvttpd2pi ${d}, ${x}`,
      `cvtpi2ps ${x}, ${o.rng.chance(0.5) ? s : m64(o)}`,
      `cvtpi2pd ${x}, ${o.rng.chance(0.5) ? s : m64(o)}`,
      `movq2dq ${x}, ${s}`,
      `movdq2q ${d}, ${x}`,
    ]));
  } else {
    const at = DATA_BASE + o.rng.below(DATA_BYTES - 16);
    insn = o.put(o.rng.pick([`movq [${hex(at)}], ${s}`, `movntq [${hex(at)}], ${s}`]));
  }
  o.emit(`movq ${m64(o)}, ${d}`);
  o.emit("emms");
  return insn;
}
