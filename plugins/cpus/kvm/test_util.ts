// Helpers for the KVM plugin's tests

import { X86State } from "../../../core/cpu.ts";
import { X86_CS } from "../../../core/x86_state.ts";
import type { KvmCpu } from "./vcpu.ts";

/** Resets `cpu` and moves it to real-mode CS:IP 0000:`ip`, where a test put its code. */
export function enterRealMode(cpu: KvmCpu, ip: number): KvmCpu {
  cpu.reset();
  const s = new X86State();
  cpu.getState(s);
  s.setSegment(X86_CS, { selector: 0, attributes: 0x9b, limit: 0xffff, base: 0 });
  s.rip = ip;
  cpu.setState(s);
  return cpu;
}
