// `commit DEVICE|all` (HMP): what a drive's image holds is copied into its backing file
// while the machine is stopped, as QEMU's bdrv_commit

import { BlockBackend } from "../block/backend.ts";
import type { DriveConfig } from "../machine.ts";
import { type CommandTable, extraneous, type MonitorContext } from "./commands.ts";
import { quiesce } from "./snapshots.ts";

// Commits one drive; the error text QEMU's hmp_commit prints, or "".
async function commitDrive(ctx: MonitorContext, drive: DriveConfig, name: string): Promise<string> {
  if (!(drive.node instanceof BlockBackend)) return `Device '${name}' has no medium\n`;
  const top = drive.node.root;
  // bdrv_commit: nothing to commit into is ENOTSUP.
  if (!top.backing) return `'commit' error for '${name}': Operation not supported\n`;
  if (!ctx.host.commitImage) return `'commit' error for '${name}': Operation not supported\n`;
  await drive.node.flush();
  try {
    await ctx.host.commitImage(top);
  } catch (e) {
    return `'commit' error for '${name}': ${e instanceof Error ? e.message : String(e)}\n`;
  }
  return "";
}

/** Adds the HMP `commit`. */
export function addCommitCommands(table: CommandTable): void {
  table.addHmp({
    name: "commit",
    params: "device|all",
    help: "commit changes to the disk images (if -snapshot is used) or backing files",
    run: async (ctx, args) => {
      const device = args[0];
      if (device === undefined) {
        return 'commit: block device name expected\nTry "help commit" for more information\n';
      }
      if (args.length > 1) return extraneous("commit", "commit");
      const drives = ctx.machine.config.drives;
      const chosen = device === "all"
        ? drives.filter((d) => d.node instanceof BlockBackend && d.node.root.backing)
        : drives.filter((d) => d.id === device);
      if (chosen.length === 0 && device !== "all") return `Device '${device}' not found\n`;
      // The guest's requests finish first and none start while the data moves (QEMU
      // blocks the guest the same way, without a STOP event).
      const wasRunning = !ctx.machine.paused;
      if (wasRunning) ctx.machine.pause();
      try {
        await quiesce(ctx.machine);
        let out = "";
        for (const d of chosen) out += await commitDrive(ctx, d, device);
        return out;
      } finally {
        if (wasRunning) ctx.machine.resume();
      }
    },
  });
}
