; A Multiboot guest that drives QEMU's edu device the way a driver would, and reports on
; isa-debugcon (port 0xe9) one "name=value" line per check. It runs the same on vmkit
; (with the edu plugin) and on real QEMU, so the two outputs can be compared.
;
; nasm -f bin -o edu_guest.bin edu_guest.asm
; qemu-system-x86_64 -nodefaults -display none -kernel edu_guest.bin -device edu \
;   -debugcon file:out.txt -device isa-debug-exit,iobase=0xf4,iosize=4

BITS 32
ORG 0x100000

MB_MAGIC      equ 0x1BADB002
MB_FLAGS      equ 0x00010000          ; a.out kludge: the addresses below say where to load
DEBUGCON      equ 0xe9
DEBUG_EXIT    equ 0xf4
EXIT_PASS     equ 0x10                ; QEMU exits with (0x10 << 1) | 1 = 33
EXIT_FAIL     equ 0x11                ; 35
BAR           equ 0xfe000000          ; where this guest places the edu registers
LAPIC         equ 0xfee00000
LAPIC_EOI     equ 0xb0
LAPIC_SVR     equ 0xf0
VECTOR        equ 0x41                ; the MSI vector
RAM_SRC       equ 0x200000            ; DMA test buffers in guest RAM
RAM_DST       equ 0x200100
DMA_BYTES     equ 100

header:
    dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
    dd header, 0x100000, 0, 0, start

start:
    cli
    lgdt [gdtr]
    jmp 0x08:.flat
.flat:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov esp, 0x90000
    ; The PICs stay masked: only the edu MSI may interrupt this guest.
    mov al, 0xff
    out 0x21, al
    out 0xa1, al
    call build_idt
    lidt [idtr]

    ; Find 1234:11e8 on bus 0.
    xor ebx, ebx
.scan:
    mov edi, ebx
    shl edi, 11
    or edi, 0x80000000
    xor ecx, ecx
    call cfg_read
    cmp eax, 0x11e81234
    je .found
    inc ebx
    cmp ebx, 32
    jb .scan
    mov esi, msg_nodev
    call puts
    jmp fail
.found:
    mov [cfg], edi
    mov ecx, 0x10                      ; BAR0
    mov eax, BAR
    call cfg_write
    mov ecx, 0x04                      ; command: memory space and bus master
    mov eax, 0x0006
    call cfg_write

    ; Walk the capability list for MSI (ID 5) and aim it at vector VECTOR of APIC 0.
    mov ecx, 0x34
    call cfg_read
    and eax, 0xfc
.cap:
    test eax, eax
    jz .nomsi
    mov ecx, eax
    call cfg_read
    cmp al, 5
    je .msi
    movzx eax, ah
    and eax, 0xfc
    jmp .cap
.nomsi:
    mov esi, msg_nomsi
    call puts
    jmp fail
.msi:
    mov ebp, ecx                       ; the capability's offset
    mov esi, eax
    shr esi, 16                        ; message control
    lea ecx, [ebp + 4]
    mov eax, LAPIC
    call cfg_write
    lea ecx, [ebp + 8]                 ; data at +8, or +12 with a 64-bit address
    test esi, 0x80
    jz .data
    xor eax, eax
    call cfg_write
    lea ecx, [ebp + 12]
.data:
    mov eax, VECTOR
    call cfg_write
    mov ecx, ebp                       ; enable: control is the upper half of the first dword
    call cfg_read
    or eax, 0x00010000
    call cfg_write
    mov dword [LAPIC + LAPIC_SVR], 0x1ff

    ; 1. identification
    mov esi, msg_id
    mov eax, [BAR + 0x00]
    call report
    ; 2. liveness: the card inverts what it is given
    mov dword [BAR + 0x04], 0x12345678
    mov esi, msg_live
    mov eax, [BAR + 0x04]
    call report
    ; 3. factorial of 12, with an interrupt when done
    mov dword [BAR + 0x20], 0x80
    mov dword [BAR + 0x08], 12
    call wait_irq
    mov esi, msg_fact
    mov eax, [BAR + 0x08]
    call report
    mov esi, msg_irq
    mov eax, [last_irq]
    call report
    ; 4. DMA: 100 bytes RAM -> device buffer (polled), then back to RAM (interrupt)
    mov edi, RAM_SRC
    xor ecx, ecx
.fill:
    lea eax, [ecx * 2 + ecx + 7]
    mov [edi + ecx], al
    inc ecx
    cmp ecx, DMA_BYTES
    jb .fill
    mov dword [BAR + 0x80], RAM_SRC
    mov dword [BAR + 0x88], 0x40000
    mov dword [BAR + 0x90], DMA_BYTES
    mov dword [BAR + 0x98], 1
