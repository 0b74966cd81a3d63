// The monitor's command table, shared by the human monitor (HMP) and QMP: built-in
// commands, and the ones plugins add through monitorCommands(machine)

import type { BlockIo } from "../block/backend.ts";
import type { BlockNode } from "../block/driver.ts";
import type { Machine } from "../machine.ts";

/** A QMP error: its class (`GenericError`, `CommandNotFound`...) and description. */
export class MonitorError extends Error {
  constructor(readonly errorClass: string, desc: string) {
    super(desc);
    this.name = "MonitorError";
  }
}

/** The type of one QMP argument, as QAPI names it. */
export type QmpArgType = "str" | "int" | "bool" | "any";

/** One argument of a QMP command. */
export interface QmpArg {
  readonly name: string;
  readonly type: QmpArgType;
  readonly optional?: boolean;
}

/** What a command runs against: the machine and the monitor around it. */
export interface MonitorContext {
  readonly machine: Machine;
  /** The commands this monitor serves (built-ins and the ones plugins added). */
  readonly table: CommandTable;
  /** Facts the machine does not know (the `-name`, the version, the chardevs). */
  readonly host: MonitorHost;
  /** The run state QMP reports (`running`, `paused`, `shutdown`...). */
  readonly status: string;
  /** Pauses the machine and sends `STOP` (nothing when already paused). */
  stop(): void;
  /** Resumes the machine and sends `RESUME` (nothing when running). */
  cont(): void;
  /**
   * Resets the machine on the host's request (`RESET` with `host-qmp-system-reset`);
   * settles once the reset is carried out (at once when the machine is not running).
   */
  systemReset(): Promise<void>;
  /** Ends vmkit (`SHUTDOWN` with `host-qmp-quit`). */
  quit(): void;
  /** Sends an event to every QMP session. */
  emit(event: string, data?: Record<string, unknown>): void;
  /** Runs one HMP command line; its output text (`human-monitor-command`). */
  hmp(line: string): Promise<string>;
}

/** What the program around the machine tells the monitor (the CLI fills it). */
export interface MonitorHost {
  /** `-name`, or undefined. */
  readonly name?: string;
  /** The QEMU version followed, and the package string (`vmkit 0.1.0`). */
  readonly version: { major: number; minor: number; micro: number; package: string };
  /** `info chardev`: each chardev's label and filename, as QEMU prints them. */
  chardevs(): { label: string; filename: string }[];
  /** `info block`/`query-block`: each drive's id, image and flags. */
  drives(): MonitorDrive[];
  /** Ends vmkit after the machine stopped (closes the monitors). */
  quit(): void;
  /**
   * Opens an image read-only as a new medium (`change`, `blockdev-change-medium`); the
   * host closes it at exit. Absent where images cannot be opened.
   */
  openMedium?(file: string, format?: string): Promise<BlockIo>;
  /**
   * Copies what `top` holds into its backing file (`commit`), through a read-write node
   * of the backing file the host opens for it. Absent where images cannot be opened.
   */
  commitImage?(top: BlockNode): Promise<void>;
}

/** One drive as `info block` shows it. */
export interface MonitorDrive {
  id: string;
  /** The image file, or null for an empty removable drive. */
  file: string | null;
  format?: string;
  readOnly: boolean;
  removable: boolean;
  cache?: string;
}

/** A QMP command: its arguments and what it returns (a JSON value). */
export interface QmpCommand {
  readonly name: string;
  readonly args: readonly QmpArg[];
  /** Allowed before `qmp_capabilities` (only that one is, in QEMU). */
  readonly beforeNegotiation?: boolean;
  run(ctx: MonitorContext, args: Record<string, unknown>): unknown | Promise<unknown>;
}

/** An HMP command (`stop`) or `info` subcommand (`status`): its help and what it prints. */
export interface HmpCommand {
  /** The name, or names joined by `|` as `help` prints them (`cont|c`). */
  readonly name: string;
  /** The argument synopsis `help` prints (`[subcommand]`, `/fmt addr`). */
  readonly params: string;
  readonly help: string;
  /** Runs with the words after the name; returns the text to print (lines end in `\n`). */
  run(ctx: MonitorContext, args: string[]): string | Promise<string>;
}

