// The VMDK text descriptor: extent lines, CID and parent fields, createType, and the text QEMU writes

import { ImageFormatError } from "../../../core/errors.ts";

/** The extent types a descriptor may name that vmkit opens. */
export type ExtentType = "FLAT" | "SPARSE" | "VMFS" | "VMFSSPARSE" | "SESPARSE";

/** One `RW <sectors> <type> "<file>" [offset]` line of a descriptor. */
export interface ExtentLine {
  sectors: number;
  type: ExtentType;
  filename: string;
  /** Sector offset of the data in a flat extent's file. */
  flatOffsetSectors: number;
}

/** The createType values a descriptor file may carry (QEMU's list). */
export const DESCRIPTOR_CREATE_TYPES = [
  "monolithicFlat",
  "vmfs",
  "vmfsSparse",
  "seSparse",
  "twoGbMaxExtentSparse",
  "twoGbMaxExtentFlat",
];

const EXTENT_TYPES = ["FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE"];

/** The descriptor text up to its first NUL (an embedded descriptor is NUL padded). */
export function descriptorText(bytes: Uint8Array): string {
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * The quoted value after `name="` at the first place `name` occurs, as QEMU's
 * vmdk_parse_description finds it; undefined when absent or unterminated.
 */
export function quotedValue(desc: string, name: string): string | undefined {
  const at = desc.indexOf(name);
  if (at < 0) return undefined;
  const start = at + name.length + 2;
  if (start >= desc.length) return undefined;
  const end = desc.indexOf('"', start);
  if (end < 0) return undefined;
  return desc.slice(start, end);
}

/** The `createType` of a descriptor, or the error QEMU gives for a missing one. */
export function createTypeOf(desc: string): string {
  const ct = quotedValue(desc, "createType");
  if (ct === undefined || ct.length >= 128) {
    throw new ImageFormatError("invalid VMDK image descriptor");
  }
  return ct;
}

/**
 * Reads `CID=` (or `parentCID=` when `parent`) as hexadecimal, as QEMU's vmdk_read_cid:
 * the first occurrence of the name, then the characters after `=`.
 */
export function readCid(desc: string, parent: boolean): number {
  const name = parent ? "parentCID" : "CID";
  const at = desc.indexOf(name);
  if (at < 0) throw new ImageFormatError("Invalid argument");
  const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)/.exec(desc.slice(at + name.length + 1));
  if (!m) throw new ImageFormatError("Invalid argument");
  // sscanf %x keeps the low 32 bits of a longer number.
  return Number(BigInt(`0x${m[1]}`) & 0xffffffffn);
}

/**
 * The descriptor with a new CID, as QEMU's vmdk_write_cid rewrites it: everything from
 * `parentCID` on is kept, the text between the first `CID=` and it becomes the new value.
 */
export function withCid(desc: string, cid: number): string {
  const tail = desc.indexOf("parentCID");
  if (tail < 0) throw new ImageFormatError("Invalid argument");
  const at = desc.indexOf("CID");
  return `${desc.slice(0, at + 4)}${(cid >>> 0).toString(16)}\n${desc.slice(tail)}`;
}

/** The parent file name hint, if the descriptor has one. */
export function parentFileNameHint(desc: string): string | undefined {
  const key = "parentFileNameHint";
  const at = desc.indexOf(key);
  if (at < 0) return undefined;
  const start = at + key.length + 2;
  const end = desc.indexOf('"', start);
  if (end < 0) throw new ImageFormatError("Invalid argument");
  return desc.slice(start, end);
}

const isSpace = (c: string | undefined) =>
  c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f";

/**
 * A small sscanf for `"%10s %lld %10s \"%511[^\n\r\"]\" %lld"` from `pos` in `s`:
 * returns how many fields matched and their values. Like sscanf, whitespace in the
 * pattern skips newlines too, so a flat extent's offset may sit on the next line, and a
 * blank line reads the extent line after it (which then counts twice, in QEMU as here).
 */
