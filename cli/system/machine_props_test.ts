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
  // libvirt's -machine line: parts the board lacks asked off, host-only hints.
  checkMachineProperties(
    opts(["machine", "pc,accel=tcg,usb=off,vmport=off,dump-guest-core=off,mem-merge=on"]),
    M,
  );
  checkMachineProperties(opts(["M", "pc,hpet=off,smm=off,suppress-vmdesc=yes"]), M);
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,hpet=on"]), M),
    { message: "-M pc,hpet=on: machine property 'hpet' not supported by vmkit yet" },
  );
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,acpi=off"]), M),
    { message: "-M pc,acpi=off: machine property 'acpi' not supported by vmkit yet" },
  );
  // Values QEMU cannot parse, in its words (recorded from qemu-system-x86_64 7.2).
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,mem-merge=maybe"]), M),
    { message: "Parameter 'mem-merge' expects 'on' or 'off'" },
  );
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,hpet=maybe"]), M),
    { message: "Parameter 'hpet' expects 'on' or 'off'" },
  );
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,vmport=maybe"]), M),
    { message: "Parameter 'vmport' does not accept value 'maybe'" },
  );
  assert.throws(
    () => checkMachineProperties(opts(["M", "pc,vmport=auto"]), M),
    { message: "-M pc,vmport=auto: machine property 'vmport' not supported by vmkit yet" },
  );
});
