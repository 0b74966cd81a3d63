// The protocol under a drive, as QEMU 7.2 chooses and checks it: `file` for regular files
// (refusing devices and directories itself), `host_device` for block and character devices
// (chosen for a bare device path, or named), a protocol as the drive's own driver
// (`-drive driver=file`), and every -blockdev node opened where it is given; vmkit against
// real qemu-system-x86_64 on the same command lines

import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { MAIN } from "../../tests/test_util.ts";

/** A directory with a 1 MiB raw image `x.img`; the commands run in it. */
const DIR = Deno.makeTempDirSync({ prefix: "vmkit-file-driver-" });
Deno.writeFileSync(`${DIR}/x.img`, new Uint8Array(1 << 20));
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

/**
 * Exit status and stderr without the program name. A command line QEMU accepts runs
 * stopped (-S) until `quit` arrives on the monitor; one it refuses exits at once.
 */
async function run(program: "vmkit" | "qemu", args: string[]) {
  const base = ["-S", "-display", "none", "-net", "none", "-monitor", "stdio", ...args];
  return await quitAndCollect(
    program === "qemu" ? "qemu-system-x86_64" : Deno.execPath(),
    program === "qemu" ? base : ["run", "-A", "--quiet", MAIN, "system-x86_64", ...base],
    DIR,
  );
}

/** Runs `command`, sends `quit` to its monitor on stdin, and gives its exit status and stderr. */
async function quitAndCollect(command: string, args: string[], cwd?: string) {
  const child = new Deno.Command(command, {
    args,
    cwd,
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("quit\n"));
  await writer.close().catch(() => {});
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr).replace(
    /^(qemu-system-x86_64|vmkit): /gm,
    "",
  );
  return { code: out.code, stderr };
}

const PROBED_RAW = (name: string) =>
  `WARNING: Image format was not specified for '${name}' and probing guessed raw.\n` +
  "         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n" +
  "         Specify the 'raw' format explicitly to remove the restrictions.\n";

/** Command lines and what QEMU 7.2 answered when this test was written (exit 0: it ran). */
const CASES: [string[], { code: number; stderr: string }][] = [
  // Refused by the protocol itself, in its own words.
  [
    ["-blockdev", "driver=file,filename=/dev/null,node-name=p"],
    {
      code: 1,
      stderr: "-blockdev driver=file,filename=/dev/null,node-name=p: " +
        "'file' driver requires '/dev/null' to be a regular file\n",
    },
  ],
  [
    ["-blockdev", "driver=raw,file.driver=file,file.filename=/dev/null,node-name=r"],
    {
      code: 1,
      stderr: "-blockdev driver=raw,file.driver=file,file.filename=/dev/null,node-name=r: " +
        "'file' driver requires '/dev/null' to be a regular file\n",
    },
  ],
  [
    ["-drive", "driver=file,file=/dev/null"],
    {
      code: 1,
      stderr: "-drive driver=file,file=/dev/null: " +
        "'file' driver requires '/dev/null' to be a regular file\n",
    },
  ],
  [
    ["-blockdev", "driver=host_device,filename=x.img,node-name=p"],
    {
      code: 1,
      stderr: "-blockdev driver=host_device,filename=x.img,node-name=p: " +
        "'host_device' driver requires 'x.img' to be either a character or block device\n",
    },
  ],
  // -drive opens with auto-read-only: a directory opens, then is no regular file;
  // -blockdev opens it read-write, which the host refuses. No "Could not open" of qemu-img's.
  [
    ["-drive", "file=/tmp"],
    { code: 1, stderr: "-drive file=/tmp: 'file' driver requires '/tmp' to be a regular file\n" },
  ],
  [
    ["-blockdev", "driver=file,filename=/tmp,node-name=p"],
    {
      code: 1,
      stderr:
        "-blockdev driver=file,filename=/tmp,node-name=p: Could not open '/tmp': Is a directory\n",
    },
  ],
  // A -blockdev protocol node nothing uses is still opened.
  [
    ["-blockdev", "driver=file,filename=missing.img,node-name=p"],
    {
      code: 1,
      stderr: "-blockdev driver=file,filename=missing.img,node-name=p: " +
        "Could not open 'missing.img': No such file or directory\n",
    },
  ],
  [
    ["-blockdev", "driver=host_device,filename=/dev/null,node-name=p,bogus=1"],
    {
      code: 1,
      stderr: "-blockdev driver=host_device,filename=/dev/null,node-name=p,bogus=1: " +
        "Parameter 'bogus' is unexpected\n",
    },
  ],
  // Accepted: a device path goes to host_device, named or chosen; a protocol as the driver.
  [["-cdrom", "/dev/null"], { code: 0, stderr: "" }],
  [["-drive", "file=/dev/null"], { code: 0, stderr: PROBED_RAW("/dev/null") }],
  [["-drive", "file=/dev/null,format=raw,if=virtio"], { code: 0, stderr: "" }],
  [["-blockdev", "driver=host_device,filename=/dev/null,node-name=p"], { code: 0, stderr: "" }],
  [
    ["-blockdev", "driver=raw,file.driver=host_device,file.filename=/dev/null,node-name=r"],
    { code: 0, stderr: "" },
  ],
  [["-drive", "driver=file,file=x.img"], { code: 0, stderr: "" }],
  [["-drive", "driver=file,filename=x.img,if=virtio"], { code: 0, stderr: "" }],
  [
    [
      "-blockdev",
      "driver=file,filename=x.img,node-name=p",
      "-blockdev",
      "driver=raw,file=p,node-name=r",
      "-device",
      "virtio-blk-pci,drive=r",
    ],
    { code: 0, stderr: "" },
  ],
  // An IDE hard disk cannot be read-only; a virtio disk, a floppy and a CD-ROM can.
  [["-drive", "file=x.img,format=raw,readonly=on"], {
    code: 1,
    stderr: "Block node is read-only\n",
  }],
  [["-drive", "file=x.img,format=raw,readonly=on,if=virtio"], { code: 0, stderr: "" }],
  [["-drive", "file=x.img,format=raw,readonly=on,if=floppy"], { code: 0, stderr: "" }],
  [["-drive", "file=x.img,format=raw,readonly=on,media=cdrom"], { code: 0, stderr: "" }],
];

