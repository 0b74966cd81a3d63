import { skipUnless } from "../tests/skip.ts";
import assert from "node:assert/strict";
import { MemoryChardev } from "../core/chardev.ts";
import { findMultibootHeader, MULTIBOOT_AOUT_KLUDGE } from "../plugins/machines/multiboot.ts";
import {
  buildDemoGuest,
  DEMO_BANNER,
  DEMO_EXIT_CODE,
  GUEST_LOAD_ADDRESS,
  haveX86Cpu,
  runPcKernel,
} from "./demo_guest.ts";

Deno.test("buildDemoGuest() makes an a.out kludge Multiboot kernel loaded at 1 MiB", () => {
  const header = findMultibootHeader(buildDemoGuest());
  assert.equal(header?.offset, 0);
  assert.equal(header?.flags, MULTIBOOT_AOUT_KLUDGE);
  assert.equal(header?.loadAddr, GUEST_LOAD_ADDRESS);
  assert.ok(header!.entryAddr > GUEST_LOAD_ADDRESS);
});

Deno.test({
  name: "runPcKernel() boots the demo guest on the pc machine and it exits through isa-debug-exit" +
    (haveX86Cpu() ? "" : " (ignored: plugins/cpus/x86/mod.ts does not exist yet)"),
  ignore: skipUnless(import.meta, {
    ok: haveX86Cpu(),
    missing: "the x86 CPU plugin is not in this tree",
  }),
  async fn() {
    const serial = new MemoryChardev("serial0");
    const run = await runPcKernel(buildDemoGuest(), {
      serial,
      kernelName: "demo.bin",
      cmdline: "greeting=hi",
      maxInstructions: 20_000_000,
    });
    const text = serial.text();
    assert.equal(run.exit.reason, "exit", text);
    assert.equal(run.exit.exitCode, DEMO_EXIT_CODE);
    assert.equal(
      text.replaceAll("\r", ""),
      `${DEMO_BANNER}
Multiboot loader: qemu
Command line: demo.bin greeting=hi
Memory: 127 MiB
First primes: 2 3 5 7 11 13 17 19 23 29 
Sum of the primes below 10000: 5736396
Bye!
`,
    );
  },
});
