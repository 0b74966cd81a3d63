// savevm, loadvm, delvm and info snapshots: the machine's state in the qcow2 disks'
// internal snapshots, its bytes in the first disk's VM state area, as QEMU keeps them

import { BlockBackend } from "../block/backend.ts";
import type { BlockNode, SnapshotInfo } from "../block/driver.ts";
import type { Machine } from "../machine.ts";
import { loadMachineState, saveMachineState, VmStateError } from "../vmstate.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";

/** One writable disk that takes part in snapshots. */
interface SnapshotDisk {
  id: string;
  node: BlockNode;
  backend: BlockBackend;
}

/** Bytes written to the VM state area at a time. */
const VMSTATE_WRITE_BYTES = 1 << 20;

const NO_VMSTATE_DISK = "no block device can store vmstate for snapshot";

/**
 * The disks savevm writes to, in drive order (the first takes the VM state), as QEMU's
 * bdrv_all_can_snapshot: every writable disk with a medium, each able to snapshot.
 */
function snapshotDisks(machine: Machine): SnapshotDisk[] {
  const out: SnapshotDisk[] = [];
  for (const d of machine.config.drives) {
    if (!d.node || d.readOnly || !(d.node instanceof BlockBackend)) continue;
    const node = d.node.root;
    if (node.readOnly) continue;
    if (!node.snapshotCreate || !node.writeVmState || !node.readVmState) {
      throw new Error(`Device '${d.id}' is writable but does not support snapshots`);
    }
    out.push({ id: d.id, node, backend: d.node });
  }
  if (out.length === 0) throw new Error(NO_VMSTATE_DISK);
  return out;
}

function findSnapshot(node: BlockNode, name: string): SnapshotInfo | undefined {
  const list = node.snapshots?.() ?? [];
  return list.find((s) => s.name === name) ?? list.find((s) => s.id === name);
}

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

/**
 * Waits until the machine's run loop is parked (after a pause) and no host I/O is in
 * flight, with the deferred work run: QEMU's vm_stop plus bdrv_drain_all.
 */
export async function quiesce(machine: Machine): Promise<void> {
  for (let i = 0; machine.loop.running; i++) {
    if (i > 60_000) throw new Error("The machine did not stop");
    await tick();
  }
  for (let i = 0; i < 100_000; i++) {
    machine.loop.flushDeferred();
    if (machine.loop.pendingIo === 0) {
      await tick(); // completions may queue more work
      machine.loop.flushDeferred();
      if (machine.loop.pendingIo === 0) return;
    }
    await tick();
  }
  throw new Error("Disk I/O did not finish");
}

/** Runs `work` with the machine stopped, as QEMU's savevm and loadvm stop the VM. */
async function stopped<T>(ctx: MonitorContext, work: () => Promise<T>): Promise<T> {
  const wasRunning = ctx.status === "running";
  if (wasRunning) ctx.stop();
  try {
    await quiesce(ctx.machine);
    return await work();
  } finally {
    if (wasRunning) ctx.cont();
  }
}

/** QEMU's default savevm name: `vm-YYYYMMDDHHMMSS` in local time. */
function defaultName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `vm-${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}${p(now.getHours())}${
    p(now.getMinutes())
  }${p(now.getSeconds())}`;
}

/**
 * Saves the stopped machine as snapshot `name` of every writable disk (an older one of
 * that name is replaced), the machine state in the first disk's VM state area.
 *
 * @returns the VM state's size in bytes
 */
export async function saveVm(machine: Machine, name: string): Promise<number> {
  const disks = snapshotDisks(machine);
  const stream = saveMachineState(machine);
  for (const d of disks) await d.backend.flush();
  for (const d of disks) {
    if (findSnapshot(d.node, name)) await d.node.snapshotDelete!(name);
  }
  const first = disks[0].node;
  const staging = new Uint8Array(VMSTATE_WRITE_BYTES);
  let fill = 0;
  let at = 0;
  for (const chunk of stream.chunks) {
    for (let off = 0; off < chunk.length;) {
      const n = Math.min(chunk.length - off, staging.length - fill);
      staging.set(chunk.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === staging.length) {
        await first.writeVmState!(at, staging);
        at += fill;
        fill = 0;
      }
    }
  }
  if (fill > 0) await first.writeVmState!(at, staging.subarray(0, fill));
  const now = Date.now();
  const common = {
    dateSec: Math.floor(now / 1000),
    dateNsec: (now % 1000) * 1e6,
    vmClockNs: Math.floor(machine.loop.nowNs),
  };
  for (const d of disks) {
    await d.node.snapshotCreate!(name, {
      ...common,
      vmStateSize: d.node === first ? stream.bytes : 0,
      icount: -1,
    });
    await d.node.flush();
  }
  return stream.bytes;
}