for (const [args, answer] of CASES) {
  Deno.test({
    name: `vmkit ${args.join(" ")} answers as qemu-system-x86_64 7.2 does`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64"),
    async fn() {
      const qemu = await run("qemu", args);
      assert.deepEqual(qemu, answer);
      assert.deepEqual(await run("vmkit", args), qemu);
    },
  });
}

/**
 * A user who may read an image but not write it: QEMU's -drive opens it read-only
 * (auto-read-only) and then refuses a device that writes, in words that depend on the
 * interface; a CD-ROM and a drive without a device run. As root the commands run as
 * `nobody` (root may write any file); they need a deno and a checkout `nobody` can read.
 */
const RO_DIR = Deno.makeTempDirSync({ prefix: "vmkit-ro-drive-" });
Deno.chmodSync(RO_DIR, 0o777);
Deno.writeFileSync(`${RO_DIR}/ro.img`, new Uint8Array(1 << 20), { mode: 0o444 });
Deno.chmodSync(`${RO_DIR}/ro.img`, 0o444);
Deno.mkdirSync(`${RO_DIR}/deno-dir`, { mode: 0o777 });
Deno.chmodSync(`${RO_DIR}/deno-dir`, 0o777);
globalThis.addEventListener("unload", () => Deno.removeSync(RO_DIR, { recursive: true }));

const AS_ROOT = Deno.uid() === 0;

/** Runs `argv` as an unprivileged user (`nobody` under root, else ourselves). */
async function runUnprivileged(argv: string[]): Promise<{ code: number; stderr: string }> {
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `cd '${RO_DIR}' && DENO_DIR='${RO_DIR}/deno-dir' HOME='${RO_DIR}' exec ${quoted}`;
  return await (AS_ROOT
    ? quitAndCollect("su", ["nobody", "-s", "/bin/sh", "-c", script])
    : quitAndCollect("sh", ["-c", script]));
}

/** Whether the unprivileged user can run deno on this checkout (not when it lives under /root). */
function unprivilegedCanRun(): boolean {
  if (!AS_ROOT) return true;
  try {
    const probe = new Deno.Command("su", {
      args: ["nobody", "-s", "/bin/sh", "-c", `test -r '${MAIN}' && test -x '${Deno.execPath()}'`],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return probe.success;
  } catch {
    return false;
  }
}

const RO_CASES: [string[], { code: number; stderr: string }][] = [
  [["-drive", "file=ro.img,format=raw"], {
    code: 1,
    stderr: "Could not open 'ro.img': Permission denied\n",
  }],
  [["-drive", "file=ro.img,format=raw,if=floppy"], {
    code: 1,
    stderr: "Could not open 'ro.img': Permission denied\n",
  }],
  [["-drive", "file=ro.img,format=raw,if=virtio"], {
    code: 1,
    stderr: "-drive file=ro.img,format=raw,if=virtio: Could not open 'ro.img': Permission denied\n",
  }],
  [["-cdrom", "ro.img"], { code: 0, stderr: "" }],
  [["-drive", "file=ro.img,format=raw,if=none,id=d0"], { code: 0, stderr: "" }],
];

for (const [args, answer] of RO_CASES) {
  Deno.test({
    name: `a read-only image: vmkit ${args.join(" ")} answers as qemu-system-x86_64 7.2 does`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64", {
      ok: unprivilegedCanRun(),
      missing: `user nobody cannot read ${MAIN} or run ${Deno.execPath()}`,
    }),
    async fn() {
      const base = ["-S", "-display", "none", "-net", "none", "-monitor", "stdio", ...args];
      const qemu = await runUnprivileged(["qemu-system-x86_64", ...base]);
      assert.deepEqual(qemu, answer);
      const vmkit = await runUnprivileged([
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        MAIN,
        "system-x86_64",
        ...base,
      ]);
      assert.deepEqual(vmkit, qemu);
    },
  });
}
