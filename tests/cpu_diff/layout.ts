// The test kernel's memory layout and the nasm pieces both CPU modes share

import type { Mode } from "./gen.ts";

/** EFLAGS status bits (Intel SDM vol. 1 §3.4.3.1). */
export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
/** The six arithmetic status flags. */
export const STATUS = CF | PF | AF | ZF | SF | OF;

/**
 * Where the generated code may read and write memory: DATA_BASE..+DATA_BYTES, identity
 * mapped; two pages, so accesses near 0x9000 cross a page boundary.
 */
export const DATA_BASE = 0x8000;
export const DATA_BYTES = 8192;

/** A read-only page right after the data area, and a not-present page after it (the pf class). */
export const RO_PAGE = DATA_BASE + DATA_BYTES, NP_PAGE = RO_PAGE + 0x1000;

/** Fixed guest addresses below 1 MiB (the kernel itself loads at 1 MiB). */
export const TABLES = 0x20000; // page tables
export const IDT = 0x30000;
export const VARS = 0x31000; // harness variables, outside the data area
export const PASSES_VAR = VARS, FLAGS_VAR = VARS + 8, EXC_COUNT = VARS + 16, SAVE = VARS + 64;
export const FPU_SW = VARS + 32, FPU_CW = VARS + 40, MXCSR_VAR = VARS + 48;
/** XMM0..XMM15 saved for the dump (long mode), 16 bytes each. */
export const XMM_SAVE = VARS + 256;
export const STACK_TOP = 0x70000;

/**
 * The start of the SIMD part of the dump: MXCSR and XMM0..XMM(n-1) saved (before any other
 * use), the `S` line, then the `V n ` prefix of each register's line, whose value the
 * mode's own code prints (register `index` in EBX/RBX) before `tail`, in a loop over n.
 */
export function sseDumpHead(n: number): string {
  return `  ; MXCSR ("S"), then XMM0..XMM${n - 1} ("V n high low"), saved before any other use
  stmxcsr [${hex(MXCSR_VAR)}]
${Array.from({ length: n }, (_, i) => `  movdqu [${hex(XMM_SAVE + 16 * i)}], xmm${i}`).join("\n")}
  mov al, 'S'
  call putc
  mov al, ' '
  call putc
  mov eax, [${hex(MXCSR_VAR)}]
  call hex32
  mov al, 10
  call putc
  xor ebx, ebx
.v:
  mov al, 'V'
  call putc
  mov al, ' '
  call putc
  mov eax, ebx
  call hex8
  mov al, ' '
  call putc`;
}

/** Register order of the `R` line of the dump, per mode. */
export const REGS: Record<Mode, string[]> = {
  pm32: ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"],
  long: [
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
  ],
};

/** What a mode's template fills in: start state, body, resume table, passes. */
export interface Parts {
  init: string[];
  flags: number;
  data: number[];
  body: string[];
  resume: string[];
  passes: number;
}

/** The data area's start bytes as `db` lines. */
export function dataLines(data: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < data.length; i += 32) {
    out.push("db " + data.slice(i, i + 32).join(","));
  }
  return out;
}

/** The Multiboot header (a.out kludge: a flat image, loaded at 1 MiB, entry `start`). */
export const MULTIBOOT = `
org 0x100000
mb_header:
  dd 0x1badb002, 0x00010000, -(0x1badb002 + 0x00010000)
  dd mb_header, 0x100000, 0, 0, start
`;

/** Null, flat 32-bit code (0x08), flat data (0x10), 64-bit code (0x18). */
export const GDT = `
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff ; 0x08 code32
  dq 0x00cf92000000ffff ; 0x10 data
  dq 0x00209a0000000000 ; 0x18 code64
gdt_end:
gdtr:
  dw gdt_end - gdt - 1
  dd gdt
`;

/** `0x` and lowercase hex. */
export function hex(v: number): string {
  return "0x" + (v >>> 0).toString(16);
}

/** Interrupt stubs 0..31: each pushes a 0 where the CPU pushes no error code, then its vector. */
export function isrStubs(): string[] {
  const stubs: string[] = [];
  for (let v = 0; v < 32; v++) {
    const hasCode = [8, 10, 11, 12, 13, 14, 17].includes(v);
    stubs.push(`isr${v}:`, hasCode ? "" : "  push 0", `  push ${v}`, "  jmp isr_common");
  }
  return stubs;
}

/**
 * The end of the dump (the data area as `M` lines, then `END`), the exit through
 * isa-debug-exit, and `putc`/`puts`, for 32-bit (`r` = "e") or 64-bit (`r` = "r") code.
 */
export function dumpTail(r: "e" | "r"): string {
  return `  ; the data area, 64 bytes a line
  mov ${r}si, ${hex(DATA_BASE)}
.m:
  mov al, 'M'
  call putc
  mov al, ' '
  call putc
  mov eax, esi
  call hex32
  mov al, ' '
  call putc
  mov ecx, 64
.mb:
  movzx eax, byte [${r}si]
  call hex8
  inc ${r}si
  loop .mb
  mov al, 10
  call putc
  cmp ${r}si, ${hex(DATA_BASE + DATA_BYTES)}
  jb .m
  mov ${r}si, s_end
  call puts
  xor eax, eax
exit:
  out 0xf4, al
.h:
  hlt
  jmp .h

; putc: AL to the debugcon port
putc:
  out 0xe9, al
  ret
; puts: the NUL-terminated string at ${r.toUpperCase()}SI (kept)
puts:
  push ${r}si
  push ${r}ax
.l:
  lodsb
  test al, al
  jz .e
  call putc
  jmp .l
.e:
  pop ${r}ax
  pop ${r}si
  ret`;
}

/**
 * The tables and data after the code: the interrupt stubs and their table, the resume
 * table, GDT, IDTR (8- or 16-byte gates), the dump's strings and the data area's start bytes.
 */
export function tables(p: Parts, long: boolean): string {
  return `${isrStubs().join("\n")}
isr_table:
${Array.from({ length: 32 }, (_, v) => `  dd isr${v}`).join("\n")}
${long ? "align 8\n" : ""}resume_table:
${p.resume.join("\n")}
resume_end:
${GDT}
idtr:
  dw 32 * ${long ? 16 : 8} - 1
  ${long ? "dq" : "dd"} ${hex(IDT)}
hexdigits: db "0123456789abcdef"
s_fl: db " fl=", 0
s_fpu: db 10, "F ", 0
s_exc: db 10, "X ", 0
s_end: db "END", 10, 0
s_fatal: db "FATAL", 10, 0
align ${long ? 8 : 4}
data_init:
${dataLines(p.data).join("\n")}
`;
}
