// The seeded random source of the CPU differential programs, and values biased to flag edges

/** A small fast PRNG (mulberry32): the same seed gives the same program on every host. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed * 0x9e3779b1 + 0x7f4a7c15) >>> 0;
  }
  /** A uniform unsigned 32-bit value. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform integer in [0, n). */
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
}

const EDGE32 = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0x80000001,
  0xfffffffe,
  0xffffffff,
];

/** A value biased to the edges where flags change (0, ±1, sign boundaries of each width). */
export function edgeValue(rng: Rng): number {
  const r = rng.below(8);
  if (r < 3) return rng.pick(EDGE32);
  if (r === 3) return rng.below(256);
  if (r === 4) return (rng.pick(EDGE32) + rng.below(5) - 2) >>> 0;
  return rng.u32();
}

/** `0x` and lowercase hex. */
export function hex(v: number): string {
  return "0x" + (v >>> 0).toString(16);
}
