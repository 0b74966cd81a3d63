; Call gates with parameter copying across privilege levels, RETF to the outer level,
; SYSENTER/SYSEXIT, an expand-down stack segment, LAR/LSL/VERR/VERW and ARPL.
%define GDT_EXTRA EXTRA_DESCS
%macro EXTRA_DESCS 0
    dw tss_end - tss - 1, tss, 0x8900, 0        ; 0x28 TSS
    dw gate_target, 0x08, 0xec02, 0             ; 0x30 call gate DPL3 -> 0x08, 2 dwords
    dq 0x00c0960000001fff                       ; 0x38 data32 expand-down, limit 0x1fff (x4K)
    dq 0x00cf9a000000ffff                       ; 0x40 code32 DPL0 (SYSENTER CS)
    dq 0x00cf92000000ffff                       ; 0x48 data32 DPL0 (SYSENTER SS)
    dq 0x00cffa000000ffff                       ; 0x50 code32 DPL3 (SYSEXIT CS)
    dq 0x00cff2000000ffff                       ; 0x58 data32 DPL3 (SYSEXIT SS)
%endmacro
%include "pm_entry.inc"

main32:
    mov dword [tss + 4], 0x88000
    mov dword [tss + 8], 0x10
    mov word [tss + 0x66], 0x68
    mov ax, 0x28
    ltr ax

    ; LAR/LSL/VERR/VERW from ring 0.
    mov ax, 0x20
    lar eax, ax
    out 0x81, eax                   ; 0x00cff200
    mov ax, 0x38
    lsl eax, ax
    out 0x81, eax                   ; limit 0x1fff scaled by 4K: 0x1ffffff
    mov ax, 0x08
    verw ax                         ; code: not writable
    setz al
    movzx eax, al
    out 0x81, eax                   ; 0

    ; Expand-down: offsets above the limit are valid, below fault.
    mov ax, 0x38
    mov es, ax
    mov eax, [es:0x2000000]         ; fine (limit+1 .. 4G)
    mov dword [skip], 7
    mov eax, [es:0x1000]            ; #GP(0)
    mov ax, 0x10
    mov es, ax

    ; SYSENTER/SYSEXIT.
    mov ecx, 0x174
    mov eax, 0x40
    xor edx, edx
    wrmsr
    mov ecx, 0x175
    mov eax, 0x84000
    wrmsr
    mov ecx, 0x176
    mov eax, sysenter_entry
    wrmsr
    mov ecx, 0x7f000                ; user ESP for SYSEXIT
    mov edx, user_code              ; user EIP
    sysexit

user_code:                          ; ring 3, CS 0x53, SS 0x5b
    mov eax, cs
    out 0x81, eax                   ; #GP: OUT at CPL 3
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    push dword 0x1111               ; two parameters for the call gate
    push dword 0x2222
    call 0x33:0                     ; call gate 0x30 with RPL 3
    out 0x80, eax                   ; faults again; EAX = gate result
    mov ecx, esp
    sysenter                        ; ends in sysenter_entry

gate_target:                        ; ring 0 through the gate
    mov eax, [esp + 8]              ; parameters keep their order: 0x2222 lowest
    out 0x81, eax
    mov eax, [esp + 12]             ; 0x1111
    out 0x81, eax
    mov eax, [esp + 16]             ; outer ESP
    out 0x81, eax
    mov eax, [esp + 20]             ; outer SS
    out 0x81, eax
    mov eax, esp                    ; inner stack from the TSS: 0x88000 - 6 * 4
    out 0x81, eax
    mov eax, 0x77
    retf 8                          ; back to ring 3, dropping the parameters

sysenter_entry:
    REPORT 0x80, 0x5e
    mov eax, cs
    out 0x81, eax
    mov eax, ss
    out 0x81, eax
    mov eax, ecx                    ; user ESP after the RETF 8: 0x7f000
    out 0x81, eax
    cli
    hlt

gp_handler:
    push eax
    REPORT 0x80, 13
    mov eax, [esp + 4]
    out 0x81, eax                   ; error code
    mov eax, [esp + 12]
    and eax, 3
    out 0x81, eax                   ; RPL of the interrupted CS
    cmp eax, 3
    je .user
    mov eax, [skip]
    add [esp + 8], eax
    jmp .done
.user:
    add dword [esp + 8], 2          ; skip the 2-byte OUT
.done:
    pop eax
    add esp, 4
    iretd

align 8
idt:
%rep 13
    dq 0
%endrep
    GATE gp_handler, 0x8e, 0x08
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt
skip: dd 0
align 4
tss: times 0x68 db 0
tss_end:
