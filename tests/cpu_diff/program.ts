// Builds a Multiboot test kernel (nasm source, then bytes) around a generated instruction stream

import {
  DATA_BASE,
  DATA_BYTES,
  edgeValue,
  Generator,
  type Item,
  type Mode,
  NP_PAGE,
  Rng,
  RO_PAGE,
} from "./gen.ts";

/** Fixed guest addresses below 1 MiB (the kernel itself loads at 1 MiB). */
const TABLES = 0x20000; // page tables
const IDT = 0x30000;
const VARS = 0x31000; // harness variables, outside the data area
const PASSES_VAR = VARS, FLAGS_VAR = VARS + 8, EXC_COUNT = VARS + 16, SAVE = VARS + 64;
const FPU_SW = VARS + 32, FPU_CW = VARS + 40;
const STACK_TOP = 0x70000;

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

/** A machine state to start from (registers, EFLAGS, data area), e.g. read from QEMU's dump. */
export interface StartState {
  regs: bigint[];
  flags: number;
  data: Uint8Array;
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

function hex(v: number): string {
  return "0x" + (v >>> 0).toString(16);
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
  const init = names.map((r, i) => `mov ${r}, 0x${state.regs[i].toString(16)}`);
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

interface Parts {
  init: string[];
  flags: number;
  data: number[];
  body: string[];
  resume: string[];
  passes: number;
}

function dataLines(data: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < data.length; i += 32) {
    out.push("db " + data.slice(i, i + 32).join(","));
  }
  return out;
}

/** The Multiboot header (a.out kludge: a flat image, loaded at 1 MiB, entry `start`). */
const MULTIBOOT = `
org 0x100000
mb_header:
  dd 0x1badb002, 0x00010000, -(0x1badb002 + 0x00010000)
  dd mb_header, 0x100000, 0, 0, start
`;

const GDT = `
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

/** 32-bit protected mode with 4 KiB paging over the first 8 MiB. */
function pm32Source(p: Parts): string {
  const stubs: string[] = [];
  for (let v = 0; v < 32; v++) {
    const hasCode = [8, 10, 11, 12, 13, 14, 17].includes(v);
    stubs.push(`isr${v}:`, hasCode ? "" : "  push 0", `  push ${v}`, "  jmp isr_common");
  }
  return `bits 32
${MULTIBOOT}
start:
  cli
  lgdt [gdtr]
  jmp 0x08:.cs
.cs:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov fs, ax
  mov gs, ax
  mov esp, ${hex(STACK_TOP)}
  ; IDT: 32 interrupt gates (SDM vol. 3 §6.11)
  xor ecx, ecx
.idt:
  mov eax, [isr_table + ecx*4]
  mov [${hex(IDT)} + ecx*8], ax
  mov word [${hex(IDT)} + ecx*8 + 2], 0x08
  mov word [${hex(IDT)} + ecx*8 + 4], 0x8e00
  shr eax, 16
  mov [${hex(IDT)} + ecx*8 + 6], ax
  inc ecx
  cmp ecx, 32
  jb .idt
  lidt [idtr]
  ; page directory at ${hex(TABLES)}, two page tables after it: identity map 0..8 MiB
  mov edi, ${hex(TABLES)}
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov dword [${hex(TABLES)}], ${hex(TABLES + 0x1003)}
  mov dword [${hex(TABLES + 4)}], ${hex(TABLES + 0x2003)}
  mov edi, ${hex(TABLES + 0x1000)}
  mov eax, 3
.pt:
  stosd
  add eax, 0x1000
  cmp edi, ${hex(TABLES + 0x3000)}
  jb .pt
  ; the pf class: a read-only page (filled while paging is off) and a not-present one
  mov esi, data_init
  mov edi, ${hex(RO_PAGE)}
  mov ecx, 1024
  cld
  rep movsd
  and dword [${hex(TABLES + 0x1000 + (RO_PAGE >> 12) * 4)}], ~2
  mov dword [${hex(TABLES + 0x1000 + (NP_PAGE >> 12) * 4)}], 0
  mov eax, ${hex(TABLES)}
  mov cr3, eax
  mov eax, cr0
  and eax, ~0xc ; EM, TS off: the x87 runs
  or eax, 0x80010022 ; PG, WP, NE, MP
  mov cr0, eax
  fninit
  mov esi, data_init
  mov edi, ${hex(DATA_BASE)}
  mov ecx, ${DATA_BYTES / 4}
  cld
  rep movsd
  mov dword [${hex(PASSES_VAR)}], ${p.passes}
  mov dword [${hex(EXC_COUNT)}], 0
  push dword ${hex(p.flags)}
  popfd
${p.init.map((l) => "  " + l).join("\n")}
body:
${p.body.join("\n")}
  pushfd
  pop dword [${hex(FLAGS_VAR)}]
  dec dword [${hex(PASSES_VAR)}]
  jnz body
dump:
${
    ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"].map((r, i) =>
      `  mov [${hex(SAVE + 4 * i)}], ${r}`
    ).join("\n")
  }
  mov esp, ${hex(STACK_TOP)}
  cld
  fnstsw [${hex(FPU_SW)}]
  fnstcw [${hex(FPU_CW)}]
  mov al, 'R'
  call putc
  xor ebx, ebx
.r:
  mov al, ' '
  call putc
  mov eax, [${hex(SAVE)} + ebx*4]
  call hex32
  inc ebx
  cmp ebx, 8
  jb .r
  mov esi, s_fl
  call puts
  mov eax, [${hex(FLAGS_VAR)}]
  call hex32
  mov esi, s_fpu
  call puts
  mov eax, [${hex(FPU_SW)}]
  call hex32
  mov al, ' '
  call putc
  mov eax, [${hex(FPU_CW)}]
  call hex32
  mov esi, s_exc
  call puts
  mov eax, [${hex(EXC_COUNT)}]
  call hex32
  mov al, 10
  call putc
  ; the data area, 64 bytes a line
  mov esi, ${hex(DATA_BASE)}
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
  movzx eax, byte [esi]
  call hex8
  inc esi
  loop .mb
  mov al, 10
  call putc
  cmp esi, ${hex(DATA_BASE + DATA_BYTES)}
  jb .m
  mov esi, s_end
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
; puts: the NUL-terminated string at ESI (ESI is kept)
puts:
  push esi
  push eax
.l:
  lodsb
  test al, al
  jz .e
  call putc
  jmp .l
.e:
  pop eax
  pop esi
  ret
; hex32 / hex8: EAX in hex (8 or 2 digits); every register is kept
hex32:
  pushad
  mov ecx, 8
  mov edx, eax
.d:
  rol edx, 4
  mov eax, edx
  and eax, 15
  mov al, [hexdigits + eax]
  call putc
  loop .d
  popad
  ret
hex8:
  pushad
  mov edx, eax
  shl edx, 24
  mov ecx, 2
  jmp hex32.d

; Exceptions: log "E vector eip", resume #DE at the listed instructions, else stop.
isr_common:
  pushad
  cld
  mov eax, [${hex(EXC_COUNT)}]
  inc dword [${hex(EXC_COUNT)}]
  cmp eax, 64
  jae .nolog
  call log_exc
