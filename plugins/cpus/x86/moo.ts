// Reader for the MOO single-step CPU test format (SingleStepTests)

/** One register/memory snapshot of a test. */
export interface MooState {
  /** Register values by name (ax bx cx dx cs ss ds es sp bp si di ip flags). */
  regs: Record<string, number>;
  /** [physical address, byte] pairs. */
  ram: [number, number][];
}

/** One single-instruction test. */
export interface MooTest {
  index: number;
  name: string;
  bytes: Uint8Array;
  initial: MooState;
  final: MooState;
  /** Exception vector and the address of the pushed FLAGS, when one was taken. */
  exception?: { vector: number; flagAddress: number };
  hash: string;
}

/** Register order of the REGS bitmask. */
export const MOO_REGS = [
  "ax",
  "bx",
  "cx",
  "dx",
  "cs",
  "ss",
  "ds",
  "es",
  "sp",
  "bp",
  "si",
  "di",
  "ip",
  "flags",
] as const;

function tag(b: Uint8Array, o: number): string {
  return String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);
}

function parseState(b: Uint8Array, v: DataView, start: number, end: number): MooState {
  const state: MooState = { regs: {}, ram: [] };
  let o = start;
  while (o + 8 <= end) {
    const t = tag(b, o);
    const len = v.getUint32(o + 4, true);
    const p = o + 8;
    if (t === "REGS") {
      const mask = v.getUint16(p, true);
      let q = p + 2;
      for (let i = 0; i < 14; i++) {
        if (mask & (1 << i)) {
          state.regs[MOO_REGS[i]] = v.getUint16(q, true);
          q += 2;
        }
      }
    } else if (t === "RAM ") {
      const n = v.getUint32(p, true);
      for (let i = 0; i < n; i++) {
        state.ram.push([v.getUint32(p + 4 + i * 5, true), b[p + 8 + i * 5]]);
      }
    }
    o = p + len;
  }
  return state;
}

/** Parses a decompressed MOO file into its tests. */
export function parseMoo(b: Uint8Array): MooTest[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tests: MooTest[] = [];
  let o = 0;
  while (o + 8 <= b.length) {
    const t = tag(b, o);
    const len = v.getUint32(o + 4, true);
    const p = o + 8;
    if (t === "TEST") {
      const test: MooTest = {
        index: v.getUint32(p, true),
        name: "",
        bytes: new Uint8Array(0),
        initial: { regs: {}, ram: [] },
        final: { regs: {}, ram: [] },
        hash: "",
      };
      let q = p + 4;
      const end = p + len;
      while (q + 8 <= end) {
        const st = tag(b, q);
        const sl = v.getUint32(q + 4, true);
        const sp = q + 8;
        switch (st) {
          case "NAME":
            test.name = String.fromCharCode(...b.subarray(sp + 4, sp + 4 + v.getUint32(sp, true)));
            break;
          case "BYTS":
            test.bytes = b.slice(sp + 4, sp + 4 + v.getUint32(sp, true));
            break;
          case "INIT":
            test.initial = parseState(b, v, sp, sp + sl);
            break;
          case "FINA":
            test.final = parseState(b, v, sp, sp + sl);
            break;
          case "EXCP":
            test.exception = { vector: b[sp], flagAddress: v.getUint32(sp + 1, true) };
            break;
          case "HASH":
            test.hash = Array.from(b.subarray(sp, sp + 20), (x) => x.toString(16).padStart(2, "0"))
              .join("");
            break;
        }
        q = sp + sl;
      }
      tests.push(test);
    }
    o = p + len;
  }
  return tests;
}
