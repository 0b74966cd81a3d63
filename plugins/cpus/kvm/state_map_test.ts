import assert from "node:assert/strict";
import {
  X86_CR0,
  X86_CS,
  X86_GDTR_BASE,
  X86_SS,
  X86_TR,
  X86State,
} from "../../../core/x86_state.ts";
import { KVM_FPU_BYTES, KVM_REGS_BYTES, KVM_SREGS_BYTES } from "./_abi.ts";
import {
  fpuToState,
  regsToState,
  resetState,
  sregsToState,
  stateToFpu,
  stateToRegs,
  stateToSregs,
} from "./state_map.ts";

function roundTrip(s: X86State): X86State {
  const regs = new DataView(new ArrayBuffer(KVM_REGS_BYTES));
  const sregs = new DataView(new ArrayBuffer(KVM_SREGS_BYTES));
  const fpu = new Uint8Array(KVM_FPU_BYTES);
  stateToRegs(s, regs);
  stateToSregs(s, sregs);
  stateToFpu(s, fpu);
  const back = new X86State();
  regsToState(regs, back);
  sregsToState(sregs, back);
  fpuToState(fpu, back);
  return back;
}

Deno.test("stateToRegs() and regsToState() keep every general register in its x86 number", () => {
  const s = new X86State();
  for (let r = 0; r < 16; r++) s.setGpr(r, 0x1111_0000_0000_0000n * BigInt(r + 1) + BigInt(r));
  s.rip = 0x1234_5678;
  s.rflags = 0x246;
  const regs = new DataView(new ArrayBuffer(KVM_REGS_BYTES));
  stateToRegs(s, regs);
  // struct kvm_regs starts rax, rbx, rcx: RBX is x86 register 3.
  assert.equal(regs.getBigUint64(8, true), s.gpr(3));
  const back = roundTrip(s);
  for (let r = 0; r < 16; r++) assert.equal(back.gpr(r), s.gpr(r));
  assert.equal(back.rip, 0x1234_5678);
  assert.equal(back.rflags, 0x246);
});

Deno.test("stateToSregs() splits segment attributes into kvm_segment fields and back", () => {
  const s = new X86State();
  resetState(s, 0x663);
  s.setSegment(X86_SS, { selector: 0x10, attributes: 0xc093, limit: 0xffffffff, base: 0 });
  s.setSegment(X86_CS, { selector: 0x1b, attributes: 0xc0fb, limit: 0xffffffff, base: 0x1000 });
  s.setU64(X86_CR0, 0x80000011);
  s.setU64(X86_GDTR_BASE, 0xfffe_0000);
  const sregs = new DataView(new ArrayBuffer(KVM_SREGS_BYTES));
  stateToSregs(s, sregs);
  assert.equal(sregs.getUint8(0 + 14), 0xb); // CS type
  assert.equal(sregs.getUint8(0 + 16), 3); // CS DPL
  assert.equal(sregs.getUint8(0 + 17), 1); // CS D/B
  assert.equal(sregs.getUint8(0 + 20), 1); // CS G
  const back = roundTrip(s);
  assert.deepEqual(back.segment(X86_CS), s.segment(X86_CS));
  assert.deepEqual(back.segment(X86_TR), s.segment(X86_TR));
  assert.equal(back.u64(X86_GDTR_BASE), 0xfffe_0000);
  assert.equal(back.cpl, 0); // SS.DPL in protected mode
});

Deno.test("fpuToState() rebuilds the full tag word from the abridged one and the values", () => {
  const s = new X86State();
  resetState(s, 0x663);
  // Two values pushed: TOP = 6; ST(0) = 1.0 (valid), ST(1) = +0 (zero).
  s.setU16(0x222, 6 << 11);
  const one = s.bytes.subarray(0x240, 0x24a);
  one.set([0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
  // Physical registers 6 and 7 in use: 6 valid (00), 7 zero (01), the rest empty (11).
  s.setU16(0x224, 0x0fff | (0 << 12) | (1 << 14));
  const back = roundTrip(s);
  assert.equal(back.u16(0x224), s.u16(0x224));
  assert.equal(back.u32(0x23c), 0x1f80);
});
