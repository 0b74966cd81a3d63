// Helpers for board tests: a registry with the built-in devices and a CPU stand-in

import type { CpuBackend, InterruptSource, RunExit } from "../../core/cpu.ts";
import type { MachineConfig } from "../../core/machine.ts";
import { Registry } from "../../core/plugin.ts";
import { DEVICE_PLUGINS } from "../devices/mod.ts";

/** A registry holding every built-in device. */
export function deviceRegistry(): Registry {
  return new Registry().addAll(DEVICE_PLUGINS);
}

/** A CPU that never runs: for tests that drive devices through ports and memory. */
export class IdleCpu implements CpuBackend {
  readonly arch = "x86";
  readonly model = "idle";
  instructionsRetired = 0;
  halted = true;
  source: InterruptSource | null = null;
  resets = 0;
  reset(): void {
    this.resets++;
  }
  run(_maxInstructions: number): RunExit {
    return 2 as RunExit;
  }
  setInterruptSource(source: InterruptSource | null): void {
    this.source = source;
  }
  raiseNmi(): void {}
  requestExit(): void {}
  requestReset(): void {}
  registers(): Record<string, number> {
    return {};
  }
}

/** A machine config for tests: 32 MiB, one CPU from `cpu`, no drives. */
export function testConfig(overrides: Partial<MachineConfig> = {}): MachineConfig {
  return {
    ramBytes: 32 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    registry: deviceRegistry(),
    createCpu: () => new IdleCpu(),
    ...overrides,
  };
}
