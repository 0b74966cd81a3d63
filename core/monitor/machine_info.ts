// `info cpus`, `uuid`, `pic`, `lapic`, `roms`, `mtree` and `qtree`, and query-cpus-fast and
// query-uuid: what the board holds, in QEMU 7.2's layouts

import { X86State } from "../x86_state.ts";
import { machineRoms } from "../firmware.ts";
import type { Device, DeviceState } from "../device.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";
import { hex } from "./hex.ts";
import { qtreeText } from "./qtree.ts";

/** query-cpus-fast: the interpreter runs every vCPU on vmkit's main thread (its id is the pid). */
export function queryCpusFast(ctx: MonitorContext): Record<string, unknown>[] {
  const t = ctx.machine.topology;
  return ctx.machine.cpus.map((_, index) => {
    const thread = index % t.threads;
    const core = Math.floor(index / t.threads) % t.cores;
    const socket = Math.floor(index / (t.threads * t.cores * t.dies));
    const props: Record<string, number> = { "core-id": core, "thread-id": thread };
    if (t.dies > 1) props["die-id"] = Math.floor(index / (t.threads * t.cores)) % t.dies;
    props["socket-id"] = socket;
    return {
      "thread-id": Deno.pid,
      props,
      "qom-path": `/machine/unattached/device[${index}]`,
      "cpu-index": index,
      target: "x86_64",
    };
  });
}

/** The `-uuid`, or QEMU's all-zero default. */
export function uuidOf(ctx: MonitorContext): string {
  return ctx.machine.config.uuid?.toLowerCase() ?? "00000000-0000-0000-0000-000000000000";
}

// The saved state of the first device of `model` (the savevm contract every device keeps).
function stateOf(ctx: MonitorContext, model: string): DeviceState | undefined {
  return ctx.machine.devices.find((d: Device) => d.model === model)?.saveState();
}

const IOAPIC_DELIVERY = ["fixed", "lowest", "SMI", "...", "NMI", "INIT", "...", "extINT"];

/** `info pic`: the IOAPIC's redirection table, then each i8259 (QEMU prints the slave first). */
export function picText(ctx: MonitorContext): string {
  let out = "";
  const io = stateOf(ctx, "ioapic");
  if (io) {
    const low = io.low as Uint32Array, high = io.high as Uint32Array;
    const select = io.select as number;
    out += `ioapic0: ver=0x20 id=0x${hex(io.id as number, 2)} sel=0x${hex(select, 2)}`;
    out += select >= 0x10 ? ` (redir[${(select - 0x10) >> 1}])\n` : "\n";
    let irr = 0, remote = 0;
    const levels = io.levels as Uint8Array;
    const edges = io.pendingEdges as Uint8Array | undefined;
    for (let i = 0; i < low.length; i++) {
      const lo = low[i], hi = high[i];
      const level = (lo & (1 << 15)) !== 0;
      out += `  pin ${String(i).padEnd(2)} 0x${hex(hi, 8)}${hex(lo, 8)} dest=${
        (hi >>> 24).toString(16)
      } vec=${String(lo & 0xff).padEnd(3)} ${lo & (1 << 13) ? "active-lo" : "active-hi"} ${
        (level ? "level" : "edge").padEnd(5)
      } ${(lo & (1 << 16) ? "masked" : "").padEnd(6)} ${IOAPIC_DELIVERY[(lo >> 8) & 7].padEnd(6)} ${
        lo & (1 << 11) ? "logical" : "physical"
      }\n`;
      if ((edges?.[i] ?? 0) || (level && levels[i])) irr |= 1 << i;
      if (level && lo & (1 << 14)) remote |= 1 << i;
    }
    const dump = (name: string, bits: number) => {
      let s = `${name.padEnd(10)} `;
      if (bits === 0) return s + "(none)\n";
      for (let i = 0; i < 24; i++) if (bits & (1 << i)) s += `${String(i).padEnd(2)} `;
      return s + "\n";
    };
    out += dump("  IRR", irr) + dump("  Remote IRR", remote);
  }
  const pic = stateOf(ctx, "i8259");
  if (pic) {
    for (const [n, chip] of [[1, pic.slave], [0, pic.master]] as const) {
      const c = chip as Record<string, number | boolean>;
      out += `pic${n}: irr=${hex(c.irr as number, 2)} imr=${hex(c.imr as number, 2)} isr=${
        hex(c.isr as number, 2)
      } hprio=${c.priorityAdd} irq_base=${hex(c.vectorBase as number, 2)} rr_sel=${
        c.readIsr ? 1 : 0
      } elcr=${hex(c.elcr as number, 2)} fnm=${c.specialFullyNested ? 1 : 0}\n`;
    }
  }
  return out;
}

