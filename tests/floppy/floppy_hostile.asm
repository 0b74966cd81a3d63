; Hostile floppy guest: a boot sector that programs the FDC (0x3f0) and DMA channel 2 itself
; with bad values and prints, per case, the result bytes the controller gives back and a
; Fletcher-style sum of the 64 KiB DMA target at 0x10000 (debugcon 0xe9), then exits through
; isa-debug-exit (0xf4). The controller must answer every case; none may hang or crash it.
bits 16
org 0x7c00
%include "fdc_cases.inc"

; page, address low/high, count-1 low/high, DMA mode, command length, command bytes
cases:
  ; a cylinder past the disk
  db 0x01, 0, 0, 0xff, 0x03, 0x46, 9, 0xe6, 0, 200, 0, 1, 2, 18, 0x1b, 0xff
  ; a sector past the track
  db 0x01, 0, 0, 0xff, 0x03, 0x46, 9, 0xe6, 4, 5, 1, 40, 2, 40, 0x1b, 0xff
  ; sector 0
  db 0x01, 0, 0, 0xff, 0x01, 0x46, 9, 0xe6, 0, 3, 0, 0, 2, 1, 0x1b, 0xff
  ; a DMA count larger than the command: the command's length wins
  db 0x01, 0, 0, 0xff, 0xff, 0x46, 9, 0xe6, 0, 6, 0, 1, 2, 18, 0x1b, 0xff
  ; a DMA address past RAM (page 0xf0 with -m 8)
  db 0xf0, 0, 0, 0xff, 0x0f, 0x46, 9, 0xe6, 0, 7, 0, 1, 2, 18, 0x1b, 0xff
  ; a DMA count shorter than one sector
  db 0x01, 0, 0, 99, 0, 0x46, 9, 0xe6, 0, 8, 1, 3, 2, 18, 0x1b, 0xff
  ; EOT before the start sector, no multi-track
  db 0x01, 0, 0, 0xff, 0x03, 0x46, 9, 0x66, 0, 9, 0, 10, 2, 4, 0x1b, 0xff
  ; an unknown command, then sense interrupt with nothing pending, then VERSION
  db 0x01, 0, 0, 0, 0, 0x46, 1, 0x1f
  db 0x01, 0, 0, 0, 0, 0x46, 1, 0x08
  db 0x01, 0, 0, 0, 0, 0x46, 1, 0x10
  ; drive B, which has no medium
  db 0x01, 0, 0, 0xff, 0x01, 0x46, 9, 0xe6, 1, 0, 0, 1, 2, 18, 0x1b, 0xff
  ; a write past the end of a short image (only a short image makes it fail)
  db 0x01, 0, 0, 0xff, 0x01, 0x4a, 9, 0xc5, 0, 70, 0, 1, 2, 1, 0x1b, 0xff
  ; programmed I/O: a DMA mode that does not fit the command (from memory, for a READ), then
  ; SPECIFY with DMA off; size code 0 so the data phase is DTL bytes, which the guest reads
  db 0x01, 0, 0, 0xff, 0x01, 0x4a, 9, 0xe6, 0, 4, 0, 5, 0, 18, 0x1b, 6
  db 0x01, 0, 0, 0, 0, 0x46, 3, 0x03, 0xaf, 0x03
  db 0x01, 0, 0, 0, 0, 0x46, 9, 0xe6, 0, 4, 1, 18, 0, 18, 0x1b, 8
  db 0x01, 0, 0, 0, 0, 0x46, 3, 0x03, 0xaf, 0x02
  db 0xff
times 510 - ($ - $$) db 0
dw 0xaa55
