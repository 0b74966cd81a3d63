// The KVM plugin: QEMU's accel=kvm CPU backend, guest code on the host CPU through /dev/kvm

import type { CpuContext } from "../../../core/cpu.ts";
import type { CpuDescriptor } from "../../../core/plugin.ts";
import { X86_CPU_FAMILY } from "../../../core/x86_cpu_models.ts";
import { KVM_DEFAULT_MODEL, kvmModelNames, resolveKvmModel } from "./cpuid.ts";
import { KvmThreadExecutor } from "./threads.ts";
import { KvmCpu } from "./vcpu.ts";
import { allocateHostRam, type KernelIrqchip, openKvm, vmFor } from "./vm.ts";
import { closeFd } from "./_libc.ts";

export { KvmCpu, type KvmExitStats } from "./vcpu.ts";
export { KVM_DEVICE, KvmInitError, KvmVm, vmFor } from "./vm.ts";
export { kvmModelNames, resolveKvmModel } from "./cpuid.ts";

/** Checks that /dev/kvm opens and speaks API 12; throws {@linkcode KvmInitError} otherwise. */
export function probeKvm(): void {
  closeFd(openKvm());
}

/** The KVM backend (`-accel kvm`, `-enable-kvm`, `-machine accel=kvm`). */
export default {
  kind: "cpu",
  name: "kvm",
  summary: "KVM: guest code on the host CPU (x86-64 Linux, /dev/kvm)",
  accel: "kvm",
  family: X86_CPU_FAMILY,
  clock: "host",
  // QEMU 7.2's list (core/x86_cpu_models.ts); `-cpu help` prints it from the same table.
  models: kvmModelNames().map((name) => ({ name, description: "" })),
  options: [{
    name: "kernel-irqchip",
    type: "enum",
    values: ["on", "off", "split"],
    default: "on",
    help: "interrupt controllers: on (KVM's PIC, IOAPIC, PIT, local APICs), off (vmkit's), split",
  }],
  probe: probeKvm,
  allocateRam: allocateHostRam,
  // A thread per vCPU with -smp 2 and up; one vCPU runs on the main thread, where a port
  // exit costs no thread switch (VMKIT_KVM_THREADS=1 or 0 forces either way).
  createExecutor(machine) {
    const forced = Deno.env.get("VMKIT_KVM_THREADS");
    const threads = forced === undefined ? machine.config.smp > 1 : forced === "1";
    return threads ? new KvmThreadExecutor(machine) : undefined;
  },
  create(context: unknown, opts) {
    const ctx = context as CpuContext;
    const text = ctx.cpu ?? ctx.model ?? KVM_DEFAULT_MODEL;
    const irqchip = String(opts["kernel-irqchip"] ?? "on") as KernelIrqchip;
    const vm = vmFor(ctx.memory, { irqchip, findService: ctx.findService });
    // Unknown names and flags throw QEMU's UsageError; the host's gaps are warnings (once).
    const model = resolveKvmModel(text, vm.supportedCpuid());
    if ((ctx.index ?? 0) === 0) { for (const w of model.warnings) ctx.warn?.(w); }
    return new KvmCpu(vm, ctx, model);
  },
} satisfies CpuDescriptor;
