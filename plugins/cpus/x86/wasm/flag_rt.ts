// The condition helper of compiled regions, itself in wasm: Jcc/SETcc/CMOVcc conditions and CF
// from the lazy flags a region spilled to its CPU's state area, with no call into JavaScript

import { CF, LZ_ADD, LZ_LOGIC, LZ_SAR, LZ_SHL, LZ_SHR, LZ_SUB, OF, PF, SF, ZF } from "../state.ts";
import { assembleModule, Code, I32, OP } from "./encoder.ts";
import { ST_CONDCALLS, ST_LAZY } from "./ram.ts";

// Locals of the helper: 0 is the condition code (parameter).
const CC = 0, F = 1, M = 2, OPL = 3, SZ = 4, D = 5, S = 6, R = 7, SH = 8;
const XCF = 9, XOF = 10, XZF = 11, XSF = 12, XPF = 13, RES = 14;
const N_LOCALS = 14;

/** Pushes (x >>> sh) & 1 with the shift count in local `l`. */
function bitL(c: Code, l: number): void {
  c.get(l).op(OP.i32ShrU).i32(1).op(OP.i32And);
}

/** Pushes CF of a lazy shift (the last bit shifted out), as the interpreter's `shiftCF`. */
function shiftCf(c: Code): void {
  c.get(OPL).i32(LZ_SHL).op(OP.i32Eq).open(OP.if, I32);
  {
    // count <= size ? (d >>> (size - count)) & 1 : 0
    c.get(S).get(SZ).op(OP.i32LeU).open(OP.if, I32);
    c.get(D).get(SZ).get(S).op(OP.i32Sub).op(OP.i32ShrU).i32(1).op(OP.i32And);
    c.else().i32(0).end();
  }
  c.else();
  c.get(OPL).i32(LZ_SHR).op(OP.i32Eq).open(OP.if, I32);
  c.get(D).get(S).i32(1).op(OP.i32Sub).op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.else();
  // SAR: the operand sign-extended from its size, shifted by count - 1.
  c.get(D).i32(32).get(SZ).op(OP.i32Sub).op(OP.i32Shl).i32(32).get(SZ).op(OP.i32Sub)
    .op(OP.i32ShrS).get(S).i32(1).op(OP.i32Sub).op(OP.i32ShrS).i32(1).op(OP.i32And);
  c.end();
  c.end();
}

