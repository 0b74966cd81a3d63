// End-to-end: the vmkit command line as a user types it, with its output and exit codes

import assert from "node:assert/strict";
import * as path from "node:path";
import { runVmkit, tempDir } from "./test_util.ts";

Deno.test("vmkit --help lists both faces and exits 0", async () => {
  const r = await runVmkit(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /img \.\.\./);
  assert.match(r.stdout, /system-x86_64 \.\.\./);
});

Deno.test("vmkit --version prints the version line", async () => {
  const r = await runVmkit(["--version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^vmkit version 7\.2\.0 \(vmkit \d+\.\d+\.\d+\)\n$/);
});

Deno.test("vmkit with an unknown command says so and exits 1", async () => {
  const r = await runVmkit(["frobnicate"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "vmkit: Unknown command 'frobnicate'; try 'vmkit --help'\n");
});

Deno.test("vmkit img --help prints qemu-img's usage with every implemented command", async () => {
  const r = await runVmkit(["img", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^vmkit img version 7\.2\.0/);
  assert.match(r.stdout, /QEMU disk image utility/);
  for (
    const cmd of [
      "bench",
      "check",
      "compare",
      "convert",
      "create",
      "dd",
      "info",
      "map",
      "measure",
      "resize",
    ]
  ) {
    assert.match(r.stdout, new RegExp(`^  ${cmd} `, "m"), cmd);
  }
  assert.match(r.stdout, /^Supported formats: .*\braw\b/m);
});

Deno.test("vmkit img without a command and with an unknown one fails as qemu-img does", async () => {
  let r = await runVmkit(["img"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "vmkit: Not enough arguments\nTry 'vmkit img --help' for more information\n",
  );
  r = await runVmkit(["img", "frob"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "vmkit: Command not found: frob\nTry 'vmkit img --help' for more information\n",
  );
});

Deno.test("vmkit img create with a misspelt -o option names it, exits 1 and creates nothing", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const r = await runVmkit([
      "img",
      "create",
      "-f",
      "qcow2",
      "-o",
      "clustr_size=4k",
      "x.qcow2",
      "1G",
    ], {
      cwd: dir,
    });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "vmkit: x.qcow2: Invalid parameter 'clustr_size'\n");
    assert.equal(r.stdout, "");
    assert.throws(() => Deno.statSync(path.join(dir, "x.qcow2")));
  } finally {
    await cleanup();
  }
});

Deno.test("vmkit img create -f raw -o help lists raw and protocol options", async () => {
  const r = await runVmkit(["img", "create", "-f", "raw", "-o", "help"]);
  assert.equal(r.code, 0);
  assert.equal(
    r.stdout,
    "Supported raw options:\n  size=<size>            - Virtual disk size\n\n" +
      "The protocol level may support further options.\nSpecify the target filename to include those options.\n",
  );
  const withFile = await runVmkit(["img", "create", "-f", "raw", "-o", "?", "x.raw"]);
  assert.match(withFile.stdout, /^Supported options:\n/);
  assert.match(
    withFile.stdout,
    /preallocation=<str> {4}- Preallocation mode \(allowed values: off, falloc, full\)/,
  );
});

Deno.test("vmkit img create refuses a bad size with qemu-img's two-line message", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const r = await runVmkit(["img", "create", "-f", "raw", "a.raw", "12Q"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      // qemu-img reads the size before naming the image, and prefixes both lines.
      "vmkit: Invalid image size specified. You may use k, M, G, T, P or E suffixes for\n" +
        "vmkit: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.\n",
    );
  } finally {
    await cleanup();
  }
});

Deno.test("vmkit img info on a missing file fails with one line and no stack trace", async () => {
  const r = await runVmkit(["img", "info", "/nonexistent/disk.img"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "vmkit: Could not open '/nonexistent/disk.img': Could not open '/nonexistent/disk.img': No such file or directory\n",
  );
});

Deno.test("vmkit started as qemu-img behaves as qemu-img", async () => {
  const r = await runVmkit(["--version"], { argv0: "qemu-img" });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^qemu-img version 7\.2\.0/);
  const bad = await runVmkit(["frob"], { argv0: "qemu-img" });
  assert.equal(
    bad.stderr,
    "qemu-img: Command not found: frob\nTry 'qemu-img --help' for more information\n",
  );
});

Deno.test("vmkit system-x86_64 refuses an unknown option as QEMU does", async () => {
  const r = await runVmkit(["system-x86_64", "-frob"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "vmkit: -frob: invalid option\n");
});

Deno.test("vmkit started as qemu-system-x86_64 refuses an unknown device with QEMU's words", async () => {
  const r = await runVmkit(["-device", "foo"], { argv0: "qemu-system-x86_64" });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name\n",
  );
});

Deno.test("vmkit system-x86_64 -M help lists machines in QEMU's layout", async () => {
  const r = await runVmkit(["system-x86_64", "-M", "help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Supported machines are:\n/);
  const q = await runVmkit(["system-x86_64", "-machine", "?"]);
  assert.equal(q.stdout, r.stdout);
});

Deno.test("an unexpected exception is reported as a bug with exit code 1 and no stack", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const plugin = path.join(dir, "broken.ts");
    await Deno.writeTextFile(
      plugin,
      `export default { kind: "format", name: "broken", summary: "", options: [], apiVersion: 1,
        create() { throw new Error("boom"); }, open() { throw new Error("boom"); } };`,
    );
    const r = await runVmkit(["--plugin", plugin, "img", "create", "-f", "broken", "x", "1M"], {
      cwd: dir,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vmkit: bug in vmkit: unexpected error: boom\n/);
    assert.doesNotMatch(r.stderr, /\bat /);
    const debug = await runVmkit(["--plugin", plugin, "img", "create", "-f", "broken", "x", "1M"], {
      cwd: dir,
      env: { VMKIT_DEBUG: "1" },
    });
    assert.match(debug.stderr, /\bat /);
  } finally {
    await cleanup();
  }
});