const APIC_DELIVERY = ["Fixed", "...", "SMI", "...", "NMI", "INIT", "...", "ExtINT"];
const SHORTHANDS = ["no-shorthand", "self", "all-self", "all"];

/**
 * `info lapic`: the local APIC of CPU `index`, its registers read through its MMIO
 * window as that CPU would read them.
 */
export function lapicText(ctx: MonitorContext, index = 0): string {
  return ctx.machine.asCpu(index, () => lapicOf(ctx, index));
}

function lapicOf(ctx: MonitorContext, index: number): string {
  const cpu = ctx.machine.cpus[index];
  let base = 0xfee00000;
  if (cpu?.getState) {
    const st = new X86State();
    cpu.getState(st);
    const msr = st.msr(0x1b);
    // IA32_APIC_BASE: bit 11 enables the APIC, bits 12 up place its window.
    if (msr !== undefined) {
      if (!(msr & 0x800n)) return "local apic state not available\n";
      base = Number(msr & 0xffffff000n);
    }
  }
  const region = ctx.machine.memory.regionAt(base);
  if (!region?.handler) return "local apic state not available\n";
  const reg = (off: number) => region.handler!.read(base - region.base + off, 4) >>> 0;
  const bits = (off: number) => {
    const out: number[] = [];
    for (let w = 0; w < 8; w++) {
      const v = reg(off + w * 0x10);
      for (let b = 0; b < 32; b++) if (v & (1 << b)) out.push(w * 32 + b);
    }
    return out;
  };
  const lvt = (name: string, off: number, timer: boolean) => {
    const v = reg(off);
    const dm = (v >> 8) & 7;
    const mode = !timer
      ? ""
      : v & (1 << 17)
      ? "periodic"
      : v & (1 << 18)
      ? "tsc-deadline"
      : "one-shot";
    return `${name}\t 0x${hex(v, 8)} ${v & (1 << 13) ? "active-lo" : "active-hi"} ${
      (v & (1 << 15) ? "level" : "edge").padEnd(5)
    } ${(v & (1 << 16) ? "masked" : "").padEnd(6)} ${(v & (1 << 12) ? "pending" : "").padEnd(7)} ${
      mode.padEnd(12)
    } ${APIC_DELIVERY[dm].padEnd(6)}${dm === 4 ? "" : ` (vec ${v & 0xff})`}\n`;
  };
  const tmr = new Set(bits(0x180));
  const interrupts = (name: string, list: number[]) =>
    `${name}\t ${list.map((v) => `${v}${tmr.has(v) ? "(level)" : ""} `).join("")}${
      list.length ? "" : "(none)"
    }\n`;
  let out = `dumping local APIC state for CPU ${index} \n\n`;
  out += lvt("LVT0", 0x350, false) + lvt("LVT1", 0x360, false) + lvt("LVTPC", 0x340, false);
  out += lvt("LVTERR", 0x370, false) + lvt("LVTTHMR", 0x330, false) + lvt("LVTT", 0x320, true);
  const dcr = reg(0x3e0);
  const v = (dcr & 3) | ((dcr >> 1) & 4);
  out += `Timer\t DCR=0x${dcr.toString(16)} (divide by ${v === 7 ? 1 : 2 << v}) initial_count = ${
    reg(0x380)
  } current_count = ${reg(0x390)}\n`;
  const svr = reg(0xf0);
  out += `SPIV\t 0x${hex(svr, 8)} APIC ${svr & 0x100 ? "enabled" : "disabled"}, focus=${
    svr & 0x200 ? "on" : "off"
  }, spurious vec ${svr & 0xff}\n`;
  const icr = reg(0x300), icr2 = reg(0x310);
  const logical = (icr & (1 << 11)) !== 0;
  const shorthand = (icr >> 18) & 3;
  out += `ICR\t 0x${hex(icr, 8)} ${logical ? "logical" : "physical"} ${
    icr & (1 << 15) ? "level" : "edge"
  } ${icr & (1 << 14) ? "assert" : "de-assert"} ${SHORTHANDS[shorthand]}\n`;
  out += `ICR2\t 0x${hex(icr2, 8)}`;
  const dfrMode = reg(0xe0) >>> 28;
  const dest = icr2 >>> 24;
  if (shorthand !== 0) out += "\n";
  else if (!logical) out += ` cpu ${dest} (APIC ID)\n`;
  else if (dfrMode === 0xf) out += ` mask ${hex(dest, 2)}\n`;
  else out += ` cluster ${dest >> 4} mask ${hex(dest & 0xf, 2)}\n`;
  out += `ESR\t 0x${hex(reg(0x280), 8)}\n`;
  out += interrupts("ISR", bits(0x100)) + interrupts("IRR", bits(0x200));
  const ldr = reg(0xd0) >>> 24;
  out += `\nAPR 0x${hex(reg(0x90), 2)} TPR 0x${hex(reg(0x80), 2)} DFR 0x${hex(dfrMode, 2)} LDR 0x${
    hex(ldr, 2)
  }${dfrMode === 0 ? `(cluster ${ldr >> 4}: id ${ldr & 0xf})` : ""} PPR 0x${hex(reg(0xa0), 2)}\n`;
  return out;
}

