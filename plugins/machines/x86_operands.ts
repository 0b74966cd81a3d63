// Operands of the x86 emitter: registers, memory operands, immediates and condition codes

/** A general-purpose register of a given width (`code` is the ModRM register number). */
export interface Reg {
  readonly kind: "reg";
  readonly code: number;
  readonly bits: 8 | 16 | 32;
  readonly name: string;
}

/** A segment register (`code`: ES 0, CS 1, SS 2, DS 3, FS 4, GS 5). */
export interface SegReg {
  readonly kind: "sreg";
  readonly code: number;
  readonly name: string;
}

/** A control register (CR0, CR2, CR3, CR4). */
export interface CtrlReg {
  readonly kind: "creg";
  readonly code: number;
  readonly name: string;
}

/** A label name, or a label name plus a byte offset, standing for an absolute address. */
export type LabelRef = string | { readonly label: string; readonly addend: number };

/** A memory operand: `[base + index*scale + disp]`, with an optional segment override. */
export interface Mem {
  readonly kind: "mem";
  readonly base?: Reg;
  readonly index?: Reg;
  readonly scale?: 1 | 2 | 4 | 8;
  readonly disp: number | LabelRef;
  /** Operand width when no register operand gives it (`mov dword [x], 1`). */
  readonly bits?: 8 | 16 | 32;
  readonly seg?: SegReg;
}

/** An immediate: a number or the absolute address of a label. */
export type Imm = number | LabelRef;
/** Any operand. */
export type Operand = Reg | Mem | SegReg | CtrlReg | Imm;

function reg(code: number, bits: 8 | 16 | 32, name: string): Reg {
  return { kind: "reg", code, bits, name };
}
function sreg(code: number, name: string): SegReg {
  return { kind: "sreg", code, name };
}
function creg(code: number, name: string): CtrlReg {
  return { kind: "creg", code, name };
}

export const EAX = reg(0, 32, "eax"), ECX = reg(1, 32, "ecx"), EDX = reg(2, 32, "edx");
export const EBX = reg(3, 32, "ebx"), ESP = reg(4, 32, "esp"), EBP = reg(5, 32, "ebp");
export const ESI = reg(6, 32, "esi"), EDI = reg(7, 32, "edi");
export const AX = reg(0, 16, "ax"), CX = reg(1, 16, "cx"), DX = reg(2, 16, "dx");
export const BX = reg(3, 16, "bx"), SP = reg(4, 16, "sp"), BP = reg(5, 16, "bp");
export const SI = reg(6, 16, "si"), DI = reg(7, 16, "di");
export const AL = reg(0, 8, "al"), CL = reg(1, 8, "cl"), DL = reg(2, 8, "dl");
export const BL = reg(3, 8, "bl"), AH = reg(4, 8, "ah"), CH = reg(5, 8, "ch");
export const DH = reg(6, 8, "dh"), BH = reg(7, 8, "bh");
export const ES = sreg(0, "es"), CS = sreg(1, "cs"), SS = sreg(2, "ss");
export const DS = sreg(3, "ds"), FS = sreg(4, "fs"), GS = sreg(5, "gs");
export const CR0 = creg(0, "cr0"), CR2 = creg(2, "cr2"), CR3 = creg(3, "cr3");
export const CR4 = creg(4, "cr4");

/**
 * A memory operand `[base + disp]` (base may be null for an absolute address).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Assembler, EAX, EBX, mem } from "./x86_asm.ts";
 *
 * const a = new Assembler({ bits: 32 });
 * a.mov(EAX, mem(EBX, 8)); // mov eax, [ebx+8]
 * assert.deepEqual([...a.assemble()], [0x8b, 0x43, 0x08]);
 * ```
 */
export function mem(
  base: Reg | null,
  disp: number | LabelRef = 0,
  options: { bits?: 8 | 16 | 32; index?: Reg; scale?: 1 | 2 | 4 | 8; seg?: SegReg } = {},
): Mem {
  return { kind: "mem", base: base ?? undefined, disp, ...options };
}

/** `dword [base + disp]`. */
export function dword(base: Reg | null, disp: number | LabelRef = 0): Mem {
  return mem(base, disp, { bits: 32 });
}

/** `byte [base + disp]`. */
export function byte(base: Reg | null, disp: number | LabelRef = 0): Mem {
  return mem(base, disp, { bits: 8 });
}

/** A label plus a byte offset, as an immediate or displacement. */
export function at(label: string, addend: number): LabelRef {
  return { label, addend };
}

/** Condition codes of Jcc/SETcc (Intel SDM Vol. 2, Appendix B "tttn"). */
export const CONDITIONS = {
  o: 0,
  no: 1,
  b: 2,
  c: 2,
  nae: 2,
  ae: 3,
  nb: 3,
  nc: 3,
  e: 4,
  z: 4,
  ne: 5,
  nz: 5,
  be: 6,
  na: 6,
  a: 7,
  nbe: 7,
  s: 8,
  ns: 9,
  p: 10,
  np: 11,
  l: 12,
  nge: 12,
  ge: 13,
  nl: 13,
  le: 14,
  ng: 14,
  g: 15,
  nle: 15,
} as const;
/** A condition name of {@linkcode CONDITIONS}. */
export type Condition = keyof typeof CONDITIONS;
