// Multiboot benchmark guests: tight loops whose instruction counts are known by construction

import {
  Assembler,
  byte,
  CR0,
  CR3,
  dword,
  EAX,
  EBX,
  ECX,
  EDI,
  EDX,
  ESI,
  mem,
} from "../../plugins/machines/x86_asm.ts";
import { multibootGuest } from "../../tools/demo_guest.ts";

/**
 * A benchmark guest. Its loop runs N times, N being the last number on the kernel
 * command line (`-append N`), and then the guest writes 0 to isa-debug-exit (exit
 * status 1). Instructions retired = `perIteration * N + setup`, where `setup` (boot
 * ROM, table building, page tables) does not depend on N; running N = 0 measures it.
 */
export interface LoopGuest {
  name: string;
  /** Instructions per loop iteration (each iteration of a `rep` string instruction counts). */
  perIteration: number;
  /** Bytes the loop moves per iteration, for throughput rows (rep movs/stos). */
  bytesPerIteration?: number;
  /** The kernel image. */
  image: Uint8Array;
}

/** Reads N from the command line into ECX (the setup code that follows keeps ECX). */
function loopCount(a: Assembler): void {
  a.mov(EBX, dword(null, 0x9f000)).mov(ESI, dword(EBX, 16)).call("parse_count").mov(ECX, EAX);
}

/** Skips the loop when N is zero; placed after the setup so that N = 0 still runs it. */
function skipIfZero(a: Assembler): void {
  a.test(ECX, ECX).jcc("z", "done");
}

/** (a) ALU: 9 instructions per iteration (add, xor, sub, shl, or, and, inc, dec, jnz). */
export function aluLoop(): LoopGuest {
  const image = multibootGuest((a) => {
    loopCount(a);
    a.mov(EAX, 1).mov(EBX, 2).xor(EDX, EDX);
    skipIfZero(a);
    a.label("alu").add(EAX, EBX).xor(EBX, EAX).sub(EDX, EAX).shl(EAX, 1).or(EDX, EBX);
    a.and(EBX, 0x7fffffff).inc(ESI).dec(ECX).jcc("nz", "alu");
    a.label("done");
  });
  return { name: "alu", perIteration: 9, image };
}

/** Where the paging guest keeps its page directory, two page tables and its 64 KiB buffer. */
const PAGE_DIRECTORY = 0x200000;
const PAGE_TABLES = 0x201000;
const BUFFER = 0x400000;

/**
 * (b) Loads and stores with paging on: identity-maps the first 8 MiB with 4 KiB pages,
 * sets CR0.PG, then walks a 64 KiB buffer in 64-byte steps (16 pages):
 * add, and, mov load, add, mov store, dec, jnz = 7 instructions per iteration.
 */
export function pagedLoadStoreLoop(): LoopGuest {
  const image = multibootGuest((a) => {
    loopCount(a);
    // Page tables: PTE i = i * 4 KiB | present | writable, for 2048 pages.
    a.mov(EDI, PAGE_TABLES).mov(EAX, 3).mov(EDX, 2048);
    a.label("pte").mov(mem(EDI, 0), EAX).add(EDI, 4).add(EAX, 4096).dec(EDX).jcc("nz", "pte");
    a.mov(dword(null, PAGE_DIRECTORY), PAGE_TABLES + 3);
    a.mov(dword(null, PAGE_DIRECTORY + 4), PAGE_TABLES + 0x1000 + 3);
    a.mov(EAX, PAGE_DIRECTORY).mov(CR3, EAX);
    a.mov(EAX, CR0).or(EAX, 0x80000000).mov(CR0, EAX);
    a.xor(EDI, EDI);
    skipIfZero(a);
    a.label("paged").add(EDI, 64).and(EDI, 0xffff).mov(EAX, mem(EDI, BUFFER));
    a.add(EAX, ECX).mov(mem(EDI, BUFFER + 4), EAX).dec(ECX).jcc("nz", "paged");
    a.label("done");
  });
  return { name: "load/store, paging on", perIteration: 7, image };
}

/** (c) call/ret: call, add, ret, dec, jnz = 5 instructions per iteration. */
export function callRetLoop(): LoopGuest {
  const image = multibootGuest((a) => {
    loopCount(a);
    a.xor(EAX, EAX).jmp("start_calls");
    a.label("callee").add(EAX, ECX).ret();
    a.label("start_calls");
    skipIfZero(a);
    a.label("calls").call("callee").dec(ECX).jcc("nz", "calls");
    a.label("done");
  });
  return { name: "call/ret", perIteration: 5, image };
}

const REP_DWORDS = 1024;
const REP_SOURCE = 0x300000;
const REP_DESTINATION = 0x310000;

/**
 * (d) rep movsd of 4 KiB then rep stosd of 4 KiB: 8 instructions per iteration plus one
 * per REP iteration, 2 x 1024 (mov esi, mov edi, mov ebx, mov ecx, rep movsd, mov ecx,
 * rep stosd, mov ecx, dec, jnz; each REP iteration retires one instruction, as QEMU's
 * icount counts it) and 8 KiB moved.
 */
export function repStringLoop(): LoopGuest {
  const image = multibootGuest((a) => {
    loopCount(a);
    a.cld().xor(EAX, EAX);
    skipIfZero(a);
    a.label("rep").mov(ESI, REP_SOURCE).mov(EDI, REP_DESTINATION).mov(EBX, ECX);
    a.mov(ECX, REP_DWORDS).repMovsd().mov(ECX, REP_DWORDS).repStosd().mov(ECX, EBX);
    a.dec(ECX).jcc("nz", "rep");
    a.label("done");
  });
  return {
    name: "rep movsd/stosd",
    perIteration: 8 + 2 * REP_DWORDS,
    bytesPerIteration: 8 * REP_DWORDS,
    image,
  };
}

const CRC_TABLE = 0x380000;
const CRC_DATA = 0x300000;

/**
 * (e) CRC-32 (polynomial 0xEDB88320) over a 64 KiB buffer, one byte per iteration
 * through a 256-entry table built at start: movzx, xor, and, shr, xor (table), inc,
 * and, dec, jnz = 9 instructions per iteration.
 */
export function crc32Loop(): LoopGuest {
  const image = multibootGuest((a) => {
    loopCount(a);
    a.push(ECX).xor(EBX, EBX);
    a.label("t_outer").mov(EAX, EBX).mov(EDX, 8);
    a.label("t_inner").shr(EAX, 1).jcc("nc", "t_skip", { short: true }).xor(EAX, 0xedb88320);
    a.label("t_skip").dec(EDX).jcc("nz", "t_inner");
    a.mov(mem(null, CRC_TABLE, { index: EBX, scale: 4 }), EAX).inc(EBX).cmp(EBX, 256);
    a.jcc("b", "t_outer");
    a.pop(ECX).mov(EAX, 0xffffffff).mov(ESI, CRC_DATA);
    skipIfZero(a);
    a.label("crc").movzx(EDX, byte(ESI, 0)).xor(EDX, EAX).and(EDX, 0xff).shr(EAX, 8);
    a.xor(EAX, mem(null, CRC_TABLE, { index: EDX, scale: 4 })).inc(ESI).and(ESI, 0x30ffff);
    a.dec(ECX).jcc("nz", "crc");
    a.label("done");
  });
  return { name: "crc32 (table-driven)", perIteration: 9, image };
}

/** Every benchmark guest, in table order. */
export function loopGuests(): LoopGuest[] {
  return [aluLoop(), pagedLoadStoreLoop(), callRetLoop(), repStringLoop(), crc32Loop()];
}
