// Interop: format probing, vmkit img info against qemu-img info on every format and on edge cases

import assert from "node:assert/strict";
import * as path from "node:path";
import { BUILTIN_PLUGINS } from "../../plugins/mod.ts";
import { HAVE_QEMU_IMG, haveProgram, runCommand, runVmkit, tempDir } from "../test_util.ts";

const HAVE_QEMU_IO = haveProgram("qemu-io");
const ignore = !HAVE_QEMU_IMG || !HAVE_QEMU_IO;
const NEEDS = ignore
  ? " (ignored: qemu-img and qemu-io are not installed; apt-get install qemu-utils)"
  : "";
if (ignore) console.log(`probe_test: skipping${NEEDS}`);

/** Formats whose plugin is registered: vmdk comes with its own helper's work. */
const REGISTERED = new Set(
  BUILTIN_PLUGINS.filter((p) => p.kind === "format").map((p) => p.name),
);

/** What `info --output=json` says the format is, or the failure when the file does not open. */
async function probedFormat(
  program: "vmkit" | "qemu-img",
  file: string,
  dir: string,
): Promise<string> {
  const args = ["info", "--output=json", file];
  const r = program === "vmkit"
    ? await runVmkit(["img", ...args], { cwd: dir })
    : await runCommand("qemu-img", args, { cwd: dir });
  if (r.code !== 0) return `error (exit ${r.code})`;
  return JSON.parse(r.stdout).format;
}

async function qemuOk(args: string[], dir: string, program = "qemu-img") {
  const r = await runCommand(program, args, { cwd: dir });
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
}

function writeFile(dir: string, name: string, bytes: Uint8Array) {
  Deno.writeFileSync(path.join(dir, name), bytes);
}

Deno.test({
  name: `img info probes the format qemu-img info probes, for every format and edge case${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const cases: string[] = [];
      // One image of each format qemu-img creates here, with some data in it.
      const formats: [string, string[]][] = [
        ["raw", []],
        ["qcow2", []],
        ["qcow", []],
        ["vdi", []],
        ["vpc", []],
        ["vhdx", []],
        ["vmdk", []],
        ["vpc", ["-o", "subformat=fixed"]],
        ["vhdx", ["-o", "subformat=fixed"]],
        ["vmdk", ["-o", "subformat=streamOptimized"]],
        ["vdi", ["-o", "static=on"]],
      ];
      for (const [i, [fmt, opts]] of formats.entries()) {
        if (!REGISTERED.has(fmt)) {
          console.log(`probe_test: skipping ${fmt} (no ${fmt} plugin registered yet)`);
          continue;
        }
        const name = `img${i}.${fmt}`;
        await qemuOk(["create", "-q", "-f", fmt, ...opts, name, "4M"], dir);
        if (!opts.includes("subformat=streamOptimized")) {
          await qemuOk(["-f", fmt, "-c", "write -P 0x5a 0 64K", name], dir, "qemu-io");
        }
        cases.push(name);
      }
      // A qcow2 image whose first cluster holds a backing file name.
      await qemuOk(
        ["create", "-q", "-f", "qcow2", "-b", "img0.raw", "-F", "raw", "over.qcow2"],
        dir,
      );
      cases.push("over.qcow2");

      writeFile(dir, "empty.img", new Uint8Array(0));
      const mbr = new Uint8Array(1 << 20);
      mbr.set([0x80, 0x01, 0x01, 0x00, 0x83, 0xfe, 0xff, 0xff], 446);
      mbr.set([0x00, 0x08, 0x00, 0x00, 0x00, 0xf8, 0x00, 0x00], 454);
      mbr[510] = 0x55;
      mbr[511] = 0xaa;
      writeFile(dir, "mbr.img", mbr);
      writeFile(dir, "short.img", new TextEncoder().encode("hello"));
      // The qcow magic with a truncated header, for version 1, 2 and 3.
      for (const version of [1, 2, 3]) {
        const b = new Uint8Array(40);
        b.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, version]);
        writeFile(dir, `qfi${version}.img`, b);
      }
      writeFile(dir, "qfi-only.img", new Uint8Array([0x51, 0x46, 0x49, 0xfb]));
      // Signatures alone, with nothing after them.
      const enc = new TextEncoder();
      writeFile(dir, "vhdxsig.img", enc.encode("vhdxfile"));
      writeFile(dir, "conectix.img", enc.encode("conectix"));
      writeFile(dir, "kdmv.img", enc.encode("KDMV"));
      writeFile(dir, "descriptor.img", enc.encode("# Disk DescriptorFile\nversion=1\n"));
      // A VDI signature at 0x40 with nothing valid around it.
      const vdi = new Uint8Array(512);
      new DataView(vdi.buffer).setUint32(0x40, 0xbeda107f, true);
      writeFile(dir, "vdisig.img", vdi);
      cases.push(
        "empty.img",
        "mbr.img",
        "short.img",
        "qfi1.img",
        "qfi2.img",
        "qfi3.img",
        "qfi-only.img",
        "vhdxsig.img",
        "conectix.img",
        "vdisig.img",
      );
      if (REGISTERED.has("vmdk")) cases.push("kdmv.img", "descriptor.img");

      const disagreements: string[] = [];
      for (const name of cases) {
        const theirs = await probedFormat("qemu-img", name, dir);
        const ours = await probedFormat("vmkit", name, dir);
        // Both refusing a file counts as agreement: each names its own reason.
        const same = ours === theirs || (ours.startsWith("error") && theirs.startsWith("error"));
        if (!same) disagreements.push(`${name}: qemu-img says ${theirs}, vmkit says ${ours}`);
      }
      assert.deepEqual(disagreements, []);
    } finally {
      await cleanup();
    }
  },
});
