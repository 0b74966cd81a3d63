// Runs the 80286 real-mode single-step tests (SingleStepTests/80286) through the interpreter

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { materializeFlags } from "./flags.ts";
import { MODEL_286 } from "./models.ts";
import { type MooTest, parseMoo } from "./moo.ts";
import { setSegCache } from "./segmentation.ts";
import { CS, DS, ES, SS } from "./state.ts";
import skips from "./conformance_skips.json" with { type: "json" };

const DATA = new URL("../../../../shared/cpu-tests/80286/v1_real_mode/", import.meta.url);

function dataPresent(): boolean {
  try {
    return Deno.statSync(new URL("metadata.json", DATA)).isFile;
  } catch {
    return false;
  }
}

interface OpcodeMeta {
  "flags-mask"?: number;
  reg?: Record<string, OpcodeMeta>;
}

const REG_INDEX: Record<string, number> = {
  ax: 0,
  cx: 1,
  dx: 2,
  bx: 3,
  sp: 4,
  bp: 5,
  si: 6,
  di: 7,
};
const SEG_INDEX: Record<string, number> = { es: ES, cs: CS, ss: SS, ds: DS };

/** Runs one test; returns a description of the first mismatch, or "" on success. */
function runOne(cpu: X86Cpu, ram: Uint8Array, t: MooTest, flagsMask: number): string {
  const c = cpu.core;
  cpu.reset();
  const init = t.initial.regs;
  for (const [name, i] of Object.entries(REG_INDEX)) c.regs[i] = init[name];
  for (const [name, s] of Object.entries(SEG_INDEX)) {
    setSegCache(c, s, init[name], init[name] << 4, 0xffff, 0x93);
  }
  c.eip = init.ip;
  c.flags = (init.flags & 0x0fff) | 2;
  c.lzMask = 0;
  for (const [a, v] of t.initial.ram) ram[a] = v;
  const exit = cpu.run(1000);
  let error = "";
  if (!c.halted) error = `did not halt (exit ${exit})`;
  materializeFlags(c);
  const expect: Record<string, number> = { ...init, flags: init.flags & 0x0fff, ...t.final.regs };
  const got: Record<string, number> = {
    ip: c.eip & 0xffff,
    flags: c.flags & 0xffff,
  };
  for (const [name, i] of Object.entries(REG_INDEX)) got[name] = c.regs[i] & 0xffff;
  for (const [name, s] of Object.entries(SEG_INDEX)) got[name] = c.segSel[s];
  if (!error) {
    for (const name of Object.keys(got)) {
      const m = name === "flags" ? flagsMask : 0xffff;
      if ((got[name] & m) !== (expect[name] & m)) {
        error = `${name}: got ${got[name].toString(16)} want ${expect[name].toString(16)}`;
        break;
      }
    }
  }
  if (!error) {
    let flagLo = -1;
    if (t.exception) flagLo = expect.ss * 16 + ((expect.sp + 4) & 0xffff);
    for (const [a, v] of t.final.ram) {
      let m = 0xff;
      if (a === flagLo) m = flagsMask & 0xff;
      else if (a === flagLo + 1) m = flagsMask >> 8;
      if ((ram[a] & m) !== (v & m)) {
        error = `ram[${a.toString(16)}]: got ${ram[a].toString(16)} want ${v.toString(16)}`;
        break;
      }
    }
  }
  for (const [a] of t.initial.ram) ram[a] = 0;
  for (const [a] of t.final.ram) ram[a] = 0;
  return error;
}

Deno.test({
  name: dataPresent()
    ? "X86Cpu passes the 80286 real-mode single-step tests"
    : "X86Cpu passes the 80286 real-mode single-step tests (ignored: ../shared/cpu-tests is absent)",
  ignore: !dataPresent(),
  fn() {
    const meta = JSON.parse(Deno.readTextFileSync(new URL("metadata.json", DATA)))
      .opcodes as Record<
        string,
        OpcodeMeta
      >;
    const memory = new AddressSpace();
    const ram = memory.addRam("ram", 0, 16 << 20);
    const cpu = new X86Cpu({ memory, io: new PortIoSpace() }, MODEL_286);
    const skipped = skips as Record<string, string>;
    const only = Deno.env.get("MOO_ONLY");
    const failures: string[] = [];
    const rates: string[] = [];
    let total = 0, passed = 0;
    const files = [...Deno.readDirSync(DATA)].map((e) => e.name).filter((n) =>
      n.endsWith(".MOO.gz")
    )
      .sort();
    for (const file of files) {
      const group = file.replace(".MOO.gz", "");
      if (only && !only.split(",").includes(group)) continue;
      const [op, reg] = group.split(".");
      const entry = meta[op];
      const sub = reg !== undefined ? entry?.reg?.[reg] : entry;
      const flagsMask = (sub?.["flags-mask"] ?? 0xffff) & 0x0fff;
      const tests = parseMoo(gunzipSync(Deno.readFileSync(new URL(file, DATA))));
      let ok = 0;
      let firstError = "";
      for (const t of tests) {
        const err = runOne(cpu, ram, t, flagsMask);
        if (!err) ok++;
        else if (!firstError) {
          firstError = `#${t.index} ${t.name} [${
            Array.from(t.bytes, (b) => b.toString(16)).join(" ")
          }]: ${err}`;
        }
      }
      total += tests.length;
      passed += ok;
      const rate = (100 * ok / tests.length).toFixed(1);
      rates.push(`${group.padEnd(5)}${rate.padStart(6)}%`);
      const note = group in skipped ? ` (skipped: ${skipped[group]})` : "";
      if (ok !== tests.length) {
        console.log(
          `${group.padEnd(6)} ${rate.padStart(5)}% ${ok}/${tests.length}${note}${
            firstError ? ` first failure ${firstError}` : ""
          }`,
        );
      }
      if (ok !== tests.length && !(group in skipped)) failures.push(group);
    }
    // Pass rate per opcode file, eight to a line.
    for (let i = 0; i < rates.length; i += 8) console.log(rates.slice(i, i + 8).join("  "));
    console.log(`80286 conformance: ${passed}/${total} (${(100 * passed / total).toFixed(2)}%)`);
    assert.deepEqual(failures, []);
  },
});
