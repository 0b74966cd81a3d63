// Tests for the translator's flag expressions against the interpreter's lazy flags

import assert from "node:assert/strict";
import { AddressSpace } from "../../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../../core/memory/port_io.ts";
import { condition, getFlags, PARITY } from "../flags.ts";
import { findModel } from "../models.ts";
import {
  ARITH_FLAGS,
  CpuCore,
  LZ_ADD,
  LZ_LOGIC,
  LZ_SAR,
  LZ_SHL,
  LZ_SHR,
  LZ_SUB,
} from "../state.ts";
import {
  conditionExpr,
  flagCode,
  type FlagState,
  lazyCf,
  produced,
  shiftCf,
  writeBackFlags,
} from "./flag_expr.ts";

function core(): CpuCore {
  return new CpuCore(new AddressSpace(), new PortIoSpace(), findModel("qemu32")!);
}

/** Operands and result of producer `op` as the interpreter's alu.ts leaves them. */
function sample(op: number, size: number, a: number, b: number): [number, number, number] {
  const m = size === 32 ? -1 : (1 << size) - 1;
  a &= m;
  if (op >= LZ_SHL) {
    const n = (b & 31) || 1;
    const r = op === LZ_SHL
      ? (a << n) & m
      : op === LZ_SHR
      ? (a >>> n) & m
      : (((a << (32 - size)) >> (32 - size)) >> n) & m;
    return [a, n, r];
  }
  b &= m;
  const r = op === LZ_ADD ? (a + b) & m : op === LZ_SUB ? (a - b) & m : (a ^ b) & m;
  return [a, b, r];
}

const VALUES = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x7fff,
  0x8000,
  0xffff,
  0x7fffffff,
  -0x80000000,
  -1,
  12345,
];

Deno.test("conditionExpr() agrees with condition() for every producer, size and condition", () => {
  const c = core();
  for (const op of [LZ_ADD, LZ_SUB, LZ_LOGIC, LZ_SHL, LZ_SHR, LZ_SAR]) {
    for (const size of [8, 16, 32]) {
      for (const pure of [false, true]) {
        const f: FlagState = produced(op, size, pure);
        for (let cc = 0; cc < 16; cc++) {
          const test = new Function(
            "fd",
            "fs",
            "fr",
            "PARITY",
            "shiftCf",
            `return ${conditionExpr(f, cc)};`,
          );
          for (const a of VALUES) {
            for (const b of VALUES) {
              const [d, s, r] = sample(op, size, a, b);
              Object.assign(c, { lzOp: op, lzDst: d, lzSrc: s, lzRes: r, lzSize: size });
              c.lzMask = ARITH_FLAGS;
              assert.equal(
                test(d, s, r, PARITY, shiftCf),
                condition(c, cc),
                `op ${op} size ${size} cc ${cc} ${a},${b}`,
              );
            }
          }
        }
      }
    }
  }
});

Deno.test("writeBackFlags() keeps the carry of the producer before INC/DEC", () => {
  for (const cfOp of [LZ_ADD, LZ_SUB, LZ_SHL, LZ_SHR]) {
    for (const a of VALUES) {
      const [pd, ps, pr] = sample(cfOp, 32, a, 5);
      const c = core();
      const f: FlagState = { op: LZ_SUB, size: 32, noCf: true, pureSub: false, cfOp, cfSize: 32 };
      writeBackFlags(c, flagCode(f), 7, 1, 6, 0, pd, ps, pr);
      assert.equal(getFlags(c) & 1, lazyCf(cfOp, 32, pd, ps, pr));
      const ref = core();
      Object.assign(ref, {
        lzOp: cfOp,
        lzDst: pd,
        lzSrc: ps,
        lzRes: pr,
        lzSize: 32,
        lzMask: ARITH_FLAGS,
      });
      assert.equal(getFlags(c) & 1, getFlags(ref) & 1, `op ${cfOp} a ${a}`);
    }
  }
});
