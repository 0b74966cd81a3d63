// The README's demo: an image through the block layer and `img info`, then the demo guest booted on `-M pc`

import * as path from "node:path";
import { BlockBackend } from "../core/block/backend.ts";
import { BlockGraph } from "../core/block/graph.ts";
import type { MachineExit } from "../core/machine.ts";
import { main } from "../cli/main.ts";
import { writeOut } from "../cli/output.ts";
import { buildRegistry } from "../cli/registry.ts";
import { buildDemoGuest, DEMO_EXIT_CODE } from "./demo_guest.ts";

/** Part one: create an image, write and read it through the block layer, show `img info`. */
async function imageDemo(dir: string): Promise<number> {
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
}

/**
 * Part two: boot the built-in demo guest (a Multiboot kernel our own x86 emitter
 * generates; no SeaBIOS and no assembler needed) through the system face, exactly as
 * a user types it, and show its serial console. The guest ends by writing to
 * isa-debug-exit, which makes the exit status its own; the closing line says what
 * really happened, from how the machine's run ended.
 */
async function guestDemo(dir: string): Promise<number> {
  const kernel = path.join(dir, "demo.bin");
  await Deno.writeFile(kernel, buildDemoGuest());
  const args = [
    "system-x86_64",
    "-nographic",
    "-kernel",
    kernel,
    "-append",
    "from=demo",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ];
  writeOut(`\n$ vmkit ${args.map((a) => (a.includes(" ") ? `'${a}'` : a)).join(" ")}\n`);
  const t0 = performance.now();
  let exit: MachineExit | undefined;
  const code = await main(args, { onGuestExit: (e) => (exit = e) });
  const ms = (performance.now() - t0).toFixed(0);
  writeOut(`\n[${describeGuestExit(exit, code, ms)}]\n`);
  return exit?.reason === "exit" && code === DEMO_EXIT_CODE ? 0 : code === 0 ? 1 : code;
}

/** The demo's closing line: how the guest's run ended, or that it never started. */
export function describeGuestExit(
  exit: MachineExit | undefined,
  status: number,
  elapsed: string,
): string {
  if (!exit) return `the guest did not run: vmkit stopped with status ${status} before starting it`;
  if (exit.reason === "exit") {
    const value = `0x${(exit.exitCode >> 1).toString(16)}`;
    const verdict = status === DEMO_EXIT_CODE
      ? "as the demo guest does when it finishes"
      : `the demo guest ends with status ${DEMO_EXIT_CODE}`;
    return `the guest wrote ${value} to isa-debug-exit after ${elapsed} ms: ` +
      `vmkit exits with status ${status} ((${value} << 1) | 1), ${verdict}`;
  }
  return `the guest's run ended (${exit.reason}) after ${elapsed} ms with status ${status}, ` +
    `not through isa-debug-exit`;
}

/** Runs the demo in a temporary directory; resolves to the exit code. */
export async function demo(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-demo-" });
  try {
    const code = await imageDemo(dir);
    if (code !== 0) return code;
    return await guestDemo(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await demo());
