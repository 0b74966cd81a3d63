// Loading external plugins as a user does: --plugin PATH|URL and VMKIT_PLUGINS under every
// name vmkit answers to, bundles evaluated without a module import, and refusals

import { ESBUILD, skipUnless } from "./skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { BUNDLE_MARKER, evaluateBundle, loadPlugins } from "../cli/plugin_loader.ts";
import { buildSystemSetup } from "../cli/system/config.ts";
import { parseSystemArgs } from "../cli/system/options.ts";
import { BlockGraph } from "../core/block/graph.ts";
import { MemoryChardev } from "../core/chardev.ts";
import { buildRegistry } from "../cli/registry.ts";
import { HAVE_ESBUILD, ROOT, runCommand, runVmkit, tempDir } from "./test_util.ts";

const MOD = JSON.stringify(path.join(ROOT, "mod.ts"));

/** A format (`hello`: a 16-byte header, then raw data) and a netdev (`hello-net`), as an outside author writes them. */
const HELLO_PLUGIN = `
import {
  type FormatDescriptor, type NetdevDescriptor, PLUGIN_API_VERSION, UsageError,
} from ${MOD};

const MAGIC = "HELLOIMG";

const format = {
  kind: "format",
  name: "hello",
  summary: "test image: 16-byte header, then raw data",
  apiVersion: PLUGIN_API_VERSION,
  options: [{ name: "size", type: "size", help: "virtual size" }],
  probe: (header: Uint8Array) => new TextDecoder().decode(header.subarray(0, 8)) === MAGIC ? 100 : 0,
  async create(filename: string, sizeBytes: number) {
    const header = new Uint8Array(16);
    header.set(new TextEncoder().encode(MAGIC));
    new DataView(header.buffer).setUint32(8, sizeBytes, true);
    await Deno.writeFile(filename, header);
  },
  open() {
    throw new UsageError("hello: open is not part of this test");
  },
} satisfies FormatDescriptor;

const netdev = {
  kind: "netdev",
  name: "hello-net",
  summary: "a link that takes every frame",
  apiVersion: PLUGIN_API_VERSION,
  options: [{ name: "id", type: "string", help: "netdev id" }],
  create: (opts) => ({ id: String(opts.id), model: "hello-net", peer: null, receive: () => true }),
} satisfies NetdevDescriptor;

export default [format, netdev];
`;

/** The same netdev as a bundle's text: CommonJS whose vmkit API comes from require("vmkit"). */
const HELLO_BUNDLE = `${BUNDLE_MARKER}
var vmkit = require("vmkit");
module.exports = { default: {
  kind: "netdev", name: "bundled-net", summary: "from a bundle",
  apiVersion: vmkit.PLUGIN_API_VERSION,
  options: [{ name: "id", type: "string", help: "netdev id" }],
  create: (opts) => ({ id: String(opts.id), model: "bundled-net", peer: null, receive: () => true }),
  sameRegistry: vmkit.Registry,
} };
`;

async function withPlugins<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir();
  try {
    await Deno.writeTextFile(path.join(dir, "hello.ts"), HELLO_PLUGIN);
    await Deno.writeTextFile(path.join(dir, "bundled.js"), HELLO_BUNDLE);
    await Deno.writeTextFile(
      path.join(dir, "throws.ts"),
      `throw new Error("plugin init failed");\nexport default {};\n`,
    );
    await Deno.writeTextFile(
      path.join(dir, "old.ts"),
      `export default { kind: "netdev", name: "old", summary: "", options: [], apiVersion: 0,
        create: () => ({}) };\n`,
    );
    await Deno.writeTextFile(
      path.join(dir, "dup.ts"),
      `export default { kind: "format", name: "qcow2", summary: "", options: [], apiVersion: 1,
        create() {}, open() {} };\n`,
    );
    return await fn(dir);
  } finally {
    await cleanup();
  }
}