/**
 * `info roms`: the ROM images the board loaded, in QEMU's layout (hmp_info_roms): the
 * fw_cfg files SeaBIOS runs (`-option-rom`, the Linux loader), then the BIOS at its
 * address, each with its file name.
 */
export function romsText(ctx: MonitorContext): string {
  return machineRoms(ctx.machine).map((r) =>
    "addr" in r
      ? `addr=${hex(r.addr, 16)} size=0x${hex(r.size, 6)} mem=${
        r.isRom ? "rom" : "ram"
      } name="${r.name}"\n`
      : `fw=${r.fwDir}/${r.fwFile} size=0x${hex(r.size, 6)} name="${r.name}"\n`
  ).join("");
}

/**
 * `info mtree`: the memory and I/O address spaces. vmkit's regions are flat (no
 * containers or aliases), so each space lists them one level under its root, ordered as
 * QEMU orders subregions (by address, the higher priority first).
 */
export function mtreeText(ctx: MonitorContext): string {
  const range = (base: number, size: number) => `${hex(base, 16)}-${hex(base + size - 1, 16)}`;
  const regions = [...ctx.machine.memory.regions].sort((a, b) =>
    a.base - b.base || b.priority - a.priority
  );
  let out = "address-space: memory\n";
  out += `  ${range(0, 2 ** 64)} (prio 0, i/o): system\n`.replace(
    `${hex(2 ** 64 - 1, 16)}`,
    "ffffffffffffffff",
  );
  for (const r of regions) {
    const kind = r.kind === "mmio" ? "i/o" : r.kind;
    out += `    ${range(r.base, r.size)} (prio ${r.priority}, ${kind}): ${r.name}\n`;
  }
  out += "\naddress-space: I/O\n";
  out += `  ${range(0, 0x10000)} (prio 0, i/o): io\n`;
  for (const p of [...ctx.machine.io.ranges].sort((a, b) => a.base - b.base)) {
    out += `    ${range(p.base, p.count)} (prio 0, i/o): ${p.name}\n`;
  }
  return out + "\n";
}

