; SSE in protected mode: integer and floating point work on XMM0..7 under each MXCSR
; rounding mode, FXSAVE/FXRSTOR, and the results reported; arch_state_test.ts moves the
; state to a new CPU between any two of its instructions.
%include "pm_entry.inc"

main32:
    mov eax, cr0
    and eax, ~4                             ; EM off
    or eax, 2                               ; MP on
    mov cr0, eax
    mov eax, cr4
    or eax, 0x600                           ; OSFXSR | OSXMMEXCPT
    mov cr4, eax
    mov dword [vals], 0x3fc00000            ; 1.5
    mov dword [vals + 4], 0x40490fdb        ; pi
    mov dword [vals + 8], 0xbf800000        ; -1.0
    mov dword [vals + 12], 0x00800001       ; tiny
    mov ecx, 4                              ; the four rounding modes
.round:
    mov eax, ecx
    dec eax
    shl eax, 13
    or eax, 0x1f80
    mov [mx], eax
    ldmxcsr [mx]
    movups xmm0, [vals]
    movaps xmm1, xmm0
    mov edx, 40
.loop:
    mulps xmm1, xmm0
    addps xmm1, xmm0
    sqrtps xmm2, xmm1
    divps xmm2, xmm0
    cvtps2dq xmm3, xmm2
    paddd xmm4, xmm3
    pshufd xmm4, xmm4, 0x39
    pxor xmm5, xmm4
    punpcklbw xmm5, xmm3
    cvtps2pd xmm6, xmm2
    addpd xmm7, xmm6
    movhlps xmm1, xmm2
    dec edx
    jnz .loop
    fxsave [area]
    pxor xmm4, xmm4
    fxrstor [area]
    movd eax, xmm4
    out 0x81, eax
    movd eax, xmm5
    out 0x81, eax
    movq [tmp], xmm7
    mov eax, [tmp]
    out 0x81, eax
    mov eax, [tmp + 4]
    out 0x81, eax
    stmxcsr [mx]
    mov eax, [mx]
    out 0x81, eax
    dec ecx
    jnz .round
    REPORT 0x80, 0x300
    cli
    hlt

align 8
idt:
idt_end:
idt_desc:
    dw 0
    dd 0
align 16
vals: times 4 dd 0
mx: dd 0
tmp: dq 0
align 16
area: times 512 db 0