Deno.test("--plugin loads a module plugin under vmkit, qemu-img and qemu-system-x86_64", async () => {
  await withPlugins(async (dir) => {
    const hello = path.join(dir, "hello.ts");
    const asVmkit = await runVmkit([
      "--plugin",
      hello,
      "img",
      "create",
      "-f",
      "hello",
      "a.img",
      "1M",
    ], {
      cwd: dir,
    });
    assert.equal(asVmkit.code, 0, asVmkit.stderr);
    const header = await Deno.readFile(path.join(dir, "a.img"));
    assert.equal(new TextDecoder().decode(header.subarray(0, 8)), "HELLOIMG");
    assert.equal(new DataView(header.buffer).getUint32(8, true), 1 << 20);

    const asImg = await runVmkit(["--plugin", hello, "create", "-f", "hello", "b.img", "2M"], {
      cwd: dir,
      argv0: "qemu-img",
    });
    assert.equal(asImg.code, 0, asImg.stderr);
    assert.equal(
      new DataView((await Deno.readFile(path.join(dir, "b.img"))).buffer).getUint32(8, true),
      2 << 20,
    );

    const asSystem = await runVmkit(["--plugin", hello, "-netdev", "hello-net,help"], {
      cwd: dir,
      argv0: "qemu-system-x86_64",
    });
    assert.equal(asSystem.code, 0, asSystem.stderr);
    assert.equal(asSystem.stdout, "hello-net options:\n  id=<str>               - netdev id\n");
  });
});

