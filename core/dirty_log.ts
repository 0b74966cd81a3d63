// Which pages of guest memory the guest wrote: the accelerator's dirty log, for a display

import type { AddressSpace } from "./memory/address_space.ts";

/** The page size dirty logs count in. */
export const DIRTY_PAGE_BYTES = 4096;

/**
 * Writes to guest RAM that no vmkit code sees (KVM maps RAM into the guest, so a
 * framebuffer kept in it changes without an MMIO callback) are logged by the
 * accelerator a page at a time. A display asks for a range's log once per refresh.
 * Ranges are page aligned; pages outside RAM the accelerator maps are never dirty (their
 * writes reach device code, which knows what changed).
 */
export interface DirtyLog {
  /** Starts logging writes to `[address, address + bytes)`; every page starts dirty. */
  start(address: number, bytes: number): void;
  /**
   * The pages of `[address, address + bytes)` written since the last call (or since
   * `start`), one bit per page, least significant bit first, and forgets them.
   */
  collect(address: number, bytes: number): Uint8Array;
  /** Stops logging the range. */
  stop(address: number, bytes: number): void;
}

const logs = new WeakMap<AddressSpace, DirtyLog>();

/** Called by an accelerator that maps RAM into the guest: its log for `memory`. */
export function setDirtyLog(memory: AddressSpace, log: DirtyLog): void {
  logs.set(memory, log);
}

/**
 * The dirty log of the accelerator that runs guest code on `memory`, or null when every
 * guest write goes through vmkit's own memory code (the interpreter), where a device
 * tracks its writes itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dirtyLogOf } from "./dirty_log.ts";
 * import { AddressSpace } from "./memory/address_space.ts";
 *
 * assert.equal(dirtyLogOf(new AddressSpace()), null);
 * ```
 */
export function dirtyLogOf(memory: AddressSpace): DirtyLog | null {
  return logs.get(memory) ?? null;
}
