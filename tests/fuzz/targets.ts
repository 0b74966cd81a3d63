// The images the fuzz suite damages: one table entry per format variant, with its metadata map

import * as path from "node:path";
import { runCommand } from "../test_util.ts";
import type { Region } from "./mutate.ts";

/** A valid image to mutate and where its metadata lies. */
export interface BaseImage {
  /** The file name the image was made under (its extension names cases). */
  fileName: string;
  bytes: Uint8Array;
  regions: Region[];
  /** Other files the image refers to (a backing file), copied next to each case. */
  companions: { name: string; bytes: Uint8Array }[];
}

/**
 * One format variant of the suite. Adding a format is one entry here: how to make a
 * valid image (with real qemu-img where it can) and, optionally, where its metadata
 * lies; without a map, the first 64 KiB and the last 512 bytes are the target.
 */
export interface FuzzTarget {
  /** A label for reports (`qcow2-v3`). */
  name: string;
  /** The vmkit format plugin that must open it (the suite skips a target whose plugin is absent). */
  format: string;
  /** Integers in the format's metadata are little-endian (VDI, VMDK, VHDX). */
  littleEndian: boolean;
  /** Makes the image in `dir` and returns its file name. */
  make(dir: string): Promise<string>;
  /** Where the metadata lies in `bytes`. */
  regions?(bytes: Uint8Array): Region[];
}

const MiB = 1 << 20;

async function ok(program: string, args: string[], cwd: string): Promise<void> {
  const r = await runCommand(program, args, { cwd });
  if (r.code !== 0) throw new Error(`${program} ${args.join(" ")}: ${r.stderr}${r.stdout}`);
}

function io(dir: string, format: string, file: string, commands: string[]): Promise<void> {
  return ok("qemu-io", ["-f", format, ...commands.flatMap((c) => ["-c", c]), file], dir);
}

/** Data in a few places, a zeroed range and an untouched gap: every kind of mapping. */
const DATA = [
  "write -P 0x11 0 64k",
  "write -P 0x22 100k 300k",
  "write -P 0x33 1M 64k",
  "write -P 0x44 3M 1k",
];

/** The same kinds of mapping within 1 MiB, for formats that store every byte. */
const SMALL_DATA = ["write -P 0x11 0 64k", "write -P 0x22 100k 300k", "write -P 0x44 900k 1k"];

/** A `make` that has qemu-img create `file` and qemu-io write `data` into it. */
function created(
  format: string,
  file: string,
  size: string,
  data: string[],
  createArgs: string[] = [],
): (dir: string) => Promise<string> {
  return async (dir) => {
    await ok("qemu-img", ["create", "-q", "-f", format, ...createArgs, file, size], dir);
    await io(dir, format, file, data);
    return file;
  };
}

/** The first 64 KiB and the last 512 bytes: headers and footers of any format. */
export function genericRegions(bytes: Uint8Array): Region[] {
  return [
    { name: "start", offset: 0, length: Math.min(bytes.length, 65536) },
    { name: "end", offset: Math.max(0, bytes.length - 512), length: Math.min(bytes.length, 512) },
  ];
}

function u64(v: DataView, at: number): number {
  return Number(v.getBigUint64(at));
}

/** The qcow2 header, extensions, L1/L2 tables, refcount table/blocks and snapshot table. */
export function qcow2Regions(bytes: Uint8Array): Region[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint32(4);
  const cs = 2 ** v.getUint32(20);
  const headerLength = version >= 3 ? v.getUint32(100) : 72;
  const regions: Region[] = [
    { name: "header", offset: 0, length: headerLength },
    { name: "header extensions", offset: headerLength, length: Math.min(cs, 4096) - headerLength },
  ];
  const l1Size = v.getUint32(36);
  const l1Offset = u64(v, 40);
  regions.push({ name: "L1 table", offset: l1Offset, length: l1Size * 8 });
  for (let i = 0; i < l1Size; i++) {
    const l2 = u64(v, l1Offset + i * 8) & 0x00fffffffffffe00;
    if (l2 !== 0) regions.push({ name: "L2 table", offset: l2, length: cs });
  }
  const rtOffset = u64(v, 48);
  const rtClusters = v.getUint32(56);
  regions.push({ name: "refcount table", offset: rtOffset, length: rtClusters * cs });
  for (let i = 0; i < (rtClusters * cs) / 8 && rtOffset + i * 8 + 8 <= bytes.length; i++) {
    const block = u64(v, rtOffset + i * 8);
    if (block !== 0) regions.push({ name: "refcount block", offset: block, length: cs });
  }
  const nbSnapshots = v.getUint32(60);
  const snapOffset = u64(v, 64);
  let at = snapOffset;
  for (let i = 0; i < nbSnapshots && at + 40 <= bytes.length; i++) {
    const extra = v.getUint32(at + 36);
    const idLen = v.getUint16(at + 12);
    const nameLen = v.getUint16(at + 14);
    const len = Math.ceil((40 + extra + idLen + nameLen) / 8) * 8;
    regions.push({ name: "snapshot table", offset: at, length: len });
    const snL1 = u64(v, at);
    regions.push({ name: "snapshot L1 table", offset: snL1, length: v.getUint32(at + 8) * 8 });
    at += len;
  }
  return regions.filter((r) => r.offset + r.length <= bytes.length && r.length > 0);
}

/** The VDI header and block map. */
export function vdiRegions(bytes: Uint8Array): Region[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bmapOffset = v.getUint32(0x154, true);
  const blocks = v.getUint32(0x180, true);
  return [
    { name: "header", offset: 0, length: 512 },
    { name: "block map", offset: bmapOffset, length: blocks * 4 },
  ].filter((r) => r.offset + r.length <= bytes.length);
}

