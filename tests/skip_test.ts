import assert from "node:assert/strict";
import { haveFile, haveProgram, skipUnless } from "./skip.ts";

/** What `fn` prints with console.log, and its result. */
function printed<T>(fn: () => T): { result: T; lines: string[] } {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { result: fn(), lines };
  } finally {
    console.log = log;
  }
}

Deno.test("skipUnless() runs a test whose needs are all there, and prints nothing", () => {
  const { result, lines } = printed(() =>
    skipUnless("t_test.ts", Deno.execPath(), { file: Deno.execPath(), how: "-" }, {
      ok: true,
      missing: "unused",
    })
  );
  assert.equal(result, false);
  assert.deepEqual(lines, []);
});

Deno.test("skipUnless() skips and names each missing program, file and condition with how to get it", () => {
  const { result, lines } = printed(() =>
    skipUnless(
      "a_test.ts",
      "qemu-img",
      "vmkit-missing-program",
      { file: "/nonexistent/bios.bin", how: "apt-get install seabios" },
      { ok: false, missing: " (ignored: /dev/kvm cannot be opened)" },
    )
  );
  assert.equal(result, true);
  const qemuImg = haveProgram("qemu-img")
    ? ""
    : "qemu-img is not installed (apt-get install qemu-utils); ";
  assert.deepEqual(lines, [
    `a_test.ts: skipped: ${qemuImg}vmkit-missing-program is not installed; ` +
    "/nonexistent/bios.bin is missing (apt-get install seabios); /dev/kvm cannot be opened",
  ]);
});

Deno.test("skipUnless() prints a reason once per file however many tests share it", () => {
  const { lines } = printed(() => {
    for (let i = 0; i < 3; i++) skipUnless("b_test.ts", "vmkit-missing-program");
    skipUnless(import.meta, "vmkit-missing-program");
  });
  assert.deepEqual(lines, [
    "b_test.ts: skipped: vmkit-missing-program is not installed",
    "tests/skip_test.ts: skipped: vmkit-missing-program is not installed",
  ]);
});

Deno.test("haveProgram() and haveFile() find what is installed", () => {
  assert.equal(haveProgram(Deno.execPath()), true);
  assert.equal(haveProgram("vmkit-missing-program"), false);
  assert.equal(haveFile(Deno.execPath()), true);
  assert.equal(haveFile("/nonexistent/file"), false);
});
