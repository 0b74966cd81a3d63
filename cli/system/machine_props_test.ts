import assert from "node:assert/strict";
import { checkMachineProperties } from "./machine_props.ts";
import type { SystemOpt } from "./options.ts";

const M = "pc-i440fx-7.2";
const opts = (...pairs: [string, string][]): SystemOpt[] =>
  pairs.map(([name, value]) => ({ name, value }));

// Words recorded from qemu-system-x86_64 7.2 (exit status 1 for each).
Deno.test("machine props: an unknown property is refused in QEMU 7.2's words", () => {
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,unknown=x"]), M),
    { message: "Property 'pc-i440fx-7.2-machine.unknown' not found" },
  );
  assert.throws(
    () => checkMachineProperties(opts(["machine", "accel=tcg,foo=bar"]), M),
    { message: "Property 'pc-i440fx-7.2-machine.foo' not found" },
  );
});

Deno.test("machine props: a bare word is a parse error before any lookup", () => {
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,accel=tcg:kvm,usb=off,bogus"]), M),
    { message: "-M pc,accel=tcg:kvm,usb=off,bogus: Expected '=' after parameter 'bogus'" },
  );
});

Deno.test("machine props: what vmkit honours passes; QEMU's others are refused by name", () => {
  checkMachineProperties(
    opts(["M", "pc,accel=kvm:tcg,kernel_irqchip=split"], ["machine", "graphics=off,usb=off"]),
    M,
  );
  checkMachineProperties(opts(["machine", "kernel-irqchip=off"], ["M", "pc-i440fx-7.2"]), M);
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,hpet=off"]), M),
    { message: "-M pc,hpet=off: machine property 'hpet' not supported by vmkit yet" },
  );
});
