// The built-in monitor commands: run state, versions, registers, PCI, block, chardevs, memory

import {
  X86_CR0,
  X86_CR2,
  X86_CR3,
  X86_CR4,
  X86_DR,
  X86_EFER,
  X86_EV_HALTED,
  X86_EVENTS,
} from "../x86_state.ts";
import {
  X86_GDTR_BASE,
  X86_GDTR_LIMIT,
  X86_IDTR_BASE,
  X86_IDTR_LIMIT,
  X86_RFLAGS,
} from "../x86_state.ts";
import { X86_CPL, X86_SEG, X86_SEG_SIZE, X86State } from "../x86_state.ts";
import { POWER_BUTTON, REMOVABLE_MEDIA } from "../device.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";
import { addMediaCommands } from "./media.ts";
import { addSendKeyCommands } from "./sendkey.ts";
import { extraneous, MonitorError } from "./commands.ts";
import { addNetInfoCommands } from "../net_monitor.ts";
import { addPciCommands } from "./pci_info.ts";
import { addBlockInfoCommands, drivePath, nodeName } from "./block_info.ts";
import { addMachineInfoCommands } from "./machine_info.ts";
import { addBalloonCommands } from "./balloon.ts";
import { addCommitCommands } from "./commit.ts";
import { hex } from "./hex.ts";