/** The body of `cond(cc) -> 0/1` for the state area at `sb` (the interpreter's `condition`). */
function condBody(sb: number): Code {
  const c = new Code();
  c.i32(0).i32(0).mem(OP.i32Load, sb + ST_CONDCALLS).i32(1).op(OP.i32Add)
    .mem(OP.i32Store, sb + ST_CONDCALLS);
  // Locals F..R are in ST_LAZY's order.
  ST_LAZY.forEach((o, i) => c.i32(0).mem(OP.i32Load, sb + o).set(F + i));
  c.get(SZ).i32(1).op(OP.i32Sub).set(SH);

  // CF
  c.get(M).i32(CF).op(OP.i32And).op(OP.i32Eqz).open(OP.if, I32);
  c.get(F).i32(1).op(OP.i32And);
  c.else();
  c.get(OPL).i32(LZ_ADD).op(OP.i32Eq).open(OP.if, I32);
  c.get(D).get(S).op(OP.i32And).get(D).get(S).op(OP.i32Or).get(R).i32(-1).op(OP.i32Xor)
    .op(OP.i32And).op(OP.i32Or);
  bitL(c, SH);
  c.else();
  c.get(OPL).i32(LZ_SUB).op(OP.i32Eq).open(OP.if, I32);
  c.get(D).i32(-1).op(OP.i32Xor).get(S).op(OP.i32And).get(D).i32(-1).op(OP.i32Xor).get(S)
    .op(OP.i32Or).get(R).op(OP.i32And).op(OP.i32Or);
  bitL(c, SH);
  c.else();
  c.get(OPL).i32(LZ_SHL).op(OP.i32GeU).open(OP.if, I32);
  shiftCf(c);
  c.else().i32(0).end();
  c.end();
  c.end();
  c.end();
  c.set(XCF);

  // OF
  c.get(M).i32(OF).op(OP.i32And).op(OP.i32Eqz).open(OP.if, I32);
  c.get(F).i32(11).op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.else();
  c.get(OPL).i32(LZ_ADD).op(OP.i32Eq).open(OP.if, I32);
  c.get(D).get(R).op(OP.i32Xor).get(S).get(R).op(OP.i32Xor).op(OP.i32And);
  bitL(c, SH);
  c.else();
  c.get(OPL).i32(LZ_SUB).op(OP.i32Eq).open(OP.if, I32);
  c.get(D).get(S).op(OP.i32Xor).get(D).get(R).op(OP.i32Xor).op(OP.i32And);
  bitL(c, SH);
  c.else();
  c.get(OPL).i32(LZ_SHL).op(OP.i32Eq).open(OP.if, I32);
  c.get(R);
  bitL(c, SH);
  shiftCf(c);
  c.op(OP.i32Xor);
  c.else();
  c.get(OPL).i32(LZ_SHR).op(OP.i32Eq).get(S).i32(1).op(OP.i32Eq).op(OP.i32And)
    .open(OP.if, I32);
  c.get(D);
  bitL(c, SH);
  c.else().i32(0).end();
  c.end();
  c.end();
  c.end();
  c.end();
  c.set(XOF);

  // ZF, SF, PF
  c.get(M).i32(ZF).op(OP.i32And).op(OP.i32Eqz).open(OP.if, I32);
  c.get(F).i32(6).op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.else();
  c.get(R).i32(32).get(SZ).op(OP.i32Sub).op(OP.i32Shl).op(OP.i32Eqz);
  c.end();
  c.set(XZF);
  c.get(M).i32(SF).op(OP.i32And).op(OP.i32Eqz).open(OP.if, I32);
  c.get(F).i32(7).op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.else();
  c.get(R);
  bitL(c, SH);
  c.end();
  c.set(XSF);
  c.get(M).i32(PF).op(OP.i32And).op(OP.i32Eqz).open(OP.if, I32);
  c.get(F).i32(2).op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.else();
  c.get(R).i32(0xff).op(OP.i32And).op(OP.i32Popcnt).i32(1).op(OP.i32And).op(OP.i32Eqz);
  c.end();
  c.set(XPF);

  // The condition by cc >> 1, inverted by cc & 1.
  const out = c.open(OP.block);
  const labels: number[] = [];
  for (let i = 7; i >= 0; i--) labels[i] = c.open(OP.block);
  c.get(CC).i32(1).op(OP.i32ShrU).i32(7).op(OP.i32And).brTable(labels, labels[7]);
  const cases: ((c: Code) => void)[] = [
    (c) => c.get(XOF),
    (c) => c.get(XCF),
    (c) => c.get(XZF),
    (c) => c.get(XCF).get(XZF).op(OP.i32Or),
    (c) => c.get(XSF),
    (c) => c.get(XPF),
    (c) => c.get(XSF).get(XOF).op(OP.i32Xor),
    (c) => c.get(XSF).get(XOF).op(OP.i32Xor).get(XZF).op(OP.i32Or),
  ];
  for (let i = 0; i < 8; i++) {
    c.end();
    cases[i](c);
    c.set(RES).br(out);
  }
  c.end();
  c.get(RES).get(CC).i32(1).op(OP.i32And).op(OP.i32Xor);
  return c;
}

/** LZ_* kinds the helper knows (checked at build time so a new kind is not silently 0). */
const KNOWN_KINDS = [LZ_ADD, LZ_SUB, LZ_LOGIC, LZ_SHL, LZ_SHR, LZ_SAR];
if (KNOWN_KINDS.join() !== "0,1,2,3,4,5") {
  throw new Error("lazy flag kinds changed: see flag_rt.ts");
}

/**
 * Builds the condition helper for the state area at `stateBase` of `memory`: a wasm
 * function `(cc) -> 0/1` that regions import as `cond`. A call from one wasm instance to
 * another stays in wasm; the JavaScript helper it replaces cost a trip through the
 * engine's boundary and the interpreter's flag code at each use.
 */
export function conditionHelper(
  memory: WebAssembly.Memory,
  stateBase: number,
): (cc: number) => number {
  const wasm = assembleModule([{ params: [I32], results: [I32] }], [], [
    { type: 0, locals: new Array(N_LOCALS).fill(I32), body: condBody(stateBase) },
  ]);
  const instance = new WebAssembly.Instance(
    new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>),
    { env: { memory } },
  );
  return instance.exports.f0 as (cc: number) => number;
}
