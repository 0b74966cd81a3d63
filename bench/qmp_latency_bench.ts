// QMP responsiveness: a query-status round trip while the guest is busy booting Linux, vmkit vs QEMU TCG

import * as path from "node:path";
import { INITRD, KERNEL, missingFiles } from "../tests/boot/guest_util.ts";
import { QmpClient } from "../tests/monitor/vm_util.ts";
import { have, median, printTable, ROOT, type Row, scratch, SHORT } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
/** Round trips measured per program, one every 50 ms. */
const ROUND_TRIPS = SHORT ? 20 : 60;
/** Host milliseconds after the QMP greeting before the first round trip (the kernel runs). */
const SETTLE_MS = 1500;

/** Milliseconds of the median query-status round trip, the guest booting the i386 kernel. */
async function medianRoundTripMs(program: string, args: string[], dir: string): Promise<number> {
  const socket = path.join(dir, `${path.basename(program)}.qmp`);
  const child = new Deno.Command(program, {
    args: [
      ...args,
      "-m",
      "256",
      "-kernel",
      KERNEL,
      "-initrd",
      INITRD,
      "-append",
      "console=ttyS0",
      "-display",
      "none",
      "-serial",
      "null",
      "-qmp",
      `unix:${socket},server=on,wait=off`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const qmp = await QmpClient.connect(socket);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const times: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const t0 = performance.now();
      const answer = await qmp.execute("query-status");
      times.push(performance.now() - t0);
      if (!("return" in answer)) throw new Error(`query-status: ${JSON.stringify(answer)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await qmp.execute("quit").catch(() => {});
    qmp.close();
    return median(times);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }
}

/** One row: the median round trip in milliseconds (smaller is better). */
export async function qmpLatencyRows(): Promise<Row[]> {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing) {
    console.log(`QMP latency benchmark skipped: ${missing}`);
    return [];
  }
  const { dir, cleanup } = await scratch();
  try {
    const qemu = have("qemu-system-i386")
      ? await medianRoundTripMs("qemu-system-i386", ["-accel", "tcg"], dir)
      : undefined;
    const vmkit = await medianRoundTripMs(Deno.execPath(), [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "system-x86_64",
    ], dir);
    return [{
      name: "query-status while Linux boots",
      unit: "ms (median)",
      qemu,
      vmkit,
      higherIsBetter: false,
    }];
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  printTable(
    "QMP: a command's round trip while the guest is busy, vmkit vs QEMU TCG",
    await qmpLatencyRows(),
  );
}
