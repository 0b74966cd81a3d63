// Interop: `vmkit img` and real qemu-img on vmdk images of every subformat, in both directions

import assert from "node:assert/strict";
import * as path from "node:path";
import { hostCompress } from "../../core/host_zlib.ts";
import { vmwareStream } from "../../plugins/formats/vmdk/test_util.ts";
import { textLike } from "./differential_fixtures.ts";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  MAIN,
  readBytes,
  runCommand,
  runTool,
  runVmkit,
  tempDir,
} from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";
const HAVE_QEMU_IO = haveProgram("qemu-io");
const HAVE_HOST_ZLIB = hostCompress() !== null;
if (ignore) console.log("img_vmdk_test: qemu-img is not installed, interop tests are skipped");

const SUBFORMATS = [
  "monolithicSparse",
  "monolithicFlat",
  "twoGbMaxExtentSparse",
  "twoGbMaxExtentFlat",
  "streamOptimized",
];

async function vmkitOk(args: string[], cwd: string) {
  const r = await runVmkit(["img", ...args], { cwd });
  assert.equal(r.code, 0, `vmkit img ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function qemuOk(args: string[], cwd: string, program = "qemu-img") {
  const r = await runCommand(program, args, { cwd });
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** A raw file with random data, text and holes, not grain aligned, across a 2 GiB boundary. */
async function patternedRaw(file: string, bytes: number): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  await f.truncate(bytes);
  const random = new Uint8Array(60_000);
  for (const at of [4096, 1_500_000, 2 ** 31 - 50_000, bytes - 200_000]) {
    if (at + 200_000 > bytes) continue;
    crypto.getRandomValues(random);
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(random);
    await f.write(new TextEncoder().encode("vmdk grain ".repeat(3000)));
  }
  f.close();
}

/** The files of a directory with the descriptor's CID line masked (QEMU picks it at random). */
function maskedFiles(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
    const file = path.join(dir, e.name);
    if (Deno.statSync(file).size > 8 << 20) {
      // Big flat extents: compare their size and that they hold no data here.
      out.set(e.name, new TextEncoder().encode(`size ${Deno.statSync(file).size}`));
      continue;
    }
    const bytes = readBytes(file);
    // The random CID is printed without leading zeros, so a shorter one leaves one NUL more
    // after the descriptor text: mask the CID and drop the NULs that follow the text.
    const text = new TextDecoder("latin1").decode(bytes)
      .replace(/\nCID=[0-9a-f]+\n([^\0]*)\0*/, "\nCID=x\n$1");
    out.set(e.name, new TextEncoder().encode(text));
  }
  return out;
}

Deno.test({
  name: `img create -f vmdk -o ? lists the options exactly as qemu-img does${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const extra of [[], ["x.vmdk"]]) {
        const args = ["create", "-f", "vmdk", "-o", "?", ...extra];
        const [ours, theirs] = await Promise.all([vmkitOk(args, dir), qemuOk(args, dir)]);
        assert.equal(ours.stdout, theirs.stdout);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img create -f vmdk writes the files qemu-img writes, minus the random CID${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const sets: [string, string][] = [
        ...SUBFORMATS.map((s): [string, string] => [`subformat=${s}`, "5G"]),
        ["zeroed_grain=on,adapter_type=lsilogic", "100M"],
        ["compat6=on,toolsversion=5,adapter_type=buslogic", "1000"],
        ["hwversion=7,adapter_type=legacyESX,subformat=streamOptimized,zeroed_grain=on", "3G"],
      ];
      await Promise.all(sets.map(async ([opts, size], i) => {
        const q = path.join(dir, `q${i}`);
        const v = path.join(dir, `v${i}`);
        await Deno.mkdir(q);
        await Deno.mkdir(v);
        const args = ["create", "-f", "vmdk", "-o", opts, "img.vmdk", size];
        const [ours, theirs] = await Promise.all([vmkitOk(args, v), qemuOk(args, q)]);
        assert.equal(ours.stdout, theirs.stdout, opts);
        assert.deepEqual(maskedFiles(v), maskedFiles(q), opts);
      }));
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img create -f vmdk refuses bad option sets with qemu-img's words, creating nothing${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const sets = [
        ["-o", "compat6=on,hwversion=7"],
        ["-o", "adapter_type=scsi"],
        ["-o", "subformat=monolithicFlat,zeroed_grain=on"],
      ];
      await Promise.all(sets.map(async (extra) => {
        const args = ["create", "-f", "vmdk", ...extra, "bad.vmdk", "1M"];
        const [ours, theirs] = await Promise.all([
          runTool("vmkit", args, dir),
          runCommand("qemu-img", args, { cwd: dir }),
        ]);
        assert.notEqual(theirs.code, 0);
        assert.equal(ours.code, theirs.code, extra.join(" "));
        assert.equal(ours.stderr, theirs.stderr, extra.join(" "));
      }));
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img reads what qemu-img convert writes in every subformat: data, info, map${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const size = 2 ** 31 + (1 << 20); // two extents in the split subformats
      await patternedRaw(path.join(dir, "src.raw"), size);
      await Promise.all(SUBFORMATS.map(async (s) => {
        await Deno.mkdir(path.join(dir, s));
        const img = path.join(s, "img.vmdk");
        await qemuOk(["convert", "-O", "vmdk", "-o", `subformat=${s}`, "src.raw", img], dir);
        const compare = await vmkitOk(["compare", "-f", "raw", "-F", "vmdk", "src.raw", img], dir);
        assert.equal(compare.stdout, "Images are identical.\n", s);
        const cmds = [["info", "--output=json"], ["map", "--output=json"]];
        // The human layout is the same code for every subformat: two are enough.
        if (s === "monolithicSparse" || s === "twoGbMaxExtentFlat") cmds.push(["info"]);
        for (const cmd of cmds) {
          const [ours, theirs] = await Promise.all([
            vmkitOk([...cmd, img], dir),
            qemuOk([...cmd, img], dir),
          ]);
          assert.equal(ours.stdout, theirs.stdout, `${cmd.join(" ")} ${s}`);
        }
      }));
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img convert -O vmdk writes every subformat as qemu-img does, which qemu-img checks and reads${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const size = 2 ** 31 + (1 << 20);
      await patternedRaw(path.join(dir, "src.raw"), size);
      await Promise.all(SUBFORMATS.map(async (s) => {
        for (const side of ["q", "v"]) await Deno.mkdir(path.join(dir, `${side}-${s}`));
        const args = (side: string) => [
          "convert",
          "-O",
          "vmdk",
          "-o",
          `subformat=${s}`,
          "src.raw",
          path.join(`${side}-${s}`, "img.vmdk"),
        ];
        await Promise.all([vmkitOk(args("v"), dir), qemuOk(args("q"), dir)]);
        const ours = path.join(`v-${s}`, "img.vmdk");
        const check = await qemuOk(["check", ours], dir);
        assert.equal(check.stdout, "No errors were found on the image.\n", s);
        const compare = await qemuOk(["compare", "-f", "raw", "-F", "vmdk", "src.raw", ours], dir);
        assert.equal(compare.stdout, "Images are identical.\n", s);
        // Compressed grains come from the host's zlib, as qemu-img's do; without it (no
        // libz.so.1 here) node:zlib deflates them into other bytes.
        if (s !== "streamOptimized" || HAVE_HOST_ZLIB) {
          assert.deepEqual(
            maskedFiles(path.join(dir, `v-${s}`)),
            maskedFiles(path.join(dir, `q-${s}`)),
            s,
          );
        }
      }));
      // And back: vmdk to qcow2 through vmkit reads as the raw source.
      await vmkitOk(["convert", "-O", "qcow2", "v-streamOptimized/img.vmdk", "back.qcow2"], dir);
      await qemuOk(["compare", "-F", "qcow2", "src.raw", "back.qcow2"], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img writes into qemu-img's vmdk images (convert -n), and qemu-img reads them back${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternedRaw(path.join(dir, "src.raw"), 3 << 20);
      await Promise.all(["monolithicSparse", "twoGbMaxExtentFlat"].map(async (s) => {
        const img = `${s}.vmdk`;
        await qemuOk(["create", "-q", "-f", "vmdk", "-o", `subformat=${s}`, img, "3M"], dir);
        await vmkitOk(["convert", "-n", "-O", "vmdk", "src.raw", img], dir);
        await qemuOk(["check", img], dir);
        await qemuOk(["compare", "-f", "raw", "-F", "vmdk", "src.raw", img], dir);
      }));
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img create -b makes the vmdk child qemu-img makes; the chain reads alike both ways${NEEDS}`,
  ignore: ignore || !HAVE_QEMU_IO,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const side of ["q", "v"]) await Deno.mkdir(path.join(dir, side));
      for (const side of ["q", "v"]) {
        const cwd = path.join(dir, side);
        await qemuOk(["create", "-q", "-f", "vmdk", "base.vmdk", "4M"], cwd);
        await qemuOk(["-c", "write -P 7 0 200k", "base.vmdk"], cwd, "qemu-io");
      }
      // Same base CID on both sides, so the children can match byte for byte.
      Deno.copyFileSync(path.join(dir, "q", "base.vmdk"), path.join(dir, "v", "base.vmdk"));
      const args = ["create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "child.vmdk"];
      const [ours, theirs] = await Promise.all([
        vmkitOk(args, path.join(dir, "v")),
        qemuOk(args, path.join(dir, "q")),
      ]);
      assert.equal(ours.stdout, theirs.stdout);
      assert.deepEqual(
        maskedFiles(path.join(dir, "v")).get("child.vmdk"),
        maskedFiles(path.join(dir, "q")).get("child.vmdk"),
      );
      const cwd = path.join(dir, "v");
      await qemuOk(["-c", "write -P 9 100k 4k", "child.vmdk"], cwd, "qemu-io");
      for (const cmd of [["info", "--output=json"], ["map", "--output=json"]]) {
        const [a, b] = await Promise.all([
          vmkitOk([...cmd, "child.vmdk"], cwd),
          qemuOk([...cmd, "child.vmdk"], cwd),
        ]);
        assert.equal(a.stdout, b.stdout, cmd.join(" "));
      }
      await qemuOk(["convert", "-O", "raw", "child.vmdk", "q.raw"], cwd);
      await vmkitOk(["compare", "-f", "raw", "-F", "vmdk", "q.raw", "child.vmdk"], cwd);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img reads zeroed grains, VMware streams and hand-written descriptors as qemu-img${NEEDS}`,
  ignore: ignore || !HAVE_QEMU_IO,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await qemuOk(["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", "z.vmdk", "2M"], dir);
      await qemuOk(["-c", "write -P 7 0 1M", "-c", "write -z 128k 256k", "z.vmdk"], dir, "qemu-io");
      const data = new Uint8Array(3 << 20);
      crypto.getRandomValues(data.subarray(1000, 61_000));
      data.fill(0x5a, (2 << 20) + 512, (2 << 20) + 8192);
      Deno.writeFileSync(path.join(dir, "stream.vmdk"), vmwareStream(data));
      for (const img of ["z.vmdk", "stream.vmdk"]) {
        await qemuOk(["convert", "-O", "raw", img, `${img}.raw`], dir);
        await vmkitOk(["compare", "-f", "raw", "-F", "vmdk", `${img}.raw`, img], dir);
        const [a, b] = await Promise.all([
          vmkitOk(["map", "--output=json", img], dir),
          qemuOk(["map", "--output=json", img], dir),
        ]);
        assert.equal(a.stdout, b.stdout, img);
      }
      assert.deepEqual(readBytes(path.join(dir, "stream.vmdk.raw")), data);
      // A hand-written descriptor: extents found relative to its own directory, FLAT and VMFS.
      await Deno.mkdir(path.join(dir, "vm", "disks"), { recursive: true });
      Deno.writeFileSync(path.join(dir, "vm", "disks", "a.img"), data.subarray(0, 1 << 20));
      Deno.writeFileSync(path.join(dir, "vm", "b.img"), data.subarray(1 << 20, 3 << 20));
      Deno.writeTextFileSync(
        path.join(dir, "vm", "hand.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n" +
          'createType="monolithicFlat"\n# Extents\nRW 2048 FLAT "disks/a.img" 0\nRW 4096 VMFS "b.img"\n',
      );
      for (const cmd of [["info", "--output=json"], ["map", "--output=json"]]) {
        const [a, b] = await Promise.all([
          vmkitOk([...cmd, "vm/hand.vmdk"], dir),
          qemuOk([...cmd, "vm/hand.vmdk"], dir),
        ]);
        assert.equal(a.stdout, b.stdout, cmd.join(" "));
      }
      await vmkitOk(["compare", "-f", "raw", "-F", "vmdk", "stream.vmdk.raw", "vm/hand.vmdk"], dir);
    } finally {
      await cleanup();
    }
  },
});

/** Writes `bytes` at `offset` into `file`. */
function poke(file: string, offset: number, bytes: number[]): void {
  const f = Deno.openSync(file, { write: true });
  f.seekSync(offset, Deno.SeekMode.Start);
  f.writeSync(new Uint8Array(bytes));
  f.close();
}

Deno.test({
  name:
    `img info refuses damaged vmdk images with qemu-img's one-line error, file untouched${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const at = (n: string) => path.join(dir, n);
      const make = (name: string, ...opts: string[]) =>
        qemuOk(["create", "-q", "-f", "vmdk", ...opts, name, "1G"], dir);
      await Promise.all([
        make("missing.vmdk", "-o", "subformat=twoGbMaxExtentSparse"),
        make("truncated.vmdk"),
        make("granularity.vmdk"),
        make("version.vmdk"),
        make("gtes.vmdk"),
        make("footer.vmdk"),
        make("capacity.vmdk"),
      ]);
      Deno.removeSync(at("missing-s001.vmdk"));
      Deno.truncateSync(at("truncated.vmdk"), 2000);
      poke(at("granularity.vmdk"), 20, [0, 0, 0, 0x10]);
      poke(at("version.vmdk"), 4, [9]);
      poke(at("gtes.vmdk"), 44, [0, 4]);
      poke(at("footer.vmdk"), 56, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      poke(at("capacity.vmdk"), 12, [0, 0, 0, 0, 0, 0, 0, 0x10]);
      const text = (name: string, body: string) => Deno.writeTextFileSync(at(name), body);
      text("type.vmdk", 'version=1\nCID=1\ncreateType="foo"\n');
      text("nocreatetype.vmdk", "version=1\nCID=1\n");
      text("line.vmdk", 'version=1\nCID=1\ncreateType="monolithicFlat"\nRW 100 FLAT "x.img"\n');
      const names = [
        "missing.vmdk",
        "truncated.vmdk",
        "granularity.vmdk",
        "version.vmdk",
        "gtes.vmdk",
        "footer.vmdk",
        "type.vmdk",
        "nocreatetype.vmdk",
        "line.vmdk",
      ];
      await Promise.all(names.map(async (name) => {
        const before = readBytes(at(name));
        const [ours, theirs] = await Promise.all([
          runTool("vmkit", ["info", name], dir),
          runCommand("qemu-img", ["info", name], { cwd: dir }),
        ]);
        assert.equal(ours.code, 1, name);
        assert.equal(ours.stderr, theirs.stderr, name);
        assert.deepEqual(readBytes(at(name)), before, name);
      }));
      // QEMU wraps this capacity to a nonsense size; vmkit names the field instead.
      const big = await runTool("vmkit", ["info", "capacity.vmdk"], dir);
      assert.equal(big.code, 1);
      assert.match(big.stderr, /^qemu-img: Could not open 'capacity.vmdk': .*too large\n$/);
      // A grain pointing past the end of its file: qemu-img check's report and exit code.
      await qemuOk(["create", "-q", "-f", "vmdk", "eof.vmdk", "10M"], dir);
      const img = readBytes(at("eof.vmdk"));
      const gd = Number(new DataView(img.buffer).getBigUint64(56, true));
      const gt = new DataView(img.buffer).getUint32(gd * 512, true);
      poke(at("eof.vmdk"), gt * 512 + 4, [0, 0, 0x10, 0]);
      const [ours, theirs] = await Promise.all([
        runTool("vmkit", ["check", "eof.vmdk"], dir),
        runCommand("qemu-img", ["check", "eof.vmdk"], { cwd: dir }),
      ]);
      assert.deepEqual([ours.code, ours.stdout, ours.stderr], [
        theirs.code,
        theirs.stdout,
        theirs.stderr,
      ]);
      const measure = await runTool("vmkit", ["measure", "-O", "vmdk", "--size", "1G"], dir);
      const qMeasure = await runCommand("qemu-img", ["measure", "-O", "vmdk", "--size", "1G"], {
        cwd: dir,
      });
      assert.equal(measure.stderr, qMeasure.stderr);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "streamOptimized without the ffi permission falls back to node:zlib: a clean image" +
    ` of the same data${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      Deno.writeFileSync(path.join(dir, "text.raw"), textLike(300_000, 5));
      const args = (out: string) => [
        "convert",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        "text.raw",
        out,
      ];
      await qemuOk(args("q.vmdk"), dir);
      // Every permission vmkit needs but ffi.
      const noFfi = ["--allow-read", "--allow-write", "--allow-env"];
      const line = ["run", "--quiet", ...noFfi, MAIN, "img", ...args("v.vmdk")];
      const v = await runCommand(Deno.execPath(), line, { cwd: dir });
      assert.equal(v.code, 0, v.stderr);
      const check = await qemuOk(["check", "v.vmdk"], dir);
      assert.equal(check.stdout, "No errors were found on the image.\n");
      const compare = await qemuOk(["compare", "text.raw", "v.vmdk"], dir);
      assert.equal(compare.stdout, "Images are identical.\n");
      // Deno's own deflate picks other matches than the system zlib: this is the path the
      // fallback took (with the permission the files are equal but for the CID).
      assert.notDeepEqual(maskedFiles(dir).get("v.vmdk"), maskedFiles(dir).get("q.vmdk"));
    } finally {
      await cleanup();
    }
  },
});
