// Interop: `img convert` between every pair of formats, and info/check/map/measure on each, vs qemu-img

import assert from "node:assert/strict";
import { BUILTIN_PLUGINS } from "../../plugins/mod.ts";
import { HAVE_QEMU_IMG, runCommand, runVmkit, tempDir } from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";

/** Formats in the matrix; `readOnly` ones are sources only (vmkit reads qcow v1, never writes it). */
const FORMATS: readonly { name: string; readOnly?: boolean }[] = [
  { name: "raw" },
  { name: "qcow2" },
  { name: "vmdk" },
  { name: "vdi" },
  { name: "vpc" },
  { name: "vhdx" },
  { name: "qcow", readOnly: true },
];

const present = FORMATS.filter((f) =>
  BUILTIN_PLUGINS.some((p) => p.kind === "format" && p.name === f.name)
);
const missing = FORMATS.filter((f) => !present.includes(f)).map((f) => f.name);
if (missing.length > 0) {
  console.log(`format matrix: not in vmkit's registry, left out: ${missing.join(", ")}`);
}

async function vmkitImg(args: string[], cwd: string) {
  return await runVmkit(["img", ...args], { cwd });
}

async function qemuOk(args: string[], cwd: string) {
  const r = await runCommand("qemu-img", args, { cwd });
  assert.equal(r.code, 0, `qemu-img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** 6 MiB of random data, text, written zeroes and holes, at offsets that are not block aligned. */
async function patternedRaw(file: string): Promise<void> {
  const bytes = 6 << 20;
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  try {
    await f.truncate(bytes);
    const random = new Uint8Array(50_000);
    for (let at = 512; at + 150_000 < bytes; at += 900_000) {
      crypto.getRandomValues(random);
      await f.seek(at, Deno.SeekMode.Start);
      await f.write(random);
      await f.write(new TextEncoder().encode("format matrix ".repeat(4000)).subarray(0, 50_000));
      await f.write(new Uint8Array(50_000));
    }
  } finally {
    f.close();
  }
}

Deno.test({
  name: `img convert between every pair of formats keeps the guest's bytes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(`${dir}/src.raw`);
      // Sources written by real qemu-img, so the matrix also reads QEMU's files.
      for (const f of present) {
        if (f.name === "raw") continue;
        await qemuOk(["convert", "-f", "raw", "-O", f.name, "src.raw", `src.${f.name}`], dir);
      }
      let pairs = 0;
      for (const from of present) {
        for (const to of present) {
          if (to.readOnly) continue;
          const out = `out-${from.name}.${to.name}`;
          const conv = await vmkitImg(
            ["convert", "-f", from.name, "-O", to.name, `src.${from.name}`, out],
            dir,
          );
          assert.equal(conv.code, 0, `convert ${from.name} -> ${to.name}: ${conv.stderr}`);
          // qemu-img judges: the target is a valid image with the source's bytes.
          const cmp = await runCommand(
            "qemu-img",
            ["compare", "-f", "raw", "-F", to.name, "src.raw", out],
            { cwd: dir },
          );
          assert.equal(cmp.code, 0, `${from.name} -> ${to.name}: ${cmp.stdout}${cmp.stderr}`);
          if (to.name !== "raw") {
            const check = await runCommand("qemu-img", ["check", "-f", to.name, out], {
              cwd: dir,
            });
            // 0: clean; 63: the format has no check in qemu-img (vpc).
            assert.ok(
              check.code === 0 || check.code === 63,
              `check of ${from.name} -> ${to.name}: ${check.stdout}${check.stderr}`,
            );
          }
          await Deno.remove(`${dir}/${out}`);
          pairs++;
        }
      }
      console.log(`format matrix: ${pairs} conversions judged by qemu-img`);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img info, check, map and measure agree with qemu-img on every format${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(`${dir}/src.raw`);
      for (const f of present) {
        const file = `src.${f.name}`;
        if (f.name !== "raw") {
          await qemuOk(["convert", "-f", "raw", "-O", f.name, "src.raw", file], dir);
        }
        const ours = await vmkitImg(["info", "--output=json", file], dir);
        assert.equal(ours.code, 0, `info ${file}: ${ours.stderr}`);
        const theirs = await qemuOk(["info", "--output=json", file], dir);
        const a = JSON.parse(ours.stdout);
        const b = JSON.parse(theirs.stdout);
        for (const key of ["format", "virtual-size", "cluster-size", "dirty-flag"]) {
          assert.deepEqual(a[key], b[key], `info ${file}: ${key}`);
        }

        const checkOurs = await vmkitImg(["check", file], dir);
        const checkTheirs = await runCommand("qemu-img", ["check", file], { cwd: dir });
        assert.equal(checkOurs.code, checkTheirs.code, `check ${file}: ${checkOurs.stderr}`);
        assert.equal(checkOurs.stdout, checkTheirs.stdout, `check ${file}`);

        // Allocation maps: which guest bytes hold data must agree (extent boundaries may be
        // split differently, so compare the data/zero verdict per 64 KiB).
        const mapOurs = await vmkitImg(["map", "--output=json", file], dir);
        assert.equal(mapOurs.code, 0, `map ${file}: ${mapOurs.stderr}`);
        const mapTheirs = await qemuOk(["map", "--output=json", file], dir);
        assert.deepEqual(
          coverage(JSON.parse(mapOurs.stdout)),
          coverage(JSON.parse(mapTheirs.stdout)),
          `map ${file}`,
        );

        const measureOurs = await vmkitImg(["measure", "-O", "qcow2", file], dir);
        const measureTheirs = await qemuOk(["measure", "-O", "qcow2", file], dir);
        assert.equal(measureOurs.code, 0, `measure ${file}: ${measureOurs.stderr}`);
        assert.equal(measureOurs.stdout, measureTheirs.stdout, `measure ${file}`);
      }
    } finally {
      await cleanup();
    }
  },
});

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

/** One letter per 64 KiB of guest data: D when any byte in it holds data, else Z. */
function coverage(entries: MapEntry[]): string {
  const unit = 65536;
  const end = Math.max(0, ...entries.map((e) => e.start + e.length));
  const out = new Array<string>(Math.ceil(end / unit)).fill("Z");
  for (const e of entries) {
    if (!e.data || e.zero || e.length === 0) continue;
    for (
      let u = Math.floor(e.start / unit);
      u <= Math.floor((e.start + e.length - 1) / unit);
      u++
    ) {
      out[u] = "D";
    }
  }
  return out.join("");
}