/**
 * The commands one monitor serves. Built-ins are added by the monitor; a plugin adds its
 * own through {@linkcode monitorCommands} (a later command of the same name replaces
 * the earlier).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CommandTable } from "./commands.ts";
 *
 * const table = new CommandTable();
 * table.addQmp({ name: "query-answer", args: [], run: () => ({ value: 42 }) });
 * table.addInfo({ name: "answer", params: "", help: "show the answer", run: () => "42\n" });
 * assert.equal(table.qmp("query-answer")?.name, "query-answer");
 * assert.equal(table.info("answer")?.help, "show the answer");
 * ```
 */
export class CommandTable {
  #qmp = new Map<string, QmpCommand>();
  #hmp = new Map<string, HmpCommand>();
  #info = new Map<string, HmpCommand>();

  /** Adds a QMP command. */
  addQmp(command: QmpCommand): void {
    this.#qmp.set(command.name, command);
  }

  /** Adds an HMP command. */
  addHmp(command: HmpCommand): void {
    this.#hmp.set(command.name, command);
  }

  /** Adds an `info` subcommand. */
  addInfo(command: HmpCommand): void {
    this.#info.set(command.name, command);
  }

  /** A QMP command by name. */
  qmp(name: string): QmpCommand | undefined {
    return this.#qmp.get(name);
  }

  /** An HMP command by any of its names. */
  hmp(name: string): HmpCommand | undefined {
    return findByName(this.#hmp, name);
  }

  /** An `info` subcommand by any of its names. */
  info(name: string): HmpCommand | undefined {
    return findByName(this.#info, name);
  }

  /** Every QMP command, sorted by name. */
  qmpCommands(): QmpCommand[] {
    return [...this.#qmp.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Every HMP command, sorted by name. */
  hmpCommands(): HmpCommand[] {
    return [...this.#hmp.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Every `info` subcommand, sorted by name. */
  infoCommands(): HmpCommand[] {
    return [...this.#info.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }
}

function findByName(map: Map<string, HmpCommand>, name: string): HmpCommand | undefined {
  const exact = map.get(name);
  if (exact) return exact;
  for (const c of map.values()) if (c.name.split("|").includes(name)) return c;
  return undefined;
}

const tables = new WeakMap<Machine, CommandTable>();

/**
 * The command table of a machine's monitors: a plugin adds commands here from its
 * `create(ctx)` (the monitors are made later and see them).
 */
export function monitorCommands(machine: Machine): CommandTable {
  let t = tables.get(machine);
  if (!t) {
    t = new CommandTable();
    tables.set(machine, t);
  }
  return t;
}

/**
 * Checks QMP arguments against a command's list: unknown, missing and mistyped ones are
 * refused with QEMU's messages.
 */
export function checkQmpArgs(command: QmpCommand, args: unknown): Record<string, unknown> {
  if (args === undefined) args = {};
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new MonitorError("GenericError", "QMP input member 'arguments' must be an object");
  }
  const given = args as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!command.args.some((a) => a.name === key)) {
      throw new MonitorError("GenericError", `Parameter '${key}' is unexpected`);
    }
  }
  for (const a of command.args) {
    const v = given[a.name];
    if (v === undefined) {
      if (!a.optional) throw new MonitorError("GenericError", `Parameter '${a.name}' is missing`);
      continue;
    }
    const ok = a.type === "any" ||
      (a.type === "str" && typeof v === "string") ||
      (a.type === "bool" && typeof v === "boolean") ||
      (a.type === "int" && typeof v === "number" && Number.isInteger(v));
    if (!ok) {
      const want = a.type === "str" ? "string" : a.type === "bool" ? "boolean" : "integer";
      throw new MonitorError(
        "GenericError",
        `Invalid parameter type for '${a.name}', expected: ${want}`,
      );
    }
  }
  return given;
}

/**
 * QEMU's answer to words after a command that takes none (monitor_parse_command): the
 * command's full name (`stop|s`), then help for what was typed (`stop`, `info status`).
 */
export function extraneous(name: string, typed: string): string {
  return `${name}: extraneous characters at the end of line\n` +
    `Try "help ${typed}" for more information\n`;
}
