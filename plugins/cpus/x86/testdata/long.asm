; Long-mode checks: each stores a result quadword at RESULTS + 8*k, then HLT.
; The test compares them with what the SDM says (values worked out by hand in long_test.ts).
%define RESULTS 0x20000
%include "long_entry.inc"
main64:
    ; 0: a 32-bit write zeroes the upper half, 8- and 16-bit ones do not
    mov rax, -1
    mov eax, 0x12345678
    mov [RESULTS + 0], rax
    mov rbx, -1
    mov bx, 0x1234
    mov bl, 0x56
    mov [RESULTS + 8], rbx
    ; 2: REX byte registers SIL, R9B; MOVSXD; CQO
    mov rsi, 0x1111111111111111
    mov sil, 0x80
    mov r9, 0
    mov r9b, sil
    movsx r10, r9b
    mov [RESULTS + 16], r10
    mov ecx, 0x80000000
    movsxd r11, ecx
    mov [RESULTS + 24], r11
    ; 4: RIP-relative load of a constant, with an immediate after the displacement
    mov qword [rel scratch], 5
    add qword [rel scratch], 7
    mov rax, [rel scratch]
    mov [RESULTS + 32], rax
    ; 5: 64-bit MUL and DIV
    mov rax, 0x100000001
    mov rcx, 0x100000001
    mul rcx
    mov [RESULTS + 40], rax
    mov [RESULTS + 48], rdx
    mov rdx, 1
    mov rax, 0
    mov rcx, 3
    div rcx
    mov [RESULTS + 56], rax
    mov [RESULTS + 64], rdx
    ; 9: CMPXCHG16B that matches, then one that does not
    mov rax, 1
    mov rdx, 2
    mov [0x30000], rax
    mov [0x30008], rdx
    mov rbx, 3
    mov rcx, 4
    lock cmpxchg16b [0x30000]
    setz byte [RESULTS + 72]
    mov rax, [0x30000]
    mov [RESULTS + 80], rax
    mov rax, 9
    cmpxchg16b [0x30000]
    mov [RESULTS + 88], rax
    ; 12: a memory window above 4 GiB: PML4[36] -> a PDPT at 0x14000 -> a PD at 0x15000,
    ; so linear 0x120000000000 maps physical 0
    mov dword [0x10000 + 36 * 8], 0x14007
    mov dword [0x14000], 0x15007
    mov dword [0x15000], 0x87 ; 2 MiB pages: 0x120000000000 and 0x120000200000 both map 0
    mov dword [0x15008], 0x87
    mov rax, cr3
    mov cr3, rax
    mov rdi, 0x120000000000 + 0x30000
    mov rax, [rdi]
    mov [RESULTS + 96], rax
    mov qword [rdi + 16], 0x77
    mov rax, [0x30010]
    mov [RESULTS + 104], rax
    ; 30: six windows in turn (more than the TLB keeps): PML4[37..42] -> the same PDPT, so
    ; linear (k << 39) + 0x30100 is physical 0x30100 for each k; each store goes through
    ; another window, then one load through window 0 sums them
    mov ecx, 37
.win:
    mov dword [0x10000 + rcx * 8], 0x14007
    mov rdi, rcx
    shl rdi, 39
    add [rdi + 0x30100], rcx
    inc ecx
    cmp ecx, 43
    jb .win
    mov rax, [0x30100]
    mov [RESULTS + 240 + 28], rax
    ; 28: LTR of a 16-byte TSS descriptor whose base is above 4 GiB (its low half alone
    ; would name zeros); the #GP gate below takes its stack from IST1
    lea rax, [rel tss + 0x200000] ; linear 0x120000200000 + tss is physical tss
    mov word [gdt + 0x30], 0x67
    mov [gdt + 0x32], ax
    shr eax, 16
    mov [gdt + 0x34], al
    mov byte [gdt + 0x35], 0x89
    mov byte [gdt + 0x36], 0
    mov [gdt + 0x37], ah
    mov dword [gdt + 0x38], 0x1200
    mov dword [gdt + 0x3c], 0
    mov ax, 0x30
    ltr ax
    ; 14: an interrupt through a 16-byte gate, IRETQ back
    lidt [idtr]
    int3
    mov rax, [0x30020]
    mov [RESULTS + 112], rax
    ; 15: a non-canonical access raises #GP(0)
    mov rdi, 0x0000800000000000
    mov byte [fault_skip], 2
    mov rax, [rdi]
    mov rax, [0x30028]
    mov [RESULTS + 120], rax
    mov rax, [0x30030]
    mov [RESULTS + 224], rax
    ; 20: compatibility mode: a far jump to the 32-bit code segment under EFER.LMA and back
    mov rax, 0xaaaaaaaa00000000
    jmp far [rel to_compat]
