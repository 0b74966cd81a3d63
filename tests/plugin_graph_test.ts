// Every built-in plugin must be statically reachable from cli/main.ts, so `deno compile` embeds it

import assert from "node:assert/strict";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { MAIN, ROOT, runCommand } from "./test_util.ts";

Deno.test("plugins/mod.ts is statically reachable from cli/main.ts with every plugin it imports", async () => {
  const r = await runCommand(Deno.execPath(), ["info", "--json", MAIN], { cwd: ROOT });
  assert.equal(r.code, 0, r.stderr);
  const graph = JSON.parse(r.stdout) as { modules: { specifier: string }[] };
  const reachable = new Set(graph.modules.map((m) => m.specifier));
  const modFile = path.join(ROOT, "plugins", "mod.ts");
  assert.ok(reachable.has(pathToFileURL(modFile).href), "plugins/mod.ts is in the graph");
  const source = await Deno.readTextFile(modFile);
  const imports = [...source.matchAll(/^import \w+ from "(\.\/[^"]+)";$/gm)].map((m) => m[1]);
  assert.equal(imports.length, BUILTIN_PLUGINS.length, "one default import per built-in plugin");
  for (const spec of imports) {
    const url = pathToFileURL(path.join(ROOT, "plugins", spec)).href;
    assert.ok(reachable.has(url), `${spec} is reachable from cli/main.ts`);
  }
});

Deno.test("no module in the graph is loaded from the network or JSR", async () => {
  const r = await runCommand(Deno.execPath(), ["info", "--json", MAIN], { cwd: ROOT });
  const graph = JSON.parse(r.stdout) as { modules: { specifier: string }[] };
  for (const m of graph.modules) {
    assert.match(m.specifier, /^(file:|node:|npm:)/, m.specifier);
  }
});
