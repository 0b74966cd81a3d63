; Floppy boot guest: a 1.44 MB boot sector that loads sectors with INT 13h AH=02 (SeaBIOS
; drives the FDC and DMA channel 2), reads that span a track, both heads (multi-track) and
; the last cylinder, writes some back with AH=03 and reads them again, then prints per call
; "R <AH> <AL> <CF> <a> <b>" on debugcon (0xe9), a and b being a Fletcher-16 style sum
; (a += byte, b += a, 16 bits) of the bytes at the call's buffer, and exits through
; isa-debug-exit (0xf4).
bits 16
org 0x7c00
start:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7c00
  sti
  mov [drive], dl
  mov si, reads
.next:
  mov ah, [si]
  test ah, ah
  jz .done
  inc si
  mov al, [si]
  mov ch, [si + 1]
  mov dh, [si + 2]
  mov cl, [si + 3]
  mov bx, [si + 4]
  mov es, bx
  xor bx, bx
  mov dl, [drive]
  push si
  int 0x13
  pop si
  mov [status], ax
  mov byte [carry], 0
  adc byte [carry], 0
  ; the sums over what the call was asked to load (count * 512 bytes at ES:0)
  xor ax, ax
  mov cl, [si]
  xor ch, ch
  shl cx, 9
  xor di, di
  xor dx, dx
  xor bx, bx
.sum:
  mov al, [es:di]
  add dx, ax
  add bx, dx
  inc di
  loop .sum
  push bx
  push dx
  mov al, 'R'
  call putc
  mov al, [status + 1]
  call hex8
  mov al, [status]
  call hex8
  mov al, [carry]
  call hex8
  pop ax
  call hex16
  pop ax
  call hex16
  mov al, 10
  out 0xe9, al
  add si, 6
  jmp .next
.done:
  mov al, 0
  out 0xf4, al
  cli
  hlt

putc:
  out 0xe9, al
  ret

%include "debugcon_hex.inc"

drive: db 0
carry: db 0
status: dw 0
; AH (2 read, 3 write), count, cylinder, head, sector, buffer segment
reads:
  db 2, 17, 0, 0, 2
  dw 0x1000
  db 2, 18, 0, 1, 1
  dw 0x2000
  db 2, 36, 1, 0, 1
  dw 0x3000
  db 2, 20, 2, 0, 1
  dw 0x4000
  db 2, 1, 79, 1, 18
  dw 0x5000
  db 2, 3, 79, 1, 17
  dw 0x6000
  ; cylinder 1's first three sectors written at C10 H1 S17 (on into cylinder 11), read back
  db 3, 3, 10, 1, 17
  dw 0x3000
  db 2, 3, 10, 1, 17
  dw 0x7000
  db 0
times 510 - ($ - $$) db 0
dw 0xaa55