.nolog:
  ; a fault at a listed instruction resumes after it; a trap (#BP 3, #OF 4) already
  ; points after it. A fault's address may be the previous item's end: faults look at
  ; starts only, traps at ends only.
  mov eax, [esp + 40]
  mov esi, resume_table
  xor edx, edx
  mov ecx, [esp + 32]
  cmp ecx, 3
  je .trap
  cmp ecx, 4
  jne .find
.trap:
  mov edx, 4
.find:
  cmp esi, resume_end
  jae .fatal
  cmp [esi + edx], eax
  je .hit
  add esi, 8
  jmp .find
.hit:
  test edx, edx
  jnz .done
.found:
  mov eax, [esi + 4]
  mov [esp + 40], eax
.done:
  popad
  add esp, 8
  iretd
.fatal:
  call log_exc
  mov esi, s_fatal
  call puts
  mov al, 1
  jmp exit
log_exc:
  mov al, 'E'
  call putc
  mov al, ' '
  call putc
  mov eax, [esp + 36]
  call hex8
  mov al, ' '
  call putc
  mov eax, [esp + 44]
  call hex32
  mov al, ' '
  call putc
  mov eax, [esp + 40]
  call hex32
  ; CR2, and a hash of the registers the handler found (precise state at the exception)
  mov al, ' '
  call putc
  mov eax, cr2
  call hex32
  mov al, ' '
  call putc
  mov eax, [esp + 4]
${
    [8, 12, 20, 24, 28, 32].map((o) =>
      `  rol eax, 7
  xor eax, [esp + ${o}]`
    ).join("\n")
  }
  call hex32
  mov al, 10
  call putc
  ret
${stubs.join("\n")}
isr_table:
${Array.from({ length: 32 }, (_, v) => `  dd isr${v}`).join("\n")}
resume_table:
${p.resume.join("\n")}
resume_end:
${GDT}
idtr:
  dw 32 * 8 - 1
  dd ${hex(IDT)}
hexdigits: db "0123456789abcdef"
s_fl: db " fl=", 0
s_fpu: db 10, "F ", 0
s_exc: db 10, "X ", 0
s_end: db "END", 10, 0
s_fatal: db "FATAL", 10, 0
align 4
data_init:
${dataLines(p.data).join("\n")}
`;
}

/** Long mode: EFER.LME, 4-level paging (a 4 KiB table for the first 2 MiB, then 2 MiB pages). */
function longSource(p: Parts): string {
  const stubs: string[] = [];
  for (let v = 0; v < 32; v++) {
    const hasCode = [8, 10, 11, 12, 13, 14, 17].includes(v);
    stubs.push(`isr${v}:`, hasCode ? "" : "  push 0", `  push ${v}`, "  jmp isr_common");
  }
  const saved = REGS.long;
  return `bits 32
${MULTIBOOT}
start:
  cli
  lgdt [gdtr]
  jmp 0x08:.cs
.cs:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, ${hex(STACK_TOP)}
  ; PML4, PDPT, PD, PT at ${hex(TABLES)} (SDM vol. 3 §4.5)
  mov edi, ${hex(TABLES)}
  xor eax, eax
  mov ecx, 4096
  rep stosd
  mov dword [${hex(TABLES)}], ${hex(TABLES + 0x1003)}
  mov dword [${hex(TABLES + 0x1000)}], ${hex(TABLES + 0x2003)}
  mov dword [${hex(TABLES + 0x2000)}], ${hex(TABLES + 0x3003)}
  mov dword [${hex(TABLES + 0x2008)}], 0x200083
  mov dword [${hex(TABLES + 0x2010)}], 0x400083
  mov dword [${hex(TABLES + 0x2018)}], 0x600083
  mov edi, ${hex(TABLES + 0x3000)}
  mov eax, 3
.pt:
  mov [edi], eax
  add edi, 8
  add eax, 0x1000
  cmp edi, ${hex(TABLES + 0x4000)}
  jb .pt
  ; the pf class: a read-only page (filled while paging is off) and a not-present one
  mov esi, data_init
  mov edi, ${hex(RO_PAGE)}
  mov ecx, 1024
  cld
  rep movsd
  and dword [${hex(TABLES + 0x3000 + (RO_PAGE >> 12) * 8)}], ~2
  mov dword [${hex(TABLES + 0x3000 + (NP_PAGE >> 12) * 8)}], 0
  mov eax, cr4
  or eax, 0x20 ; PAE
  mov cr4, eax
  mov eax, ${hex(TABLES)}
  mov cr3, eax
  mov ecx, 0xc0000080 ; EFER
  rdmsr
  or eax, 0x100 ; LME
  wrmsr
  mov eax, cr0
  and eax, ~0xc
  or eax, 0x80010022
  mov cr0, eax
  jmp 0x18:long_entry
bits 64
long_entry:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, ${hex(STACK_TOP)}
  ; IDT: 32 interrupt gates of 16 bytes (SDM vol. 3 §6.14.1)
  xor ecx, ecx
.idt:
  mov eax, [isr_table + rcx*4]
  mov rdi, rcx
  shl rdi, 4
  add rdi, ${hex(IDT)}
  mov [rdi], ax
  mov word [rdi + 2], 0x18
  mov word [rdi + 4], 0x8e00
  shr eax, 16
  mov [rdi + 6], ax
  mov qword [rdi + 8], 0
  inc ecx
  cmp ecx, 32
  jb .idt
  lidt [idtr]
  fninit
  mov rsi, data_init
  mov rdi, ${hex(DATA_BASE)}
  mov rcx, ${DATA_BYTES / 8}
  cld
  rep movsq
  mov dword [${hex(PASSES_VAR)}], ${p.passes}
  mov dword [${hex(EXC_COUNT)}], 0
  push qword ${hex(p.flags)}
  popfq
${p.init.map((l) => "  " + l).join("\n")}
body:
${p.body.join("\n")}
  pushfq
  pop qword [${hex(FLAGS_VAR)}]
  dec dword [${hex(PASSES_VAR)}]
  jnz body
dump:
${saved.map((r, i) => `  mov [${hex(SAVE + 8 * i)}], ${r}`).join("\n")}
  mov rsp, ${hex(STACK_TOP)}
  cld
  fnstsw [${hex(FPU_SW)}]
  fnstcw [${hex(FPU_CW)}]
  mov al, 'R'
  call putc
  xor ebx, ebx
.r:
  mov al, ' '
  call putc
  mov rax, [${hex(SAVE)} + rbx*8]
  call hex64
  inc ebx
  cmp ebx, ${saved.length}
  jb .r
  mov rsi, s_fl
  call puts
  mov eax, [${hex(FLAGS_VAR)}]
  call hex32
  mov rsi, s_fpu
  call puts
  movzx eax, word [${hex(FPU_SW)}]
  call hex32
  mov al, ' '
  call putc
  movzx eax, word [${hex(FPU_CW)}]
  call hex32
  mov rsi, s_exc
  call puts
  mov eax, [${hex(EXC_COUNT)}]
  call hex32
  mov al, 10
  call putc
  mov rsi, ${hex(DATA_BASE)}
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
  movzx eax, byte [rsi]
  call hex8
  inc rsi
  loop .mb
  mov al, 10
  call putc
  cmp rsi, ${hex(DATA_BASE + DATA_BYTES)}
  jb .m
  mov rsi, s_end
  call puts
  xor eax, eax
exit:
  out 0xf4, al
.h:
  hlt
  jmp .h

putc:
  out 0xe9, al
  ret
puts:
  push rsi
  push rax
.l:
  lodsb
  test al, al
  jz .e
  call putc
  jmp .l
.e:
  pop rax
  pop rsi
  ret
; hex64 / hex32 / hex8: RAX in hex (16, 8 or 2 digits); registers kept
hex64:
  push rcx
  push rax
  push rdx
  mov ecx, 16
  mov rdx, rax
  jmp hexn
hex32:
  push rcx
  push rax
  push rdx
  mov ecx, 8
  mov rdx, rax
  shl rdx, 32
  jmp hexn
hex8:
  push rcx
  push rax
  push rdx
  mov ecx, 2
  mov rdx, rax
  shl rdx, 56
hexn:
.d:
  rol rdx, 4
  mov eax, edx
  and eax, 15
  mov al, [hexdigits + rax]
  call putc
  loop .d
  pop rdx
  pop rax
  pop rcx
  ret

isr_common:
${
    [
      "rax",
      "rbx",
      "rcx",
      "rdx",
      "rsi",
      "rdi",
      "rbp",
      "r8",
      "r9",
      "r10",
      "r11",
      "r12",
      "r13",
      "r14",
      "r15",
    ].map((r) => "  push " + r).join("\n")
  }
  mov eax, [${hex(EXC_COUNT)}]
  inc dword [${hex(EXC_COUNT)}]
  cmp eax, 64
  jae .nolog
  call log_exc
.nolog:
  ; faults look at the starts of the listed instructions, traps (#BP, #OF) at their ends
  mov rax, [rsp + 136]
  mov rsi, resume_table
  xor edx, edx
  mov rcx, [rsp + 120]
  cmp rcx, 3
  je .trap
  cmp rcx, 4
  jne .find
.trap:
  mov edx, 8
.find:
  cmp rsi, resume_end
  jae .fatal
  cmp [rsi + rdx], rax
  je .hit
  add rsi, 16
  jmp .find
.hit:
  test edx, edx
  jnz .done
.found:
  mov rax, [rsi + 8]
  mov [rsp + 136], rax
.done:
${
    [
      "r15",
      "r14",
      "r13",
      "r12",
      "r11",
      "r10",
      "r9",
      "r8",
      "rbp",
      "rdi",
      "rsi",
      "rdx",
      "rcx",
      "rbx",
      "rax",
    ].map((r) => "  pop " + r).join("\n")
  }
  add rsp, 16
  iretq
.fatal:
  call log_exc
  mov rsi, s_fatal
  call puts
  mov al, 1
  jmp exit
log_exc:
  mov al, 'E'
  call putc
  mov al, ' '
  call putc
  mov rax, [rsp + 128]
  call hex8
  mov al, ' '
  call putc
  mov rax, [rsp + 144]
  call hex64
  mov al, ' '
  call putc
  mov rax, [rsp + 136]
  call hex32
  mov al, ' '
  call putc
  mov rax, cr2
  call hex64
  mov al, ' '
  call putc
  mov rax, [rsp + 8]
${
    Array.from({ length: 14 }, (_, i) =>
      `  rol rax, 7
  xor rax, [rsp + ${16 + 8 * i}]`).join("\n")
  }
  call hex64
  mov al, 10
  call putc
  ret
${stubs.join("\n")}
isr_table:
${Array.from({ length: 32 }, (_, v) => `  dd isr${v}`).join("\n")}
align 8
resume_table:
${p.resume.join("\n")}
resume_end:
${GDT}
idtr:
  dw 32 * 16 - 1
  dq ${hex(IDT)}
hexdigits: db "0123456789abcdef"
s_fl: db " fl=", 0
s_fpu: db 10, "F ", 0
s_exc: db 10, "X ", 0
s_end: db "END", 10, 0
s_fatal: db "FATAL", 10, 0
align 8
data_init:
${dataLines(p.data).join("\n")}
`;
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
