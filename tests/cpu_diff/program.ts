// Builds a Multiboot test kernel (nasm source, then bytes) around a generated instruction stream

import { DATA_BYTES, edgeValue, Generator, type Item, type Mode, Rng } from "./gen.ts";
import { longSource } from "./image_long.ts";
import { pm32Source } from "./image_pm32.ts";
import { REGS } from "./layout.ts";

export { REGS };

/** A machine state to start from (registers, EFLAGS, data area), e.g. read from QEMU's dump. */
export interface StartState {
  regs: bigint[];
  flags: number;
  data: Uint8Array;
  /** XMM registers and MXCSR to start from (a reproducer of an SSE item); else the seed's. */
  xmm?: bigint[];
  mxcsr?: number;
}

/**
 * Lines that load XMM registers and MXCSR through 16 bytes below the stack pointer
 * (LEA and MOV leave EFLAGS alone: the start state's flags are already in place).
 */
function sseInit(state: StartState, long: boolean): string[] {
  if (state.xmm === undefined || state.mxcsr === undefined) return [];
  const sp = long ? "rsp" : "esp";
  const out = [`lea ${sp}, [${sp}-16]`];
  state.xmm.forEach((v, i) => {
    for (let k = 0; k < 4; k++) {
      const dw = Number((v >> BigInt(32 * k)) & 0xffffffffn);
      out.push(`mov dword [${sp}+${4 * k}], 0x${dw.toString(16)}`);
    }
    out.push(`movdqu xmm${i}, [${sp}]`);
  });
  out.push(`mov dword [${sp}], 0x${state.mxcsr.toString(16)}`, `ldmxcsr [${sp}]`);
  out.push(`lea ${sp}, [${sp}+16]`);
  return out;
}

/** Everything that decides one test program; the same spec gives the same bytes. */
export interface ProgramSpec {
  seed: number;
  /** The first `count` items of the seed's stream (the stream does not depend on `count`). */
  count: number;
  mode: Mode;
  /** Times the body runs: later passes reach the block translator and the wasm tier. */
  passes: number;
  /** Only item `single` of the stream (a reproducer), started from `state`. */
  single?: number;
  /** The start state instead of the seed's own. */
  state?: StartState;
  /** Items to leave out of the stream (known differences). */
  exclude?: (cls: string, insn: string) => boolean;
}

/** A built program: its items (for reports), nasm source and the undefined flags at its end. */
export interface Program {
  items: Item[];
  /** Index of each item in the seed's stream. */
  indexes: number[];
  source: string;
  /** Status flags undefined where the body saves EFLAGS (masked before comparing). */
  undefinedAtEnd: number;
}

/** The generated stream of a seed, `count` items long. */
export function generate(
  seed: number,
  count: number,
  mode: Mode,
  exclude?: (cls: string, insn: string) => boolean,
): Item[] {
  const g = new Generator(seed, mode);
  const items: Item[] = [];
  for (let i = 0; i < count; i++) items.push(g.next(exclude));
  return items;
}

/** The seed's own start state: registers, status flags and data area, from a stream of its own. */
export function seedState(seed: number, mode: Mode): StartState {
  const rng = new Rng(seed ^ 0x5eed5eed);
  const n = REGS[mode].length - 1;
  const regs: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const lo = edgeValue(rng), hi = edgeValue(rng);
    regs.push(mode === "long" ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(lo));
  }
  // CF PF AF ZF SF DF OF from the seed; IF and TF stay clear.
  const flags = (rng.u32() & 0xcd5) | 0x2;
  const data = new Uint8Array(DATA_BYTES);
  for (let i = 0; i < DATA_BYTES; i++) {
    data[i] = rng.chance(0.2) ? rng.pick([0, 0xff, 0x7f, 0x80, 1]) : rng.below(256);
  }
  return { regs, flags, data };
}

/** Builds the nasm source of a program. */
export function buildProgram(spec: ProgramSpec): Program {
  const long = spec.mode === "long";
  const all = generate(
    spec.seed,
    spec.single !== undefined ? spec.single + 1 : spec.count,
    spec.mode,
    spec.exclude,
  );
  const indexes = spec.single !== undefined ? [spec.single] : all.map((_, i) => i);
  const items = indexes.map((i) => all[i]);
  const state = spec.state ?? seedState(spec.seed, spec.mode);
  const names = REGS[spec.mode].filter((r) => r !== "esp" && r !== "rsp");
  const init = [
    ...sseInit(state, long),
    ...names.map((r, i) => `mov ${r}, 0x${state.regs[i].toString(16)}`),
  ];
  const body: string[] = [];
  const resume: string[] = [];
  // A single item starts from concrete flags, so nothing it reads is undefined.
  let undefinedAtEnd = spec.single !== undefined ? 0 : 0x1;
  items.forEach((it, k) => {
    const p = `L${indexes[k]}_`;
    body.push(`; ${indexes[k]}: ${it.cls}: ${it.insn}`);
    it.lines.forEach((line, j) => {
      const l = line.replaceAll("@", p);
      if (it.mayFault && j === it.lines.length - 1) {
        body.push(`${p}f:`, l, `${p}r:`);
        resume.push(long ? `dq ${p}f, ${p}r` : `dd ${p}f, ${p}r`);
      } else body.push(l);
    });
    undefinedAtEnd = spec.single !== undefined ? it.undefOwn : it.undefAfter;
  });
  const source = (long ? longSource : pm32Source)({
    init,
    flags: state.flags,
    data: [...state.data],
    body,
    resume,
    passes: spec.passes,
  });
  return { items, indexes, source, undefinedAtEnd };
}

/** Assembles a program with nasm into a flat Multiboot image. */
export async function assemble(source: string, dir: string): Promise<string> {
  const asm = `${dir}/prog.asm`, bin = `${dir}/prog.bin`;
  await Deno.writeTextFile(asm, source);
  const out = await new Deno.Command("nasm", {
    args: ["-f", "bin", "-w-all", "-o", bin, asm],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`nasm failed: ${new TextDecoder().decode(out.stderr).slice(0, 2000)}`);
  }
  return bin;
}
