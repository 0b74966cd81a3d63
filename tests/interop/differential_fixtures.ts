// The input images of the differential suite: written once by qemu-img and qemu-io (and some by vmkit), copied for every case

import * as path from "node:path";
import { runCommand, runVmkit } from "../test_util.ts";

/** Deterministic bytes (xorshift32), so both tools read the same odd-sized files. */
function patternBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Words of pseudo-random letters: compressible, but not trivially (deflate's choices show). */
export function textLike(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = seed | 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const words = Array.from({ length: 300 }, () => {
    const n = 2 + (next() % 8);
    return Array.from({ length: n }, () => 97 + (next() % 16));
  });
  for (let i = 0; i < bytes;) {
    for (const c of words[next() % words.length]) if (i < bytes) out[i++] = c;
    if (i < bytes) out[i++] = next() % 12 === 0 ? 10 : 32;
  }
  return out;
}

/** A raw file with data extents at `at` (each `bytes` long) and holes elsewhere. */
function sparseRaw(file: string, size: number, at: number[], bytes = 8192): void {
  const f = Deno.openSync(file, { write: true, create: true, truncate: true });
  try {
    f.truncate(size);
    for (const [i, offset] of at.entries()) {
      f.seekSync(offset, Deno.SeekMode.Start);
      f.writeSync(patternBytes(bytes, offset + i + 7));
    }
  } finally {
    f.close();
  }
}

async function sh(dir: string, program: string, args: string[]): Promise<void> {
  const r = await runCommand(program, args, { cwd: dir });
  if (r.code !== 0) throw new Error(`${program} ${args.join(" ")}: ${r.stderr}`);
}

const img = (dir: string, ...args: string[]) => sh(dir, "qemu-img", args);
const io = (dir: string, file: string, ...commands: string[]) =>
  sh(dir, "qemu-io", ["-f", "qcow2", ...commands.flatMap((c) => ["-c", c]), file]);

/** Flips bytes of a file in place (damaged-image fixtures). */
function patch(file: string, offset: number, bytes: number[]): void {
  const f = Deno.openSync(file, { write: true });
  try {
    f.seekSync(offset, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array(bytes));
  } finally {
    f.close();
  }
}

/**
 * Builds every fixture in `dir`. Snapshots are taken here, once, so both tools see
 * the same dates; each case works on its own copy.
 */
export async function buildFixtures(dir: string): Promise<void> {
  // raw: odd sizes, sparse, tiny
  Deno.writeFileSync(path.join(dir, "odd.raw"), patternBytes(1000, 1));
  Deno.writeFileSync(path.join(dir, "odd2.raw"), patternBytes(100_000, 2));
  sparseRaw(path.join(dir, "sparse.raw"), 4 << 20, [0, 65536 * 3, 2 << 20, (4 << 20) - 8192]);
  sparseRaw(path.join(dir, "hole.raw"), 5000, []);
  Deno.writeFileSync(path.join(dir, "empty.raw"), new Uint8Array(0));
  // Data islands of odd sizes and offsets, some with zero runs inside, written whole (no
  // holes): -S sizes that are not a multiple of 4 KiB split them by qemu-img's rules.
  const islands = new Uint8Array(1 << 20);
  for (
    const [at, bytes] of [
      [1000, 700],
      [5000, 3000],
      [20000, 100],
      [30720, 512],
      [40000, 10000],
      [
        69632,
        1,
      ],
      [200000, 5000],
      [300000, 70000],
    ]
  ) islands.set(patternBytes(bytes, at).map((b) => b | 1), at);
  islands.fill(0, 45000, 45000 + 3072);
  islands.fill(0, 310000, 310000 + 1536);
  islands.fill(0, 330000, 330000 + 6144);
  Deno.writeFileSync(path.join(dir, "islands.raw"), islands);
  // Compression and allocation rows: text that deflate packs by its own choices (odd
  // size, so the last cluster is short), and 9 MiB of noise, more than a 512-byte-
  // cluster image's first refcount table covers.
  const text = textLike(3 * 1048576 + 5123, 11);
  for (let at = 1 << 20; at < (1 << 20) + 200_000; at += 4096) {
    text.set(patternBytes(700, at), at); // incompressible spots
  }
  Deno.writeFileSync(path.join(dir, "text.raw"), text);
  Deno.writeFileSync(path.join(dir, "noise.raw"), patternBytes(9 << 20, 5));

  await Promise.all([
    // qcow2 written by qemu-io: zeroes and discards inside allocated data
    (async () => {
      await img(dir, "create", "-q", "-f", "qcow2", "a.qcow2", "4M");
      await io(
        dir,
        "a.qcow2",
        "write -P 1 0 1M",
        "write -z 64k 64k",
        "discard 256k 128k",
        "write -z 300k 8k",
        "discard 520k 4k",
        "write -P 2 3M 4k",
      );
    })(),
    // 4 KiB clusters with partial writes
    (async () => {
      await img(dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "c4k.qcow2", "1M");
      await io(
        dir,
        "c4k.qcow2",
        "write -P 1 1000 3000",
        "write -P 2 10000 100",
        "write -P 3 16384 8192",
        "write -z 20000 100",
        "discard 32k 4k",
      );
    })(),
    // metadata preallocation, with a write and a zeroed cluster
    (async () => {
      await img(
        dir,
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        "pre.qcow2",
        "2M",
      );
      await io(dir, "pre.qcow2", "write -P 1 64k 64k", "write -z 192k 64k");
    })(),
    // extended L2 entries, subcluster writes
    (async () => {
      await img(dir, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "ext.qcow2", "4M");
      await io(
        dir,
        "ext.qcow2",
        "write -P 1 0 5k",
        "write -P 2 70k 2k",
        "write -z 80k 16k",
        "discard 2k 2k",
      );
    })(),
    // internal snapshots, then more writes
    (async () => {
      await img(dir, "create", "-q", "-f", "qcow2", "snap.qcow2", "8M");
      await io(dir, "snap.qcow2", "write -P 1 0 1M");
      await img(dir, "snapshot", "-c", "first", "snap.qcow2");
      await io(dir, "snap.qcow2", "write -P 2 1M 2M", "write -z 0 64k");
      await img(dir, "snapshot", "-c", "second", "snap.qcow2");
      await io(dir, "snap.qcow2", "discard 1M 1M");
    })(),
    // a three-deep chain: raw <- qcow2 <- qcow2, the middle one shorter than the top
    (async () => {
      Deno.writeFileSync(path.join(dir, "base.raw"), patternBytes(3 << 20, 3));
      await img(
        dir,
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        "mid.qcow2",
        "4M",
      );
      await io(dir, "mid.qcow2", "write -P 5 1M 100k", "write -z 2M 64k");
      await img(
        dir,
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        "top.qcow2",
        "8M",
      );
      await io(dir, "top.qcow2", "write -z 0 64k", "write -P 3 5M 64k", "write -P 4 768k 4k");
    })(),
    // other formats, written by qemu-img from the sparse raw file
    (async () => {
      sparseRaw(path.join(dir, "src.raw"), 4 << 20, [0, 65536 * 3, 2 << 20, (4 << 20) - 8192]);
      await Promise.all([
        img(dir, "convert", "-O", "vmdk", "src.raw", "v.vmdk"),
        img(dir, "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", "src.raw", "so.vmdk"),
        img(dir, "convert", "-O", "vdi", "src.raw", "v.vdi"),
        img(dir, "convert", "-O", "vpc", "src.raw", "v.vpc"),
        img(dir, "convert", "-O", "vhdx", "src.raw", "v.vhdx"),
        img(dir, "convert", "-c", "-O", "qcow2", "src.raw", "comp.qcow2"),
        img(dir, "convert", "-O", "qcow", "src.raw", "v.qcow"),
      ]);
    })(),
  ]);

  // Written by vmkit: qemu-img must read them as vmkit does.
  const vm = await runVmkit(["img", "convert", "-O", "qcow2", "sparse.raw", "vm.qcow2"], {
    cwd: dir,
  });
  if (vm.code !== 0) throw new Error(`vmkit convert: ${vm.stderr}`);
  const vms = await runVmkit(["img", "snapshot", "-c", "vsnap", "vm.qcow2"], { cwd: dir });
  if (vms.code !== 0) throw new Error(`vmkit snapshot: ${vms.stderr}`);

  // Damaged files: a truncated qcow2, a bad L1 entry, a bad magic, a vmdk descriptor with garbage
  Deno.copyFileSync(path.join(dir, "a.qcow2"), path.join(dir, "trunc.qcow2"));
  Deno.truncateSync(path.join(dir, "trunc.qcow2"), 200_000);
  Deno.copyFileSync(path.join(dir, "a.qcow2"), path.join(dir, "badl1.qcow2"));
  // The L1 table of a fresh 64 KiB-cluster image sits at 0x30000; point entry 0 past the end.
  patch(path.join(dir, "badl1.qcow2"), 0x30000, [0x80, 0, 0, 0x10, 0, 0, 0, 0]);
  Deno.copyFileSync(path.join(dir, "a.qcow2"), path.join(dir, "badmagic.qcow2"));
  patch(path.join(dir, "badmagic.qcow2"), 0, [0x51, 0x46, 0x49, 0x00]);
  Deno.writeFileSync(
    path.join(dir, "bad.vmdk"),
    new TextEncoder().encode('# Disk DescriptorFile\nversion=1\ncreateType="nonsense"\n'),
  );
}
