; Virtual-8086 mode: IRET into v86, real-mode addressing, I/O through the TSS bitmap,
; INT n with IOPL < 3 (#GP to the monitor) and with IOPL 3 (through the IDT).
%define GDT_EXTRA TSS_DESC
%macro TSS_DESC 0
    dw tss_end - tss - 1, tss, 0x8900, 0   ; 0x28
%endmacro
%include "pm_entry.inc"

main32:
    mov dword [tss + 4], 0x80000           ; ESP0
    mov dword [tss + 8], 0x10              ; SS0
    mov word [tss + 0x66], iomap - tss
    mov ax, 0x28
    ltr ax
    push dword 0                           ; GS
    push dword 0                           ; FS
    push dword 0                           ; DS
    push dword 0                           ; ES
    push dword 0                           ; SS
    push dword 0x6000                      ; ESP
    push dword 0x20002                     ; EFLAGS: VM, IOPL 0
    push dword 0                           ; CS
    push dword v86_code                    ; EIP
    iretd

bits 16
v86_code:
    mov ax, 0x1234
    mov ds, ax
    mov word [0x10], 0xbeef
    mov eax, 0x86
    out 0x80, eax                          ; allowed by the bitmap
    int 0x21                               ; IOPL 0: #GP(0); the monitor raises IOPL
    jmp $

bits 32
gp_handler:
    push eax
    REPORT 0x80, 13
    mov eax, [esp + 4]                     ; error code
    out 0x81, eax
    mov eax, [esp + 16]                    ; EFLAGS of the v86 task
    and eax, 0x20000
    out 0x81, eax
    or dword [esp + 16], 0x3000            ; IOPL 3, then retry the INT
    pop eax
    add esp, 4
    iretd

int21_handler:
    REPORT 0x80, 0x21
    mov eax, [esp + 4]                     ; v86 CS
    out 0x81, eax
    mov eax, [esp + 24]                    ; v86 DS from the frame
    out 0x81, eax
    mov ax, ds                             ; DS was nulled on entry
    movzx eax, ax
    out 0x81, eax
    mov ax, 0x10
    mov ds, ax
    movzx eax, word [0x12350]              ; written by v86 code at 1234:0010
    out 0x81, eax
    cli
    hlt

align 8
idt:
%rep 13
    dq 0
%endrep
    GATE gp_handler, 0x8e, 0x08            ; 13
%rep 0x21 - 14
    dq 0
%endrep
    GATE int21_handler, 0xee, 0x08         ; 0x21, DPL 3
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt

align 4
tss: times 0x68 db 0
iomap: times 32 db 0                       ; ports 0..255 allowed
    db 0xff
tss_end:
