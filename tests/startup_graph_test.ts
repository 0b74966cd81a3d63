// What `vmkit img` loads before its first image: the block plugins' eager module graph stays small

import assert from "node:assert/strict";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT, runCommand } from "./test_util.ts";

interface GraphModule {
  specifier: string;
  size?: number;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** The modules `entry` loads before running: its static imports, transitively (no `import()`). */
async function eagerModules(entry: string): Promise<Map<string, number>> {
  const r = await runCommand(Deno.execPath(), ["info", "--json", entry], { cwd: ROOT });
  assert.equal(r.code, 0, r.stderr);
  const graph = JSON.parse(r.stdout) as { modules: GraphModule[] };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Map<string, number>();
  const stack = [pathToFileURL(entry).href];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    const m = bySpecifier.get(s);
    seen.set(s, m?.size ?? 0);
    for (const d of m?.dependencies ?? []) {
      if (d.code && !d.isDynamic) stack.push(d.code.specifier);
    }
  }
  return seen;
}

Deno.test("plugins/block.ts loads no format's create, check, amend or snapshot code before it is used", async () => {
  const eager = await eagerModules(path.join(ROOT, "plugins", "block.ts"));
  const names = [...eager.keys()].map((s) => s.replace(pathToFileURL(ROOT).href + "/", ""));
  assert.ok(names.includes("plugins/formats/qcow2/mod.ts"), "the graph lists the formats");
  // A module's load cost follows its size (docs/img-performance.md): these load on first use.
  for (
    const lazy of [
      "plugins/formats/qcow2/create.ts",
      "plugins/formats/qcow2/check.ts",
      "plugins/formats/qcow2/amend.ts",
      "plugins/formats/qcow2/snapshot_ops.ts",
      "plugins/formats/qcow2/truncate.ts",
      // Compressed clusters load their codec (and the host zlib/zstd bindings) when met.
      "plugins/formats/qcow2/compress.ts",
      "core/host_zlib.ts",
      "plugins/formats/qcow2/make_empty.ts",
      // Guest reads and writes: loaded by a writable open or the first read (`img info` has neither).
      "plugins/formats/qcow2/io.ts",
      "plugins/formats/vhdx/header.ts",
      "plugins/formats/vhdx/create.ts",
      "plugins/formats/vhdx/node.ts",
      "plugins/formats/vmdk/create.ts",
      "plugins/formats/vmdk/open.ts",
    ]
  ) {
    assert.ok(!names.includes(lazy), `${lazy} is loaded eagerly`);
  }
  // Nothing outside the block layer rides along (CPUs, devices, machines, node: modules).
  for (const name of names) {
    assert.match(name, /^(plugins\/(block\.ts|formats\/|protocols\/)|core\/)/, name);
  }
});

Deno.test("the command line's eager graph and img's hold no x86 CPU model table", async () => {
  for (const entry of ["cli/main.ts", "cli/img/mod.ts", "cli/img/info.ts", "plugins/block.ts"]) {
    const eager = await eagerModules(path.join(ROOT, entry));
    const names = [...eager.keys()].map((s) => s.replace(pathToFileURL(ROOT).href + "/", ""));
    if (entry === "cli/main.ts") assert.ok(names.includes("core/plugin.ts"), "no registry");
    // QEMU's model table (78 KB, ~3 ms of a cold start) is the CPU plugins' and -cpu help's.
    const models = names.filter((n) => n.startsWith("core/x86_cpu_models"));
    assert.deepEqual(models, [], `${entry} loads them through core/plugin.ts`);
  }
});

Deno.test("deno.json keeps lazy-dynamic-imports, so deno run does not read every plugin at start", async () => {
  const config = JSON.parse(await Deno.readTextFile(path.join(ROOT, "deno.json")));
  assert.ok(
    (config.unstable ?? []).includes("lazy-dynamic-imports"),
    "without it `vmkit --version` reads all ~230 modules of the tree before running",
  );
});
