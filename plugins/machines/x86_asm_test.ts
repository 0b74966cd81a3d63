import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import {
  AL,
  Assembler,
  at,
  AX,
  BX,
  byte,
  CL,
  CR0,
  CR3,
  CS,
  CX,
  DS,
  dword,
  DX,
  EAX,
  EBP,
  EBX,
  ECX,
  EDI,
  EDX,
  ES,
  ESI,
  ESP,
  FS,
  mem,
  SS,
} from "./x86_asm.ts";

function hasNasm(): boolean {
  try {
    return new Deno.Command("nasm", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** Assembles `source` with `nasm -f bin`. */
function nasm(source: string): Uint8Array {
  const dir = Deno.makeTempDirSync({ prefix: "vmkit-asm-" });
  try {
    Deno.writeTextFileSync(`${dir}/t.asm`, source);
    const out = new Deno.Command("nasm", {
      args: ["-f", "bin", "-o", `${dir}/t.bin`, `${dir}/t.asm`],
      stderr: "piped",
    }).outputSync();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return Deno.readFileSync(`${dir}/t.bin`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** 32-bit code exercising every form the boot ROM, demo guest and benchmarks use. */
function program32(a: Assembler): void {
  a.label("top");
  a.mov(EAX, 0x12345678).mov(ECX, EDX).mov(AL, 0x41).mov(BX, 0x1234);
  a.mov(EAX, mem(EBX, 8)).mov(mem(ESI, -4), EDI).mov(EDX, mem(ESP, 0)).mov(EAX, mem(EBP, 0));
  a.mov(dword(EDI, 0x1000), 7).mov(byte(EBX, 0), 0x20).mov(EAX, mem(null, 0x7000));
  a.mov(EAX, mem(EBX, 0x10, { index: ESI, scale: 4 })).mov(
    EAX,
    mem(null, 0, { index: ECX, scale: 4 }),
  );
  a.mov(mem(ESP, 4), EAX).mov(EAX, "data").mov(EDX, mem(null, "data"));
  a.mov(EAX, mem(ESI, at("data", 4)));
  a.add(EAX, ECX).sub(EDX, 5).xor(EAX, EAX).and(EBX, 0xff00).or(EAX, 0x12345).cmp(ECX, 1000);
  a.add(AL, 3).cmp(AL, 0x30).cmp(byte(ESI, 0), 0).add(EAX, mem(EBX, 4)).adc(EDX, 0);
  a.sub(dword(EDI, 0), ECX).test(AL, 0x20).test(EAX, EAX).test(ECX, 0x1000);
  a.inc(EAX).dec(ECX).inc(dword(EBX, 0)).dec(byte(EBX, 0)).not(EAX).neg(EDX);
  a.mul(ECX).div(EBX).imul(EAX, ECX);
  a.shl(EAX, 4).shr(EDX, 1).sar(EBX, CL).rol(EAX, 8).ror(ECX, 3);
  a.movzx(EAX, AL).movzx(ECX, byte(ESI, 1)).movzx(EAX, mem(EBX, 0, { bits: 16 })).movsx(EAX, CL);
  a.lea(EDI, mem(EDI, 4)).lea(EAX, mem(EAX, 0, { index: EAX, scale: 2 }));
  a.push(EAX).push(0x10).push(0x12345678).pop(EBX).pushad().popad().pushfd().popfd();
  a.push(DS).pop(ES).push(FS).pop(FS);
  a.repMovsd().repStosd().repMovsb().movsb().lodsb().stosb().cld();
  a.in(AL, DX).in(AL, 0x60).in(EAX, DX).out(DX, AL).out(0xf4, AL).out(DX, AX).out(0x80, EAX);
  a.cli().sti().hlt().nop();
  a.lgdt(mem(null, "data")).lidt(mem(EAX, 0)).mov(EAX, CR0).mov(CR3, EDX).mov(DS, AX).mov(AX, SS);
  a.jmpFar(0x08, 0x100000);
  a.jmp("top").jcc("ne", "top").label("back").loop("back");
  a.jmp("fwd").jcc("e", "fwd").call("fwd").jcc("b", "fwd2", { short: true });
  a.label("fwd2");
  a.label("fwd");
  a.call(EAX).jmp(EBX).ret().ret(4);
  a.label("data");
  a.dd(1, "data").dw(0xbeef).db(1, 2).ascii("hi", { nul: true }).align(4, 0x90);
}

const NASM32 = `bits 32
org 0x100000
top:
mov eax, 0x12345678
mov ecx, edx
mov al, 0x41
mov bx, 0x1234
mov eax, [ebx+8]
mov [esi-4], edi
mov edx, [esp]
mov eax, [ebp]
mov dword [edi+0x1000], 7
mov byte [ebx], 0x20
mov eax, [0x7000]
mov eax, [ebx+esi*4+0x10]
mov eax, [ecx*4]
mov [esp+4], eax
mov eax, data
mov edx, [data]
mov eax, [dword esi+data+4]
add eax, ecx
sub edx, 5
xor eax, eax
and ebx, 0xff00
or eax, 0x12345
cmp ecx, 1000
add al, 3
cmp al, 0x30
cmp byte [esi], 0
add eax, [ebx+4]
adc edx, 0
sub [edi], ecx
test al, 0x20
test eax, eax
test ecx, 0x1000
inc eax
dec ecx
inc dword [ebx]
dec byte [ebx]
not eax
neg edx
mul ecx
div ebx
imul eax, ecx
shl eax, 4
shr edx, 1
sar ebx, cl
rol eax, 8
ror ecx, 3
movzx eax, al
movzx ecx, byte [esi+1]
movzx eax, word [ebx]
movsx eax, cl
lea edi, [edi+4]
lea eax, [eax+eax*2]
push eax
push byte 0x10
push 0x12345678
pop ebx
pushad
popad
pushfd
popfd
push ds
pop es
push fs
pop fs
rep movsd
rep stosd
rep movsb
movsb
lodsb
stosb
cld
in al, dx
in al, 0x60
in eax, dx
out dx, al
out 0xf4, al
out dx, ax
out 0x80, eax
cli
sti
hlt
nop
lgdt [data]
lidt [eax]
mov eax, cr0
mov cr3, edx
mov ds, ax
mov ax, ss
jmp dword 0x08:0x100000
jmp top
jne top
back: loop back
jmp near fwd
je near fwd
call fwd
jb short fwd2
fwd2:
fwd:
call eax
jmp ebx
ret
ret 4
data:
dd 1, data
dw 0xbeef
db 1, 2
db "hi", 0
align 4, db 0x90
`;

Deno.test("Assembler emits the byte sequences the Intel SDM gives for common instructions", () => {
  const a = new Assembler({ bits: 32 });
  a.mov(EAX, 0x2badb002).out(0xf4, AL).xor(EAX, EAX).mov(CR0, EAX).hlt();
  assert.equal(hex(a.assemble()), "b8 02 b0 ad 2b e6 f4 31 c0 0f 22 c0 f4");
  const b = new Assembler({ bits: 16 });
  b.cli().lgdt(mem(null, 0x18, { seg: CS })).mov(EAX, CR0).or(AL, 1).mov(CR0, EAX);
  b.jmpFar(0x08, 0xffff0040, { bits: 32 });
  assert.equal(
    hex(b.assemble()),
    "fa 2e 0f 01 16 18 00 0f 20 c0 0c 01 0f 22 c0 66 ea 40 00 ff ff 08 00",
  );
});

Deno.test("Assembler.assemble() resolves backward short and forward near jumps", () => {
  const a = new Assembler({ bits: 32, origin: 0x1000 });
  a.label("l").jmp("l").jmp("f").label("f");
  assert.equal(hex(a.assemble()), "eb fe e9 00 00 00 00");
  assert.equal(a.address("f"), 0x1007);
  const b = new Assembler();
  b.jmp("nowhere");
  assert.throws(() => b.assemble(), /Label 'nowhere' is not defined/);
});

Deno.test({
  name: "Assembler matches nasm -f bin on a 32-bit program using every emitted form" +
    (hasNasm() ? "" : " (ignored: nasm is not installed)"),
  ignore: skipUnless(import.meta, "nasm"),
  fn() {
    const a = new Assembler({ bits: 32, origin: 0x100000 });
    program32(a);
    assert.equal(hex(a.assemble()), hex(nasm(NASM32)));
  },
});

Deno.test({
  name: "Assembler matches nasm -f bin on 16-bit real-mode code" +
    (hasNasm() ? "" : " (ignored: nasm is not installed)"),
  ignore: skipUnless(import.meta, "nasm"),
  fn() {
    const a = new Assembler({ bits: 16, origin: 0x7c00 });
    a.label("start").cli().xor(AX, AX).mov(DS, AX).mov(SS, AX).mov(AX, 0x1234).mov(EAX, 1);
    a.mov(AX, mem(BX, 2)).mov(mem(null, 0x500), AX).lgdt(mem(null, "gdtr", { seg: CS }));
    a.mov(EAX, CR0).or(EAX, 1).mov(CR0, EAX).inc(CX).inc(ECX).push(AX).push(EAX);
    a.mov(EAX, mem(EBX, 4)).in(AL, DX).out(DX, EAX).call("start").jmp("start");
    a.jmpFar(0x08, "pm", { bits: 32 }).jmpFar(0xf000, 0xe05b).loop("start");
    a.label("gdtr").dw(0x17).dd(0x7c00);
    a.bits(32).label("pm").mov(EAX, 0x10).mov(DS, AX).inc(AX);
    const source = `bits 16
org 0x7c00
start: cli
xor ax, ax
mov ds, ax
mov ss, ax
mov ax, 0x1234
mov eax, 1
mov ax, [bx+2]
mov [0x500], ax
lgdt [cs:gdtr]
mov eax, cr0
or eax, 1
mov cr0, eax
inc cx
inc ecx
push ax
push eax
mov eax, [ebx+4]
in al, dx
out dx, eax
call start
jmp start
jmp dword 0x08:pm
jmp 0xf000:0xe05b
loop start
gdtr: dw 0x17
dd 0x7c00
bits 32
pm: mov eax, 0x10
mov ds, ax
inc ax
`;
    assert.equal(hex(a.assemble()), hex(nasm(source)));
  },
});