function scanExtentLine(s: string, pos: number) {
  let p = pos;
  const skipWs = () => {
    while (p < s.length && isSpace(s[p])) p++;
  };
  const word = () => {
    skipWs();
    const start = p;
    while (p < s.length && !isSpace(s[p]) && p - start < 10) p++;
    return p > start ? s.slice(start, p) : undefined;
  };
  const int = () => {
    skipWs();
    const m = /^[+-]?\d+/.exec(s.slice(p, p + 32));
    if (!m) return undefined;
    p += m[0].length;
    return Number(m[0]);
  };
  const out = { matches: 0, access: "", sectors: 0, type: "", fname: "", flatOffset: -1 };
  const access = word();
  if (access === undefined) return out;
  out.access = access;
  out.matches = 1;
  const sectors = int();
  if (sectors === undefined) return out;
  out.sectors = sectors;
  out.matches = 2;
  const type = word();
  if (type === undefined) return out;
  out.type = type;
  out.matches = 3;
  skipWs();
  if (s[p] !== '"') return out;
  p++;
  const start = p;
  while (p < s.length && p - start < 511 && s[p] !== "\n" && s[p] !== "\r" && s[p] !== '"') p++;
  if (p === start) return out;
  out.fname = s.slice(start, p);
  out.matches = 4;
  if (s[p] !== '"') return out;
  p++;
  const flatOffset = int();
  if (flatOffset === undefined) return out;
  out.flatOffset = flatOffset;
  out.matches = 5;
  return out;
}

/** The extent lines of a descriptor, checked as QEMU's vmdk_parse_extents checks them. */
export function parseExtentLines(desc: string): ExtentLine[] {
  const extents: ExtentLine[] = [];
  for (let p = 0; p < desc.length;) {
    const nl = desc.indexOf("\n", p);
    const next = nl < 0 ? desc.length : nl + 1;
    const m = scanExtentLine(desc, p);
    const line = () => desc.slice(p, nl < 0 ? desc.length : nl);
    const invalid = () => new ImageFormatError(`Invalid extent line: ${line()}`);
    if (m.matches >= 4 && m.access === "RW") {
      if (m.type === "FLAT") {
        if (m.matches !== 5 || m.flatOffset < 0) throw invalid();
      } else if (m.type === "VMFS") {
        if (m.matches !== 4) throw invalid();
        m.flatOffset = 0;
      } else if (m.matches !== 4) {
        throw invalid();
      }
      if (m.sectors > 0 && EXTENT_TYPES.includes(m.type)) {
        extents.push({
          sectors: m.sectors,
          type: m.type as ExtentType,
          filename: m.fname,
          flatOffsetSectors: Math.max(0, m.flatOffset),
        });
      }
    }
    p = next;
  }
  return extents;
}

/** What the descriptor QEMU writes for a new image says. */
export interface NewDescriptor {
  cid: number;
  parentCid: number;
  createType: string;
  /** The backing file name as given, for `parentFileNameHint`. */
  parentFileName?: string;
  /** Extent lines without their newline. */
  extentLines: string[];
  hwVersion: string;
  sizeBytes: number;
  adapterType: string;
  toolsVersion: string;
}

/** The descriptor text `qemu-img create -f vmdk` writes (vmdk_co_do_create's template). */
export function formatDescriptor(d: NewDescriptor): string {
  // VMware gives every non-IDE disk 255 heads.
  const heads = d.adapterType === "ide" ? 16 : 255;
  const cylinders = Math.floor(d.sizeBytes / (63 * heads * 512));
  const parentLine = d.parentFileName !== undefined
    ? `parentFileNameHint="${d.parentFileName}"`
    : "";
  return "# Disk DescriptorFile\n" +
    "version=1\n" +
    `CID=${(d.cid >>> 0).toString(16)}\n` +
    `parentCID=${(d.parentCid >>> 0).toString(16)}\n` +
    `createType="${d.createType}"\n` +
    // QEMU's template puts no newline of its own after the hint: it takes the blank line's.
    `${parentLine}\n` +
    "# Extent description\n" +
    d.extentLines.map((l) => `${l}\n`).join("") +
    "\n" +
    "# The Disk Data Base\n" +
    "#DDB\n" +
    "\n" +
    `ddb.virtualHWVersion = "${d.hwVersion}"\n` +
    `ddb.geometry.cylinders = "${cylinders}"\n` +
    `ddb.geometry.heads = "${heads}"\n` +
    'ddb.geometry.sectors = "63"\n' +
    `ddb.adapterType = "${d.adapterType}"\n` +
    `ddb.toolsVersion = "${d.toolsVersion}"\n`;
}
