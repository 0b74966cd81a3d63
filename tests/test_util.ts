// Helpers for end-to-end tests: run vmkit as a user types it, find real QEMU tools

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { haveProgram } from "./skip.ts";

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The CLI entry point. */
export const MAIN = path.join(ROOT, "cli", "main.ts");

/** What a finished command printed and returned. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Runs any program and collects its output. */
export async function runCommand(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; stdin?: Uint8Array } = {},
): Promise<RunResult> {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin) {
    const w = child.stdin.getWriter();
    await w.write(options.stdin);
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Runs `vmkit ARGS` through `deno run`, as the compiled binary would run. With
 * `argv0`, runs through a symlink of that name to the Deno binary, so vmkit sees
 * the name a user's symlink would give it (`qemu-img`).
 */
export async function runVmkit(
  args: string[],
  options: { cwd?: string; argv0?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  let program = Deno.execPath();
  if (options.argv0) {
    const dir = await Deno.makeTempDir({ prefix: "vmkit-argv0-" });
    program = path.join(dir, options.argv0);
    await Deno.symlink(Deno.execPath(), program);
  }
  try {
    return await runCommand(program, ["run", "-A", "--quiet", MAIN, ...args], options);
  } finally {
    if (options.argv0) await Deno.remove(path.dirname(program), { recursive: true });
  }
}

/**
 * Runs `program` (or vmkit as `qemu-img` when `program` is "vmkit", so its messages
 * read exactly like qemu-img's) and returns what it printed.
 */
export function runTool(program: string, args: string[], cwd: string): Promise<RunResult> {
  return program === "vmkit"
    ? runVmkit(args, { cwd, argv0: "qemu-img" })
    : runCommand(program, args, { cwd });
}

/** {@linkcode runTool} that must exit 0; a failure names the command and its stderr. */
export async function runToolOk(program: string, args: string[], cwd: string): Promise<RunResult> {
  const r = await runTool(program, args, cwd);
  if (r.code !== 0) {
    throw new Error(`${program} ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  }
  return r;
}

/** True when a program runs (`qemu-img --version` answers), checked once per process. */
export { haveProgram };

/** True when esbuild is installed from npm (`npm ci`): `vmkit plugin build` needs it. */
export const HAVE_ESBUILD = (() => {
  try {
    return Deno.statSync(path.join(ROOT, "node_modules", "esbuild", "package.json")).isFile;
  } catch {
    return false;
  }
})();

/** True when the real `qemu-img` is installed. */
export const HAVE_QEMU_IMG = haveProgram("qemu-img");

/** A fresh temporary directory, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-test-" });
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

/** Reads a file's bytes, for byte-for-byte unchanged checks. */
export function readBytes(file: string): Uint8Array {
  return Deno.readFileSync(file);
}

/** Kills `child` unless it has already ended (a kill then throws), and waits for its end. */
export async function stopChild(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGKILL");
  } catch {
    // it ended by itself
  }
  return await child.status;
}
