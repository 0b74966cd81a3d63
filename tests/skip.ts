// Why a test skips: one check per program or file a test needs, its `ignore` flag, and a
// printed line naming what is missing and how to get it (nothing skips silently)

/** A file a test needs, and how to get it when it is missing. */
export interface FileNeed {
  readonly file: string;
  readonly how: string;
}

/**
 * What a test needs: a program run as `NAME --version` (how to get it comes from
 * {@linkcode HOW_TO_GET}), a file, or a condition the test worked out itself with the
 * reason it fails (`{ ok, missing }`).
 */
export type Need = string | FileNeed | { readonly ok: boolean; readonly missing: string };

/** How to install each program the tests run (Debian package names). */
export const HOW_TO_GET: Readonly<Record<string, string>> = {
  "qemu-system-x86_64": "apt-get install qemu-system-x86",
  "qemu-system-i386": "apt-get install qemu-system-x86",
  "qemu-img": "apt-get install qemu-utils",
  "qemu-io": "apt-get install qemu-utils",
  python3: "apt-get install python3",
  nasm: "apt-get install nasm",
  vncsnapshot: "apt-get install vncsnapshot",
  djpeg: "apt-get install libjpeg-turbo-progs",
  openssl: "apt-get install openssl",
  bash: "apt-get install bash",
};

/** The SeaBIOS image `-M pc` loads. */
export const SEABIOS: FileNeed = {
  file: "/usr/share/seabios/bios-256k.bin",
  how: "apt-get install seabios",
};

/** esbuild from npm, which `vmkit plugin build` bundles with. */
export const ESBUILD: FileNeed = {
  file: new URL("../node_modules/esbuild/package.json", import.meta.url).pathname,
  how: "npm ci",
};

const programs = new Map<string, boolean>();
const files = new Map<string, boolean>();
const printed = new Set<string>();

/**
 * True when `program` is installed: `program --version` starts (checked once per process;
 * its exit status is not asked, as vncsnapshot, djpeg and openssl answer 1).
 */
export function haveProgram(program: string): boolean {
  let found = programs.get(program);
  if (found === undefined) {
    try {
      new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
        .outputSync();
      found = true;
    } catch {
      found = false;
    }
    programs.set(program, found);
  }
  return found;
}

/** True when `file` exists (checked once per process). */
export function haveFile(file: string): boolean {
  let found = files.get(file);
  if (found === undefined) {
    try {
      Deno.statSync(file);
      found = true;
    } catch {
      found = false;
    }
    files.set(file, found);
  }
  return found;
}

/** What is missing of `need`, in words, or "" when it is there. */
function missingText(need: Need): string {
  if (typeof need === "string") {
    if (haveProgram(need)) return "";
    const how = HOW_TO_GET[need];
    return `${need} is not installed${how ? ` (${how})` : ""}`;
  }
  if ("file" in need) return haveFile(need.file) ? "" : `${need.file} is missing (${need.how})`;
  // A reason written for a test name (" (ignored: why)") is printed as the why.
  return need.ok ? "" : need.missing.replace(/^\s*\(ignored: (.*)\)$/s, "$1").trim();
}

/**
 * The `ignore` flag of a test that needs `needs`: false when all are there; true when
 * something is missing, after printing (once per file and reason) which and how to get it.
 *
 * @param where the test module's `import.meta`, so the line names the file
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { skipUnless } from "./skip.ts";
 *
 * assert.equal(skipUnless(import.meta, { ok: true, missing: "never printed" }), false);
 * assert.equal(skipUnless(import.meta, "vmkit-no-such-program"), true);
 * ```
 */
export function skipUnless(where: ImportMeta | string, ...needs: Need[]): boolean {
  const missing = needs.map(missingText).filter((m) => m !== "");
  if (missing.length === 0) return false;
  const file = typeof where === "string"
    ? where
    : where.url.replace(/^.*\/(tests|cli|plugins|examples|tools|core)\//, "$1/");
  const line = `${file}: skipped: ${missing.join("; ")}`;
  if (!printed.has(line)) {
    printed.add(line);
    console.log(line);
  }
  return true;
}
