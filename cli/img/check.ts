// `img check`: metadata consistency, repair, and qemu-img's report and exit codes

import type { CheckResult, RepairMode } from "../../core/block/driver.ts";
import { VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { qdictOrder } from "./qdict_order.ts";
import { type Json, qemuJson, writeErr, writeOut } from "../output.ts";
import {
  closeQuietly,
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
  outputFormat,
  STANDARD_LONG,
} from "./common.ts";

/** qemu-img check's exit codes. */
export const CHECK_OK = 0;
export const CHECK_FAILED = 1;
export const CHECK_CORRUPT = 2;
export const CHECK_LEAKS = 3;
export const CHECK_NOT_SUPPORTED = 63;

/** `%.2f` of a percentage as glibc prints it: an exact tie rounds to even (3.125 -> 3.12). */
function percent(part: number, whole: number): string {
  const value = whole ? (part * 100) / whole : 0;
  const scaled = value * 100;
  if (Number.isInteger(scaled * 2) && !Number.isInteger(scaled)) {
    const down = Math.floor(scaled);
    return ((down % 2 === 0 ? down : down + 1) / 100).toFixed(2);
  }
  return value.toFixed(2);
}

/** The human report, as qemu-img prints it after the driver's own lines. */
export function checkHuman(r: CheckResult, quiet: boolean): string {
  const out: string[] = [];
  if (r.corruptionsFixed || r.leaksFixed) {
    // Printed by the repair pass before the double check.
  }
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) {
    if (!quiet) out.push("No errors were found on the image.");
  } else {
    if (r.corruptions) {
      out.push(
        `\n${r.corruptions} errors were found on the image.\n` +
          "Data may be corrupted, or further writes to the image may corrupt it.",
      );
    }
    if (r.leaks) {
      out.push(
        `\n${r.leaks} leaked clusters were found on the image.\n` +
          "This means waste of disk space, but no harm to data.",
      );
    }
    if (r.checkErrors) {
      out.push(`\n${r.checkErrors} internal errors have occurred during the check.`);
    }
  }
  if (!quiet && r.totalClusters && r.allocatedClusters) {
    out.push(
      `${r.allocatedClusters}/${r.totalClusters} = ${
        percent(r.allocatedClusters, r.totalClusters)
      }% allocated, ${percent(r.fragmentedClusters ?? 0, r.allocatedClusters)}% fragmented, ${
        percent(r.compressedClusters ?? 0, r.allocatedClusters)
      }% compressed clusters`,
    );
  }
  if (!quiet && r.imageEndOffset) out.push(`Image end offset: ${r.imageEndOffset}`);
  return out.length ? out.join("\n") + "\n" : "";
}

/** The JSON report, with qemu-img's field order. */
export function checkJson(r: CheckResult, filename: string, format: string): Json {
  const obj: Record<string, Json | undefined> = {
    "image-end-offset": r.imageEndOffset || undefined,
    "total-clusters": r.totalClusters,
    "check-errors": r.checkErrors,
    "leaks": r.leaks || undefined,
    "leaks-fixed": r.leaksFixed || undefined,
    "corruptions": r.corruptions || undefined,
    "corruptions-fixed": r.corruptionsFixed || undefined,
    "allocated-clusters": r.allocatedClusters || undefined,
    "fragmented-clusters": r.fragmentedClusters || undefined,
    "compressed-clusters": r.compressedClusters || undefined,
    "filename": filename,
    "format": format,
  };
  // qemu-img builds this object as a QDict: its keys print in hash order.
  const present: Record<string, Json> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) present[k] = v;
  return qdictOrder(present) as Json;
}

/** The exit code for a finished check. */
export function checkExitCode(r: CheckResult): number {
  if (r.checkErrors) return CHECK_FAILED;
  if (r.corruptions) return CHECK_CORRUPT;
  if (r.leaks) return CHECK_LEAKS;
  return CHECK_OK;
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hf:r:T:qU", [
    ...STANDARD_LONG,
    { name: "repair", hasArg: true, short: "r" },
    { name: "output", hasArg: true },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const output = outputFormat(opts);
  if (positional.length !== 1) throw new ErrorExit("Expecting one image file name");
  const repairText = lastOpt(opts, "r");
  let repair: RepairMode = "none";
  if (repairText !== undefined) {
    if (repairText !== "leaks" && repairText !== "all") {
      throw new ErrorExit(
        `Unknown option value for -r (expecting 'leaks' or 'all'): ${repairText}`,
      );
    }
    repair = repairText;
  }
  const quiet = hasOpt(opts, "q");
  const filename = positional[0];
  const node = await openImage(ctx, filename, {
    format: lastOpt(opts, "f"),
    imageOpts: hasOpt(opts, "image-opts"),
    readOnly: repair === "none",
    forceShare: hasOpt(opts, "U"),
    cache: lastOpt(opts, "T"),
    // Check mode, as QEMU's BDRV_O_CHECK: a repair opens a corrupt image read-write without the
    // automatic dirty repair, and a format opens damage it would refuse (vhdx BAT) to report it.
    formatOptions: { "x-check": true },
  });
  try {
    if (!node.check) {
      throw new VmkitError("This image format does not support checks", {
        exitCode: CHECK_NOT_SUPPORTED,
      });
    }
    let result: CheckResult;
    try {
      result = await node.check(repair);
    } catch (e) {
      // A driver that cannot do this kind of check says so with exit code 63, as QEMU's.
      if (e instanceof VmkitError && e.exitCode === CHECK_NOT_SUPPORTED) throw e;
      throw new VmkitError("Check failed", { cause: e, exitCode: CHECK_FAILED });
    }
    for (const line of result.messages) writeErr(line + "\n");
    if (result.failed) {
      throw new VmkitError(`Check failed: ${result.failed}`, { exitCode: CHECK_FAILED });
    }
    if (repair !== "none" && (result.corruptionsFixed || result.leaksFixed)) {
      if (output === "human" && !quiet) {
        writeOut(
          "The following inconsistencies were found and repaired:\n\n" +
            `    ${result.leaksFixed} leaked clusters\n    ${result.corruptionsFixed} corruptions\n\n` +
            "Double checking the fixed image now...\n",
        );
      }
      const fixed = { corruptionsFixed: result.corruptionsFixed, leaksFixed: result.leaksFixed };
      result = { ...(await node.check("none")), ...fixed };
      for (const line of result.messages) writeErr(line + "\n");
    }
    if (output === "json") writeOut(qemuJson(checkJson(result, filename, node.driver)) + "\n");
    else writeOut(checkHuman(result, quiet));
    return checkExitCode(result);
  } finally {
    await closeQuietly(node);
  }
}

/** The `check` subcommand. */
export const checkCommand: ImgCommand = {
  name: "check",
  synopsis: "check [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename",
  run,
};
