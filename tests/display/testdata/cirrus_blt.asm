; A guest that draws with the Cirrus GD5446 as QEMU 7.2 presents it: it sets a VBE mode
; through vgabios-cirrus.bin, paints a background through the bank window, then runs
; BitBLTs (fills, copies forward and backward, ROPs, colour expansion, patterns,
; system-to-screen), extended write modes 4 and 5 and the hardware cursor, and says
; CIRRUS-DONE on COM1. Assemble with -DBPP=8|15|16|24|32 (32: the 24 bpp mode switched
; to 32 bpp by hand, as the BIOS has no 32 bpp mode).

bits 16
org 0x7c00

%ifndef BPP
%define BPP 8
%endif
%if BPP == 8
%define VBEMODE 0x101
%define PB 1
%elif BPP == 15
%define VBEMODE 0x110
%define PB 2
%elif BPP == 16
%define VBEMODE 0x111
%define PB 2
%elif BPP == 24
%define VBEMODE 0x112
%define PB 3
%else
%define VBEMODE 0x112
%define PB 4
%endif

%define PITCH (640 * PB)
%define PWBITS ((PB - 1) << 4)
; Where a pixel (x, y) lives in VRAM.
%define AT(x, y) ((y) * PITCH + (x) * PB)
; Off-screen data (a copy of this program's bytes): bitmaps and patterns.
%define DATA 0x200000
SECTORS equ 8

; GR index, value: one graphics controller register (DX = 0x3ce).
%macro GR 2
  mov ax, ((((%2) & 0xff) << 8) | (%1))
  out dx, ax
%endmacro

; BLT width_bytes, height, dst_pitch, src_pitch, dst, src, mode, rop, mode_ext
%macro BLT 9
  mov dx, 0x3ce
  GR 0x20, (%1) - 1
  GR 0x21, ((%1) - 1) >> 8
  GR 0x22, (%2) - 1
  GR 0x23, ((%2) - 1) >> 8
  GR 0x24, %3
  GR 0x25, (%3) >> 8
  GR 0x26, %4
  GR 0x27, (%4) >> 8
  GR 0x2c, %6
  GR 0x2d, (%6) >> 8
  GR 0x2e, (%6) >> 16
  GR 0x30, (%7) | PWBITS
  GR 0x32, %8
  GR 0x33, %9
  GR 0x28, %5
  GR 0x29, (%5) >> 8
  GR 0x2a, (%5) >> 16
  GR 0x31, 0x02
%endmacro

; FG colour / BG colour: the expansion colours (GR01/11/13/15, GR00/10/12/14).
%macro FG 1
  mov dx, 0x3ce
  GR 0x01, %1
  GR 0x11, (%1) >> 8
  GR 0x13, (%1) >> 16
  GR 0x15, (%1) >> 24
%endmacro
%macro BG 1
  mov dx, 0x3ce
  GR 0x00, %1
  GR 0x10, (%1) >> 8
  GR 0x12, (%1) >> 16
  GR 0x14, (%1) >> 24
%endmacro

; BANK n: the 64 KiB window at 0xa0000 shows VRAM from n * 16 KiB.
%macro BANK 1
  mov dx, 0x3ce
  GR 0x09, %1
%endmacro

start:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7c00
  sti
  mov [drive], dl
  mov ax, 0x0200 + SECTORS
  mov cx, 0x0002
  xor dh, dh
  mov bx, 0x7e00
  int 0x13
  jc fail
  jmp main
fail:
  mov si, failmsg
  call print
  cli
  hlt

; Prints the NUL-terminated string at DS:SI on COM1.
print:
  mov dx, 0x3f8
.next:
  lodsb
  test al, al
  jz .done
  out dx, al
  jmp .next
.done:
  ret

drive: db 0
failmsg: db "CIRRUS-FAIL", 13, 10, 0

  times 510 - ($ - $$) db 0
  dw 0xaa55

main:
  ; VBE mode set, banked (16 KiB granularity), VRAM not cleared (it starts zeroed).
  mov ax, 0x4f02
  mov bx, VBEMODE | 0x8000
  int 0x10
  cmp ax, 0x004f
  jne fail
%if BPP == 32
  ; SR07: SVGA at 32 bpp; CR13/CR1B: 2560 bytes a line.
  mov dx, 0x3c4
  mov ax, 0x1907
  out dx, ax
  mov dx, 0x3d4
  mov ax, 0x4013
  out dx, ax
  mov al, 0x1b
  out dx, al
  inc dx
  in al, dx
  or al, 0x10
  out dx, al
%endif
  mov ax, 0xa000
  mov es, ax

  ; The background: every byte of the first NBANKS * 64 KiB from a hash of its address.
  xor ebx, ebx
.bank:
  mov dx, 0x3ce
  mov al, 0x09
  mov ah, bl
  shl ah, 2
  out dx, ax
  xor edi, edi
  mov cx, 0x4000
.fill:
  mov eax, ebx
  shl eax, 16
  or eax, edi
  imul eax, eax, 0x9e3779b1
  mov esi, eax
  shr esi, 13
  xor eax, esi
  a32 stosd
  loop .fill
  inc bx
  cmp bx, (PITCH * 480 + 0xffff) / 0x10000
  jb .bank

  ; Off-screen data at 2 MiB: 1 KiB of this program's code.
  BANK DATA >> 14
  mov si, 0x7e00
  xor di, di
  mov cx, 1024
  rep movsb

  ; Solid fills: a plain one, then an XOR over part of it.
  FG 0x00c03060
  BLT 100 * PB, 50, PITCH, 0, AT(16, 16), 0, 0xc0, 0x0d, 0x04
  FG 0x0055aa33
  BLT 60 * PB, 30, PITCH, 0, AT(50, 40), 0, 0xc0, 0x59, 0x04

  ; Screen to screen: forward, then backward onto an overlapping place.
  BLT 200 * PB, 100, PITCH, PITCH, AT(300, 20), AT(0, 0), 0x00, 0x0d, 0
  BLT 200 * PB, 100, PITCH, PITCH, AT(310, 25) + 200 * PB - 1 + 99 * PITCH, AT(300, 20) + 200 * PB - 1 + 99 * PITCH, 0x01, 0x0d, 0

  ; Every ROP, copying a 36x30 block from (0, 200) to a row of places.
%assign i 0
%rep 16
  %if i == 0
    %define ROP 0x00
  %elif i == 1
    %define ROP 0x05
  %elif i == 2
    %define ROP 0x06
  %elif i == 3
    %define ROP 0x09
  %elif i == 4
    %define ROP 0x0b
  %elif i == 5
    %define ROP 0x0d
  %elif i == 6
    %define ROP 0x0e
  %elif i == 7
    %define ROP 0x50
  %elif i == 8
    %define ROP 0x59
  %elif i == 9
    %define ROP 0x6d
  %elif i == 10
    %define ROP 0x90
  %elif i == 11
    %define ROP 0x95
  %elif i == 12
    %define ROP 0xad
  %elif i == 13
    %define ROP 0xd0
  %elif i == 14
    %define ROP 0xd6
  %else
    %define ROP 0xda
  %endif
  BLT 36 * PB, 30, PITCH, PITCH, AT(4 + 38 * i, 300), AT(0, 200), 0x00, ROP, 0
%assign i i + 1
%endrep

  ; Colour expansion from VRAM: opaque, transparent, transparent inverted; a left clip.
  FG 0x00ff4020
  BG 0x00102080
  BLT 64 * PB, 40, PITCH, 8, AT(20, 340), DATA, 0x80, 0x0d, 0
  BLT 64 * PB, 40, PITCH, 8, AT(90, 340), DATA + 16, 0x88, 0x0d, 0
  BLT 64 * PB, 40, PITCH, 8, AT(160, 340), DATA + 32, 0x88, 0x0d, 0x02
  mov dx, 0x3ce
  GR 0x2f, 3
  BLT 64 * PB, 40, PITCH, 8, AT(230, 340), DATA + 48, 0x80, 0x59, 0
  GR 0x2f, 0

  ; Pattern fills: pixels, and bits expanded (opaque and transparent).
  BLT 64 * PB, 40, PITCH, 0, AT(300, 340), DATA + 256, 0x40, 0x0d, 0
  BLT 64 * PB, 40, PITCH, 0, AT(370, 340), DATA + 512, 0xc0, 0x0d, 0
  BLT 64 * PB, 40, PITCH, 0, AT(440, 340), DATA + 520, 0xc8, 0x6d, 0
  ; The same with a left clip of 5 (24 bpp: 5 bytes in the transparent cases).
  mov dx, 0x3ce
  GR 0x2f, 5
  BLT 40 * PB, 20, PITCH, 0, AT(300, 382), DATA + 256, 0x40, 0x0d, 0
  BLT 40 * PB, 20, PITCH, 0, AT(345, 382), DATA + 640, 0xc0, 0x0d, 0
  BLT 40 * PB, 20, PITCH, 0, AT(390, 382), DATA + 640, 0xc8, 0x0d, 0
  BLT 40 * PB, 20, PITCH, 8, AT(435, 382), DATA + 100, 0x88, 0x0d, 0
  GR 0x2f, 0

%if PB <= 2
  ; A transparent copy (8 and 16 bpp): results equal to the key are not written.
  mov dx, 0x3ce
  GR 0x34, 0
  GR 0x35, 0
  BLT 60 * PB, 30, PITCH, PITCH, AT(510, 340), AT(100, 100), 0x08, 0x05, 0
%endif

  ; The same blits through the memory-mapped registers at 0xb8000 (SR17 bit 2).
  mov dx, 0x3c4
  mov al, 0x17
  out dx, al
  inc dx
  in al, dx
  or al, 0x04
  out dx, al
  push es
  mov ax, 0xb800
  mov es, ax
  mov dword [es:0x08], ((20 * PB - 1) | ((20 - 1) << 16))
  mov word [es:0x0c], PITCH
  mov word [es:0x0e], PITCH
  mov dword [es:0x14], AT(0, 0)
  mov byte [es:0x18], PWBITS
  mov byte [es:0x1a], 0xd0
  mov byte [es:0x1b], 0
  mov dword [es:0x10], AT(600, 20)
  mov byte [es:0x40], 0x02
  pop es

  ; System to screen: bits expanded, then plain pixels, written to the window.
  FG 0x0020e0e0
  BG 0x00200000
  BLT 48 * PB, 32, PITCH, 0, AT(20, 400), 0, 0x84, 0x0d, 0
  mov si, 0x7e80
  xor di, di
  mov cx, 6 * 32
  rep movsb
  BLT 16 * PB, 16, PITCH, 0, AT(90, 400), 0, 0x04, 0x0d, 0
  mov si, 0x7f00
  xor di, di
  mov cx, ((16 * PB + 3) & ~3) * 16
  rep movsb
  ; A system-to-screen pattern (8x8 bits, expanded).
  BLT 40 * PB, 24, PITCH, 0, AT(120, 400), 3, 0xc4, 0x0d, 0
  mov si, 0x7e40
  xor di, di
  mov cx, 8
  rep movsb

%if PB <= 2
  ; Extended write modes 5 and 4: each byte written is 8 pixels of GR01/GR00.
  FG 0x0000f81f
  BG 0x000007e0
  mov dx, 0x3ce
%if PB == 1
  GR 0x0b, 0x26
%else
  GR 0x0b, 0x34
%endif
  BANK 0
  GR 0x05, 0x45
  mov si, 0x7e00
  mov di, 460 * 80
  mov cx, 80 * 6
  rep movsb
  GR 0x05, 0x44
  mov si, 0x8000
  mov di, 468 * 80
  mov cx, 80 * 6
  rep movsb
  GR 0x05, 0x40
  GR 0x0b, 0x20
%endif

  ; The hardware cursor: hidden colours 0 and 15, an image from this program, at (590, 437).
  mov dx, 0x3c4
  mov ax, 0x0212
  out dx, ax
  mov dx, 0x3c8
  xor al, al
  out dx, al
  inc dx
  mov al, 0x3f
  out dx, al
  mov al, 0x10
  out dx, al
  mov al, 0x00
  out dx, al
  dec dx
  mov al, 15
  out dx, al
  inc dx
  mov al, 0x05
  out dx, al
  mov al, 0x3f
  out dx, al
  mov al, 0x20
  out dx, al
  BANK 0xff
  mov si, 0x7f80
  xor di, di
  mov cx, 256
  rep movsb
  mov dx, 0x3c4
  mov ax, 0x0013
  out dx, ax
  mov ax, ((590 >> 3) << 8) | 0x10 | ((590 & 7) << 5)
  out dx, ax
  mov ax, ((437 >> 3) << 8) | 0x11 | ((437 & 7) << 5)
  out dx, ax
  mov ax, 0x0112
  out dx, ax

%ifdef DOUBLESCAN
  ; The cursor off again (QEMU then shows 16, 24 and 32 bpp from the guest's own
  ; framebuffer), double scan on (CR09 bit 7) and the line compare at 200 (CR18, with
  ; its bit 8 in CR07 and bit 9 in CR09 cleared).
  mov ax, 0x0012
  out dx, ax
  mov dx, 0x3d4
  mov al, 0x09
  out dx, al
  inc dx
  in al, dx
  and al, 0xbf
  or al, 0x80
  out dx, al
  dec dx
  mov al, 0x07
  out dx, al
  inc dx
  in al, dx
  and al, 0xef
  out dx, al
  dec dx
  mov ax, (200 << 8) | 0x18
  out dx, ax
%endif

  mov si, donemsg
  call print
  cli
.halt:
  hlt
  jmp .halt

donemsg: db "CIRRUS-DONE", 13, 10, 0

  times (SECTORS + 1) * 512 - ($ - $$) db 0
