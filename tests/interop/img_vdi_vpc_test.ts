// Interop: `vmkit img` and real qemu-img on vdi and vpc (VHD) images, in both directions

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, readBytes, runCommand, runVmkit, tempDir } from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";

async function vmkitOk(args: string[], cwd: string) {
  const r = await runVmkit(["img", ...args], { cwd });
  assert.equal(r.code, 0, `vmkit img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function qemuOk(args: string[], cwd: string) {
  const r = await runCommand("qemu-img", args, { cwd });
  assert.equal(r.code, 0, `qemu-img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** Zeroes what QEMU fills from the clock or at random: VDI UUIDs, VHD timestamps, UUIDs and footer checksums. */
function masked(bytes: Uint8Array, format: string): Uint8Array {
  const b = bytes.slice();
  if (format === "vdi") b.fill(0, 0x188, 0x1a8);
  else {
    for (const at of new Set([0, b.length - 512])) {
      if (new TextDecoder().decode(b.subarray(at, at + 8)) !== "conectix") continue;
      b.fill(0, at + 24, at + 28); // timestamp
      b.fill(0, at + 64, at + 84); // checksum and UUID
    }
  }
  return b;
}

/** A raw file of `bytes` with random data, text, written zeroes and holes, not block aligned. */
async function patternedRaw(file: string, bytes: number): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  await f.truncate(bytes);
  const random = new Uint8Array(60_000);
  for (let at = 4096; at + 3 * random.length < bytes; at += 1_100_000) {
    crypto.getRandomValues(random);
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(random);
    await f.write(new TextEncoder().encode("vdi and vpc ".repeat(5000)).subarray(0, 60_000));
    await f.write(new Uint8Array(60_000));
  }
  f.close();
}

async function assertSameInfo(file: string, dir: string, extra: string[] = []) {
  const ours = await vmkitOk(["info", "--output=json", ...extra, file], dir);
  const theirs = await qemuOk(["info", "--output=json", ...extra, file], dir);
  assert.deepEqual(JSON.parse(ours.stdout), JSON.parse(theirs.stdout), `info json of ${file}`);
  const oursHuman = await vmkitOk(["info", ...extra, file], dir);
  const theirsHuman = await qemuOk(["info", ...extra, file], dir);
  assert.equal(oursHuman.stdout, theirsHuman.stdout, `info of ${file}`);
}

Deno.test({
  name:
    `img create -f vdi|vpc writes the bytes qemu-img create writes, minus time and UUIDs${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const sets: [string, string, string][] = [
        ["vdi", "", "100M"],
        ["vdi", "", "1"],
        ["vdi", "", "5000M"],
        ["vdi", "static=on", "10M"],
        ["vdi", "static=on", "1500K"],
        ["vpc", "", "100M"],
        ["vpc", "", "1000"],
        ["vpc", "", "127G"],
        ["vpc", "", "200G"],
        ["vpc", "subformat=dynamic", "3M"],
        ["vpc", "subformat=fixed", "10M"],
        ["vpc", "force_size=on", "100M"],
        ["vpc", "subformat=fixed,force_size=on", "5M"],
      ];
      for (const [i, [fmt, o, size]] of sets.entries()) {
        const args = ["create", "-f", fmt, ...(o ? ["-o", o] : [])];
        const a = await vmkitOk([...args, `ours${i}.${fmt}`, size], dir);
        const b = await qemuOk([...args, `theirs${i}.${fmt}`, size], dir);
        assert.equal(a.stdout.replace("ours", "theirs"), b.stdout, `Formatting line of ${o}`);
        const ours = readBytes(path.join(dir, `ours${i}.${fmt}`));
        const theirs = readBytes(path.join(dir, `theirs${i}.${fmt}`));
        assert.deepEqual(
          masked(ours, fmt),
          masked(theirs, fmt),
          `create -f ${fmt} -o ${o} ${size}`,
        );
        await assertSameInfo(`ours${i}.${fmt}`, dir, ["-f", fmt]);
        if (fmt === "vdi") await qemuOk(["check", `ours${i}.${fmt}`], dir);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `images qemu-img convert writes as vdi and vpc read the same in vmkit${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // 8 MiB + 3 sectors: partial last blocks, and a size that no CHS geometry matches.
      await patternedRaw(path.join(dir, "src.raw"), (8 << 20) + 1536);
      const targets: [string, string[]][] = [
        ["a.vdi", ["-O", "vdi"]],
        ["b.vdi", ["-O", "vdi", "-o", "static=on"]],
        ["c.vhd", ["-O", "vpc"]],
        ["d.vhd", ["-O", "vpc", "-o", "subformat=fixed"]],
        ["e.vhd", ["-O", "vpc", "-o", "force_size=on"]],
      ];
      for (const [name, args] of targets) {
        await qemuOk(["convert", ...args, "src.raw", name], dir);
        const fmt = name.endsWith(".vdi") ? "vdi" : "vpc";
        // A fixed VHD probes as raw (its footer is at the end), so name the format.
        await vmkitOk(["compare", "-f", "raw", "-F", fmt, "src.raw", name], dir);
        await assertSameInfo(name, dir, ["-f", fmt]);
        if (fmt === "vdi") {
          const r = await vmkitOk(["check", name], dir);
          assert.equal(r.stdout, (await qemuOk(["check", name], dir)).stdout);
        }
      }
      await assertSameInfo("c.vhd", dir);
      await assertSameInfo("a.vdi", dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `images vmkit img convert writes as vdi and vpc pass qemu-img compare and check${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(path.join(dir, "src.raw"), (8 << 20) + 1536);
      const targets: [string, string[]][] = [
        ["a.vdi", ["-O", "vdi"]],
        ["b.vdi", ["-O", "vdi", "-o", "static=on"]],
        ["c.vhd", ["-O", "vpc"]],
        ["d.vhd", ["-O", "vpc", "-o", "subformat=fixed"]],
        ["e.vhd", ["-O", "vpc", "-o", "force_size=on"]],
      ];
      for (const [name, args] of targets) {
        await vmkitOk(["convert", ...args, "src.raw", name], dir);
        const fmt = name.endsWith(".vdi") ? "vdi" : "vpc";
        await qemuOk(["compare", "-f", "raw", "-F", fmt, "src.raw", name], dir);
        if (fmt === "vdi") await qemuOk(["check", name], dir);
        await assertSameInfo(name, dir, ["-f", fmt]);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img convert moves data between raw, qcow2, vdi and vpc unchanged${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(path.join(dir, "src.raw"), 6 << 20);
      const chain: [string, string][] = [
        ["src.raw", "vdi"],
        ["1.vdi", "vpc"],
        ["2.vpc", "qcow2"],
        ["3.qcow2", "vdi"],
        ["4.vdi", "raw"],
      ];
      for (const [i, [from, fmt]] of chain.entries()) {
        await vmkitOk(["convert", "-O", fmt, from, `${i + 1}.${fmt}`], dir);
        await qemuOk(["compare", "src.raw", `${i + 1}.${fmt}`], dir);
      }
    } finally {
      await cleanup();
    }
  },
});
