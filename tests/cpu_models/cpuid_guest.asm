; CPUID dump guest: multiboot (a.out kludge), 32-bit protected mode, one line per
; (leaf, subleaf) on the debugcon port 0xe9, then exit through isa-debug-exit (0xf4).
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010000
header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, end_of_image, end_of_image, start
start:
  mov esp, 0x80000 ; multiboot leaves ESP undefined: a stack of our own in low RAM
  mov esi, leaves
.next:
  mov eax, [esi]
  cmp eax, 0xffffffff
  je .done
  mov ecx, [esi + 4]
  mov edi, eax
  call hex
  mov eax, ecx
  call hex
  mov eax, edi
  cpuid
  push edx
  push ecx
  push ebx
  call hex
  pop eax
  call hex
  pop eax
  call hex
  pop eax
  call hex
  mov al, 10
  out 0xe9, al
  add esi, 8
  jmp .next
.done:
  mov al, 'E'
  out 0xe9, al
  mov al, 10
  out 0xe9, al
  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  cli
  hlt
  jmp $-1
; hex: EAX as 8 hex digits and a space; keeps ECX, EDX...
hex:
  pushad
  mov ebx, eax
  mov ecx, 8
.digit:
  rol ebx, 4
  mov eax, ebx
  and eax, 15
  mov al, [digits + eax]
  out 0xe9, al
  loop .digit
  mov al, ' '
  out 0xe9, al
  popad
  ret
digits: db "0123456789abcdef"
align 4
leaves:
  %include "leaves.inc"
  dd 0xffffffff, 0
end_of_image:
