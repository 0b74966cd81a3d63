import assert from "node:assert/strict";
import { condition } from "../flags.ts";
import { ARITH_FLAGS, type CpuCore, LZ_SAR } from "../state.ts";
import { conditionHelper } from "./flag_rt.ts";
import { ST_CONDCALLS, ST_LAZY } from "./ram.ts";

Deno.test("conditionHelper() agrees with the interpreter's condition() on random lazy flags", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const base = 1024;
  const cond = conditionHelper(memory, base);
  const s = new Int32Array(memory.buffer, base, 64);
  let seed = 0x1234567;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed | 0;
  };
  const pick = <T>(a: T[]) => a[(rnd() >>> 0) % a.length];
  let calls = 0;
  for (let i = 0; i < 20_000; i++) {
    const size = pick([8, 16, 32]);
    const op = (rnd() >>> 0) % (LZ_SAR + 1);
    const mask = size === 32 ? -1 : (1 << size) - 1;
    const shift = op >= 3;
    const d = rnd() & mask;
    const src = shift ? 1 + ((rnd() >>> 0) % 31) : rnd() & mask;
    const res = pick([0, rnd() & mask, rnd() & mask]);
    const lzMask = pick([ARITH_FLAGS, ARITH_FLAGS & ~1, 0, rnd() & ARITH_FLAGS]);
    const flags = (rnd() & 0xfd7) | 2;
    const core = {
      flags,
      lzMask,
      lzOp: op,
      lzSize: size,
      lzDst: d,
      lzSrc: src,
      lzRes: res,
    } as unknown as CpuCore;
    [flags, lzMask, op, size, d, src, res].forEach((v, k) => s[ST_LAZY[k] >> 2] = v);
    for (let cc = 0; cc < 16; cc++) {
      const want = condition(core, cc) ? 1 : 0;
      calls++;
      assert.equal(
        cond(cc),
        want,
        `cc ${cc}: op ${op} size ${size} d ${d} s ${src} r ${res} mask ${lzMask} flags ${flags}`,
      );
    }
  }
  assert.equal(s[ST_CONDCALLS >> 2], calls);
});
