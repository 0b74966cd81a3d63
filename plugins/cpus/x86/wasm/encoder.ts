// A small WebAssembly binary encoder: LEB128, a function body builder with labels, one module

/** Value types. */
export const I32 = 0x7f, I64 = 0x7e;

/** Opcodes used by the region compiler (WebAssembly core spec §5.4). */
export const OP = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i64Load: 0x29,
  i32Load8U: 0x2d,
  i32Load16U: 0x2f,
  i32Store: 0x36,
  i32Store8: 0x3a,
  i32Store16: 0x3b,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GtU: 0x4b,
  i32LeS: 0x4c,
  i32LeU: 0x4d,
  i32GeS: 0x4e,
  i32GeU: 0x4f,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64Or: 0x84,
  i64Shl: 0x86,
  i32Rotl: 0x77,
  i32Rotr: 0x78,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i32Popcnt: 0x69,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i64ShrU: 0x88,
  i64ExtendI32U: 0xad,
} as const;

/** A growable byte buffer with the LEB128 encodings. */
export class Bytes {
  #buf = new Uint8Array(256);
  length = 0;

  byte(b: number): this {
    if (this.length === this.#buf.length) this.#grow(1);
    this.#buf[this.length++] = b;
    return this;
  }
  bytes(bs: ArrayLike<number>): this {
    if (bs instanceof Uint8Array) {
      // Whole function bodies and sections: one copy, not a call per byte.
      if (this.length + bs.length > this.#buf.length) this.#grow(bs.length);
      this.#buf.set(bs, this.length);
      this.length += bs.length;
      return this;
    }
    for (let i = 0; i < bs.length; i++) this.byte(bs[i]);
    return this;
  }
  #grow(need: number): void {
    let size = this.#buf.length * 2;
    while (size < this.length + need) size *= 2;
    const n = new Uint8Array(size);
    n.set(this.#buf.subarray(0, this.length));
    this.#buf = n;
  }
  /** Unsigned LEB128 (up to 2^53). */
  uleb(v: number): this {
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }
  /** Signed LEB128 of a 32-bit value. */
  sleb(v: number): this {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.byte(b);
        return this;
      }
      this.byte(b | 0x80);
    }
  }
  /** A length-prefixed copy of `other`. */
  sized(other: Bytes): this {
    this.uleb(other.length);
    return this.bytes(other.view());
  }
  view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/**
 * One function body. Structured control is tracked so `br` can name its target by the
 * label handle {@linkcode open} returned rather than by relative depth.
 */
export class Code extends Bytes {
  #depth = 0;

  /** A point to go back to: {@linkcode reset} drops what was emitted since. */
  mark(): [number, number] {
    return [this.length, this.#depth];
  }
  reset(m: [number, number]): void {
    this.length = m[0];
    this.#depth = m[1];
  }
  /** Opens a block, loop or if (`kind`) with result type `type` (0x40: none); returns its label. */
  open(kind: number, type = 0x40): number {
    this.byte(kind).byte(type);
    return ++this.#depth;
  }
  else(): this {
    return this.byte(OP.else);
  }
  end(): this {
    this.#depth--;
    return this.byte(OP.end);
  }
  /** `br`/`br_if` to the construct whose label is `label`. */
  br(label: number, op: number = OP.br): this {
    return this.byte(op).uleb(this.#depth - label);
  }
  brTable(labels: number[], fallback: number): this {
    this.byte(OP.brTable).uleb(labels.length);
    for (const l of labels) this.uleb(this.#depth - l);
    return this.uleb(this.#depth - fallback);
  }
  get(local: number): this {
    return this.byte(OP.localGet).uleb(local);
  }
  set(local: number): this {
    return this.byte(OP.localSet).uleb(local);
  }
  tee(local: number): this {
    return this.byte(OP.localTee).uleb(local);
  }
  i32(v: number): this {
    return this.byte(OP.i32Const).sleb(v);
  }
  /** A load or store with alignment hint 0 and a constant byte offset. */
  mem(op: number, offset: number): this {
    return this.byte(op).uleb(0).uleb(offset);
  }
  op(...ops: number[]): this {
    for (const o of ops) this.byte(o);
    return this;
  }
  call(index: number): this {
    return this.byte(OP.call).uleb(index);
  }
}

/** A function type: parameter and result value types. */
export interface FuncType {
  params: number[];
  results: number[];
}

/**
 * Assembles a module that imports one memory (`env.memory`) and functions
 * (`env.<name>`), and exports its functions as `f0`, `f1`...
 */
export function assembleModule(
  types: FuncType[],
  imports: { name: string; type: number }[],
  funcs: { type: number; locals: number[]; body: Code }[],
): Uint8Array {
  const out = new Bytes().bytes([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  const section = (id: number, content: Bytes) => out.byte(id).sized(content);
  const name = (b: Bytes, s: string) =>
    b.uleb(s.length).bytes([...s].map((ch) => ch.charCodeAt(0)));

  const t = new Bytes().uleb(types.length);
  for (const ft of types) {
    t.byte(0x60).uleb(ft.params.length).bytes(ft.params).uleb(ft.results.length).bytes(ft.results);
  }
  section(1, t);

  const im = new Bytes().uleb(imports.length + 1);
  name(im, "env");
  name(im, "memory");
  im.byte(0x02).byte(0x00).uleb(0); // memory, limits: min 0, no max
  for (const i of imports) {
    name(im, "env");
    name(im, i.name);
    im.byte(0x00).uleb(i.type);
  }
  section(2, im);

  const fs = new Bytes().uleb(funcs.length);
  for (const f of funcs) fs.uleb(f.type);
  section(3, fs);

  const ex = new Bytes().uleb(funcs.length);
  funcs.forEach((_f, i) => {
    name(ex, `f${i}`);
    ex.byte(0x00).uleb(imports.length + i);
  });
  section(7, ex);

  const code = new Bytes().uleb(funcs.length);
  for (const f of funcs) {
    const body = new Bytes();
    // Locals in runs of one type.
    const runs: [number, number][] = [];
    for (const l of f.locals) {
      if (runs.length > 0 && runs[runs.length - 1][1] === l) runs[runs.length - 1][0]++;
      else runs.push([1, l]);
    }
    body.uleb(runs.length);
    for (const [n, ty] of runs) body.uleb(n).byte(ty);
    body.bytes(f.body.view()).byte(OP.end);
    code.sized(body);
  }
  section(10, code);
  return out.view().slice();
}