bits 32
compat:
    prefetchw [RESULTS + 160] ; 0F 0D: a NOP hint (Linux runs it on AMD models)
    fld1
    emms ; every x87 tag empty (Linux's AMD FXSAVE-leak workaround)
    fnstenv [RESULTS + 232]
    mov eax, 0x99        ; 32-bit code: the upper half is not reachable here
    mov [RESULTS + 160], eax
    jmp 0x18:back64
bits 64
back64:
    prefetchw [rel scratch]
    mov [RESULTS + 168], rax
    ; 22: CMPXCHG r/m32 with a register destination (as QEMU 7.2): unequal leaves the
    ; destination whole and zero-extends EAX; equal writes (zero-extends) the destination
    mov rbp, 0x1111111100000005
    mov rax, 0x2222222200000006
    mov rbx, 0x3333333300000007
    cmpxchg ebp, ebx
    mov [RESULTS + 176], rbp
    mov [RESULTS + 184], rax
    mov rax, 0x4444444400000005
    cmpxchg ebp, ebx
    mov [RESULTS + 192], rbp
    mov [RESULTS + 200], rax
    ; 26: a null SS at CPL 0 (64-bit mode allows it) and a far RETQ to the same privilege
    xor eax, eax
    mov ss, ax
    mov ax, ss
    mov [RESULTS + 208], rax
    mov ax, 0x10
    mov ss, ax
    push 0x18
    lea rax, [rel after_retf]
    push rax
    o64 retf
    hlt
after_retf:
    mov qword [RESULTS + 216], 0x42
    ; 31: OUT with a dword (0xEF, 0xE7): to the reports ports the test watches
    mov eax, 0x64
    mov dx, 0x84
    out dx, eax
    out 0x88, eax
    lea rsi, [rel outs_data] ; REP OUTSB from RSI
    mov ecx, 2
    mov dx, 0x8c
    rep outsb
    ; 32: REP STOSQ and REP MOVSQ over pages (up), REP MOVSD down: the fast paths
    mov rax, 0x0102030405060708
    mov edi, 0x40000
    mov ecx, 1000 ; 8000 bytes, across a page boundary
    rep stosq
    mov esi, 0x40000
    mov edi, 0x42000
    mov ecx, 1000
    rep movsq
    std
    mov esi, 0x40000 + 4 * 999
    mov edi, 0x44000 + 4 * 999
    mov ecx, 1000
    rep movsd
    cld
    mov rax, [0x42000 + 8 * 999]
    add rax, [0x44000]
    mov [RESULTS + 280], rax
    mov [RESULTS + 288], rcx
    mov [RESULTS + 296], rdi
    ; 33: REP MOVSQ between pages that share a TLB slot (0x40 and 0x440): the destination's
    ; fill must not change the source the copy reads
    mov esi, 0x40000
    mov edi, 0x440000
    mov ecx, 512
    rep movsq
    mov rax, [0x440000 + 8 * 511]
    mov [RESULTS + 304], rax
    ; 34: LGDT of the GDT's alias above 4 GiB (0x120000200000 + gdt is physical gdt), then
    ; MOV SS while the TLB's window is another one: no #GP (the #GP handler would overwrite
    ; 0x30028), the descriptor comes from the right place
    mov qword [0x30028], 0x99
    sub rsp, 32
    sgdt [rsp]
    sgdt [rsp + 16]
    mov rax, 0x120000200000
    add [rsp + 18], rax
    lgdt [rsp + 16]
    mov rax, [0x30100] ; window 0
    mov ax, 0x10
    mov ss, ax
    lgdt [rsp]
    add rsp, 32
    mov rax, [0x30028]
    mov [RESULTS + 312], rax
    ; 16: SYSCALL to LSTAR and SYSRET back to 64-bit code at CPL 3
    mov ecx, 0xc0000081
    xor eax, eax
    mov edx, 0x00180018 ; SYSCALL: CS 0x18, SS 0x20; SYSRET: CS 0x28|3, SS 0x20|3
    wrmsr
    mov ecx, 0xc0000082
    mov rax, sys_entry
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000084
    mov eax, 0x200
    wrmsr
    xor r12d, r12d
    syscall
after_syscall:
    hlt

sys_entry:
    test r12, r12
    jz .first
    mov [RESULTS + 128], r11
    hlt
.first:
    mov [RESULTS + 136], rcx
    mov ax, cs
    movzx rax, ax
    mov [RESULTS + 144], rax
    mov rcx, user_code
    mov r11, 0x2
    o64 sysret
user_code:
    mov ax, cs
    movzx rax, ax
    mov [RESULTS + 152], rax
    mov r12d, 1
    stc
    syscall

bp_handler:
    mov qword [0x30020], 0x33
    iretq
gp_handler:
    mov [0x30030], rsp ; IST1 less the five quadwords and the error code
    pop rax ; the error code
    mov [0x30028], rax
    movzx rax, byte [fault_skip]
    add [rsp], rax
    add qword [rsp], 1
    iretq

align 8
to_compat: dq compat ; m16:64 (nasm gives JMP FAR [mem] REX.W in 64-bit code)
    dw 0x08
outs_data: db 0x11, 0x22
align 8
scratch: dq 0
fault_skip: db 0
align 16
tss:
    dd 0
    dq 0x80000, 0, 0 ; RSP0..2
    dq 0
    dq 0x70000 ; IST1
    times 0x68 - ($ - tss) db 0
align 16
idt:
    times 3 dq 0, 0
    dw bp_handler, 0x18, 0x8e00, 0
    dq 0
    times 9 dq 0, 0
    dw gp_handler, 0x18, 0x8e01, 0 ; IST1
    dq 0
idt_end:
idtr:
    dw idt_end - idt - 1
    dq idt
