// The 32-bit protected-mode test kernel: GDT, IDT, 4 KiB paging, body, dump, exception handler

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
  SAVE,
  sseDumpHead,
  STACK_TOP,
  TABLES,
  tables,
  XMM_SAVE,
} from "./layout.ts";

/** 32-bit protected mode with 4 KiB paging over the first 8 MiB. */
export function pm32Source(p: Parts): string {
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
  mov eax, cr4
  or eax, 0x600 ; OSFXSR, OSXMMEXCPT (SSE on; unmasked SIMD faults would be #XM)
  mov cr4, eax
  mov esi, data_init
  mov edi, ${hex(DATA_BASE)}
  mov ecx, ${DATA_BYTES / 4}
  cld
  rep movsd
  ; XMM0..XMM7 start from the seed's data area
${Array.from({ length: 8 }, (_, i) => `  movdqu xmm${i}, [${hex(DATA_BASE + 16 * i)}]`).join("\n")}
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
${sseDumpHead(8)}
  mov edi, ebx
  shl edi, 4
  mov eax, [${hex(XMM_SAVE + 12)} + edi]
  call hex32
  mov eax, [${hex(XMM_SAVE + 8)} + edi]
  call hex32
  mov eax, [${hex(XMM_SAVE + 4)} + edi]
  call hex32
  mov eax, [${hex(XMM_SAVE)} + edi]
  call hex32
  mov al, 10
  call putc
  inc ebx
  cmp ebx, 8
  jb .v
${dumpTail("e")}
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
${tables(p, false)}`;
}