/** The VHD footer (and its copy), the dynamic header, the BAT and block bitmaps. */
export function vpcRegions(bytes: Uint8Array): Region[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const footer = bytes.length - 512;
  const regions: Region[] = [{ name: "footer", offset: footer, length: 512 }];
  if (v.getUint32(footer + 60) !== 3) return regions; // fixed: the footer is all there is
  regions.push({ name: "footer copy", offset: 0, length: 512 });
  const dyn = u64(v, 16);
  regions.push({ name: "dynamic header", offset: dyn, length: 1024 });
  const bat = u64(v, dyn + 16);
  const entries = v.getUint32(dyn + 28);
  regions.push({ name: "BAT", offset: bat, length: entries * 4 });
  for (let i = 0; i < entries; i++) {
    const sector = v.getUint32(bat + i * 4);
    if (sector !== 0xffffffff) {
      regions.push({ name: "block bitmap", offset: sector * 512, length: 512 });
    }
  }
  return regions.filter((r) => r.offset + r.length <= bytes.length);
}

/** Every format variant the suite knows; a target whose plugin is not registered is skipped. */
export const TARGETS: readonly FuzzTarget[] = [
  {
    name: "raw",
    format: "raw",
    littleEndian: true,
    async make(dir) {
      await ok("qemu-img", ["create", "-q", "-f", "raw", "a.raw", "1M"], dir);
      await io(dir, "raw", "a.raw", SMALL_DATA);
      return "a.raw";
    },
  },
  {
    name: "qcow2-v3",
    format: "qcow2",
    littleEndian: false,
    regions: qcow2Regions,
    async make(dir) {
      await ok("qemu-img", ["create", "-q", "-f", "raw", "base.raw", "4M"], dir);
      await io(dir, "raw", "base.raw", ["write -P 0x99 2M 1M"]);
      await ok("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4k,backing_file=base.raw,backing_fmt=raw",
        "a.qcow2",
        "4M",
      ], dir);
      await io(dir, "qcow2", "a.qcow2", [...DATA, "write -z 2M 64k"]);
      await ok("qemu-img", ["snapshot", "-c", "one", "a.qcow2"], dir);
      await io(dir, "qcow2", "a.qcow2", ["write -P 0x55 8k 16k"]);
      await ok("qemu-img", ["snapshot", "-c", "two", "a.qcow2"], dir);
      return "a.qcow2";
    },
  },
  {
    name: "qcow2-v2",
    format: "qcow2",
    littleEndian: false,
    regions: qcow2Regions,
    async make(dir) {
      await ok("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "compat=0.10,cluster_size=512",
        "a.qcow2",
        "4M",
      ], dir);
      await io(dir, "qcow2", "a.qcow2", DATA);
      await ok("qemu-img", ["snapshot", "-c", "one", "a.qcow2"], dir);
      return "a.qcow2";
    },
  },
  {
    name: "qcow2-compressed-extended-l2",
    format: "qcow2",
    littleEndian: false,
    regions: qcow2Regions,
    async make(dir) {
      await ok("qemu-img", ["create", "-q", "-f", "raw", "src.raw", "4M"], dir);
      await io(dir, "raw", "src.raw", DATA);
      await ok("qemu-img", [
        "convert",
        "-c",
        "-O",
        "qcow2",
        "-o",
        "cluster_size=64k,extended_l2=on,refcount_bits=4",
        "src.raw",
        "a.qcow2",
      ], dir);
      await io(dir, "qcow2", "a.qcow2", ["write -P 0x66 200k 4k", "write -z 1M 32k"]);
      await Deno.remove(path.join(dir, "src.raw"));
      return "a.qcow2";
    },
  },
  {
    name: "vdi",
    format: "vdi",
    littleEndian: true,
    regions: vdiRegions,
    make: created("vdi", "a.vdi", "4M", DATA),
  },
  {
    name: "vpc-dynamic",
    format: "vpc",
    littleEndian: false,
    regions: vpcRegions,
    make: created("vpc", "a.vhd", "4M", DATA),
  },
  {
    name: "vpc-fixed",
    format: "vpc",
    littleEndian: false,
    regions: vpcRegions,
    make: created("vpc", "a.vhd", "1M", SMALL_DATA, ["-o", "subformat=fixed"]),
  },
  {
    name: "vmdk",
    format: "vmdk",
    littleEndian: true,
    make: created("vmdk", "a.vmdk", "4M", DATA),
  },
  {
    name: "vhdx",
    format: "vhdx",
    littleEndian: true,
    make: created("vhdx", "a.vhdx", "4M", DATA),
  },
  {
    name: "qcow",
    format: "qcow",
    littleEndian: false,
    make: created("qcow", "a.qcow", "4M", DATA),
  },
];

/** Makes a target's image and maps its metadata. */
export async function makeBase(target: FuzzTarget, dir: string): Promise<BaseImage> {
  const file = await target.make(dir);
  const bytes = await Deno.readFile(path.join(dir, file));
  const companions: BaseImage["companions"] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name !== file) {
      companions.push({ name: e.name, bytes: await Deno.readFile(path.join(dir, e.name)) });
    }
  }
  let regions: Region[];
  try {
    regions = target.regions ? target.regions(bytes) : genericRegions(bytes);
  } catch {
    regions = genericRegions(bytes);
  }
  return { fileName: file, bytes, regions, companions };
}

/** Bytes of virtual disk the in-process runner reads in full (beyond, it samples). */
export const READ_ALL_BYTES = 8 * MiB;
