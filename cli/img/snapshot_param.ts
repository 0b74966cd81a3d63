// `-l snapshot_param` of convert and measure: read a source as one of its internal snapshots left it

import type { BlockNode } from "../../core/block/driver.ts";
import { UsageError, VmkitError } from "../../core/errors.ts";
import { parseKeyValueList } from "../../core/options.ts";
import type { ImgContext } from "./common.ts";

/** A parsed `-l`: `snapshot.id=...,snapshot.name=...` or a bare id-or-name. */
export type SnapshotParam =
  | { kind: "exact"; id?: string; name?: string }
  | { kind: "idOrName"; idOrName: string };

/** qemu-img's prefix for the snapshot options (SNAPSHOT_OPT_BASE). */
const SNAPSHOT_OPT_BASE = "snapshot.";

/**
 * Parses `-l` as qemu-img does: text starting with `snapshot.` is an option list of
 * `snapshot.id` and `snapshot.name` (the last of each wins); anything else names a
 * snapshot by id first, then by name.
 */
export function parseSnapshotParam(text: string, ctx: ImgContext): SnapshotParam {
  if (!text.startsWith(SNAPSHOT_OPT_BASE)) return { kind: "idOrName", idOrName: text };
  const param: { kind: "exact"; id?: string; name?: string } = { kind: "exact" };
  const failed = (detail: string) =>
    new UsageError(
      `${detail}\n${ctx.errorPrefix}: Failed in parsing snapshot param '${text}'`,
    );
  let items;
  try {
    items = parseKeyValueList(text);
  } catch (e) {
    throw failed(e instanceof Error ? e.message : String(e));
  }
  for (const item of items) {
    if (item.key === "snapshot.id") param.id = item.value;
    else if (item.key === "snapshot.name") param.name = item.value;
    else throw failed(`Invalid parameter '${item.key}'`);
  }
  return param;
}

/** A snapshot that could not be loaded, with qemu-img's message. */
export class SnapshotLoadError extends VmkitError {
  constructor(detail: string) {
    super(`Failed to load snapshot: ${detail}`, { exitCode: 1 });
    this.name = "SnapshotLoadError";
  }
}

/**
 * Makes `node` read as the snapshot `param` names (QEMU's `bdrv_snapshot_load_tmp`
 * and `bdrv_snapshot_load_tmp_by_id_or_name`); nothing is written.
 */
export async function loadSnapshotParam(node: BlockNode, param: SnapshotParam): Promise<void> {
  if (param.kind === "exact" && param.id === undefined && param.name === undefined) {
    throw new SnapshotLoadError("snapshot_id and name are both NULL");
  }
  if (!node.snapshotLoadTmp) {
    // qemu-img's backends have no device name, hence the empty quotes.
    throw new SnapshotLoadError(
      `Block format '${node.driver}' used by device '' does not support temporarily loading internal snapshots`,
    );
  }
  let found: boolean;
  try {
    found = param.kind === "exact"
      ? await node.snapshotLoadTmp(param.id, param.name)
      : await node.snapshotLoadTmp(param.idOrName, undefined) ||
        await node.snapshotLoadTmp(undefined, param.idOrName);
  } catch (e) {
    // A damaged snapshot (its L1 table out of bounds...) is reported as a failed load.
    if (e instanceof VmkitError) throw new SnapshotLoadError(e.message);
    throw e;
  }
  if (!found) throw new SnapshotLoadError("Can't find snapshot");
}