/** Adds the built-in QMP and HMP commands to `table`. */
export function addBuiltinCommands(table: CommandTable): void {
  addMediaCommands(table);
  addSendKeyCommands(table);
  addNetInfoCommands(table);
  addPciCommands(table);
  addBlockInfoCommands(table);
  addMachineInfoCommands(table);
  addBalloonCommands(table);
  addCommitCommands(table);
  const none = [] as const;
  table.addQmp({ name: "query-status", args: none, run: (ctx) => statusInfo(ctx) });
  table.addQmp({
    name: "query-version",
    args: none,
    run: (ctx) => {
      const v = ctx.host.version;
      return { qemu: { micro: v.micro, minor: v.minor, major: v.major }, package: v.package };
    },
  });
  table.addQmp({
    name: "query-name",
    args: none,
    run: (ctx) => (ctx.host.name === undefined ? {} : { name: ctx.host.name }),
  });
  table.addQmp({
    name: "query-commands",
    args: none,
    run: (ctx) => ctx.table.qmpCommands().map((c) => ({ name: c.name })),
  });
  table.addQmp({ name: "stop", args: none, run: (ctx) => (ctx.stop(), {}) });
  table.addQmp({ name: "cont", args: none, run: (ctx) => (ctx.cont(), {}) });
  table.addQmp({
    name: "system_reset",
    args: none,
    run: async (ctx) => (await ctx.systemReset(), {}),
  });
  table.addQmp({ name: "quit", args: none, run: (ctx) => (ctx.quit(), {}) });
  table.addQmp({ name: "system_powerdown", args: none, run: (ctx) => (powerDown(ctx), {}) });
  table.addQmp({
    name: "human-monitor-command",
    args: [{ name: "command-line", type: "str" }, {
      name: "cpu-index",
      type: "int",
      optional: true,
    }],
    run: async (ctx, args) =>
      (await ctx.hmp(args["command-line"] as string)).replace(/\r?\n/g, "\r\n"),
  });

  table.addHmp({
    name: "help|?",
    params: "[cmd]",
    help: "show the help",
    run: (ctx, args) => helpText(ctx.table.hmpCommands(), args[0]),
  });
  table.addHmp({
    name: "info",
    params: "[subcommand]",
    help: "show various information about the system state",
    run: (ctx, args) => {
      if (args.length === 0) return helpText(ctx.table.infoCommands(), undefined, "info ");
      const sub = ctx.table.info(args[0]);
      if (!sub) throw new MonitorError("CommandNotFound", `unknown command: 'info ${args[0]}'`);
      if (sub.params === "" && args.length > 1) return extraneous(sub.name, `info ${args[0]}`);
      return sub.run(ctx, args.slice(1));
    },
  });
  table.addHmp({
    name: "stop|s",
    params: "",
    help: "stop emulation",
    run: (ctx) => (ctx.stop(), ""),
  });
  table.addHmp({
    name: "cont|c",
    params: "",
    help: "resume emulation",
    run: (ctx) => (ctx.cont(), ""),
  });
  table.addHmp({
    name: "system_reset",
    params: "",
    help: "reset the system",
    run: async (ctx) => (await ctx.systemReset(), ""),
  });
  table.addHmp({
    name: "system_powerdown",
    params: "",
    help: "send system power down event",
    run: (ctx) => (powerDown(ctx), ""),
  });
  table.addHmp({
    name: "quit|q",
    params: "",
    help: "quit the emulator",
    run: (ctx) => (ctx.quit(), ""),
  });
  table.addHmp({
    name: "x",
    params: "/fmt addr",
    help: "virtual memory dump starting at 'addr'",
    run: (ctx, args) => memoryDump(ctx, args, false),
  });
  table.addHmp({
    name: "xp",
    params: "/fmt addr",
    help: "physical memory dump starting at 'addr'",
    run: (ctx, args) => memoryDump(ctx, args, true),
  });

  table.addInfo({
    name: "status",
    params: "",
    help: "show the current VM status (running|paused)",
    run: (ctx) => {
      const s = statusInfo(ctx);
      const detail = s.status === "running" || s.status === "paused" ? "" : ` (${s.status})`;
      return `VM status: ${s.running ? "running" : "paused"}${detail}\n`;
    },
  });
  table.addInfo({
    name: "version",
    params: "",
    help: "show the version of QEMU",
    run: (ctx) => {
      const v = ctx.host.version;
      return `${v.major}.${v.minor}.${v.micro}${v.package}\n`;
    },
  });
  table.addInfo({
    name: "name",
    params: "",
    help: "show the current VM name",
    run: (ctx) => (ctx.host.name === undefined ? "" : `${ctx.host.name}\n`),
  });
  table.addInfo({
    name: "chardev",
    params: "",
    help: "show the character devices",
    run: (ctx) => ctx.host.chardevs().map((c) => `${c.label}: filename=${c.filename}\n`).join(""),
  });
  table.addInfo({
    name: "block",
    params: "[-n] [-v] [device]",
    help:
      "show info of one block device or all block devices (-n: show named nodes; -v: show details)",
    run: (ctx, args) => blockText(ctx, args.find((a) => !a.startsWith("-"))),
  });
  table.addInfo({
    name: "registers",
    params: "[-a|-c]",
    help:
      "show the cpu registers (-a: show register info for all cpus; -c: show register info for current cpu)",
    run: (ctx, args) => registersText(ctx, args.includes("-a")),
  });
}

// QEMU's qmp_system_powerdown: the board's power button, then the POWERDOWN event.
function powerDown(ctx: MonitorContext): void {
  const button = ctx.machine.findService(POWER_BUTTON);
  if (!button) throw new MonitorError("GenericError", "This machine has no ACPI power button");
  button.powerDown();
  ctx.emit("POWERDOWN");
}

function statusInfo(
  ctx: MonitorContext,
): { status: string; singlestep: boolean; running: boolean } {
  return { status: ctx.status, singlestep: false, running: ctx.status === "running" };
}

function helpText(
  commands: { name: string; params: string; help: string }[],
  only?: string,
  prefix = "",
): string {
  const chosen = only === undefined
    ? commands
    : commands.filter((c) => c.name.split("|").includes(only));
  return chosen.map((c) => `${prefix}${c.name} ${c.params} -- ${c.help}\n`).join("");
}

/** A 32-bit register as QEMU's `%08x` prints it (the low 32 bits). */
function hex32(value: number): string {
  return hex(value >>> 0, 8);
}

function hex64(value: number): string {
  return hex(value, 16);
}

