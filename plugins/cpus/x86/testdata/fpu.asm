; x87: the FNINIT/FNSTSW/FNSTCW probe, loads and stores in every format, arithmetic,
; comparisons into EFLAGS, FXAM, the 80-bit round trip and #NM with CR0.TS.
%include "pm_entry.inc"

main32:
    mov eax, cr0
    and eax, ~0xc                   ; EM = 0, TS = 0
    or eax, 0x22                    ; MP, NE
    mov cr0, eax
    fninit
    mov word [scratch], 0x5a5a
    fnstsw [scratch]
    movzx eax, word [scratch]
    out 0x81, eax                   ; 0
    fnstcw [scratch]
    movzx eax, word [scratch]
    out 0x81, eax                   ; 37f

    fld1
    fldpi
    faddp                           ; pi + 1
    fstp qword [scratch]
    mov eax, [scratch + 4]
    out 0x81, eax                   ; high dword of 4.14159...

    mov dword [scratch], 144
    fild dword [scratch]
    fsqrt
    fistp dword [scratch]
    mov eax, [scratch]
    out 0x81, eax                   ; 12

    mov dword [scratch], 7
    fild dword [scratch]
    mov dword [scratch], 2
    fidiv dword [scratch]           ; 3.5
    fistp word [scratch]            ; round to nearest even: 4
    movzx eax, word [scratch]
    out 0x81, eax

    fld1
    fldz
    fcomip st0, st1                 ; 0 < 1: CF
    pushfd
    pop eax
    and eax, 0x45
    out 0x81, eax                   ; 1
    fstp st0

    fldz
    fxam
    fnstsw ax
    and eax, 0x4700
    out 0x81, eax                   ; zero: C3
    fstp st0

    fldpi
    fstp tword [scratch]
    fld tword [scratch]
    fstp qword [scratch + 16]
    mov eax, [scratch + 16]
    out 0x81, eax                   ; low dword of pi as a double
    mov eax, [scratch + 20]
    out 0x81, eax

    fnstsw ax                       ; TOP back at 0, no exceptions
    movzx eax, ax
    out 0x81, eax

    mov word [scratch], 0x37b       ; unmask divide-by-zero
    fldcw [scratch]
    fld1
    fldz
    fdivp                           ; sets ZE, ES pending
    fld1                            ; #MF (CR0.NE) before this waiting instruction
    fninit

    mov eax, cr0
    or eax, 8                       ; TS
    mov cr0, eax
    fld1                            ; #NM
    REPORT 0x80, 0x200
    cli
    hlt

mf_handler:
    REPORT 0x80, 16
    fnstsw ax
    and eax, 0x80ff                 ; B, ES and ZE
    out 0x81, eax
    fnclex
    iretd

nm_handler:
    REPORT 0x80, 7
    clts
    iretd                           ; retries the FLD1 with TS clear

align 8
idt:
%rep 7
    dq 0
%endrep
    GATE nm_handler, 0x8e, 0x08     ; 7
%rep 16 - 8
    dq 0
%endrep
    GATE mf_handler, 0x8e, 0x08     ; 16
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt
align 8
scratch: times 32 db 0
