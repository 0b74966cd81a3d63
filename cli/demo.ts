// The README's demo: create a qcow2 image, write and read it through the block layer, show `img info`

import * as path from "node:path";
import { BlockBackend } from "../core/block/backend.ts";
import { BlockGraph } from "../core/block/graph.ts";
import { main } from "./main.ts";
import { writeOut } from "./output.ts";
import { buildRegistry } from "./registry.ts";

/** Runs the demo in a temporary directory; resolves to the exit code. */
export async function demo(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-demo-" });
  try {
    const registry = await buildRegistry();
    const format = registry.get("format", "qcow2") ? "qcow2" : "raw";
    const image = path.join(dir, `demo.${format}`);
    writeOut(`$ vmkit img create -f ${format} ${image} 64M\n`);
    let code = await main(["img", "create", "-f", format, image, "64M"]);
    if (code !== 0) return code;

    // Write a recognisable pattern at a few offsets, then read it back.
    const graph = new BlockGraph(registry);
    const disk = new BlockBackend(await graph.openImage(image, { format }));
    const message = new TextEncoder().encode("Hello from vmkit! ".repeat(228).slice(0, 4096));
    const offsets = [0, 1 << 20, 33 << 20, (64 << 20) - 4096];
    for (const at of offsets) await disk.write(at, message);
    await disk.flush();
    const back = new Uint8Array(4096);
    let ok = true;
    for (const at of offsets) {
      await disk.read(at, back);
      ok &&= back.every((b, i) => b === message[i]);
    }
    await disk.close();
    writeOut(
      `\nWrote and read back 4 KiB at ${offsets.length} offsets through the block layer: ${
        ok ? "data matches" : "DATA MISMATCH"
      }\n\n`,
    );
    if (!ok) return 1;

    writeOut(`$ vmkit img info ${image}\n`);
    code = await main(["img", "info", image]);
    if (code !== 0) return code;
    writeOut(`\n$ vmkit img map ${image}\n`);
    return await main(["img", "map", image]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await demo());
