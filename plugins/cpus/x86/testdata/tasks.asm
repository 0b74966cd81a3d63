; Hardware task switches: CALL to a TSS, IRET back through the back link (NT), a task
; gate in the IDT for #DE, and JMP to a task.
%define GDT_EXTRA TSS_DESCS
%macro TSS_DESCS 0
    dw 0x67, tss_main, 0x8900, 0      ; 0x28 main task
    dw 0x67, tss_a, 0x8900, 0         ; 0x30 task A
    dw 0x67, tss_b, 0x8900, 0         ; 0x38 task B (for #DE)
    dw 0x67, tss_c, 0x8900, 0         ; 0x40 task C (JMP target)
%endmacro
%include "pm_entry.inc"

%macro INIT_TSS 3                     ; tss, eip, esp
    mov dword [%1 + 0x20], %2         ; EIP
    mov dword [%1 + 0x24], 0x2        ; EFLAGS
    mov dword [%1 + 0x38], %3         ; ESP
    mov word [%1 + 0x48], 0x10        ; ES
    mov word [%1 + 0x4c], 0x08        ; CS
    mov word [%1 + 0x50], 0x10        ; SS
    mov word [%1 + 0x54], 0x10        ; DS
    mov word [%1 + 0x58], 0x10        ; FS
    mov word [%1 + 0x5c], 0x10        ; GS
    mov word [%1 + 0x66], 0x68
%endmacro

main32:
    mov ax, 0x28
    ltr ax
    INIT_TSS tss_a, task_a, 0x80000
    INIT_TSS tss_b, task_b, 0x70000
    INIT_TSS tss_c, task_c, 0x60000
    mov ebx, 0x1111
    call 0x30:0                         ; switch to task A
    REPORT 0x80, 0x100                  ; back in main
    mov eax, ebx
    out 0x81, eax                       ; EBX survived in the main TSS
    str ax
    movzx eax, ax
    out 0x81, eax
    xor ecx, ecx
fault_div:
    div ecx                             ; #DE through a task gate -> task B
after_div:
    REPORT 0x80, 0x200
    jmp 0x40:0                          ; to task C, never returns

task_a:
    REPORT 0x80, 0xa
    pushfd
    pop eax
    and eax, 0x4000                     ; NT set by the CALL
    out 0x81, eax
    movzx eax, word [tss_a]             ; back link
    out 0x81, eax
    mov ebx, 0xaaaa
    iretd                               ; back to main
    jmp task_a

task_b:
    REPORT 0x80, 0xb
    mov eax, [tss_main + 0x20]          ; saved EIP of main = the DIV
    sub eax, fault_div
    out 0x81, eax
    mov dword [tss_main + 0x20], after_div
    iretd
    jmp task_b

task_c:
    REPORT 0x80, 0xc
    movzx eax, word [tss_c]             ; JMP leaves no back link
    out 0x81, eax
    mov eax, [gdt + 0x28 + 4]           ; main TSS descriptor no longer busy
    and eax, 0x200
    out 0x81, eax
    cli
    hlt

align 8
idt:
    dw 0, 0x38, 0x8500, 0             ; 0: task gate to task B
idt_end:
idt_desc:
    dw idt_end - idt - 1
    dd idt

align 16
tss_main: times 0x68 db 0
tss_a: times 0x68 db 0
tss_b: times 0x68 db 0
tss_c: times 0x68 db 0
