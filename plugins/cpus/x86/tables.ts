// The opcode tables: one handler per (operand size, opcode), built once per process

import { installPrefixes } from "./decode.ts";
import { installFpu } from "./fpu.ts";
import { install0f } from "./ops_0f.ts";
import { installFxsave } from "./fxsave.ts";
import { installBasic } from "./ops_basic.ts";
import { installControl } from "./ops_control.ts";
import { installGroups } from "./ops_group.ts";
import { installString } from "./ops_string.ts";
import { type CpuCore, type OpHandler, ud } from "./state.ts";
import { installSystem } from "./system.ts";
import { installSseFp } from "./sse_fp.ts";
import { installSseInt } from "./sse_int.ts";
import { installMmx } from "./mmx.ts";
import { installSseMoves, installSseTable } from "./sse_ops.ts";
import { buildTable64 } from "./tables_long.ts";

/** Opcode tables: 0x000..0x0FF one-byte opcodes, 0x100..0x1FF the 0F xx map. */
export interface OpTables {
  readonly t16: OpHandler[];
  readonly t32: OpHandler[];
  /** 64-bit mode (tables_long.ts). */
  readonly t64: OpHandler[];
}

let cached: OpTables | undefined;

/** Builds (once) and returns the 16- and 32-bit operand-size tables. */
export function opTables(): OpTables {
  if (cached) return cached;
  const undefinedOp = (c: CpuCore) => ud(c);
  const t16: OpHandler[] = new Array(512).fill(undefinedOp);
  const t32: OpHandler[] = new Array(512).fill(undefinedOp);
  installBasic(t16, t32);
  installControl(t16, t32);
  installGroups(t16, t32);
  installString(t16, t32);
  install0f(t16, t32);
  installSystem(t16, t32);
  installFpu(t16, t32);
  installFxsave(t16, t32);
  installSseMoves();
  installSseInt();
  installMmx();
  installSseFp();
  installSseTable(t16, t32);
  installPrefixes(t16, t32);
  cached = { t16, t32, t64: buildTable64(t16, t32) };
  return cached;
}
