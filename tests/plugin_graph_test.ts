// Every built-in plugin must be statically reachable from cli/main.ts, so `deno compile` embeds it

import assert from "node:assert/strict";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { MAIN, ROOT, runCommand } from "./test_util.ts";

/** Every plugin module: a file under plugins/ (not a test) whose default export is a descriptor. */
async function pluginModules(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory) found.push(...await pluginModules(full));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
      if (/^export default\b/m.test(await Deno.readTextFile(full))) found.push(full);
    }
  }
  return found;
}

Deno.test("every plugin module is statically reachable from cli/main.ts", async () => {
  const r = await runCommand(Deno.execPath(), ["info", "--json", MAIN], { cwd: ROOT });
  assert.equal(r.code, 0, r.stderr);
  const graph = JSON.parse(r.stdout) as { modules: { specifier: string }[] };
  const reachable = new Set(graph.modules.map((m) => m.specifier));
  const modules = await pluginModules(path.join(ROOT, "plugins"));
  assert.ok(modules.length >= BUILTIN_PLUGINS.length / 4, "plugin modules were found");
  for (const file of modules) {
    assert.ok(reachable.has(pathToFileURL(file).href), `${path.relative(ROOT, file)} is reachable`);
  }
});

Deno.test("every built-in plugin has a unique kind and name", () => {
  const keys = BUILTIN_PLUGINS.map((p) => `${p.kind}:${p.name}`);
  assert.equal(new Set(keys).size, keys.length);
});

Deno.test("no module in the graph is loaded from the network or JSR", async () => {
  const r = await runCommand(Deno.execPath(), ["info", "--json", MAIN], { cwd: ROOT });
  const graph = JSON.parse(r.stdout) as { modules: { specifier: string }[] };
  for (const m of graph.modules) {
    assert.match(m.specifier, /^(file:|node:|npm:)/, m.specifier);
  }
});
