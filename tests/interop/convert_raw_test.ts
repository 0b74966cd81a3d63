// Interop: `img convert` into raw from the formats that copy synchronously gives qemu-img's bytes and holes

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, readBytes, runCommand, runVmkit, tempDir } from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";

const MIB = 1 << 20;

async function ok(program: "vmkit" | "qemu-img", args: string[], cwd: string): Promise<void> {
  const r = program === "vmkit"
    ? await runVmkit(["img", ...args], { cwd })
    : await runCommand("qemu-img", args, { cwd });
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
}

/**
 * 41 MiB whose every MiB holds other random bytes (a transfer buffer reused too early
 * would leave another extent's data behind: the ninth pass of docs/img-performance.md
 * tried leaving writes in flight), with holes, runs of written zeroes and zero runs
 * inside data, so zero writes and data writes interleave.
 */
function writeSource(file: string): Uint8Array {
  const bytes = new Uint8Array(41 * MIB + 3 * 512);
  for (let mib = 0; mib < 41; mib++) {
    if (mib % 7 === 3) continue; // a hole of a whole MiB
    for (let at = mib * MIB; at < (mib + 1) * MIB; at += 65536) {
      crypto.getRandomValues(bytes.subarray(at, at + 65536));
    }
    if (mib % 5 === 1) bytes.fill(0, mib * MIB + 4096, mib * MIB + 300_000);
  }
  crypto.getRandomValues(bytes.subarray(41 * MIB, 41 * MIB + 700));
  Deno.writeFileSync(file, bytes);
  return bytes;
}

/** The first offset where `a` and `b` differ (or where the shorter ends), -1 when equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function map(file: string, cwd: string): Promise<string> {
  const r = await runCommand("qemu-img", ["map", "--output=json", "-f", "raw", file], { cwd });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

Deno.test({
  name:
    `img convert into raw from vdi, vpc and vhdx gives every extent's own bytes and qemu-img's holes, fresh, under -S and with -n${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const source = writeSource(path.join(dir, "src.raw"));
      for (const fmt of ["vdi", "vpc", "vhdx"]) {
        await ok("qemu-img", ["convert", "-O", fmt, "src.raw", `src.${fmt}`], dir);
        for (const sparse of [[], ["-S", "0"], ["-S", "3072"]]) {
          const what = `${fmt} ${sparse.join(" ")}`;
          await ok("vmkit", ["convert", ...sparse, "-O", "raw", `src.${fmt}`, "v.raw"], dir);
          await ok("qemu-img", ["convert", ...sparse, "-O", "raw", `src.${fmt}`, "q.raw"], dir);
          const ours = readBytes(path.join(dir, "v.raw"));
          const theirs = readBytes(path.join(dir, "q.raw"));
          assert.equal(
            firstDifference(ours.subarray(0, source.length), source),
            -1,
            `${what}: data`,
          );
          assert.equal(firstDifference(ours, theirs), -1, `${what}: bytes`);
          assert.equal(await map("v.raw", dir), await map("q.raw", dir), `${what}: holes`);
        }
        // Onto an existing raw file full of other bytes: its zero runs are written as zeroes.
        for (const out of ["v.raw", "q.raw"]) {
          Deno.writeFileSync(path.join(dir, out), new Uint8Array(42 * MIB).fill(0xa5));
        }
        await ok("vmkit", ["convert", "-n", "-O", "raw", `src.${fmt}`, "v.raw"], dir);
        await ok("qemu-img", ["convert", "-n", "-O", "raw", `src.${fmt}`, "q.raw"], dir);
        const ours = readBytes(path.join(dir, "v.raw"));
        const theirs = readBytes(path.join(dir, "q.raw"));
        assert.equal(
          firstDifference(ours.subarray(0, source.length), source),
          -1,
          `${fmt} -n: data`,
        );
        assert.equal(firstDifference(ours, theirs), -1, `${fmt} -n: bytes`);
        assert.equal(await map("v.raw", dir), await map("q.raw", dir), `${fmt} -n: holes`);
      }
    } finally {
      await cleanup();
    }
  },
});
