// x87 registers whose 80-bit words a double cannot hold (NaN payloads, a pseudo-NaN) against
// QEMU: FLD m80, FSTP m80, FXSAVE/FXRSTOR and FNSAVE/FRSTOR give the words back unchanged

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps } from "./harness.ts";
import { DATA_BASE, DATA_BYTES, hex } from "./layout.ts";
import { onBoth, probeSource } from "./probe.ts";

/** 80-bit values at the start of the data area: [significand lo, hi, sign+exponent]. */
const VALUES = [
  [0x89abcdef, 0x81234567, 0x7fff], // signalling NaN with a payload
  [0x11223344, 0xd5667788, 0xffff], // quiet NaN, sign set
  [0x01020304, 0x05060708, 0xffff], // integer bit clear: what an MMX write leaves
];

function data(): number[] {
  const bytes = new Array(DATA_BYTES).fill(0);
  VALUES.forEach(([lo, hi, se], i) => {
    for (let k = 0; k < 4; k++) bytes[16 * i + k] = (lo >>> (8 * k)) & 0xff;
    for (let k = 0; k < 4; k++) bytes[16 * i + 4 + k] = (hi >>> (8 * k)) & 0xff;
    bytes[16 * i + 8] = se & 0xff;
    bytes[16 * i + 9] = se >> 8;
  });
  return bytes;
}

const at = (n: number) => hex(DATA_BASE + n);

function body(): string[] {
  // The environments (FIP, FDP and the rest) are not what this probe is about.
  const clearEnv = [0x400, 0x480].flatMap((n) =>
    Array.from({ length: 7 }, (_, k) => `  mov dword [${at(n + 4 * k)}], 0`)
  );
  return [
    "  fninit",
    `  fld tword [${at(0)}]`,
    `  fstp tword [${at(0x100)}]`,
    `  fld tword [${at(0x10)}]`,
    `  fld tword [${at(0x20)}]`,
    `  fld tword [${at(0)}]`,
    `  fxsave [${at(0x200)}]`,
    `  fnsave [${at(0x400)}]`,
    `  frstor [${at(0x400)}]`,
    `  fnsave [${at(0x480)}]`,
    `  fxrstor [${at(0x200)}]`,
    `  fxsave [${at(0x600)}]`,
    `  fstp tword [${at(0x800)}]`,
    `  fstp tword [${at(0x810)}]`,
    `  fstp tword [${at(0x820)}]`,
    "  fninit",
    ...clearEnv,
  ];
}

Deno.test({
  name:
    "cpu_diff: NaN payloads and a pseudo-NaN survive FLD/FSTP m80, FXSAVE/FXRSTOR, FNSAVE/FRSTOR",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const [qemu, vmkit] = await onBoth(probeSource(body(), data()));
    assert.equal(qemu.problem, null);
    assert.deepEqual(qemu.exceptions, []);
    // QEMU's FSTP m80 of the signalling NaN writes its words back as they were loaded.
    assert.deepEqual([...qemu.data.subarray(0x100, 0x10a)], data().slice(0, 10));
    const diffs = compareDumps(qemu, vmkit, "pm32", 0);
    assert.deepEqual(diffs, []);
  },
});