/**
 * Reverts every writable disk to snapshot `name` and loads the machine state from the
 * first one (the machine must be stopped and realized).
 */
export async function loadVm(machine: Machine, name: string): Promise<void> {
  const disks = snapshotDisks(machine);
  const found = disks.map((d) => findSnapshot(d.node, name));
  if (found.some((s) => !s)) {
    throw new Error(`Snapshot '${name}' does not exist in one or more devices`);
  }
  const size = found[0]!.vmStateSize;
  if (size === 0) {
    throw new Error("This is a disk-only snapshot. Revert to it  offline using qemu-img");
  }
  // Bounded by what this machine could have saved: its RAM, twice over, and 1 GiB.
  if (size > machine.config.ramBytes * 2 + 2 ** 30) {
    throw new VmStateError(`Snapshot '${name}' has a VM state of ${size} bytes, too large`);
  }
  for (const d of disks) await d.node.snapshotApply!(found[disks.indexOf(d)]!.id);
  const bytes = new Uint8Array(size);
  await disks[0].node.readVmState!(0, bytes);
  loadMachineState(machine, bytes);
}

/** Deletes snapshot `name` from every disk that has it (none having it is no error, as QEMU). */
export async function deleteVm(machine: Machine, name: string): Promise<void> {
  let disks: SnapshotDisk[];
  try {
    disks = snapshotDisks(machine);
  } catch (e) {
    // No disk to delete from: nothing to do, as QEMU (a disk that cannot is an error).
    if (e instanceof Error && e.message === NO_VMSTATE_DISK) return;
    throw e;
  }
  for (const d of disks) {
    if (findSnapshot(d.node, name)) await d.node.snapshotDelete!(name);
  }
}

/** The snapshots every writable disk has (by name), the first disk's entries. */
export function commonSnapshots(machine: Machine): SnapshotInfo[] {
  const disks = snapshotDisks(machine).filter((d) => d.node.snapshots);
  const first = disks[0].node.snapshots?.() ?? [];
  return first.filter((s) => disks.every((d) => findSnapshot(d.node, s.name)));
}

/**
 * Adds savevm, loadvm, delvm and `info snapshots` to `table`; `formatTable` lays the
 * list out as `qemu-img snapshot -l` does (the CLI owns that layout).
 */
export function addSnapshotCommands(
  table: CommandTable,
  formatTable: (snapshots: readonly SnapshotInfo[]) => string,
): void {
  table.addHmp({
    name: "savevm",
    params: "[tag]",
    help: "save a VM snapshot. If no tag is provided, a new snapshot is created",
    run: (ctx, args) =>
      stopped(ctx, async () => {
        await saveVm(ctx.machine, args[0] ?? defaultName(new Date()));
        return "";
      }),
  });
  table.addHmp({
    name: "loadvm",
    params: "tag",
    help: "restore a VM snapshot from its tag",
    run: (ctx, args) => {
      if (args.length !== 1) throw new Error("Parameter 'name' is missing");
      return stopped(ctx, async () => {
        await loadVm(ctx.machine, args[0]);
        return "";
      });
    },
  });
  table.addHmp({
    name: "delvm",
    params: "tag",
    help: "delete a VM snapshot from its tag",
    run: async (ctx, args) => {
      if (args.length !== 1) throw new Error("Parameter 'name' is missing");
      await deleteVm(ctx.machine, args[0]);
      return "";
    },
  });
  table.addInfo({
    name: "snapshots",
    params: "",
    help: "show the currently saved VM snapshots",
    run: (ctx) => {
      let list: SnapshotInfo[];
      try {
        list = commonSnapshots(ctx.machine);
      } catch {
        return `${NO_VMSTATE_DISK}\n`; // QEMU prints it as a plain line here
      }
      if (list.length === 0) return "There is no snapshot available.\n";
      const text = formatTable(list.map((s) => ({ ...s, id: "--" })));
      return `List of snapshots present on all disks:\n${text}\n`;
    },
  });
}
