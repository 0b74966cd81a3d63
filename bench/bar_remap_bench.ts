// PCI BAR and PAM remapping cost: a guest moving a BAR through 0xcf8/0xcfc, vmkit vs QEMU (qtest)

import type { Machine } from "../core/machine.ts";
import { createPcMachine } from "../plugins/machines/pc.ts";
import { testConfig } from "../plugins/machines/test_util.ts";
import { have, printTable, type Row, SHORT } from "./bench_util.ts";

const QEMU = "qemu-system-i386";
const MOVES = SHORT ? 2_000 : 20_000;
/** std VGA at 00:02.0 on both; its BAR2 is a 4 KiB MMIO window. */
const VGA_DEVFN = 0x10;
const BAR2 = 0x18;
const BASES = [0xfebf0000, 0xfebe0000];

/** One guest step: a config address write then a data write (a BAR move, or a no-op). */
interface Step {
  devfn: number;
  offset: number;
  value: number;
}

function script(kind: "move" | "noop" | "pam"): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < MOVES; i++) {
    if (kind === "move") steps.push({ devfn: VGA_DEVFN, offset: BAR2, value: BASES[i & 1] });
    // The vendor id is read-only: the same two port writes, with no remap behind them.
    else if (kind === "noop") steps.push({ devfn: VGA_DEVFN, offset: 0, value: 0 });
    // PAM1..PAM6 (config 0x5a-0x5f of the host bridge): flip 0xc0000-0xc3fff between
    // read-only and read-write shadow RAM.
    else steps.push({ devfn: 0, offset: 0x58, value: (i & 1 ? 0x3000 : 0x1000) << 16 });
  }
  return steps;
}

function cfgAddress(step: Step): number {
  return (0x80000000 | (step.devfn << 8) | step.offset) >>> 0;
}

function vmkitMachine(): Machine {
  const m = createPcMachine(testConfig({ firmware: new Uint8Array(256 * 1024), vga: "std" }));
  m.reset();
  m.io.out(0xcf8, 4, cfgAddress({ devfn: VGA_DEVFN, offset: 0x04, value: 0 }));
  m.io.out(0xcfc, 2, 0x0003);
  return m;
}

/** Microseconds per step of `kind` on vmkit (best of 3). */
function vmkitMicros(kind: "move" | "noop" | "pam"): number {
  const m = vmkitMachine();
  const steps = script(kind);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    for (const s of steps) {
      m.io.out(0xcf8, 4, cfgAddress(s));
      m.io.out(0xcfc, 4, s.value);
    }
    best = Math.min(best, (performance.now() - t0) * 1000 / steps.length);
  }
  return best;
}

/**
 * Microseconds per step of `kind` in QEMU, from the timestamps of its own qtest log
 * (the first command received to the last answer sent), so pipe latency is excluded.
 */
async function qemuMicros(kind: "move" | "noop" | "pam"): Promise<number> {
  const lines = [
    `outl 0xcf8 0x${cfgAddress({ devfn: VGA_DEVFN, offset: 0x04, value: 0 }).toString(16)}`,
    "outw 0xcfc 0x3",
  ];
  for (const s of script(kind)) {
    lines.push(`outl 0xcf8 0x${cfgAddress(s).toString(16)}`);
    lines.push(`outl 0xcfc 0x${s.value.toString(16)}`);
  }
  const child = new Deno.Command(QEMU, {
    args: ["-M", "pc", "-qtest", "stdio", "-display", "none", "-S", "-vga", "std"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Read the log while writing (a full pipe would stall QEMU) until the last answer;
  // QEMU's qtest does not exit promptly at end of input, so it is killed then.
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
  })();
  const parts: string[] = [];
  const decoder = new TextDecoder();
  let answers = 0;
  for await (const chunk of child.stderr) {
    const text = decoder.decode(chunk, { stream: true });
    parts.push(text);
    answers += text.split("[S +").length - 1;
    if (answers >= lines.length) break;
  }
  const log = parts.join("");
  await writing;
  child.kill("SIGKILL");
  await child.status;
  const times = [...log.matchAll(/^\[([RS]) \+([\d.]+)\]/gm)].map((m) => Number(m[2]));
  // Skip the two set-up commands (4 log lines), then first R to last S.
  const body = times.slice(4);
  if (body.length < 2 * lines.length - 4) {
    throw new Error(`qtest log too short: ${log.slice(0, 200)}`);
  }
  return (body[body.length - 1] - body[0]) * 1e6 / (lines.length / 2 - 1);
}

/** Rows: the cost of a BAR move and of a PAM change, no-op config writes subtracted. */
export async function barRemapRows(): Promise<Row[]> {
  const qemu = have(QEMU);
  const noopVmkit = vmkitMicros("noop");
  const noopQemu = qemu ? await qemuMicros("noop") : 0;
  const rows: Row[] = [];
  for (
    const [kind, name] of [["move", "BAR2 move (std VGA, 4 KiB MMIO)"], [
      "pam",
      "PAM segment mode change",
    ]] as const
  ) {
    const ours = vmkitMicros(kind) - noopVmkit;
    const theirs = qemu ? (await qemuMicros(kind)) - noopQemu : undefined;
    rows.push({
      name,
      unit: "µs/change",
      qemu: theirs === undefined ? undefined : Math.max(theirs, 0.01),
      vmkit: Math.max(ours, 0.01),
      higherIsBetter: false,
    });
  }
  rows.push({
    name: "config write without a remap (baseline)",
    unit: "µs/write",
    qemu: qemu ? noopQemu : undefined,
    vmkit: noopVmkit,
    higherIsBetter: false,
  });
  return rows;
}

if (import.meta.main) {
  printTable("PCI BAR / PAM remap through 0xcf8/0xcfc (guest config writes)", await barRemapRows());
}
