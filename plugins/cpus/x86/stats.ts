// Run statistics of one x86 CPU for performance work (VMKIT_CPU_STATS=1): where the time goes

import type { BlockCache } from "./jit/dispatch.ts";
import type { CpuCore } from "./state.ts";

/** Whether `VMKIT_CPU_STATS` asks for statistics (read once per CPU). */
export function statsFromEnvironment(): boolean {
  try {
    const v = Deno.env.get("VMKIT_CPU_STATS");
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false; // no --allow-env
  }
}

/**
 * Counters one CPU keeps while statistics are on: host time inside `run`, time between
 * a halt and the next `run` (the guest idles, devices and timers run), and the share of
 * instructions translated code retired. {@linkcode CpuStats.report} prints them to
 * stderr as one JSON line per host second, cumulative, so a run's phases can be told
 * apart by time.
 */
export class CpuStats {
  readonly #index: number;
  #t0 = performance.now();
  #lastReport = 0;
  runMs = 0;
  runs = 0;
  /** Host ms from a run that ended in a halt to the next run. */
  haltGapMs = 0;
  #haltedAt = -1;

  constructor(index: number) {
    this.#index = index;
  }

  /** Marks the start of a `run` call; returns its start time. */
  enter(): number {
    const now = performance.now();
    if (this.#haltedAt >= 0) {
      this.haltGapMs += now - this.#haltedAt;
      this.#haltedAt = -1;
    }
    return now;
  }

  /** Marks the end of a `run` call that started at `t0`. */
  leave(t0: number, halted: boolean, c: CpuCore, blocks: BlockCache | null): void {
    const now = performance.now();
    this.runMs += now - t0;
    this.runs++;
    if (halted) this.#haltedAt = now;
    if (now - this.#lastReport >= 1000) {
      this.#lastReport = now;
      this.report(c, blocks);
    }
  }

  /** Prints the cumulative counters as one JSON line on stderr. */
  report(c: CpuCore, blocks: BlockCache | null): void {
    const line = {
      cpu: this.#index,
      wallMs: Math.round(performance.now() - this.#t0),
      runMs: Math.round(this.runMs),
      haltGapMs: Math.round(this.haltGapMs),
      runs: this.runs,
      retired: c.retired,
      blockRetired: blocks?.blockRetired ?? 0,
      blockEntries: blocks?.blockEntries ?? 0,
      translated: blocks?.translated ?? 0,
      invalidated: blocks?.invalidated ?? 0,
      compileMs: Math.round(blocks?.compileMs ?? 0),
      wasmRetired: blocks?.wasm?.retired ?? 0,
      wasmEntries: blocks?.wasm?.entries ?? 0,
      wasmChained: blocks?.wasm?.chained ?? 0,
      wasmRegions: blocks?.wasm?.regions ?? 0,
      wasmCompileMs: Math.round(blocks?.wasm?.compileMs ?? 0),
      wasmKiB: Math.round((blocks?.wasm?.bytes ?? 0) / 1024),
      eip: c.eip >>> 0,
      cpl: c.cpl,
      pm: c.cr0 & 1,
      pg: c.cr0 >>> 31,
      code32: c.code32 ? 1 : 0,
    };
    console.error(`VMKIT-CPU-STATS ${JSON.stringify(line)}`);
  }
}
