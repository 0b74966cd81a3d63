// Stack pushes and pops through SS with the stack-size attribute (SP or ESP)

import { read16, read32, write16, write32 } from "./memory.ts";
import { type CpuCore, ESP, SS } from "./state.ts";

/** Pushes a word. */
export function push16(c: CpuCore, v: number): void {
  const r = c.regs;
  if (c.stack32) {
    const sp = (r[ESP] - 2) | 0;
    write16(c, SS, sp >>> 0, v);
    r[ESP] = sp;
  } else {
    const sp = (r[ESP] - 2) & 0xffff;
    write16(c, SS, sp, v);
    r[ESP] = (r[ESP] & ~0xffff) | sp;
  }
}

/** Pushes a dword. */
export function push32(c: CpuCore, v: number): void {
  const r = c.regs;
  if (c.stack32) {
    const sp = (r[ESP] - 4) | 0;
    write32(c, SS, sp >>> 0, v);
    r[ESP] = sp;
  } else {
    const sp = (r[ESP] - 4) & 0xffff;
    write32(c, SS, sp, v);
    r[ESP] = (r[ESP] & ~0xffff) | sp;
  }
}

/** Pushes a word or dword by the current operand size. */
export function push(c: CpuCore, v: number): void {
  if (c.op32) push32(c, v);
  else push16(c, v);
}

/** Reads the word at the top of the stack plus `offset` without popping. */
export function peek16(c: CpuCore, offset: number): number {
  const sp = c.stack32 ? (c.regs[ESP] + offset) >>> 0 : (c.regs[ESP] + offset) & 0xffff;
  return read16(c, SS, sp);
}

/** Reads the dword at the top of the stack plus `offset` without popping. */
export function peek32(c: CpuCore, offset: number): number {
  const sp = c.stack32 ? (c.regs[ESP] + offset) >>> 0 : (c.regs[ESP] + offset) & 0xffff;
  return read32(c, SS, sp);
}

/** Adds `n` to the stack pointer (SP or ESP). */
export function adjustSp(c: CpuCore, n: number): void {
  const r = c.regs;
  if (c.stack32) r[ESP] = (r[ESP] + n) | 0;
  else r[ESP] = (r[ESP] & ~0xffff) | ((r[ESP] + n) & 0xffff);
}

/** Pops a word. */
export function pop16(c: CpuCore): number {
  const v = peek16(c, 0);
  adjustSp(c, 2);
  return v;
}

/** Pops a dword. */
export function pop32(c: CpuCore): number {
  const v = peek32(c, 0);
  adjustSp(c, 4);
  return v;
}

/** Pops by the current operand size. */
export function pop(c: CpuCore): number {
  return c.op32 ? pop32(c) : pop16(c);
}
