// The one wasm function through which a CPU enters its regions, and chains from one to the next

import { Bytes, Code, I32, OP } from "./encoder.ts";
import {
  CHAIN_ENTRIES,
  ST_CHAIN,
  ST_CHAINBASE,
  ST_CHAINGEN,
  ST_CHAINHOPS,
  ST_EIP,
  ST_STATUS,
} from "./ram.ts";

const L_SLOT = 0, L_BUDGET = 1, L_TOTAL = 2, L_N = 3, L_EIP = 4, L_E = 5, L_REM = 6;

/**
 * `run(slot, budget)` for the CPU whose state area is at `sb`: calls the region in slot
 * `slot` of the imported table `env.t` with `call_indirect` (at most `callBudget`
 * instructions per call), then, while the region left with nothing to report
 * (`ST_STATUS` 0) and retired something, looks up the EIP it left at in the chain table
 * and calls that region too when the entry's generation is the current one and the
 * budget left holds its entry block. Returns the instructions retired by all calls.
 *
 * Every entry goes through this one exported function, so the JavaScript call site
 * stays monomorphic; chaining saves the return to JavaScript (state copies, the
 * dispatcher's lookup) at most region exits, which are jumps to another page.
 */
export function trampolineModule(sb: number, callBudget: number): Uint8Array {
  const out = new Bytes().bytes([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  const section = (id: number, content: Bytes) => out.byte(id).sized(content);
  const name = (b: Bytes, s: string) =>
    b.uleb(s.length).bytes([...s].map((ch) => ch.charCodeAt(0)));
  // Types: 0 (i32) -> i32 (a region), 1 (i32, i32) -> i32 (run).
  section(
    1,
    new Bytes().uleb(2).byte(0x60).uleb(1).byte(I32).uleb(1).byte(I32)
      .byte(0x60).uleb(2).byte(I32).byte(I32).uleb(1).byte(I32),
  );
  const im = new Bytes().uleb(2);
  name(im, "env");
  name(im, "memory");
  im.byte(0x02).byte(0x00).uleb(0);
  name(im, "env");
  name(im, "t");
  im.byte(0x01).byte(0x70).byte(0x00).uleb(0); // funcref table, min 0, no max
  section(2, im);
  section(3, new Bytes().uleb(1).uleb(1));
  const ex = new Bytes().uleb(1);
  name(ex, "run");
  ex.byte(0x00).uleb(0);
  section(7, ex);

  const c = new Code();
  const exit = c.open(OP.block);
  const loop = c.open(OP.loop);
  c.i32(0).get(L_TOTAL).mem(OP.i32Store, sb + ST_CHAINBASE);
  c.get(L_BUDGET).get(L_TOTAL).op(OP.i32Sub).set(L_REM);
  // min(REM, callBudget)
  c.get(L_REM).i32(callBudget).get(L_REM).i32(callBudget).op(OP.i32LtS).op(OP.select);
  c.get(L_SLOT).byte(0x11).uleb(0).uleb(0); // call_indirect type 0, table 0
  c.tee(L_N).get(L_TOTAL).op(OP.i32Add).set(L_TOTAL);
  c.get(L_N).op(OP.i32Eqz).br(exit, OP.brIf);
  c.i32(0).mem(OP.i32Load, sb + ST_STATUS).br(exit, OP.brIf);
  c.i32(0).mem(OP.i32Load, sb + ST_EIP).set(L_EIP);
  // The entry's byte offset: chainIndex(EIP) * 16.
  c.get(L_EIP).get(L_EIP).i32(12).op(OP.i32ShrU).op(OP.i32Xor).i32(CHAIN_ENTRIES - 1)
    .op(OP.i32And).i32(4).op(OP.i32Shl).tee(L_E);
  c.mem(OP.i32Load, sb + ST_CHAIN).get(L_EIP).op(OP.i32Ne).br(exit, OP.brIf);
  c.get(L_E).mem(OP.i32Load, sb + ST_CHAIN + 8).i32(0).mem(OP.i32Load, sb + ST_CHAINGEN)
    .op(OP.i32Ne).br(exit, OP.brIf);
  c.get(L_E).mem(OP.i32Load, sb + ST_CHAIN + 12).get(L_BUDGET).get(L_TOTAL).op(OP.i32Sub)
    .op(OP.i32GtS).br(exit, OP.brIf);
  c.get(L_E).mem(OP.i32Load, sb + ST_CHAIN + 4).set(L_SLOT);
  c.i32(0).i32(0).mem(OP.i32Load, sb + ST_CHAINHOPS).i32(1).op(OP.i32Add)
    .mem(OP.i32Store, sb + ST_CHAINHOPS);
  c.br(loop);
  c.end();
  c.end();
  c.get(L_TOTAL);
  const body = new Bytes().uleb(1).uleb(L_REM - L_TOTAL + 1).byte(I32);
  body.bytes(c.view()).byte(OP.end);
  section(10, new Bytes().uleb(1).sized(body));
  return out.view().slice();
}
