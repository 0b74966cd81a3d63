// Seeded mutation engine: damages the metadata regions of a valid image in ways parsers must survive

import type { Prng } from "./prng.ts";

/** A byte range of an image that holds metadata (a header, a table...). */
export interface Region {
  /** What lies there (`header`, `L1`, `refcount block`...), for reports. */
  name: string;
  offset: number;
  length: number;
}

/** One change made to an image, as text for a report. */
export type Mutation = string;

/** What a mutation run produced. */
export interface Mutated {
  bytes: Uint8Array;
  /** One line per change, in order. */
  applied: Mutation[];
}

/** Values that break size and offset arithmetic, per field width in bytes. */
const INTERESTING: Record<number, bigint[]> = {
  1: [0n, 1n, 0x7fn, 0x80n, 0xffn, 9n, 16n, 31n, 64n],
  2: [0n, 1n, 0x7fffn, 0x8000n, 0xffffn, 0x200n, 0x1000n],
  4: [0n, 1n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x200n, 0x10000n, 0x100000n, 0x40000000n],
  8: [
    0n,
    1n,
    0x7fffffffffffffffn,
    0x8000000000000000n,
    0xffffffffffffffffn,
    0x100000000n,
    0xffffffffn,
    0x20000000000000n, // 2^53, past exact doubles
    0x1fffffffffffffn, // 2^53 - 1
    0x10000000000n, // 1 TiB
  ],
};

/** The mutation kinds, each picked with the weight given. */
const KINDS: readonly [string, number][] = [
  ["bitflip", 4],
  ["interesting", 5],
  ["near-size", 1],
  ["bytes", 2],
  ["swap", 2],
  ["copy-field", 1],
  ["truncate", 1],
];

function pickKind(rng: Prng): string {
  const total = KINDS.reduce((s, [, w]) => s + w, 0);
  let r = rng.next() * total;
  for (const [k, w] of KINDS) {
    r -= w;
    if (r < 0) return k;
  }
  return KINDS[0][0];
}

function writeUint(
  bytes: Uint8Array,
  at: number,
  width: number,
  value: bigint,
  littleEndian: boolean,
): void {
  for (let i = 0; i < width; i++) {
    const shift = BigInt(8 * (littleEndian ? i : width - 1 - i));
    bytes[at + i] = Number((value >> shift) & 0xffn);
  }
}

function readUint(bytes: Uint8Array, at: number, width: number, littleEndian: boolean): bigint {
  let v = 0n;
  for (let i = 0; i < width; i++) {
    const b = BigInt(bytes[at + (littleEndian ? width - 1 - i : i)]);
    v = (v << 8n) | b;
  }
  return v;
}

/** A field-aligned offset of `width` bytes inside `region` (which must fit in `size`). */
function fieldIn(rng: Prng, region: Region, width: number, size: number): number {
  const end = Math.min(region.offset + region.length, size);
  const slots = Math.floor((end - region.offset) / width);
  if (slots <= 0) return -1;
  return region.offset + rng.int(slots) * width;
}

/**
 * Applies `count` seeded mutations to a copy of `image`, aimed at `regions` (the
 * image's metadata). Integers are written in the format's byte order, so a size or
 * offset field gets a value that means something to the parser.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mutate } from "./mutate.ts";
 * import { Prng } from "./prng.ts";
 *
 * const image = new Uint8Array(1024);
 * const a = mutate(image, [{ name: "header", offset: 0, length: 64 }], new Prng(1), { count: 2 });
 * const b = mutate(image, [{ name: "header", offset: 0, length: 64 }], new Prng(1), { count: 2 });
 * assert.deepEqual(a.bytes, b.bytes);
 * assert.equal(image.every((x) => x === 0), true);
 * ```
 */
export function mutate(
  image: Uint8Array,
  regions: readonly Region[],
  rng: Prng,
  options: { count: number; littleEndian?: boolean },
): Mutated {
  let bytes = image.slice();
  const le = options.littleEndian ?? false;
  const applied: Mutation[] = [];
  const usable = regions.filter((r) => r.length > 0 && r.offset < image.length);
  if (usable.length === 0) usable.push({ name: "file", offset: 0, length: image.length });
  for (let n = 0; n < options.count; n++) {
    const region = rng.pick(usable);
    const kind = pickKind(rng);
    const size = bytes.length;
    if (size === 0) break;
    switch (kind) {
      case "bitflip": {
        const at = fieldIn(rng, region, 1, size);
        if (at < 0) break;
        const bit = rng.int(8);
        bytes[at] ^= 1 << bit;
        applied.push(`${region.name}: flip bit ${bit} of byte ${at}`);
        break;
      }
      case "interesting":
      case "near-size": {
        const width = rng.pick([1, 2, 4, 4, 8, 8]);
        const at = fieldIn(rng, region, width, size);
        if (at < 0) break;
        let value: bigint;
        if (kind === "interesting") {
          value = rng.pick(INTERESTING[width]);
        } else {
          // Offsets just inside and past the end of the file.
          value = BigInt(Math.max(0, size + rng.range(-1024, 1024)));
        }
        value &= (1n << BigInt(8 * width)) - 1n;
        writeUint(bytes, at, width, value, le);
        applied.push(`${region.name}: set ${width}-byte field at ${at} to 0x${value.toString(16)}`);
        break;
      }
      case "bytes": {
        const at = fieldIn(rng, region, 1, size);
        if (at < 0) break;
        const len = Math.min(rng.range(1, 16), size - at);
        const fill = rng.pick([0x00, 0xff, -1]);
        for (let i = 0; i < len; i++) bytes[at + i] = fill < 0 ? rng.int(256) : fill;
        applied.push(
          `${region.name}: ${
            fill < 0 ? "randomise" : `fill 0x${fill.toString(16)}`
          } ${len} bytes at ${at}`,
        );
        break;
      }
      case "swap":
      case "copy-field": {
        const width = rng.pick([4, 8]);
        const a = fieldIn(rng, region, width, size);
        const b = fieldIn(rng, rng.pick(usable), width, size);
        if (a < 0 || b < 0 || a === b) break;
        const va = readUint(bytes, a, width, le);
        const vb = readUint(bytes, b, width, le);
        writeUint(bytes, a, width, vb, le);
        if (kind === "swap") writeUint(bytes, b, width, va, le);
        applied.push(`${region.name}: ${kind} ${width}-byte fields at ${a} and ${b}`);
        break;
      }
      case "truncate": {
        // Cut inside a metadata region or anywhere in the file.
        const end = rng.chance(0.6)
          ? Math.min(size, region.offset + rng.int(region.length + 1))
          : rng.int(size + 1);
        bytes = bytes.slice(0, end);
        applied.push(`truncate to ${end} bytes (in ${region.name})`);
        break;
      }
    }
  }
  return { bytes, applied };
}
