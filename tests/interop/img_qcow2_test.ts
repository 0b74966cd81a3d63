// Interop: `vmkit img` and real qemu-img on qcow2 images, in both directions, through the CLI

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, readBytes, runCommand, runVmkit, tempDir } from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";

function qemuImg(args: string[], cwd: string) {
  return runCommand("qemu-img", args, { cwd });
}

async function vmkitOk(args: string[], cwd: string) {
  const r = await runVmkit(["img", ...args], { cwd });
  assert.equal(r.code, 0, `vmkit img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function qemuOk(args: string[], cwd: string) {
  const r = await qemuImg(args, cwd);
  assert.equal(r.code, 0, `qemu-img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** Our json minus vmkit's own additions, to compare with qemu-img's field for field. */
function withoutExtras(json: string): unknown {
  const strip = (o: Record<string, unknown>) => {
    delete o["l2-cache-full-coverage"];
    return o;
  };
  const v = JSON.parse(json);
  return Array.isArray(v) ? v.map(strip) : strip(v);
}

/** Our human info minus vmkit's extra line. */
function humanWithoutExtras(text: string): string {
  return text.split("\n").filter((l) => !l.startsWith("l2 cache for full coverage:")).join("\n");
}

/** A raw file with data, text, zeroes and holes, 4 MiB. */
async function mixedRaw(file: string): Promise<void> {
  const bytes = 4 << 20;
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  await f.truncate(bytes);
  const random = new Uint8Array(65536);
  for (let at = 0; at < bytes; at += 512 << 10) {
    crypto.getRandomValues(random);
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(random);
    await f.write(new TextEncoder().encode("compressible text ".repeat(3641)).subarray(0, 65536));
    await f.write(new Uint8Array(65536)); // written zeroes (not a hole)
  }
  f.close();
}

async function assertSameInfo(file: string, dir: string, extra: string[] = []) {
  for (const output of ["human", "json"]) {
    const ours = await vmkitOk(["info", `--output=${output}`, ...extra, file], dir);
    const theirs = await qemuOk(["info", `--output=${output}`, ...extra, file], dir);
    if (output === "json") {
      const o = withoutExtras(ours.stdout) as Record<string, unknown>;
      const t = JSON.parse(theirs.stdout) as Record<string, unknown>;
      assert.deepEqual(o, t, `info json of ${file}`);
    } else assert.equal(humanWithoutExtras(ours.stdout), theirs.stdout, `info of ${file}`);
  }
}

async function assertSameMap(file: string, dir: string) {
  for (const output of ["human", "json"]) {
    const ours = await runVmkit(["img", "map", `--output=${output}`, file], { cwd: dir });
    const theirs = await qemuImg(["map", `--output=${output}`, file], dir);
    assert.equal(ours.code, theirs.code, `map ${output} ${file}: ${ours.stderr}`);
    assert.equal(ours.stdout, theirs.stdout, `map ${output} of ${file}`);
  }
}

Deno.test({
  name:
    `img create -f qcow2 writes the same bytes as qemu-img create for common option sets${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const sets = [
        "",
        "compat=0.10",
        "cluster_size=4k",
        "cluster_size=2M",
        "lazy_refcounts=on",
        "refcount_bits=1",
        "refcount_bits=64",
        "extended_l2=on",
        "compression_type=zstd",
        "preallocation=metadata",
      ];
      for (const [i, o] of sets.entries()) {
        const args = ["create", "-q", "-f", "qcow2", ...(o ? ["-o", o] : [])];
        await vmkitOk([...args, `ours${i}.qcow2`, "100M"], dir);
        await qemuOk([...args, `theirs${i}.qcow2`, "100M"], dir);
        const ours = readBytes(path.join(dir, `ours${i}.qcow2`));
        const theirs = readBytes(path.join(dir, `theirs${i}.qcow2`));
        assert.deepEqual(ours, theirs, `create -o ${o}`);
        await qemuOk(["check", `ours${i}.qcow2`], dir);
        await assertSameInfo(`ours${i}.qcow2`, dir);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `images qemu-img writes (compressed, zero, extended L2, data file, backing chain) read the same in vmkit${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await mixedRaw(path.join(dir, "src.raw"));
      await qemuOk(["convert", "-O", "qcow2", "src.raw", "plain.qcow2"], dir);
      await qemuOk(["convert", "-c", "-O", "qcow2", "src.raw", "zlib.qcow2"], dir);
      await qemuOk([
        "convert",
        "-c",
        "-O",
        "qcow2",
        "-o",
        "compression_type=zstd",
        "src.raw",
        "zstd.qcow2",
      ], dir);
      await qemuOk([
        "convert",
        "-O",
        "qcow2",
        "-o",
        "extended_l2=on,cluster_size=128k",
        "src.raw",
        "ext.qcow2",
      ], dir);
      await qemuOk(
        ["convert", "-O", "qcow2", "-o", "data_file=data.raw", "src.raw", "df.qcow2"],
        dir,
      );
      await qemuOk([
        "convert",
        "-O",
        "qcow2",
        "-o",
        "compat=0.10,cluster_size=512",
        "src.raw",
        "v2.qcow2",
      ], dir);
      await qemuOk(["create", "-f", "qcow2", "-b", "plain.qcow2", "-F", "qcow2", "top.qcow2"], dir);
      // Zero clusters: the guest zeroes part of an allocated image.
      await qemuOk(["convert", "-O", "qcow2", "src.raw", "zero.qcow2"], dir);
      await qemuOk([
        "dd",
        "-f",
        "raw",
        "-O",
        "raw",
        "if=/dev/zero",
        "of=zeros.raw",
        "bs=64k",
        "count=8",
      ], dir)
        .catch(() => {});
      for (const img of ["plain", "zlib", "zstd", "ext", "df", "v2", "top", "zero"]) {
        const file = `${img}.qcow2`;
        await assertSameInfo(file, dir);
        await assertSameMap(file, dir);
        const check = await vmkitOk(["check", "--output=json", file], dir);
        const theirs = await qemuOk(["check", "--output=json", file], dir);
        assert.deepEqual(JSON.parse(check.stdout), JSON.parse(theirs.stdout), `check ${file}`);
        // Our reading of every guest byte equals the raw source.
        const r = await runVmkit(["img", "compare", "-f", "qcow2", "-F", "raw", file, "src.raw"], {
          cwd: dir,
        });
        assert.equal(r.stdout, "Images are identical.\n", `${file}: ${r.stderr}`);
      }
      await assertSameInfo("top.qcow2", dir, ["--backing-chain"]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img convert into qcow2 (plain, -c, -B, -o extended_l2) makes images qemu-img check and compare accept${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await mixedRaw(path.join(dir, "src.raw"));
      const before = readBytes(path.join(dir, "src.raw"));
      const cases: [string, string[]][] = [
        ["plain.qcow2", []],
        ["zlib.qcow2", ["-c"]],
        ["zstd.qcow2", ["-c", "-o", "compression_type=zstd"]],
        ["ext.qcow2", ["-o", "extended_l2=on"]],
        ["v2.qcow2", ["-o", "compat=0.10,cluster_size=4k"]],
        ["r1.qcow2", ["-o", "refcount_bits=1"]],
        ["m1.qcow2", ["-m", "1"]],
        ["w.qcow2", ["-m", "16", "-W"]],
      ];
      for (const [out, extra] of cases) {
        await vmkitOk(["convert", "-f", "raw", "-O", "qcow2", ...extra, "src.raw", out], dir);
        const check = await qemuImg(["check", out], dir);
        assert.equal(check.code, 0, `${out}: ${check.stdout}${check.stderr}`);
        assert.equal((await qemuImg(["compare", "src.raw", out], dir)).code, 0, out);
      }
      // -c stores the compressible text clusters compressed.
      const zinfo = await qemuOk(["check", "--output=json", "zlib.qcow2"], dir);
      assert.ok(JSON.parse(zinfo.stdout)["compressed-clusters"] > 0);
      // -B: only what differs from the backing image is written to the new overlay.
      await vmkitOk([
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-B",
        "plain.qcow2",
        "-F",
        "qcow2",
        "src.raw",
        "over.qcow2",
      ], dir);
      await qemuOk(["check", "over.qcow2"], dir);
      assert.equal((await qemuImg(["compare", "src.raw", "over.qcow2"], dir)).code, 0);
      // qcow2 -> raw back again.
      await vmkitOk(["convert", "-O", "raw", "zlib.qcow2", "back.raw"], dir);
      assert.equal(
        (await qemuImg(["compare", "-f", "raw", "-F", "raw", "src.raw", "back.raw"], dir)).code,
        0,
      );
      assert.deepEqual(readBytes(path.join(dir, "src.raw")), before, "the source is unchanged");
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img resize, measure, dd and bench -w on qcow2 agree with qemu-img${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await mixedRaw(path.join(dir, "src.raw"));
      await vmkitOk(["convert", "-O", "qcow2", "src.raw", "a.qcow2"], dir);
      await vmkitOk(["resize", "a.qcow2", "+6M"], dir);
      await qemuOk(["check", "a.qcow2"], dir);
      assert.equal(
        JSON.parse(
          (await qemuOk(["info", "--output=json", "a.qcow2"], dir)).stdout,
        )["virtual-size"],
        10 << 20,
      );
      await vmkitOk(["resize", "--shrink", "a.qcow2", "-8M"], dir);
      await qemuOk(["check", "a.qcow2"], dir);
      for (
        const args of [
          ["measure", "-O", "qcow2", "--size", "10G"],
          ["measure", "-O", "qcow2", "-o", "cluster_size=4k", "--size", "1G"],
          ["measure", "-O", "qcow2", "--output=json", "-f", "raw", "src.raw"],
          ["measure", "-O", "qcow2", "-f", "qcow2", "a.qcow2"],
        ]
      ) {
        const ours = await vmkitOk(args, dir);
        assert.equal(ours.stdout, (await qemuOk(args, dir)).stdout, args.join(" "));
      }
      await vmkitOk([
        "dd",
        "-O",
        "qcow2",
        "if=src.raw",
        "of=dd.qcow2",
        "bs=64k",
        "count=20",
        "skip=3",
      ], dir);
      await qemuOk([
        "dd",
        "-O",
        "qcow2",
        "if=src.raw",
        "of=dd2.qcow2",
        "bs=64k",
        "count=20",
        "skip=3",
      ], dir);
      await qemuOk(["check", "dd.qcow2"], dir);
      assert.equal((await qemuImg(["compare", "dd.qcow2", "dd2.qcow2"], dir)).code, 0);
      await vmkitOk(["create", "-q", "-f", "qcow2", "b.qcow2", "64M"], dir);
      const bench = await vmkitOk([
        "bench",
        "-w",
        "-c",
        "2000",
        "-d",
        "8",
        "-S",
        "1M",
        "--pattern=7",
        "b.qcow2",
      ], dir);
      assert.match(bench.stdout, /^Sending 2000 write requests, 4096 bytes each, 8 in parallel/);
      assert.match(bench.stdout, /Run completed in [\d.]+ seconds\./);
      await qemuOk(["check", "b.qcow2"], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img check finds leaks with exit code 3 and -r leaks repairs them as qemu-img does${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await mixedRaw(path.join(dir, "src.raw"));
      await qemuOk(["convert", "-O", "qcow2", "src.raw", "leak.qcow2"], dir);
      // Append one cluster to the file and give it refcount 1 with no reference: a leak.
      const file = path.join(dir, "leak.qcow2");
      const bytes = readBytes(file);
      const view = new DataView(bytes.buffer);
      const refcountTable = Number(view.getBigUint64(48));
      const block = Number(view.getBigUint64(refcountTable));
      const leaked = bytes.length / 65536;
      const f = await Deno.open(file, { write: true });
      await f.truncate(bytes.length + 65536);
      await f.seek(block + leaked * 2, Deno.SeekMode.Start);
      await f.write(new Uint8Array([0, 1]));
      f.close();
      await Deno.copyFile(file, path.join(dir, "leak2.qcow2"));
      const ours = await runVmkit(["img", "check", "leak.qcow2"], { cwd: dir });
      const theirs = await qemuImg(["check", "leak.qcow2"], dir);
      assert.equal(ours.code, 3);
      assert.equal(ours.code, theirs.code);
      assert.equal(ours.stdout, theirs.stdout);
      assert.equal(ours.stderr, theirs.stderr);
      const oursJson = await runVmkit(["img", "check", "--output=json", "leak.qcow2"], {
        cwd: dir,
      });
      assert.deepEqual(
        JSON.parse(oursJson.stdout),
        JSON.parse((await qemuImg(["check", "--output=json", "leak.qcow2"], dir)).stdout),
      );
      const fixed = await runVmkit(["img", "check", "-r", "leaks", "leak.qcow2"], { cwd: dir });
      const fixedTheirs = await qemuImg(["check", "-r", "leaks", "leak2.qcow2"], dir);
      assert.equal(fixed.code, fixedTheirs.code);
      assert.equal(fixed.stdout, fixedTheirs.stdout);
      assert.equal((await qemuImg(["check", "leak.qcow2"], dir)).code, 0);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `bad qcow2 input gets one clear line, a non-zero exit and an unchanged file${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-q", "-f", "qcow2", "good.qcow2", "1G"], dir);
      const good = readBytes(path.join(dir, "good.qcow2"));
      const write = (name: string, bytes: Uint8Array) =>
        Deno.writeFileSync(path.join(dir, name), bytes);
      write("truncated.qcow2", good.subarray(0, 50));
      const magic = good.slice();
      magic[0] = 0x51;
      magic[3] = 0;
      write("magic.qcow2", magic);
      const l1 = good.slice();
      new DataView(l1.buffer).setUint32(36, 0x7fffffff); // l1_size: absurd
      write("l1.qcow2", l1);
      const rt = good.slice();
      new DataView(rt.buffer).setUint32(56, 0x7fffffff); // refcount_table_clusters: absurd
      write("rt.qcow2", rt);
      const vsize = good.slice();
      new DataView(vsize.buffer).setBigUint64(24, 0x7fffffffffffffffn); // virtual size
      write("vsize.qcow2", vsize);
      for (
        const name of ["truncated.qcow2", "magic.qcow2", "l1.qcow2", "rt.qcow2", "vsize.qcow2"]
      ) {
        const before = readBytes(path.join(dir, name));
        for (
          const args of [["info", "-f", "qcow2", name], ["check", "-f", "qcow2", name], [
            "map",
            "-f",
            "qcow2",
            name,
          ]]
        ) {
          const r = await runVmkit(["img", ...args], { cwd: dir });
          assert.notEqual(r.code, 0, `${args.join(" ")} should fail`);
          assert.equal(r.stderr.trim().split("\n").length, 1, `${args.join(" ")}: ${r.stderr}`);
          assert.match(r.stderr, /^vmkit: /);
          assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/);
        }
        assert.deepEqual(readBytes(path.join(dir, name)), before, `${name} unchanged`);
      }
      const r = await runVmkit(["img", "info", "-f", "qcow2", "magic.qcow2"], { cwd: dir });
      assert.equal(r.stderr, "vmkit: Could not open 'magic.qcow2': Image is not in qcow2 format\n");
      // A backing loop is refused, not followed.
      await qemuOk([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "loop2.qcow2",
        "-F",
        "qcow2",
        "loop1.qcow2",
        "1M",
      ], dir);
      await qemuOk([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "loop1.qcow2",
        "-F",
        "qcow2",
        "loop2.qcow2",
        "1M",
      ], dir);
      const loop = await runVmkit(["img", "compare", "loop1.qcow2", "good.qcow2"], { cwd: dir });
      assert.equal(loop.code, 2);
      assert.match(loop.stderr, /^vmkit: Could not open 'loop1\.qcow2': .*loop/);
      assert.equal(loop.stderr.trim().split("\n").length, 1);
    } finally {
      await cleanup();
    }
  },
});