.poll:
    pause
    test dword [BAR + 0x98], 1
    jnz .poll
    mov dword [BAR + 0x80], 0x40000
    mov dword [BAR + 0x88], RAM_DST
    mov dword [BAR + 0x90], DMA_BYTES
    mov dword [BAR + 0x98], 1 | 2 | 4
    call wait_irq
    mov esi, msg_irq
    mov eax, [last_irq]
    call report
    mov esi, RAM_SRC
    mov edi, RAM_DST
    mov ecx, DMA_BYTES
    repe cmpsb
    mov esi, msg_dma_ok
    je .dma_said
    mov esi, msg_dma_bad
.dma_said:
    call puts
    ; 5. an interrupt raised by hand
    mov dword [BAR + 0x60], 0x8000
    call wait_irq
    mov esi, msg_irq
    mov eax, [last_irq]
    call report
    mov esi, msg_count
    mov eax, [irq_count]
    call report
    mov esi, msg_done
    call puts
    mov al, EXIT_PASS
    out DEBUG_EXIT, al
    hlt

fail:
    mov al, EXIT_FAIL
    out DEBUG_EXIT, al
    hlt

; Waits with interrupts on until the edu ISR has run once more. It spins rather than
; halting, so it does not lean on the STI shadow to close the check-then-HLT race.
wait_irq:
    mov edx, [irq_count]
    sti
.again:
    pause
    cmp [irq_count], edx
    je .again
    cli
    ret

edu_isr:
    push eax
    mov eax, [BAR + 0x24]              ; what raised it
    mov [last_irq], eax
    mov [BAR + 0x64], eax              ; acknowledge
    inc dword [irq_count]
    mov dword [LAPIC + LAPIC_EOI], 0
    pop eax
    iret

other_isr:
    mov dword [LAPIC + LAPIC_EOI], 0
    iret

; Every vector goes to other_isr but VECTOR, which goes to edu_isr.
build_idt:
    mov edi, idt
    xor ecx, ecx
.entry:
    mov eax, other_isr
    cmp ecx, VECTOR
    jne .set
    mov eax, edu_isr
.set:
    mov [edi], ax
    mov word [edi + 2], 0x08
    mov word [edi + 4], 0x8e00         ; present, ring 0, 32-bit interrupt gate
    shr eax, 16
    mov [edi + 6], ax
    add edi, 8
    inc ecx
    cmp ecx, 256
    jb .entry
    ret

; PCI configuration mechanism #1: EDI = 0x80000000 | devfn << 8, ECX = offset.
cfg_read:
    push edx
    mov eax, edi
    or eax, ecx
    mov dx, 0xcf8
    out dx, eax
    mov dx, 0xcfc
    in eax, dx
    pop edx
    ret

cfg_write:
    push edx
    push eax
    mov eax, [cfg]
    or eax, ecx
    mov dx, 0xcf8
    out dx, eax
    pop eax
    mov dx, 0xcfc
    out dx, eax
    pop edx
    ret

; Prints the string at ESI, then EAX as 8 hex digits and a newline.
report:
    call puts
    mov ecx, 8
.digit:
    rol eax, 4
    push eax
    and eax, 0xf
    mov al, [hex + eax]
    out DEBUGCON, al
    pop eax
    loop .digit
    mov al, 10
    out DEBUGCON, al
    ret

puts:
    push eax
.next:
    mov al, [esi]
    test al, al
    jz .end
    out DEBUGCON, al
    inc esi
    jmp .next
.end:
    pop eax
    ret

hex:         db "0123456789abcdef"
msg_nodev:   db "edu=absent", 10, 0
msg_nomsi:   db "msi=absent", 10, 0
msg_id:      db "id=", 0
msg_live:    db "liveness=", 0
msg_fact:    db "factorial(12)=", 0
msg_irq:     db "irq=", 0
msg_count:   db "interrupts=", 0
msg_dma_ok:  db "dma=ok", 10, 0
msg_dma_bad: db "dma=bad", 10, 0
msg_done:    db "done", 10, 0

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff              ; 0x08: flat 32-bit code
    dq 0x00cf92000000ffff              ; 0x10: flat data
gdtr:
    dw gdtr - gdt - 1
    dd gdt
idtr:
    dw 256 * 8 - 1
    dd idt
align 4
cfg:         dd 0
irq_count:   dd 0
last_irq:    dd 0
align 8
idt:         times 256 * 8 db 0
