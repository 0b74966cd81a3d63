// An explicit `file` driver on a character device (`-blockdev driver=file,filename=/dev/null`)
// is refused as by QEMU 7.2, which opens host devices only through host_device; vmkit against
// real qemu-system-x86_64 on the same command lines

import assert from "node:assert/strict";
import { haveProgram, MAIN } from "../../tests/test_util.ts";

const QEMU = haveProgram("qemu-system-x86_64");
if (!QEMU) console.log("file_driver_test: skipped: qemu-system-x86_64 is not installed");

/** Exit status and stderr without the program name; killed after a minute if it runs on. */
async function run(program: "vmkit" | "qemu", args: string[]) {
  const base = ["-S", "-display", "none", "-net", "none", "-monitor", "none", ...args];
  const out = await new Deno.Command(
    program === "qemu" ? "qemu-system-x86_64" : Deno.execPath(),
    {
      args: program === "qemu" ? base : ["run", "-A", "--quiet", MAIN, "system-x86_64", ...base],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    },
  ).output();
  const stderr = new TextDecoder().decode(out.stderr).replace(/^[^:\n]+: /gm, "");
  return { code: out.code, stderr };
}

const REFUSED: [string[], string][] = [
  [
    ["-blockdev", "driver=file,filename=/dev/null,node-name=p"],
    "-blockdev driver=file,filename=/dev/null,node-name=p: " +
    "'file' driver requires '/dev/null' to be a regular file\n",
  ],
  [
    ["-blockdev", "driver=raw,file.driver=file,file.filename=/dev/null,node-name=r"],
    "-blockdev driver=raw,file.driver=file,file.filename=/dev/null,node-name=r: " +
    "'file' driver requires '/dev/null' to be a regular file\n",
  ],
];

for (const [args, words] of REFUSED) {
  Deno.test({
    name: `vmkit ${args.join(" ")} is refused as by qemu-system-x86_64 7.2`,
    ignore: !QEMU,
    async fn() {
      const qemu = await run("qemu", args);
      // What QEMU 7.2 printed when this test was written.
      assert.deepEqual(qemu, { code: 1, stderr: words });
      assert.deepEqual(await run("vmkit", args), qemu);
    },
  });
}
