// The monitor's hex numbers: one formatter for every `info` table and register dump

/**
 * `value` in lowercase hex, at least `digits` wide, as C's `%0*x` prints an unsigned value
 * (`value` is a whole, non-negative number; up to 2^53 it prints exactly).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hex } from "./hex.ts";
 * assert.equal(hex(0x3f0, 4), "03f0");
 * assert.equal(hex(0xfee00000, 1), "fee00000");
 * ```
 */
export function hex(value: number, digits: number): string {
  return Math.floor(value).toString(16).padStart(digits, "0");
}
