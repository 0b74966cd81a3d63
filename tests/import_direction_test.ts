// The house's import rules, checked on the tree: core imports no plugin or cli; a plugin
// imports core and its own folder only; an example plugin imports vmkit through mod.ts only;
// one face (cli/img, cli/system) never imports the other's files: what both use is in core

import assert from "node:assert/strict";
import * as path from "node:path";
import { ROOT } from "./test_util.ts";

/** One import that breaks a rule: who imports what, and which rule it breaks. */
export interface ImportViolation {
  from: string;
  to: string;
  rule: string;
}

// Static `import ... from "x"`, `export ... from "x"`, side-effect `import "x"` and
// dynamic `import("x")` with a literal: every way a module names another.
const IMPORT_RE =
  /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;

/** The relative specifiers a module's text imports. */
export function importsOf(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith(".")) found.push(spec);
  }
  return found;
}

/**
 * The plugin folder a file belongs to (`plugins/KIND/NAME`, `examples/plugins/NAME`), or
 * null for a file directly in `plugins/KIND/` (a one-file plugin or the kind's list).
 */
function pluginOf(rel: string): string | null {
  const parts = rel.split("/");
  if (parts[0] === "plugins" && parts.length >= 4) return parts.slice(0, 3).join("/");
  if (parts[0] === "examples" && parts[1] === "plugins" && parts.length >= 4) {
    return parts.slice(0, 3).join("/");
  }
  return null;
}

/** The rule an import from `from` to `to` (both relative to the root) breaks, or null. */
export function ruleBroken(from: string, to: string): string | null {
  const top = (p: string) => p.split("/")[0];
  if (top(from) === "core" && (top(to) === "plugins" || top(to) === "cli")) {
    return "core imports no plugin and no cli module";
  }
  const face = (p: string) =>
    p.startsWith("cli/img/") ? "img" : p.startsWith("cli/system/") ? "system" : null;
  if (face(from) && face(to) && face(from) !== face(to)) {
    return "one face imports nothing of the other's: what both use lives in core/";
  }
  if (top(from) === "examples") {
    // An example is written as an outside author writes one: vmkit only through mod.ts,
    // besides its own files.
    const dir = path.posix.dirname(from);
    if (to === "mod.ts" || to.startsWith(`${pluginOf(from) ?? dir}/`)) return null;
    return "an example plugin imports vmkit through mod.ts only";
  }
  if (top(from) !== "plugins") return null;
  if (top(to) === "cli") return "a plugin imports no cli module";
  const mine = pluginOf(from);
  const theirs = pluginOf(to);
  // A list of built-ins names every plugin it lists: a kind's (plugins/KIND/mod.ts) and the
  // top-level ones (plugins/mod.ts, and plugins/block.ts, the img face's subset).
  if (mine === null && (from.endsWith("/mod.ts") || from.split("/").length === 2)) return null;
  if (theirs !== null && theirs !== mine && top(to) === "plugins") {
    return "a plugin imports core and its own folder only, never another plugin's files";
  }
  return null;
}

async function walk(dir: string, out: string[]): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const full = path.join(dir, e.name);
    if (e.isDirectory && e.name !== "node_modules" && !e.name.startsWith(".")) {
      await walk(full, out);
    } else if (
      // Tests and their helpers (test_util.ts) may import anything, as tests/ may.
      e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") &&
      e.name !== "test_util.ts"
    ) {
      out.push(full);
    }
  }
}

/** Every import under `root` (core/, plugins/, cli/, examples/plugins/) that breaks a rule. */
export async function importViolations(root: string): Promise<ImportViolation[]> {
  const files: string[] = [];
  for (const dir of ["core", "plugins", "cli", path.join("examples", "plugins")]) {
    try {
      await walk(path.join(root, dir), files);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const violations: ImportViolation[] = [];
  for (const file of files) {
    const from = path.relative(root, file).split(path.sep).join("/");
    for (const spec of importsOf(await Deno.readTextFile(file))) {
      const to = path.relative(root, path.resolve(path.dirname(file), spec))
        .split(path.sep).join("/");
      const rule = ruleBroken(from, to);
      if (rule) violations.push({ from, to, rule });
    }
  }
  return violations;
}

Deno.test("importViolations() finds no broken import rule in the tree", async () => {
  const found = await importViolations(ROOT);
  assert.deepEqual(
    found.map((v) => `${v.from} -> ${v.to}: ${v.rule}`),
    [],
  );
});

Deno.test("importViolations() reports core importing a plugin and a plugin importing a sibling", async () => {
  const root = await Deno.makeTempDir();
  try {
    const put = async (rel: string, text: string) => {
      await Deno.mkdir(path.join(root, path.dirname(rel)), { recursive: true });
      await Deno.writeTextFile(path.join(root, rel), text);
    };
    await put("core/machine.ts", 'import pc from "../plugins/machines/pc.ts";\n');
    await put("plugins/machines/pc.ts", 'export { x } from "../../cli/main.ts";\n');
    await put("plugins/devices/vga/std.ts", 'import { PciConfig } from "../pci/config.ts";\n');
    await put("plugins/devices/vga/ok.ts", 'import { PciConfig } from "../../../core/pci.ts";\n');
    await put("plugins/devices/mod.ts", 'import vga from "./vga/std.ts";\n');
    await put("examples/plugins/edu/edu.ts", 'const m = await import("../../../core/pci.ts");\n');
    await put("examples/plugins/edu/ok.ts", 'import type { X } from "../../../mod.ts";\n');
    await put("cli/system/monitor.ts", 'import { snapshotTable } from "../img/info.ts";\n');
    await put("cli/system/ok.ts", 'import { writeOut } from "../output.ts";\n');
    const found = await importViolations(root);
    assert.deepEqual(found.map((v) => `${v.from} -> ${v.to}`).sort(), [
      "cli/system/monitor.ts -> cli/img/info.ts",
      "core/machine.ts -> plugins/machines/pc.ts",
      "examples/plugins/edu/edu.ts -> core/pci.ts",
      "plugins/devices/vga/std.ts -> plugins/devices/pci/config.ts",
      "plugins/machines/pc.ts -> cli/main.ts",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
