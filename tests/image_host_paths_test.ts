// Host paths named inside images (backing files, qcow2 data_file, vmdk extents): QEMU's rules, judged by qemu-img

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../core/block/graph.ts";
import { type PluginDescriptor, type ProtocolDescriptor, Registry } from "../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { HAVE_QEMU_IMG, readBytes, runTool, runToolOk, tempDir } from "./test_util.ts";

const ignore = !HAVE_QEMU_IMG;
if (ignore) console.log("image_host_paths_test: qemu-img is not installed; these tests need it");

/** A registry whose file protocol records every open: [file name, read-only]. */
function spyingRegistry(): { registry: Registry; opens: [string, boolean][] } {
  const opens: [string, boolean][] = [];
  const plugins: PluginDescriptor[] = BUILTIN_PLUGINS.map((p) => {
    if (p.kind !== "protocol" || p.name !== "file") return p;
    const file = p as ProtocolDescriptor;
    return {
      ...file,
      open(filename, opts) {
        opens.push([filename, opts.readOnly]);
        return file.open(filename, opts);
      },
    } satisfies ProtocolDescriptor;
  });
  return { registry: new Registry().addAll(plugins), opens };
}

function descriptor(extent: string): string {
  return "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n" +
    `createType="monolithicFlat"\n\nRW 8 FLAT "${extent}" 0\n`;
}

/**
 * In `dir/sub`: a raw base under a qcow2 overlay (relative backing name), a qcow2 with
 * a relative data_file, and vmdk descriptors naming a host file by absolute and by
 * relative path. `dir` itself holds decoys with the same names, so that resolving
 * against the working directory instead of the image's would read the wrong bytes.
 */
async function images(dir: string): Promise<void> {
  const sub = path.join(dir, "sub");
  await Deno.mkdir(sub);
  const run = (program: string, ...args: string[]) => runToolOk(program, args, sub);
  await run("qemu-img", "create", "-q", "-f", "raw", "base.raw", "1M");
  await run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 64k", "base.raw");
  await run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2");
  await run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 64k 64k", "top.qcow2");
  await run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "d.qcow2", "1M");
  await run("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 64k", "d.qcow2");
  await Deno.writeTextFile(path.join(sub, "secret.txt"), "host secret\n".padEnd(4096, "."));
  await Deno.writeTextFile(path.join(sub, "abs.vmdk"), descriptor(path.join(sub, "secret.txt")));
  await Deno.writeTextFile(path.join(sub, "rel.vmdk"), descriptor("secret.txt"));
  // Decoys in the working directory.
  await Deno.writeFile(path.join(dir, "base.raw"), new Uint8Array(1 << 20).fill(0xee));
  await Deno.writeFile(path.join(dir, "data.raw"), new Uint8Array(1 << 20).fill(0xee));
  await Deno.writeTextFile(path.join(dir, "secret.txt"), "decoy\n".padEnd(4096, "!"));
}

/** True when two byte arrays are equal (assert.deepEqual's diff of 1 MiB arrays takes minutes). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

Deno.test({
  name: "relative backing and extent names resolve against the image's directory, as in qemu-img",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await images(dir);
      for (const image of ["top.qcow2", "rel.vmdk", "abs.vmdk"]) {
        const out: Uint8Array[] = [];
        for (const tool of ["qemu-img", "vmkit"]) {
          const target = `${tool}-${image}.raw`;
          await runToolOk(tool, ["convert", "-O", "raw", `sub/${image}`, target], dir);
          out.push(readBytes(path.join(dir, target)));
        }
        assert.ok(sameBytes(out[1], out[0]), `${image}: vmkit read what qemu-img read`);
        assert.ok(!out[1].includes(0xee), `${image}: no decoy bytes from the working directory`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "a relative qcow2 data_file resolves against the image's directory (QEMU 7.2 uses the cwd)",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await images(dir);
      // qemu-img 7.2 opens a relative data_file from the working directory: run from `dir`,
      // it reads the decoy. vmkit resolves it as it resolves backing files and extents,
      // so an image and its data file can move together (docs/security.md).
      await runToolOk("qemu-img", ["convert", "-O", "raw", "sub/d.qcow2", "q.raw"], dir);
      assert.equal(readBytes(path.join(dir, "q.raw"))[0], 0xee, "qemu-img read the cwd decoy");
      await runToolOk("vmkit", ["convert", "-O", "raw", "sub/d.qcow2", "v.raw"], dir);
      const sub = path.join(dir, "sub");
      await runToolOk("qemu-img", ["convert", "-O", "raw", "d.qcow2", "q2.raw"], sub);
      assert.ok(
        sameBytes(readBytes(path.join(dir, "v.raw")), readBytes(path.join(sub, "q2.raw"))),
        "vmkit read sub/data.raw, as qemu-img does when run beside the image",
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "img info of an image naming a host file reports the same extents as qemu-img and changes nothing",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await images(dir);
      const secret = path.join(dir, "sub", "secret.txt");
      const before = readBytes(secret);
      const mtime = Deno.statSync(secret).mtime?.getTime();
      const infos = [];
      for (const tool of ["qemu-img", "vmkit"]) {
        const r = await runToolOk(tool, ["info", "--output=json", "sub/abs.vmdk"], dir);
        const info = JSON.parse(r.stdout);
        delete info["actual-size"];
        infos.push(info);
      }
      assert.deepEqual(infos[1], infos[0]);
      assert.equal(infos[1]["format-specific"].data.extents[0].filename, secret);
      assert.deepEqual(readBytes(secret), before);
      assert.equal(Deno.statSync(secret).mtime?.getTime(), mtime);
      // A missing extent is one clear line and a non-zero exit from both tools.
      await Deno.writeTextFile(path.join(dir, "gone.vmdk"), descriptor("/nonexistent/x"));
      for (const tool of ["qemu-img", "vmkit"]) {
        const r = await runTool(tool, ["info", "gone.vmdk"], dir);
        assert.equal(r.code, 1, `${tool}: ${r.stderr}`);
        assert.match(r.stderr, /Could not open '\/nonexistent\/x': No such file or directory/);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "BlockGraph opens nothing read-write for an image opened read-only; backing files stay read-only",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await images(dir);
      const sub = path.join(dir, "sub");
      for (const image of ["top.qcow2", "d.qcow2", "abs.vmdk", "rel.vmdk"]) {
        const { registry, opens } = spyingRegistry();
        const graph = new BlockGraph(registry);
        const node = await graph.openImage(path.join(sub, image), { readOnly: true });
        await node.close();
        assert.ok(opens.length >= 2, `${image}: it names another file (${JSON.stringify(opens)})`);
        assert.deepEqual(opens.filter(([, ro]) => !ro), [], `${image}: read-only opens only`);
      }
      // Read-write: the image and its data file or extents are writable, a backing file
      // is not (QEMU opens backing files read-only; only commit reopens them).
      const rw = (image: string) => {
        const { registry, opens } = spyingRegistry();
        return new BlockGraph(registry).openImage(path.join(sub, image), { format: undefined })
          .then(async (node) => {
            await node.close();
            return opens;
          });
      };
      assert.deepEqual(await rw("top.qcow2"), [
        [path.join(sub, "top.qcow2"), false],
        [path.join(sub, "base.raw"), true],
      ]);
      assert.deepEqual(await rw("d.qcow2"), [
        [path.join(sub, "d.qcow2"), false],
        [path.join(sub, "data.raw"), false],
      ]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "BlockGraph keeps a format's data-file open read-only when the image is, whatever the format asks",
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const { registry, opens } = spyingRegistry();
      // A format plugin that asks for its companion file read-write regardless.
      registry.add({
        kind: "format",
        name: "greedy",
        summary: "asks for a read-write companion",
        options: [],
        probe: (h) => (h[0] === 0x47 && h[1] === 0x52 ? 100 : 0),
        create: () => Promise.reject(new Error("not needed")),
        async open(file, _opts, ctx) {
          const companion = await ctx.openFile("companion", { readOnly: false });
          await companion.close();
          return file;
        },
      });
      await Deno.writeTextFile(path.join(dir, "g.img"), "GR");
      await Deno.writeTextFile(path.join(dir, "companion"), "c");
      const node = await new BlockGraph(registry).openImage(path.join(dir, "g.img"), {
        readOnly: true,
      });
      await node.close();
      assert.deepEqual(opens, [[path.join(dir, "g.img"), true], [
        path.join(dir, "companion"),
        true,
      ]]);
    } finally {
      await cleanup();
    }
  },
});
