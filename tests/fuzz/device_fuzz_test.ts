// The device fuzzer in the test suite: a short seeded run, and replays of the crashers it found
import assert from "node:assert/strict";
import { report } from "./device_fuzz.ts";
import { type CaseLimits, type FuzzOp, runCase } from "./device_fuzz_ops.ts";
import { seedFromEnv } from "./prng.ts";

const LIMITS: CaseLimits = { heapBytes: 512 << 20, timeMs: 20000 };

/**
 * Crashers the fuzzer found on vmkit before address decoding resolved overlaps by
 * priority, minimised by dropping operations while the failure stayed the same. Each
 * threw a RangeError out of a PCI configuration write and ended vmkit.
 */
const CRASHERS: { name: string; vga: "std" | "cirrus"; ops: FuzzOp[] }[] = [
  {
    // PMREGMISC enabled with PMBA at its reset value: the PM block at port 0 over the PIC.
    name: "PIIX4 PM I/O enabled at PMBA 0 (over the PIC)",
    vga: "std",
    ops: [{ t: "pci", devfn: 0x0b, offset: 0x80, size: 1, value: 1 }],
  },
  {
    name: "PIIX4 PM I/O at 0x1c0 (over the IDE command ports)",
    vga: "cirrus",
    ops: [
      { t: "pci", devfn: 0x0b, offset: 0x40, size: 4, value: 0x1f1 },
      { t: "pci", devfn: 0x0b, offset: 0x80, size: 1, value: 1 },
    ],
  },
  {
    name: "IDE bus-master BAR4 at 0x1f0 (over the IDE command ports)",
    vga: "std",
    ops: [
      { t: "pci", devfn: 0x09, offset: 0x04, size: 2, value: 5 },
      { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0x1f1 },
    ],
  },
  {
    name: "IDE bus-master BAR4 at 0x3f0 (over the IDE control port)",
    vga: "cirrus",
    ops: [
      { t: "pci", devfn: 0x09, offset: 0x04, size: 2, value: 5 },
      { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0x3f9 },
    ],
  },
  {
    name: "IDE bus-master BAR4 at 0x510 (over fw_cfg)",
    vga: "cirrus",
    ops: [
      { t: "pci", devfn: 0x09, offset: 0x04, size: 2, value: 5 },
      { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0x511 },
    ],
  },
  {
    name: "IDE bus-master BAR4 on a virtio legacy BAR0 (two guest windows on one base)",
    vga: "cirrus",
    ops: [
      { t: "pci", devfn: 0x28, offset: 0x10, size: 4, value: 0xc101 },
      { t: "pci", devfn: 0x28, offset: 0x04, size: 2, value: 7 },
      { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0xc101 },
      { t: "pci", devfn: 0x09, offset: 0x04, size: 2, value: 5 },
      // ... and then used through the shared ports and moved away again.
      { t: "out", port: 0xc104, size: 4, value: 0x1000 },
      { t: "in", port: 0xc100, size: 4 },
      { t: "pci", devfn: 0x09, offset: 0x20, size: 4, value: 0xd001 },
      { t: "in", port: 0xc100, size: 4 },
    ],
  },
  {
    name: "PAM modes flipped under the std VGA MMIO BAR at 0xc4000",
    vga: "std",
    ops: [
      { t: "pci", devfn: 0x10, offset: 0x18, size: 4, value: 0xc4000 },
      { t: "pci", devfn: 0x10, offset: 0x04, size: 2, value: 3 },
      { t: "pci", devfn: 0x00, offset: 0x5a, size: 1, value: 0x10 },
      { t: "pci", devfn: 0x00, offset: 0x5a, size: 1, value: 0x20 },
      { t: "write", addr: 0xc4500, size: 2, value: 0x1234 },
      { t: "pci", devfn: 0x00, offset: 0x5a, size: 1, value: 0x00 },
      { t: "pci", devfn: 0x10, offset: 0x04, size: 2, value: 0 },
      { t: "pci", devfn: 0x00, offset: 0x5a, size: 1, value: 0x30 },
    ],
  },
];

for (const c of CRASHERS) {
  Deno.test(`device fuzz crasher replays without a failure: ${c.name}`, async () => {
    const r = await runCase(1, { ops: c.ops, vga: c.vga, limits: LIMITS });
    assert.equal(r.failure, null, r.failure ? report(r, c.ops.length) : "");
    assert.equal(r.ops, c.ops.length);
  });
}

const SEED = seedFromEnv("VMKIT_DEVICE_FUZZ_SEED", 1);
const CASES = 12;
const OPS_PER_CASE = 150;

Deno.test(`device fuzz: ${CASES} seeded cases of ${OPS_PER_CASE} guest operations from seed ${SEED} on -M pc with every -device model`, async () => {
  const failures: string[] = [];
  let ops = 0;
  for (let seed = SEED; seed < SEED + CASES; seed++) {
    const r = await runCase(seed, { count: OPS_PER_CASE, limits: LIMITS });
    ops += r.ops;
    if (r.failure) failures.push(report(r, OPS_PER_CASE));
  }
  assert.deepEqual(failures, []);
  assert.equal(ops, CASES * OPS_PER_CASE);
});
