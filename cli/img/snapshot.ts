// `img snapshot`: list, create, apply and delete internal snapshots, with qemu-img's messages

import type { BlockNode } from "../../core/block/driver.ts";
import { UsageError, VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { writeErr, writeOut } from "../output.ts";
import { closeQuietly, hasOpt, type ImgCommand, type ImgContext, openImage } from "./common.ts";
import { snapshotTable } from "../../core/block/snapshot_table.ts";

type Action = "l" | "c" | "a" | "d";

/** qemu-img's `Could not <verb> snapshot 'name': <detail>`. */
function failure(verb: string, name: string, detail: unknown): VmkitError {
  const cause = detail instanceof Error ? detail : new VmkitError(String(detail));
  if (!(cause instanceof VmkitError)) {
    return new VmkitError(`Could not ${verb} snapshot '${name}': ${cause.message}`);
  }
  return new VmkitError(`Could not ${verb} snapshot '${name}'`, { cause });
}

/** The warning qemu-img prints when it probed a raw image it opened for writing. */
function warnProbedRaw(filename: string): void {
  writeErr(
    `WARNING: Image format was not specified for '${filename}' and probing guessed raw.\n` +
      "         Automatically detecting the format is dangerous for raw images, " +
      "write operations on block 0 will be restricted.\n" +
      "         Specify the 'raw' format explicitly to remove the restrictions.\n",
  );
}

async function act(
  node: BlockNode,
  action: Action,
  name: string,
  probedRaw: boolean,
): Promise<void> {
  switch (action) {
    case "l": {
      const list = node.snapshots?.() ?? [];
      // Nothing at all is printed for an image without snapshots.
      if (list.length > 0) writeOut(`Snapshot list:\n${snapshotTable(list)}\n`);
      return;
    }
    case "c":
      if (!node.snapshotCreate) throw failure("create", name, "-95 (Operation not supported)");
      try {
        await node.snapshotCreate(name);
      } catch (e) {
        throw failure("create", name, e);
      }
      return;
    case "a":
      if (!node.snapshotApply) {
        // QEMU falls back to the protocol node and reopens the format, warning again.
        if (probedRaw) warnProbedRaw(node.filename);
        throw failure("apply", name, "Block driver does not support snapshots");
      }
      try {
        await node.snapshotApply(name);
      } catch (e) {
        throw failure("apply", name, e);
      }
      return;
    case "d": {
      // qemu-img looks the snapshot up by name only, then deletes it by id and name.
      const found = (node.snapshots?.() ?? []).find((s) => s.name === name);
      if (found === undefined || !node.snapshotDelete) {
        throw failure("delete", name, "snapshot not found");
      }
      try {
        await node.snapshotDelete(found.id);
      } catch (e) {
        throw failure("delete", name, e);
      }
    }
  }
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "la:c:d:hqU", [
    { name: "help", hasArg: false, short: "h" },
    { name: "quiet", hasArg: false, short: "q" },
    { name: "force-share", hasArg: false, short: "U" },
    { name: "image-opts", hasArg: false },
    { name: "object", hasArg: true },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  let action: Action | undefined;
  let name = "";
  for (const o of opts) {
    if (o.name !== "l" && o.name !== "c" && o.name !== "a" && o.name !== "d") continue;
    if (action !== undefined) {
      throw new UsageError(
        `Cannot mix '-l', '-a', '-c', '-d'\nTry '${ctx.program} --help' for more information`,
      );
    }
    action = o.name;
    name = o.value;
  }
  if (positional.length !== 1) {
    throw new UsageError(
      `Expecting one image file name\nTry '${ctx.program} --help' for more information`,
    );
  }
  const filename = positional[0];
  const forceShare = hasOpt(opts, "U");
  const readOnly = action === "l";
  if (forceShare && !readOnly) {
    throw new VmkitError(
      `Could not open '${filename}': force-share=on can only be used with read-only images`,
    );
  }
  const imageOpts = hasOpt(opts, "image-opts");
  const node = await openImage(ctx, filename, { readOnly, forceShare, imageOpts });
  try {
    const probedRaw = node.driver === "raw" && !imageOpts;
    if (action !== undefined) await act(node, action, name, probedRaw);
    await node.flush();
  } finally {
    await closeQuietly(node);
  }
  return 0;
}

/** The `snapshot` subcommand. */
export const snapshotCommand: ImgCommand = {
  name: "snapshot",
  synopsis:
    "snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
  run,
};
