// Small probe kernels: one 32-bit program run on QEMU and on the vmkit interpreter

import { type Dump, parseDump, runImage } from "./harness.ts";
import { pm32Source } from "./image_pm32.ts";
import { DATA_BYTES } from "./layout.ts";
import { assemble } from "./program.ts";

/** Assembles `source` and runs it on QEMU and on the vmkit interpreter: [qemu, vmkit]. */
export async function onBoth(source: string): Promise<[Dump, Dump]> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-probe-" });
  try {
    const bin = await assemble(source, dir);
    const qemu = parseDump((await runImage("qemu", bin, dir)).text, "pm32");
    const vmkit = parseDump((await runImage("interp", bin, dir)).text, "pm32");
    return [qemu, vmkit];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A one-pass 32-bit kernel: ECX and EDX cleared first (the two -kernel loaders leave
 * different values there, and the exception handler hashes them), `body`, then a marker
 * in EAX. `data` fills the data area (0x5A bytes by default).
 */
export function probeSource(body: string[], data?: number[]): string {
  return pm32Source({
    init: ["mov eax, 0"],
    flags: 2,
    data: data ?? new Array(DATA_BYTES).fill(0x5a),
    body: ["  xor ecx, ecx", "  xor edx, edx", ...body, "  mov eax, 0x600df00d"],
    resume: [],
    passes: 1,
  });
}
