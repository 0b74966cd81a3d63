// The x86 interpreter plugin: QEMU's accel=tcg CPU backend for i386 guests

import type { CpuContext } from "../../../core/cpu.ts";
import type { CpuDescriptor } from "../../../core/plugin.ts";
import { X86_CPU_FAMILY } from "../../../core/x86_cpu_models.ts";
import { switchFromEnvironment, X86Cpu } from "./cpu.ts";
import { CPU_MODELS, DEFAULT_MODEL, resolveModel } from "./models.ts";
import { allocateWasmRam } from "./wasm/ram.ts";

export { JIT_DEFAULT, WASM_DEFAULT, X86Cpu, type X86CpuOptions } from "./cpu.ts";
export { allocateWasmRam } from "./wasm/ram.ts";
export { CPU_MODELS, type CpuModel, findModel, resolveModel } from "./models.ts";

/** The x86 interpreter (`-accel tcg`), with the models `-cpu help` lists. */
export default {
  kind: "cpu",
  name: "x86",
  summary: "x86 interpreter (i386, TCG)",
  accel: "tcg",
  family: X86_CPU_FAMILY,
  models: CPU_MODELS.map((m) => ({ name: m.name, description: m.description })),
  options: [],
  // Guest RAM in a WebAssembly.Memory, which the wasm tier compiles code against.
  allocateRam: allocateWasmRam,
  create(context: unknown, _opts) {
    const ctx = context as CpuContext;
    // Unknown models and flags throw QEMU's UsageError (config.ts refuses them earlier).
    const { model, warnings } = resolveModel(ctx.cpu ?? ctx.model ?? DEFAULT_MODEL);
    // The flags this CPU lacks, in QEMU's words, once and only for a model the user named.
    if ((ctx.index ?? 0) === 0 && ctx.cpu !== undefined) {
      for (const w of warnings) ctx.warn?.(w);
    }
    // Machines run slices from an event loop, so regions can compile in the background.
    return new X86Cpu(ctx, model, { wasmAsync: switchFromEnvironment("VMKIT_WASM_ASYNC", true) });
  },
} satisfies CpuDescriptor;