/** One range of a flat view: the region that answers there, from `start` for `size` bytes. */
interface FlatRange {
  start: number;
  size: number;
  name: string;
  priority: number;
  kind: string;
  /** Where the range starts inside its region (QEMU's `@offset`), 0 at its base. */
  offset: number;
}

/**
 * The flat view of regions given in mapping order: at each address the region with the
 * highest priority answers, the later one among equals (the rule AddressSpace maps by).
 */
function flatten(
  regions: readonly { name: string; base: number; size: number; priority: number; kind: string }[],
): FlatRange[] {
  const cuts = [...new Set(regions.flatMap((r) => [r.base, r.base + r.size]))].sort((a, b) =>
    a - b
  );
  const out: FlatRange[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [a, b] = [cuts[i], cuts[i + 1]];
    let top: (typeof regions)[number] | undefined;
    for (const r of regions) {
      if (r.base <= a && b <= r.base + r.size && (!top || r.priority >= top.priority)) top = r;
    }
    if (!top) continue;
    const last = out.at(-1);
    if (
      last && last.name === top.name && last.start + last.size === a &&
      last.offset + last.size === a - top.base
    ) {
      last.size += b - a;
      continue;
    }
    out.push({
      start: a,
      size: b - a,
      name: top.name,
      priority: top.priority,
      kind: top.kind,
      offset: a - top.base,
    });
  }
  return out;
}

/**
 * `info mtree -f`: each address space's flat view in QEMU's layout, the memory view
 * shared by `memory` and each CPU's `cpu-memory-N`, then I/O, whose unassigned ports the
 * `io` root answers (QEMU's `io @offset` lines).
 */
export function mtreeFlatText(ctx: MonitorContext): string {
  const line = (r: FlatRange) =>
    `  ${hex(r.start, 16)}-${
      hex(r.start + r.size - 1, 16)
    } (prio ${r.priority}, ${r.kind}): ${r.name}${r.offset ? ` @${hex(r.offset, 16)}` : ""}\n`;
  const memory = flatten(ctx.machine.memory.regions.map((r) => ({
    name: r.name,
    base: r.base,
    size: r.size,
    priority: r.priority,
    kind: r.kind === "mmio" ? "i/o" : r.kind,
  })));
  let out = 'FlatView #0\n AS "memory", root: system\n';
  ctx.machine.cpus.forEach((_, i) => out += ` AS "cpu-memory-${i}", root: system\n`);
  out += " Root memory region: system\n" + memory.map(line).join("") + "\n";
  const io = flatten([
    { name: "io", base: 0, size: 0x10000, priority: 0, kind: "i/o" },
    ...ctx.machine.io.ranges.map((p) => ({
      name: p.name,
      base: p.base,
      size: p.count,
      priority: 1,
      kind: "i/o",
    })),
  ]).map((r) => ({ ...r, priority: 0 }));
  out += 'FlatView #1\n AS "I/O", root: io\n Root memory region: io\n';
  return out + io.map(line).join("") + "\n";
}

/** `info irq`: each interrupt controller's inputs that saw an interrupt, and how many. */
export function irqText(ctx: MonitorContext): string {
  let out = "";
  // QEMU lists the IOAPIC before the i8259s.
  const providers = ctx.machine.devices.filter((d) => d.irqStatistics)
    .map((d) => d.irqStatistics!())
    .sort((a, b) => (a.name === "ioapic" ? -1 : b.name === "ioapic" ? 1 : 0));
  for (const p of providers) {
    out += `IRQ statistics for ${p.name}:\n`;
    p.counts.forEach((n, i) => {
      if (n > 0) out += `${String(i).padStart(2)}: ${n}\n`;
    });
  }
  return out;
}

