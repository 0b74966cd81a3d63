// The differential suite's table: qemu-img command lines run through vmkit and qemu-img 7.2 alike

/**
 * Named rules for differences that are on purpose; docs/img-differences.md gives the
 * reason for each. A case names the rules it needs; nothing else is masked.
 */
export type MaskRule =
  /** Files written with random ids (vmdk CID, vdi/vpc/vhdx UUIDs): compared by content, not bytes. */
  | "random-ids"
  /** Snapshots taken during the case carry the wall-clock time: files compared by content. */
  | "snapshot-clock"
  /** `bench` prints its own run time. */
  | "bench-time"
  /**
   * qemu-img commit (QEMU's mirror job) and convert -W copy in parallel, so clusters are
   * allocated in a different order from run to run: files compared by content.
   */
  | "parallel-allocation"
  /**
   * stdout is the tool's whole `--help` text, which lists what each tool implements
   * (its version line, commands and formats): compared as "this tool's `--help`".
   */
  | "help-text"
  /**
   * qemu-img names a node it made without a name `#block` + a counter + two random
   * digits (QEMU's id_generate): compared as `#blockN`.
   */
  | "node-name"
  /**
   * A vmdk descriptor's `CID=` value is random (QEMU's g_random_int at create and at the
   * first write): files compared byte for byte with that one value masked
   * ({@linkcode maskVmdkCid}).
   */
  | "vmdk-cid";

import { READ_ROWS } from "./differential_rows/read.ts";
import { WRITE_ROWS } from "./differential_rows/write.ts";
import { CHANGE_ROWS } from "./differential_rows/change.ts";
import { BITMAP_ROWS } from "./differential_rows/bitmap.ts";
import { OPTIONS_ROWS } from "./differential_rows/options.ts";
import { ODD_ROWS } from "./differential_rows/odd.ts";

const latin1 = new TextDecoder("latin1");

/**
 * `bytes` with the value of its vmdk descriptor's one `CID=` line replaced by `*`: in the
 * descriptor sectors a sparse header (`KDMV`) points at (the region keeps its size: the
 * shorter text is followed by zeroes, so every other byte is compared where it stands;
 * bytes after the text's NUL are left-overs of a longer CID and are not compared),
 * or in a file that is all descriptor. A file without exactly one CID line throws: the
 * mask never hides more than it names.
 */
export function maskVmdkCid(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sparse = bytes.length >= 44 && latin1.decode(bytes.subarray(0, 4)) === "KDMV";
  const start = sparse ? Number(v.getBigUint64(28, true)) * 512 : 0;
  const end = sparse ? start + Number(v.getBigUint64(36, true)) * 512 : bytes.length;
  if (end > bytes.length || start >= end) throw new Error("no vmdk descriptor to mask");
  // QEMU rewrites the descriptor in place with a new CID at the first write
  // (vmdk_write_cid): a value with fewer hex digits leaves the old text's last bytes after
  // the new text's NUL. The descriptor is the text before its first NUL.
  const region = latin1.decode(bytes.subarray(start, end));
  const nul = region.indexOf("\0");
  const text = sparse && nul >= 0 ? region.slice(0, nul) : region;
  const cid = /^CID=[0-9a-fA-F]+$/gm;
  const found = text.match(cid)?.length ?? 0;
  if (found !== 1) throw new Error(`${found} CID lines in the vmdk descriptor`);
  const masked = Uint8Array.from(text.replace(cid, "CID=*"), (ch) => ch.charCodeAt(0));
  if (!sparse) return masked;
  const out = bytes.slice();
  out.fill(0, start, end);
  out.set(masked, start);
  return out;
}

/** One row: command lines run in order in a fresh copy of the fixtures. */
export interface DiffCase {
  /** Each step is a qemu-img argument list (without `qemu-img`); names are relative. */
  steps: string[][];
  masks?: MaskRule[];
  /**
   * The case writes into fixture files (snapshot, amend, resize, rebase, commit):
   * they are copied for it instead of linked.
   */
  writes?: boolean;
}

/** Fixtures that name others as backing files: a case using one gets them too. */
export const FIXTURE_DEPENDENCIES: Record<string, string[]> = {
  "top.qcow2": ["mid.qcow2", "base.raw"],
  "mid.qcow2": ["base.raw"],
};

/** The groups of the table in the order they run; each comes from one file of differential_rows/. */
const GROUP_ORDER = [
  "info",
  "map",
  "check",
  "compare",
  "convert",
  "create",
  "dd",
  "measure",
  "snapshot",
  "amend",
  "resize",
  "rebase",
  "commit",
  "bench",
  "bitmap",
  "documented options",
  "qcow2 allocation and compression",
  "odd sizes and damaged files",
  "vmdk streamOptimized bytes",
];

const ROW_FILES: Record<string, DiffCase[]>[] = [
  READ_ROWS,
  WRITE_ROWS,
  CHANGE_ROWS,
  BITMAP_ROWS,
  OPTIONS_ROWS,
  ODD_ROWS,
];

/**
 * The table, grouped by subcommand, in {@linkcode GROUP_ORDER} (rows in differential_rows/).
 * Every group of every row file is in it: a group written in a file but left out of the
 * order stops the suite here instead of silently not running.
 */
export const DIFF_TABLE: Record<string, DiffCase[]> = tableInOrder();

function tableInOrder(): Record<string, DiffCase[]> {
  const all = Object.assign({}, ...ROW_FILES) as Record<string, DiffCase[]>;
  const missing = Object.keys(all).filter((group) => !GROUP_ORDER.includes(group));
  const unknown = GROUP_ORDER.filter((group) => !(group in all));
  if (missing.length || unknown.length) {
    throw new Error(
      `differential_table: groups not in GROUP_ORDER: ${missing.join(", ") || "none"}; ` +
        `in GROUP_ORDER but in no row file: ${unknown.join(", ") || "none"}`,
    );
  }
  return Object.fromEntries(GROUP_ORDER.map((group) => [group, all[group]]));
}
