// Helpers of the crash suite: kill a process at a chosen moment, classify `qemu-img check`

import { MAIN, runCommand } from "../test_util.ts";

/** How a real `qemu-img check` judged an image after a crash. */
export type CheckVerdict =
  /** No errors. */
  | "clean"
  /** Leaked clusters only (exit 3): allowed after a crash. */
  | "leaks"
  /** A lazy-refcounts image left dirty, whose errors `qemu-img check -r all` repaired. */
  | "dirty-repaired"
  /** The file never became an image of its format (killed while it was being created). */
  | "absent"
  /** Anything else: a failure. */
  | "corrupt";

/** A verdict and what the checker printed. */
export interface CheckOutcome {
  verdict: CheckVerdict;
  output: string;
}

const QCOW2_MAGIC = 0x514649fb;
const QCOW2_INCOMPAT_DIRTY = 1n;

/** True when `file` starts with the qcow2 magic and has its dirty bit set. */
export function qcow2Dirty(file: string): boolean {
  const b = new Uint8Array(80);
  const f = Deno.openSync(file);
  try {
    f.readSync(b);
  } finally {
    f.close();
  }
  const v = new DataView(b.buffer);
  if (v.getUint32(0) !== QCOW2_MAGIC || v.getUint32(4) < 3) return false;
  return (v.getBigUint64(72) & QCOW2_INCOMPAT_DIRTY) !== 0n;
}

/** True when `file` exists and starts with the qcow2 magic. */
export function isQcow2(file: string): boolean {
  try {
    const b = new Uint8Array(4);
    const f = Deno.openSync(file);
    try {
      if (f.readSync(b) !== 4) return false;
    } finally {
      f.close();
    }
    return new DataView(b.buffer).getUint32(0) === QCOW2_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Runs the real `qemu-img check` on `file` of `format` and classifies the result.
 * A dirty lazy-refcounts qcow2 image may hold refcounts that lag (that is what the
 * bit means); it passes when `check -r all` repairs it to a clean image.
 */
export async function checkImage(file: string, format: string): Promise<CheckOutcome> {
  const r = await runCommand("qemu-img", ["check", "-f", format, file]);
  const output = `${r.stdout}${r.stderr}`.trim();
  if (r.code === 0) return { verdict: "clean", output };
  if (r.code === 3 && /leaked clusters/.test(output) && !/corruptions|ERROR/.test(output)) {
    return { verdict: "leaks", output };
  }
  if (format === "qcow2" && qcow2Dirty(file)) {
    const fix = await runCommand("qemu-img", ["check", "-r", "all", "-f", format, file]);
    const again = await runCommand("qemu-img", ["check", "-f", format, file]);
    if (fix.code !== 1 && again.code === 0) return { verdict: "dirty-repaired", output };
    return {
      verdict: "corrupt",
      output:
        `${output}\n-- after check -r all (exit ${fix.code}): --\n${again.stdout}${again.stderr}`,
    };
  }
  return { verdict: "corrupt", output };
}

/** What happened to one process run under {@linkcode runKilled}. */
export interface KilledRun {
  /** True when SIGKILL reached the process before it exited on its own. */
  killed: boolean;
  /** Exit code when it exited on its own. */
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in ms. */
  elapsedMs: number;
}

/** The arguments that run vmkit's CLI (or a script of the suite) under this Deno. */
export function denoArgs(scriptOrImgArgs: { script: string; args: string[] } | string[]): string[] {
  if (Array.isArray(scriptOrImgArgs)) return ["run", "-A", "--quiet", MAIN, ...scriptOrImgArgs];
  return ["run", "-A", "--quiet", scriptOrImgArgs.script, ...scriptOrImgArgs.args];
}

/**
 * Spawns Deno with `args` in `cwd` and sends SIGKILL after `delayMs` (never when
 * `delayMs` is Infinity); resolves once the process is gone.
 */
export async function runKilled(args: string[], cwd: string, delayMs: number): Promise<KilledRun> {
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  let exited = false;
  const timer = Number.isFinite(delayMs)
    ? setTimeout(() => {
      if (exited) return;
      try {
        child.kill("SIGKILL");
        killed = true;
      } catch {
        // Already gone.
      }
    }, delayMs)
    : undefined;
  const out = await child.output();
  exited = true;
  if (timer !== undefined) clearTimeout(timer);
  const decoder = new TextDecoder();
  // A kill that raced with a normal exit did not interrupt anything.
  if (killed && out.signal !== "SIGKILL") killed = false;
  return {
    killed,
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    elapsedMs: performance.now() - start,
  };
}

/** SHA-256 of a file, hex. */
export async function fileHash(file: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(file));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `items` through `fn` with at most `limit` in flight. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