// QEMU's hmp_info_block: with a device name only that drive (nothing for an unknown name),
// after the blank line that separates it from the drives listed before it.
function blockText(ctx: MonitorContext, device?: string): string {
  const drives = ctx.machine.config.drives;
  const parts = ctx.host.drives().map((d) => {
    if (device !== undefined && d.id !== device) return undefined;
    // The tray as the drive has it (eject leaves it open; the guest may lock it).
    const media = ctx.machine.findService(REMOVABLE_MEDIA)?.get(d.id);
    const tray = `    Removable device: ${media?.locked ? "locked" : "not locked"}, tray ${
      media?.trayOpen ? "open" : "closed"
    }\n`;
    const index = drives.findIndex((c) => c.id === d.id);
    const attached = index < 0 ? "" : `    Attached to:      ${drivePath(ctx, drives[index])}\n`;
    if (d.file === null) return `${d.id}: [not inserted]\n${attached}${tray}`;
    let s = `${d.id}${index < 0 ? "" : ` (${nodeName(index)})`}: ${d.file} (${d.format ?? "raw"}${
      d.readOnly ? ", read-only" : ""
    })\n${attached}`;
    if (d.removable) s += tray;
    s += `    Cache mode:       ${d.cache ?? "writeback"}\n`;
    return s;
  });
  return parts.map((p, i) => (p === undefined ? "" : i === 0 ? p : `\n${p}`)).join("");
}

const SEG_NAMES = ["ES =", "CS =", "SS =", "DS =", "FS =", "GS =", "LDT=", "TR ="];

// QEMU's x86_cpu_dump_state, the 32-bit layout (the machine is in legacy mode until the
// guest enables long mode; then the 64-bit layout).
function registersText(ctx: MonitorContext, all: boolean): string {
  const cpus = all ? ctx.machine.cpus : ctx.machine.cpus.slice(0, 1);
  let out = "";
  cpus.forEach((cpu, index) => {
    if (!cpu.getState) {
      out += `\nCPU#${index}\n`;
      out += Object.entries(cpu.registers()).map(([k, v]) =>
        `${k.toUpperCase()}=${hex32(v)}`
      ).join(" ") + "\n";
      return;
    }
    const st = new X86State();
    cpu.getState(st);
    const long = (st.u64(X86_EFER) & 0x400) !== 0;
    const reg = (r: number) => (long ? hex64(Number(st.gpr(r))) : hex32(st.gpr32(r)));
    const names = long
      ? ["RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP"]
      : ["EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP"];
    const order = [0, 3, 1, 2, 6, 7, 5, 4];
    const lines = ["", `CPU#${index}`];
    lines.push(names.slice(0, 4).map((n, i) => `${n}=${reg(order[i])}`).join(" "));
    lines.push(names.slice(4).map((n, i) => `${n}=${reg(order[i + 4])}`).join(" "));
    if (long) {
      for (let r = 8; r < 16; r += 4) {
        lines.push(
          [r, r + 1, r + 2, r + 3].map((n) => `R${String(n).padEnd(2)}=${reg(n)}`).join(" "),
        );
      }
    }
    const fl = st.u64(X86_RFLAGS);
    const flagText = [[11, "O"], [10, "D"], [7, "S"], [6, "Z"], [4, "A"], [2, "P"], [0, "C"]]
      .map(([bit, ch]) => (fl & (1 << (bit as number)) ? ch : "-")).join("");
    const halted = (st.u16(X86_EVENTS) & X86_EV_HALTED) ? 1 : 0;
    const ip = long ? `RIP=${hex64(st.rip)}` : `EIP=${hex32(st.rip)}`;
    lines.push(
      `${ip} ${long ? "RFL" : "EFL"}=${hex32(fl)} [${flagText}] CPL=${st.u16(X86_CPL) & 3} II=0 ` +
        `A20=${ctx.machine.a20 ? 1 : 0} SMM=0 HLT=${halted}`,
    );
    for (let s = 0; s < 8; s++) {
      const o = X86_SEG + s * X86_SEG_SIZE;
      const base = long ? hex64(st.u64(o + 8)) : hex32(st.u64(o + 8));
      const flags = (st.u16(o + 2) & 0xf0ff) << 8;
      lines.push(
        `${SEG_NAMES[s]}${hex(st.u16(o), 4)} ${base} ${hex32(st.u32(o + 4))} ${hex32(flags)}`,
      );
    }
    const b = (off: number) => (long ? hex64(st.u64(off)) : hex32(st.u64(off)));
    lines.push(`GDT=     ${b(X86_GDTR_BASE)} ${hex32(st.u32(X86_GDTR_LIMIT))}`);
    lines.push(`IDT=     ${b(X86_IDTR_BASE)} ${hex32(st.u32(X86_IDTR_LIMIT))}`);
    lines.push(
      `CR0=${hex32(st.u64(X86_CR0))} CR2=${b(X86_CR2)} CR3=${b(X86_CR3)} CR4=${
        hex32(st.u64(X86_CR4))
      }`,
    );
    lines.push([0, 1, 2, 3].map((i) => `DR${i}=${hex64(st.u64(X86_DR + 8 * i))}`).join(" ") + " ");
    lines.push(`DR6=${hex64(st.u64(X86_DR + 48))} DR7=${hex64(st.u64(X86_DR + 56))}`);
    lines.push(`EFER=${hex64(st.u64(X86_EFER))}`);
    out += lines.join("\n") + "\n";
  });
  return out;
}