Deno.test("VMKIT_PLUGINS loads plugins separated by ':' and plugin list shows where from", async () => {
  await withPlugins(async (dir) => {
    const env = { VMKIT_PLUGINS: `${path.join(dir, "hello.ts")}:${path.join(dir, "bundled.js")}` };
    const r = await runVmkit(["plugin", "list"], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split("\n").filter((l) => !l.endsWith("built-in") && l !== "");
    assert.deepEqual(rows.map((l) => l.split(/\s+/)), [
      ["KIND", "NAME", "SOURCE"],
      ["format", "hello", path.join(dir, "hello.ts")],
      ["netdev", "hello-net", path.join(dir, "hello.ts")],
      ["netdev", "bundled-net", path.join(dir, "bundled.js")],
    ]);
    assert.match(r.stdout, /^format +qcow2 +built-in$/m);
    const img = await runVmkit(["create", "-f", "hello", "c.img", "1M"], {
      cwd: dir,
      env,
      argv0: "qemu-img",
    });
    assert.equal(img.code, 0, img.stderr);
  });
});

Deno.test("a plugin that throws, declares another API or takes a used name is refused with one line", async () => {
  await withPlugins(async (dir) => {
    const args = ["throws.ts", "old.ts", "dup.ts", "hello.ts"].flatMap((
      f,
    ) => ["--plugin", path.join(dir, f)]);
    const r = await runVmkit([...args, "plugin", "list"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0], /^vmkit: warning: plugin '.*throws\.ts' refused: .*plugin init failed/);
    assert.equal(
      lines[1],
      `vmkit: warning: plugin '${
        path.join(dir, "old.ts")
      }' refused: Plugin 'old' needs plugin API 0, ` +
        "but this vmkit has plugin API 1",
    );
    assert.equal(
      lines[2],
      `vmkit: warning: plugin '${path.join(dir, "dup.ts")}' refused: ` +
        "A format plugin named 'qcow2' is already registered",
    );
    // vmkit went on: the good plugin after the refused ones is there, qcow2 is the built-in.
    assert.match(r.stdout, /^format +hello +/m);
    assert.match(r.stdout, /^format +qcow2 +built-in$/m);
    const img = await runVmkit(["--plugin", path.join(dir, "throws.ts"), "--version"], {
      argv0: "qemu-img",
    });
    assert.equal(img.code, 0);
    assert.match(img.stderr, /^qemu-img: warning: plugin '.*throws\.ts' refused: /);
  });
});

Deno.test("evaluateBundle() runs bundle text with the running vmkit's own API module", async () => {
  const api = await import("../mod.ts");
  const d = await evaluateBundle(HELLO_BUNDLE, "memory:bundled.js") as Record<string, unknown>;
  assert.equal(d.name, "bundled-net");
  assert.equal(d.sameRegistry, api.Registry, "the bundle sees vmkit's classes, not a copy");
  const registry = await buildRegistry();
  const warnings: string[] = [];
  await loadPlugins(registry, ["data:,nothing"], (w) => warnings.push(w));
  assert.equal(warnings.length, 1);
});

Deno.test("a bundle served over HTTP loads while remote module imports are forbidden (--no-remote)", async () => {
  await withPlugins(async (dir) => {
    const bundle = await Deno.readTextFile(path.join(dir, "bundled.js"));
    const module = await Deno.readTextFile(path.join(dir, "hello.ts"));
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      const name = new URL(req.url).pathname;
      if (name === "/bundled.js") return new Response(bundle);
      if (name === "/hello.ts") return new Response(module);
      return new Response("not found", { status: 404 });
    });
    try {
      const base = `http://127.0.0.1:${server.addr.port}`;
      const run = (plugin: string) =>
        runCommand(Deno.execPath(), [
          "run",
          "-A",
          "--quiet",
          "--no-remote",
          path.join(ROOT, "cli", "main.ts"),
          "--plugin",
          plugin,
          "plugin",
          "list",
        ]);
      const r = await run(`${base}/bundled.js`);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, new RegExp(`^netdev +bundled-net +${base}/bundled\\.js$`, "m"));
      // The same server's module plugin cannot be imported: the bundle did not need to be.
      const m = await run(`${base}/hello.ts`);
      assert.match(m.stderr, /^vmkit: warning: plugin 'http:.*hello\.ts' refused: /);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test({
  name: HAVE_ESBUILD
    ? "vmkit plugin build bundles a plugin and its own files, and leaves vmkit's API to the host"
    : "vmkit plugin build (ignored: esbuild is not installed; run 'npm ci')",
  ignore: skipUnless(import.meta, ESBUILD),
  fn: async () => {
    await withPlugins(async (dir) => {
      await Deno.writeTextFile(
        path.join(dir, "hello.ts"),
        HELLO_PLUGIN.replace(`const MAGIC = "HELLOIMG";`, `import { MAGIC } from "./magic.ts";`),
      );
      await Deno.writeTextFile(path.join(dir, "magic.ts"), `export const MAGIC = "HELLOIMG";\n`);
      const b = await runVmkit(["plugin", "build", "hello.ts", "-o", "hello.js"], { cwd: dir });
      assert.equal(b.code, 0, b.stderr);
      const text = await Deno.readTextFile(path.join(dir, "hello.js"));
      assert.ok(text.startsWith(BUNDLE_MARKER));
      assert.match(text, /"HELLOIMG"/, "the plugin's own import is inside the bundle");
      assert.match(text, /require\("vmkit"\)/);
      assert.doesNotMatch(text, /class Registry/, "vmkit's core is not copied in");
      const r = await runVmkit(["--plugin", "hello.js", "create", "-f", "hello", "d.img", "1M"], {
        cwd: dir,
        argv0: "qemu-img",
      });
      assert.equal(r.code, 0, r.stderr);
      // A plugin that reaches into vmkit's core instead of its API is refused by the build.
      await Deno.writeTextFile(
        path.join(dir, "bad.ts"),
        `import { PciConfig } from ${JSON.stringify(path.join(ROOT, "core", "pci.ts"))};\n` +
          "export default PciConfig;\n",
      );
      const bad = await runVmkit(["plugin", "build", "bad.ts"], { cwd: dir });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /is inside vmkit \(core\/\): import vmkit's API from its mod\.ts/);
    });
  },
});

Deno.test("a chardev plugin answers -chardev NAME,id=ID with its declared options", async () => {
  const registry = await buildRegistry();
  const made: { id: string; prefix: unknown }[] = [];
  registry.add({
    kind: "chardev",
    name: "memlog",
    summary: "keeps what the guest writes",
    apiVersion: 1,
    options: [{ name: "prefix", type: "string", help: "a label" }],
    create(id, opts) {
      made.push({ id, prefix: opts.prefix });
      return new MemoryChardev(id);
    },
  }, "test");
  const setup = await buildSystemSetup(
    parseSystemArgs(["-nodefaults", "-chardev", "memlog,id=c0,prefix=x", "-serial", "chardev:c0"])
      .opts,
    undefined,
    { registry, graph: new BlockGraph(registry), stdio: {} },
  );
  assert.deepEqual(made, [{ id: "c0", prefix: "x" }]);
  assert.equal(setup.config.serial[0].id, "c0");
  await assert.rejects(
    () =>
      buildSystemSetup(
        parseSystemArgs(["-chardev", "memlog,id=c1,colour=red"]).opts,
        undefined,
        { registry, graph: new BlockGraph(registry), stdio: {} },
      ),
    /-chardev memlog,id=c1,colour=red: Invalid parameter 'colour'/,
  );
  for (const c of setup.chardevs) await c.close();
});
