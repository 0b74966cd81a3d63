// Helpers for the example format plugins' tests: vmkit with one --plugin, judged against qemu-img

import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  readBytes,
  runCommand,
  type RunResult,
  runToolOk,
  runVmkit,
  tempDir,
} from "../../tests/test_util.ts";

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

/** Runs `args` under vmkit (with `plugin`) and qemu-img and asserts the same stdout (disk size aside). */
export async function assertSameAsQemuImg(
  plugin: string,
  args: string[],
  dir: string,
): Promise<void> {
  const ours = await pluginImgOk(plugin, args, dir);
  const theirs = await runToolOk("qemu-img", args, dir);
  const clean = (t: string) => t.replace(/^disk size: .*$/m, "");
  assert.equal(clean(ours.stdout), clean(theirs.stdout), args.join(" "));
}

/** Converts `image` to raw with vmkit and with qemu-img and asserts the same bytes. */
export async function assertReadsLikeQemuImg(
  plugin: string,
  image: string,
  dir: string,
): Promise<void> {
  await pluginImgOk(plugin, ["convert", "-O", "raw", image, `v-${image}.raw`], dir);
  await runToolOk("qemu-img", ["convert", "-O", "raw", image, `q-${image}.raw`], dir);
  const same = sameBytes(
    readBytes(path.join(dir, `v-${image}.raw`)),
    readBytes(path.join(dir, `q-${image}.raw`)),
  );
  assert.ok(same, `${image}: vmkit read the bytes qemu-img read`);
}

/** Asserts that qemu-io reads every `read -P ...` of `reads` back from `file` as expected. */
export async function assertQemuIoReads(
  format: string,
  file: string,
  reads: string[],
  dir: string,
): Promise<void> {
  const r = await runCommand("qemu-io", ["-f", format, ...reads.flatMap((c) => ["-c", c]), file], {
    cwd: dir,
  });
  assert.doesNotMatch(r.stdout + r.stderr, /Pattern verification failed|error/i, r.stdout);
}

/**
 * Damages a copy of the valid image `good` at each `[offset, bytes]` and asserts that
 * `img info` refuses it with one line and a non-zero exit, leaving the file unchanged.
 */
export async function assertHostileHeadersRefused(
  plugin: string,
  good: Uint8Array,
  damage: readonly (readonly [number, readonly number[]])[],
  dir: string,
): Promise<void> {
  for (const [at, bytes] of damage) {
    const bad = good.slice();
    bad.set(bytes, at);
    const file = path.join(dir, "bad.img");
    await Deno.writeFile(file, bad);
    const r = await pluginImg(plugin, ["info", "bad.img"], dir);
    assert.equal(r.code, 1, `offset ${at}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^vmkit: Could not open 'bad.img': /);
    assert.ok(sameBytes(readBytes(file), bad), "file unchanged");
  }
}

/**
 * Asserts that `format` is unknown to plain vmkit and that `create` with `plugin`
 * prints `formatting` for a 1 MiB image.
 */
export async function assertOnlyThroughPlugin(
  plugin: string,
  format: string,
  formatting: string,
): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    const without = await runVmkit(["img", "create", "-f", format, "a.img", "1M"], { cwd: dir });
    assert.equal(without.code, 1);
    assert.match(without.stderr, new RegExp(`Unknown file format '${format}'`));
    const ours = await pluginImgOk(plugin, ["create", "-f", format, "a.img", "1M"], dir);
    assert.equal(ours.stdout, formatting);
  } finally {
    await cleanup();
  }
}
