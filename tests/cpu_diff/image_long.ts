// The long-mode test kernel: 4-level paging, EFER.LME, a 64-bit body, dump and exception handler

import { DATA_BASE, DATA_BYTES, NP_PAGE, RO_PAGE } from "./gen.ts";
import {
  dumpTail,
  EXC_COUNT,
  FLAGS_VAR,
  FPU_CW,
  FPU_SW,
  hex,
  IDT,
  MULTIBOOT,
  type Parts,
  PASSES_VAR,
  REGS,
  SAVE,
  sseDumpHead,
  STACK_TOP,
  TABLES,
  tables,
  XMM_SAVE,
} from "./layout.ts";

/** Long mode: EFER.LME, 4-level paging (a 4 KiB table for the first 2 MiB, then 2 MiB pages). */
export function longSource(p: Parts): string {
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
  or eax, 0x620 ; PAE, OSFXSR, OSXMMEXCPT (SSE on; unmasked SIMD faults would be #XM)
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
  ; XMM0..XMM15 start from the seed's data area
${Array.from({ length: 16 }, (_, i) => `  movdqu xmm${i}, [${hex(DATA_BASE + 16 * i)}]`).join("\n")}
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
${sseDumpHead(16)}
  mov rdi, rbx
  shl rdi, 4
  mov rax, [${hex(XMM_SAVE + 8)} + rdi]
  call hex64
  mov rax, [${hex(XMM_SAVE)} + rdi]
  call hex64
  mov al, 10
  call putc
  inc ebx
  cmp ebx, 16
  jb .v
${dumpTail("r")}
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
${tables(p, true)}`;
}