/** Adds the board's `info` commands and query-cpus-fast and query-uuid. */
export function addMachineInfoCommands(table: CommandTable): void {
  table.addQmp({ name: "query-cpus-fast", args: [], run: (ctx) => queryCpusFast(ctx) });
  table.addQmp({ name: "query-uuid", args: [], run: (ctx) => ({ UUID: uuidOf(ctx) }) });
  table.addInfo({
    name: "cpus",
    params: "",
    help: "show infos for each CPU",
    run: (ctx) =>
      queryCpusFast(ctx).map((c) =>
        `${c["cpu-index"] === 0 ? "*" : " "} CPU #${c["cpu-index"]}: thread_id=${c["thread-id"]}\n`
      ).join(""),
  });
  table.addInfo({
    name: "uuid",
    params: "",
    help: "show the current VM UUID",
    run: (ctx) => `${uuidOf(ctx)}\n`,
  });
  table.addInfo({ name: "pic", params: "", help: "show PIC state", run: (ctx) => picText(ctx) });
  table.addInfo({
    name: "irq",
    params: "",
    help: "show the interrupts statistics (if available)",
    run: (ctx) => irqText(ctx),
  });
  table.addInfo({
    name: "lapic",
    params: "[apic-id]",
    help: "show local apic state (apic-id: local apic to read, default is which of current CPU)",
    run: (ctx, args) => {
      if (args.length === 0) return lapicText(ctx, 0);
      const id = hmpInt32("lapic", args);
      if (typeof id === "string") return id;
      // QEMU's cpu_by_arch_id: the CPU whose APIC ID it is.
      const index = ctx.machine.cpus.findIndex((_, i) => ctx.machine.apicId(i) === id);
      return index < 0 ? "No CPU available\n" : lapicText(ctx, index);
    },
  });
  table.addInfo({
    name: "roms",
    params: "",
    help: "show roms",
    run: (ctx) => romsText(ctx),
  });
  table.addInfo({
    name: "mtree",
    params: "[-f][-d][-o][-D]",
    help: "show memory tree (-f: dump flat view for address spaces;" +
      "-d: dump dispatch tree, valid with -f only);" +
      "-o: dump region owners/parents;" +
      "-D: dump disabled regions",
    run: (ctx, args) => {
      // QEMU's flags; -d, -o and -D change nothing here (vmkit has no dispatch tree,
      // owners or disabled regions to show).
      const retry = 'Try "help info mtree" for more information\n';
      for (const a of args) {
        // QEMU prints the option's letter with its newline; a bare "-" prints neither.
        if (a === "-") return `mtree: unsupported option -${retry}`;
        if (a[0] === "-" && !"fdoD".includes(a[1])) {
          return `mtree: unsupported option -${a[1]}\n${retry}`;
        }
        if (a[0] !== "-" || a.length > 2) {
          return `mtree: extraneous characters at the end of line\n${retry}`;
        }
      }
      return args.includes("-f") ? mtreeFlatText(ctx) : mtreeText(ctx);
    },
  });
  table.addInfo({
    name: "qtree",
    params: "",
    help: "show device tree",
    run: (ctx) => qtreeText(ctx),
  });
}

/**
 * An HMP `i` argument (a 32-bit integer): decimal, 0x hex or 0 octal, as QEMU's
 * expression parser reads a number. Returns the value as a signed 32-bit integer, or
 * QEMU's error lines for the command `name`.
 */
export function hmpInt32(name: string, args: string[]): number | string {
  const retry = `Try "help info ${name}" for more information\n`;
  const m = /^(-?)(0x[0-9a-f]+|0[0-7]*|[1-9]\d*)(.*)$/i.exec(args[0]);
  if (!m) {
    const bad = args[0].replace(/^-/, "")[0] ?? "";
    return bad === ""
      ? `unexpected end of expression\n${retry}`
      : `invalid char '${bad}' in expression\n${retry}`;
  }
  if (m[3] !== "" || args.length > 1) {
    return `${name}: extraneous characters at the end of line\n${retry}`;
  }
  const digits = m[2];
  let v = /^0x/i.test(digits)
    ? BigInt(digits)
    : digits.length > 1 && digits[0] === "0"
    ? BigInt(`0o${digits.slice(1)}`)
    : BigInt(digits);
  if (m[1]) v = BigInt.asUintN(64, -v);
  if (v >> 32n !== 0n) return `'${name}' has failed: integer is for 32-bit values\n${retry}`;
  return Number(BigInt.asIntN(32, v));
}