// `x /fmt addr` and `xp /fmt addr`: count, format (x d u o c) and size (b h w g).
function memoryDump(ctx: MonitorContext, args: string[], physical: boolean): string {
  let fmt = "x", size = 4, count = 1;
  let rest = args;
  if (rest[0]?.startsWith("/")) {
    const m = /^\/(\d*)([xduoc]?)([bhwg]?)$/.exec(rest[0]);
    if (!m) throw new MonitorError("GenericError", `invalid char in format: '${rest[0].slice(1)}'`);
    if (m[1]) count = Number(m[1]);
    if (m[2]) fmt = m[2];
    if (m[3]) size = { b: 1, h: 2, w: 4, g: 8 }[m[3]]!;
    else if (fmt === "c") size = 1;
    rest = rest.slice(1);
  }
  if (rest.length !== 1) throw new MonitorError("GenericError", "missing address");
  const addr = Number(rest[0]);
  if (!Number.isSafeInteger(addr) || addr < 0) {
    throw new MonitorError("GenericError", `invalid address: '${rest[0]}'`);
  }
  if (count > 4096) count = 4096;
  if (!physical && ctx.machine.cpus[0]?.getState) {
    // Paging is not walked here: linear equals physical while CR0.PG is clear.
    const st = new X86State();
    ctx.machine.cpus[0].getState(st);
    if (st.u64(X86_CR0) & 0x80000000) {
      throw new MonitorError("GenericError", "x with paging enabled is not supported yet; use xp");
    }
  }
  const bytes = new Uint8Array(count * size);
  ctx.machine.memory.dmaRead(addr, bytes);
  const perLine = size === 8 ? 2 : size === 1 ? 8 : 4;
  let out = "";
  for (let i = 0; i < count; i++) {
    if (i % perLine === 0) out += `${hex64(addr + i * size)}:`;
    let v = 0n;
    for (let k = size - 1; k >= 0; k--) v = (v << 8n) | BigInt(bytes[i * size + k]);
    let text: string;
    if (fmt === "x") text = `0x${v.toString(16).padStart(size * 2, "0")}`;
    else if (fmt === "o") text = `0${v.toString(8)}`;
    else if (fmt === "c") text = `'${String.fromCharCode(Number(v & 0xffn))}'`;
    else if (fmt === "d" && v >> BigInt(size * 8 - 1)) {
      text = (v - (1n << BigInt(size * 8))).toString();
    } else text = v.toString();
    out += ` ${text}`;
    if (i % perLine === perLine - 1 || i === count - 1) out += "\n";
  }
  return out;
}
