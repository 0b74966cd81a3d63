// Test helpers: a bare flat 32-bit machine that runs the same guest with and without translation

import assert from "node:assert/strict";
import { RunExit } from "../../../../core/cpu.ts";
import { AddressSpace } from "../../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../../core/memory/port_io.ts";
import { X86Cpu } from "../cpu.ts";
import { resetPrefixes } from "../decode.ts";
import { findModel } from "../models.ts";
import { setSegCache } from "../segmentation.ts";
import { allocateWasmRam } from "../wasm/ram.ts";
import { HOT_THRESHOLD as JS_HOT_THRESHOLD } from "./dispatch.ts";
import { CR0_PE, CS } from "../state.ts";

/** What one run of a guest left behind. */
export interface FlatRun {
  exits: number[];
  registers: Record<string, number>;
  retired: number;
  ram: Uint8Array;
  /** Bytes written to COM1 and to the debug-exit port 0xF4. */
  output: number[];
  cpu: X86Cpu;
}

/**
 * Runs `code` loaded at `load` from `entry` in flat 32-bit protected mode (CPL 0, every
 * segment 0..4 GiB) with 16 MiB of RAM, in slices of `slices[i % slices.length]`
 * instructions, until it halts or `maxInstructions` have run. `setup` may write RAM and
 * registers first.
 */
export function runFlat(
  code: Uint8Array,
  options: {
    jit: boolean;
    /** Guest RAM in a WebAssembly.Memory and the wasm tier on, compiling blocks entered this often. */
    wasmHot?: number;
    /** Compile wasm regions in the background (they are entered once a later turn awaited them). */
    wasmAsync?: boolean;
    load?: number;
    entry?: number;
    slices?: number[];
    maxInstructions?: number;
    setup?: (ram: Uint8Array, cpu: X86Cpu) => void;
    /** Registers extra I/O ports (a device that writes RAM, say). */
    ports?: (io: PortIoSpace, ram: Uint8Array) => void;
  },
): FlatRun {
  const load = options.load ?? 0x100000;
  const memory = new AddressSpace();
  const wasm = options.wasmHot !== undefined;
  const ram = wasm ? allocateWasmRam(16 << 20) : new Uint8Array(16 << 20);
  memory.addRamAlias("ram", 0, ram);
  ram.set(code, load);
  const io = new PortIoSpace();
  const output: number[] = [];
  io.register("com1", 0x3f8, 8, {
    read: (port) => (port === 0x3fd ? 0x60 : 0),
    write: (port, _size, value) => void (port === 0x3f8 && output.push(value & 0xff)),
  });
  io.register("exit", 0xf4, 4, { read: () => 0, write: (_p, _s, v) => void output.push(v) });
  options.ports?.(io, ram);
  const cpu = new X86Cpu({ memory, io }, findModel("qemu32")!, {
    jit: options.jit,
    wasm,
    wasmAsync: options.wasmAsync,
  });
  if (wasm && cpu.blocks !== null) {
    cpu.blocks.wasmHot = options.wasmHot!;
    // Short test loops: translate after as few visits as without the wasm tier.
    cpu.blocks.jsHot = JS_HOT_THRESHOLD;
  }
  const c = cpu.core;
  c.cr0 |= CR0_PE;
  setSegCache(c, CS, 0x08, 0, 0xffffffff, 0xc09b);
  for (const s of [0, 2, 3, 4, 5]) setSegCache(c, s, 0x10, 0, 0xffffffff, 0xc093);
  resetPrefixes(c);
  c.eip = options.entry ?? load;
  options.setup?.(ram, cpu);
  const slices = options.slices ?? [100_000];
  const max = options.maxInstructions ?? 50_000_000;
  const exits: number[] = [];
  for (let i = 0; cpu.instructionsRetired < max; i++) {
    const exit = cpu.run(Math.min(slices[i % slices.length], max - cpu.instructionsRetired));
    exits.push(exit);
    if (exit !== RunExit.Budget) break;
  }
  return { exits, registers: cpu.registers(), retired: cpu.instructionsRetired, ram, output, cpu };
}

/** Asserts that two runs ended in exactly the same state. */
export function assertSameRun(jit: FlatRun, interp: FlatRun, what: string): void {
  assert.deepEqual(jit.exits, interp.exits, `${what}: run exits`);
  assert.deepEqual(jit.registers, interp.registers, `${what}: registers`);
  assert.equal(jit.retired, interp.retired, `${what}: instructions retired`);
  assert.deepEqual(jit.output, interp.output, `${what}: port output`);
  const a = jit.ram, b = interp.ram;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: RAM differs first at ${i.toString(16)}`);
  }
}
