; Protected-mode switch, exceptions with error codes, IDT gates and a ring-3 round trip.
; Reports: port 0x80 <- vector or checkpoint, port 0x81 <- error code or value.
bits 16
org 0x7c00

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    lgdt [gdt_desc]
    lidt [idt_desc]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp 0x08:pm32

bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x90000
    mov eax, 0x100              ; checkpoint: protected mode
    out 0x80, eax

    ; #DE
    mov dword [skip], 2
    xor ecx, ecx
    mov eax, 5
    xor edx, edx
    div ecx

    ; #GP(selector): index beyond the GDT limit
    mov dword [skip], 2
    mov ax, 0x40
    mov ds, ax

    ; #GP(0): offset beyond a small segment's limit
    mov ax, 0x18
    mov es, ax
    mov dword [skip], 6
    mov eax, [es:0x2000]
    mov ax, 0x10
    mov es, ax

    ; #UD
    mov dword [skip], 2
    ud2

    ; INT through a trap gate
    int 0x80

    ; To ring 3 through IRET with a TSS for the way back.
    mov dword [tss + 4], 0x88000
    mov dword [tss + 8], 0x10
    mov word [tss + 0x66], 0x68  ; I/O bitmap beyond the limit: no port allowed
    mov ax, 0x30
    ltr ax
    push dword 0x2b             ; SS
    push dword 0x70000          ; ESP
    push dword 0x002            ; EFLAGS (IOPL 0, IF 0)
    push dword 0x23             ; CS
    push dword ring3
    iretd

ring3:
    mov ax, 0x2b
    mov ds, ax
    mov es, ax
    mov eax, 0x300              ; checkpoint: ring 3
    out 0x80, eax               ; #GP(0): IOPL 0 forbids OUT at CPL 3
    mov dword [skip], 1
    cli                         ; #GP(0)
    mov dword [skip], 2
    int 0x81                    ; gate DPL 0: #GP(0x81 * 8 + 2)
    int 0x82                    ; reports CS and the stack, then stops

; --- handlers --------------------------------------------------------------
de_handler:
    push eax
    mov eax, 0
    out 0x80, eax
    mov eax, [skip]
    add [esp + 4], eax
    pop eax
    iretd

ud_handler:
    push eax
    mov eax, 6
    out 0x80, eax
    mov eax, [skip]
    add [esp + 4], eax
    pop eax
    iretd

gp_handler:
    push eax
    mov eax, 13
    out 0x80, eax
    mov eax, [esp + 4]
    out 0x81, eax
    mov eax, [skip]
    add [esp + 8], eax
    pop eax
    add esp, 4
    iretd

int80_handler:
    push eax
    mov eax, 0x80
    out 0x80, eax
    pop eax
    iretd

int82_handler:
    mov eax, 0x82
    out 0x80, eax
    mov eax, [esp + 4]          ; interrupted CS
    out 0x81, eax
    mov eax, [esp + 16]         ; interrupted SS
    out 0x81, eax
    mov eax, esp                ; ring-0 stack from the TSS
    out 0x81, eax
    cli
    hlt

; --- tables ----------------------------------------------------------------
align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff       ; 0x08 code32 DPL0
    dq 0x00cf92000000ffff       ; 0x10 data32 DPL0
    dq 0x0040920000000fff       ; 0x18 data32, limit 0xfff
    dq 0x00cffa000000ffff       ; 0x20 code32 DPL3
    dq 0x00cff2000000ffff       ; 0x28 data32 DPL3
tss_desc:
    dw 0x67, tss, 0x8900, 0     ; 0x30 TSS (base < 64K)
gdt_end:
gdt_desc:
    dw gdt_end - gdt - 1
    dd gdt

%macro GATE 3                   ; handler, type/attr byte, selector
    dw %1, %3, (%2 << 8), 0
%endmacro

align 8
idt:
    GATE de_handler, 0x8e, 0x08     ; 0
%rep 5
    dq 0
%endrep
    GATE ud_handler, 0x8e, 0x08     ; 6
%rep 6
    dq 0
%endrep
    GATE gp_handler, 0x8e, 0x08     ; 13
%rep 0x80 - 14
    dq 0
%endrep
    GATE int80_handler, 0x8f, 0x08  ; 0x80 trap gate DPL0
    GATE int80_handler, 0x8e, 0x08  ; 0x81 DPL0
    GATE int82_handler, 0xee, 0x08  ; 0x82 DPL3
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt

skip: dd 0
align 4
tss: times 0x68 db 0
