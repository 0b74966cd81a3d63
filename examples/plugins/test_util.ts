// Helpers for the example plugins' tests: vmkit with one --plugin, byte comparison, a patterned raw file

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { type RunResult, runVmkit } from "../../tests/test_util.ts";

/** The absolute path of an example plugin file beside this one (`qed.ts`). */
export function examplePlugin(file: string): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), file);
}

/** Runs `vmkit --plugin PLUGIN img ARGS` in `cwd`. */
export function pluginImg(plugin: string, args: string[], cwd: string): Promise<RunResult> {
  return runVmkit(["--plugin", plugin, "img", ...args], { cwd });
}

/** {@linkcode pluginImg} that must exit 0. */
export async function pluginImgOk(plugin: string, args: string[], cwd: string): Promise<RunResult> {
  const r = await pluginImg(plugin, args, cwd);
  if (r.code !== 0) throw new Error(`vmkit img ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** True when two byte arrays are equal (assert.deepEqual's diff of large arrays takes minutes). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Writes a raw file with data in a few places, a gap of zeroes and unaligned edges. */
export async function patternRaw(dir: string, name: string, sizeBytes: number): Promise<void> {
  const bytes = new Uint8Array(sizeBytes);
  bytes.fill(0x11, 0, 64 << 10);
  bytes.fill(0x22, 100 << 10, 400 << 10);
  bytes.fill(0x44, 3 << 20, (3 << 20) + 1024);
  for (let i = 5 << 20; i < Math.min(sizeBytes, (5 << 20) + 8192); i++) bytes[i] = i * 7;
  await Deno.writeFile(path.join(dir, name), bytes);
}
