// NASM-built protected-mode programs: mode switch, exceptions, gates, privilege changes

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { assemble, HAVE_NASM, runProgram } from "./test_util.ts";

const why = HAVE_NASM ? "" : " (ignored: nasm is not installed)";

Deno.test({
  name: `X86Cpu runs pmode.asm: exceptions with error codes, gates and a ring-3 round trip${why}`,
  ignore: !HAVE_NASM,
  fn() {
    const run = runProgram(assemble("pmode"));
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "80:100", // protected mode
      "80:0", // #DE
      "80:d", // #GP(0x40): selector beyond the GDT limit
      "81:40",
      "80:d", // #GP(0): beyond a segment limit
      "81:0",
      "80:6", // #UD
      "80:80", // INT 80h through a trap gate
      "80:d", // OUT at CPL 3 with IOPL 0
      "81:0",
      "80:d", // CLI at CPL 3
      "81:0",
      "80:d", // INT 81h: gate DPL 0 < CPL 3
      "81:40a",
      "80:82", // INT 82h from ring 3
      "81:23", // interrupted CS
      "81:2b", // interrupted SS
      "81:87fec", // ring-0 ESP from the TSS after five pushes
    ]);
  },
});

Deno.test({
  name: `X86Cpu runs paging.asm: PSE and PAE pages, #PF codes, CR2, WP, INVLPG and NX${why}`,
  ignore: !HAVE_NASM,
  fn() {
    // QEMU's qemu32 has no NX; the test turns it on as `-cpu qemu32,+nx` would.
    const run = runProgram(assemble("paging"), { model: "qemu32,+nx" });
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "80:100", // paging on
      "81:60", // accessed and dirty set in the 4M PDE
      "80:e", // not present, supervisor read
      "81:0",
      "81:c00000",
      "80:e", // protection, write, with CR0.WP
      "81:3",
      "81:5000",
      "81:aaaa", // before the PTE change
      "81:bbbb", // after INVLPG
      "81:feed", // the 4M page maps physical 8M
      "80:200", // PAE on
      "81:c3", // NX pages are readable
      "80:e", // fetch from NX: present + instruction fetch
      "81:11",
      "81:200000",
      "80:300",
    ]);
  },
});

Deno.test({
  name: `X86Cpu runs tasks.asm: CALL/JMP to a TSS, IRET through NT and a #DE task gate${why}`,
  ignore: !HAVE_NASM,
  fn() {
    const run = runProgram(assemble("tasks"));
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "80:a", // task A
      "81:4000", // NT set by CALL
      "81:28", // back link = main TSS
      "80:100", // IRET returned to main
      "81:1111", // EBX restored from the main TSS
      "81:28", // TR
      "80:b", // #DE delivered through the task gate
      "81:0", // main's saved EIP is the DIV
      "80:200",
      "80:c", // JMP to task C
      "81:0", // no back link
      "81:0", // main TSS no longer busy
    ]);
  },
});

Deno.test({
  name: `X86Cpu runs v86.asm: virtual-8086 entry, I/O bitmap and INT n with IOPL 0 and 3${why}`,
  ignore: !HAVE_NASM,
  fn() {
    const run = runProgram(assemble("v86"));
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "80:86", // OUT from v86 allowed by the TSS bitmap
      "80:d", // INT 21h with IOPL 0
      "81:0",
      "81:20000", // the frame's EFLAGS has VM
      "80:21", // INT 21h with IOPL 3 reaches the IDT gate
      "81:0", // v86 CS
      "81:1234", // v86 DS in the frame
      "81:0", // DS nulled on entry
      "81:beef", // 1234:0010 is linear 0x12350
    ]);
    assert.equal(run.cpu.registers().esp, 0x80000 - 36); // nine dwords on the ring-0 stack
  },
});

Deno.test({
  name: `X86Cpu runs fpu.asm: x87 probe, formats, arithmetic, FCOMI, FXAM, #MF and #NM${why}`,
  ignore: !HAVE_NASM,
  fn() {
    const run = runProgram(assemble("fpu"));
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "81:0", // FNSTSW after FNINIT
      "81:37f", // FNSTCW after FNINIT
      "81:401090fd", // pi + 1 (high dword)
      "81:c", // sqrt(144)
      "81:4", // 3.5 rounds to even
      "81:1", // FCOMIP: 0 < 1 sets CF only
      "81:4000", // FXAM of +0: C3
      "81:54442d18", // pi through the 80-bit format
      "81:400921fb",
      "81:4020", // TOP back to 0; C3 kept from FXAM, PE from rounding 3.5
      "80:10", // #MF: unmasked divide by zero reported at the next FLD
      "81:80a4", // B, ES, ZE (and PE, sticky since the FISTP)
      "80:7", // #NM with CR0.TS
      "80:200",
    ]);
  },
});

Deno.test({
  name:
    `X86Cpu runs gates.asm: call gates, RETF outward, SYSENTER/SYSEXIT, expand-down, LAR/LSL${why}`,
  ignore: !HAVE_NASM,
  fn() {
    const run = runProgram(assemble("gates"));
    assert.equal(run.exit, RunExit.HaltNoInterrupts);
    assert.deepEqual(run.reports, [
      "81:cff200", // LAR of the DPL 3 data segment
      "81:1ffffff", // LSL of a page-granular limit
      "81:0", // VERW of a code segment
      "80:d", // expand-down: offset below the limit
      "81:0",
      "81:0", // from ring 0
      "80:d", // SYSEXIT reached ring 3: OUT faults
      "81:0",
      "81:3",
      "81:2222", // parameters copied by the call gate
      "81:1111",
      "81:7eff8", // outer ESP
      "81:5b", // outer SS
      "81:87fe8", // inner ESP from the TSS after six pushes
      "80:d", // RETF 8 went back to ring 3
      "81:0",
      "81:3",
      "80:5e", // SYSENTER
      "81:40",
      "81:48",
      "81:7f000", // RETF 8 released the parameters
    ]);
  },
});
