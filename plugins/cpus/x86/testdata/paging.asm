; Paging: 4 KiB pages, a PSE 4 MiB page, accessed/dirty bits, #PF error codes and CR2,
; CR0.WP, INVLPG, then PAE with an NX page.
%include "pm_entry.inc"

PD      equ 0x100000
PT      equ 0x101000
PDPT    equ 0x102000
PAE_PD  equ 0x103000
PAE_PT  equ 0x104000

main32:
    ; Identity-map 0..4M with 4K pages, map 4M..8M to physical 8M with a PSE page.
    mov edi, PT
    mov eax, 0x003
    mov ecx, 1024
.fill:
    mov [edi], eax
    add eax, 0x1000
    add edi, 4
    loop .fill
    mov dword [PD], PT | 3
    mov dword [PD + 4], 0x800000 | 0x83
    mov dword [PT + 5 * 4], 0x5000 | 1      ; 0x5000 read-only
    mov eax, cr4
    or eax, 0x10                            ; PSE
    mov cr4, eax
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000                      ; PG | WP
    mov cr0, eax
    REPORT 0x80, 0x100

    mov dword [0x400010], 0xfeed            ; through the 4M page
    mov eax, [PD + 4]
    and eax, 0x60                           ; accessed + dirty
    out 0x81, eax

    mov dword [skip], 6
    mov eax, [0xc00000]                     ; #PF: not present, read
    mov dword [skip], 10
    mov dword [0x5000], 1                   ; #PF: write to read-only with WP

    mov dword [0x6000], 0xaaaa
    mov dword [0x7000], 0xbbbb
    mov eax, [0x6000]
    out 0x81, eax
    mov dword [PT + 6 * 4], 0x7000 | 3
    invlpg [0x6000]
    mov eax, [0x6000]
    out 0x81, eax

    ; Paging off: check that the 4M page hit physical 8M.
    mov eax, cr0
    and eax, 0x7fffffff
    mov cr0, eax
    mov eax, [0x800010]
    out 0x81, eax

    ; PAE: 2M identity page at 0, and 0x200000 -> 0x300000 as a 4K NX page.
    mov dword [PDPT], PAE_PD | 1
    mov dword [PDPT + 4], 0
    mov dword [PAE_PD], 0x83
    mov dword [PAE_PD + 4], 0
    mov dword [PAE_PD + 8], PAE_PT | 3
    mov dword [PAE_PD + 12], 0
    mov dword [PAE_PT], 0x300000 | 3
    mov dword [PAE_PT + 4], 0x80000000      ; NX
    mov byte [0x300000], 0xc3
    mov ecx, 0xc0000080                     ; EFER.NXE
    rdmsr
    or eax, 0x800
    wrmsr
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, PDPT
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    REPORT 0x80, 0x200
    movzx eax, byte [0x200000]
    out 0x81, eax
    mov dword [resume], .after_nx
    jmp 0x200000                            ; #PF: fetch from an NX page
.after_nx:
    REPORT 0x80, 0x300
    cli
    hlt

pf_handler:
    push eax
    REPORT 0x80, 14
    mov eax, [esp + 4]
    out 0x81, eax
    mov eax, cr2
    out 0x81, eax
    mov eax, [resume]
    test eax, eax
    jz .skip
    mov [esp + 8], eax
    jmp .done
.skip:
    mov eax, [skip]
    add [esp + 8], eax
.done:
    pop eax
    add esp, 4
    iretd

align 8
idt:
%rep 14
    dq 0
%endrep
    GATE pf_handler, 0x8e, 0x08
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt
skip: dd 0
resume: dd 0
