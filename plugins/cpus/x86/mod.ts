// The x86 interpreter plugin: QEMU's accel=tcg CPU backend for i386 guests

import type { CpuContext } from "../../../core/cpu.ts";
import { UsageError } from "../../../core/errors.ts";
import type { CpuDescriptor } from "../../../core/plugin.ts";
import { switchFromEnvironment, X86Cpu } from "./cpu.ts";
import { CPU_MODELS, DEFAULT_MODEL, findModel } from "./models.ts";
import { allocateWasmRam } from "./wasm/ram.ts";

export { JIT_DEFAULT, WASM_DEFAULT, X86Cpu, type X86CpuOptions } from "./cpu.ts";
export { allocateWasmRam } from "./wasm/ram.ts";
export { CPU_MODELS, type CpuModel, findModel } from "./models.ts";

/** The x86 interpreter (`-accel tcg`), with the models `-cpu help` lists. */
export default {
  kind: "cpu",
  name: "x86",
  summary: "x86 interpreter (i386, TCG)",
  accel: "tcg",
  models: CPU_MODELS.map((m) => ({ name: m.name, description: m.description })),
  options: [],
  // Guest RAM in a WebAssembly.Memory, which the wasm tier compiles code against.
  allocateRam: allocateWasmRam,
  create(context: unknown, _opts) {
    const ctx = context as CpuContext;
    const name = ctx.model ?? DEFAULT_MODEL;
    const model = findModel(name);
    if (!model) throw new UsageError(`unable to find CPU model '${name}'`);
    // Machines run slices from an event loop, so regions can compile in the background.
    return new X86Cpu(ctx, model, { wasmAsync: switchFromEnvironment("VMKIT_WASM_ASYNC", true) });
  },
} satisfies CpuDescriptor;
