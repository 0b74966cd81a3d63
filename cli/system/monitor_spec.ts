// -monitor, -qmp and -mon as a command line gives them: what each monitor listens on

import {
  FONT_HEIGHT,
  FONT_WIDTH,
  MAX_TEXT_COLUMNS,
  MAX_TEXT_ROWS,
} from "../../core/text_console.ts";
import { UsageError } from "../../core/errors.ts";
import { parseKeyValueList } from "../../core/options.ts";

/** One `-monitor` or `-qmp` as parsed. */
export interface MonitorSpec {
  /** `hmp` for -monitor, `qmp` for -qmp. */
  mode: "hmp" | "qmp";
  /**
   * `stdio`, `unix` (path), `tcp` (host and port; `telnet:` is tcp without negotiation)
   * or `vc` (a text console of the display, `columns` x `rows` cells).
   */
  transport: "stdio" | "unix" | "tcp" | "vc";
  columns?: number;
  rows?: number;
  path?: string;
  host?: string;
  port?: number;
  /** `wait=on` (QEMU's default for a server): start the guest once a client connected. */
  wait: boolean;
  /** The text as given, for messages and `info chardev`. */
  text: string;
  /**
   * The label `info chardev` shows: the chardev id of a `-mon chardev=ID`; QEMU's
   * `compat_monitorN` for the Nth `-monitor`/`-qmp` (set by {@linkcode monitorSpecs}).
   */
  label?: string;
}

/**
 * Parses `-monitor`/`-qmp` values; `none` gives nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMonitorSpec } from "./monitor_spec.ts";
 *
 * const s = parseMonitorSpec("qmp", "unix:/tmp/q.sock,server=on,wait=off")!;
 * assert.equal(s.transport, "unix");
 * assert.equal(s.path, "/tmp/q.sock");
 * assert.equal(s.wait, false);
 * assert.equal(parseMonitorSpec("hmp", "none"), null);
 * ```
 */
export function parseMonitorSpec(mode: "hmp" | "qmp", text: string): MonitorSpec | null {
  const option = mode === "hmp" ? "-monitor" : "-qmp";
  if (text === "none") return null;
  if (text === "stdio") return { mode, transport: "stdio", wait: false, text };
  if (text === "vc" || text.startsWith("vc:")) return { ...parseVcSize(option, text), mode, text };
  const [head, ...rest] = text.split(",");
  const kind = head.includes(":") ? head.slice(0, head.indexOf(":")) : head;
  if (!["unix", "tcp", "telnet"].includes(kind)) {
    throw new UsageError(`${option} ${text}: '${kind}' is not a valid char driver`);
  }
  const flags = new Map<string, string>();
  for (const item of rest) {
    const eq = item.indexOf("=");
    flags.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? "on" : item.slice(eq + 1));
  }
  for (const key of flags.keys()) {
    if (!["server", "wait", "nowait", "nodelay"].includes(key)) {
      throw new UsageError(`${option} ${text}: Invalid parameter '${key}'`);
    }
  }
  const server = flags.get("server");
  if (server !== "on") {
    throw new UsageError(`${option} ${text}: vmkit's monitor listens only: add server=on`);
  }
  const wait = flags.has("nowait") ? false : flags.get("wait") !== "off";
  const colon = head.indexOf(":");
  const where = colon < 0 ? "" : head.slice(colon + 1);
  if (kind === "unix") {
    if (!where) throw new UsageError(`${option} ${text}: a unix socket needs a path`);
    return { mode, transport: "unix", path: where, wait, text };
  }
  if (kind === "tcp" || kind === "telnet") {
    const m = /^(.*):(\d+)$/.exec(where);
    if (!m || Number(m[2]) > 65535) {
      throw new UsageError(`${option} ${text}: expected HOST:PORT`);
    }
    const host = m[1].replace(/^\[(.*)\]$/, "$1") || "0.0.0.0";
    return { mode, transport: "tcp", host, port: Number(m[2]), wait, text };
  }
  throw new UsageError(`${option} ${text}: '${kind}' is not a valid char driver`);
}

/**
 * The size of `vc[:WxH|:COLSCxROWSC]` as QEMU 7.2 reads it: pixels (a cell is 8x16) or
 * columns and rows with a C; 640x480 (80x30 cells) when not given.
 */
function parseVcSize(
  option: string,
  text: string,
): { transport: "vc"; wait: false; columns: number; rows: number } {
  let columns = 640 / FONT_WIDTH;
  let rows = 480 / FONT_HEIGHT;
  if (text !== "vc") {
    const m = /^vc:(\d{1,5})(C?)x(\d{1,5})(C?)$/.exec(text);
    if (!m) {
      throw new UsageError(`${option} ${text}: expected vc, vc:WIDTHxHEIGHT or vc:COLSCxROWSC`);
    }
    columns = m[2] ? Number(m[1]) : Math.floor(Number(m[1]) / FONT_WIDTH);
    rows = m[4] ? Number(m[3]) : Math.floor(Number(m[3]) / FONT_HEIGHT);
  }
  if (columns < 1 || rows < 1 || columns > MAX_TEXT_COLUMNS || rows > MAX_TEXT_ROWS) {
    throw new UsageError(
      `${option} ${text}: a vc is 1x1 to ${MAX_TEXT_COLUMNS}x${MAX_TEXT_ROWS} characters`,
    );
  }
  return { transport: "vc", wait: false, columns, rows };
}

/** The `-monitor` and `-qmp` options of a command line, in order; `none` drops out. */
export function monitorSpecs(opts: readonly { name: string; value: string }[]): MonitorSpec[] {
  const specs: MonitorSpec[] = [];
  // QEMU counts -monitor and -qmp together: compat_monitor0, compat_monitor1...
  let unnamed = 0;
  for (const o of opts) {
    if (o.name === "mon") {
      specs.push(monSpec(o.value, opts));
      continue;
    }
    if (o.name !== "monitor" && o.name !== "qmp") continue;
    const s = parseMonitorSpec(o.name === "monitor" ? "hmp" : "qmp", o.value);
    if (s) specs.push({ ...s, label: `compat_monitor${unnamed++}` });
  }
  if (specs.filter((s) => s.transport === "stdio").length > 1) {
    throw new UsageError("cannot use stdio by multiple character devices");
  }
  return specs;
}

/** The `-chardev` ids that `-mon` options take for monitors (config leaves them alone). */
export function monitorChardevIds(opts: readonly { name: string; value: string }[]): Set<string> {
  const ids = new Set<string>();
  for (const o of opts) {
    if (o.name !== "mon") continue;
    const id = parseKeyValueList(o.value, { impliedKey: "chardev" }).find((i) =>
      i.key === "chardev"
    )?.value;
    if (id) ids.add(id);
  }
  return ids;
}

// `-mon chardev=ID[,mode=readline|control][,pretty=on|off]` over `-chardev socket|stdio,id=ID,...`.
function monSpec(text: string, opts: readonly { name: string; value: string }[]): MonitorSpec {
  const items = parseKeyValueList(text, { impliedKey: "chardev" });
  const get = (k: string) => items.find((i) => i.key === k)?.value;
  for (const i of items) {
    if (!["chardev", "mode", "pretty"].includes(i.key)) {
      throw new UsageError(`-mon ${text}: Invalid parameter '${i.key}'`);
    }
  }
  const id = get("chardev");
  if (!id) throw new UsageError(`-mon ${text}: Parameter 'chardev' is missing`);
  const modeText = get("mode") ?? "readline";
  if (modeText !== "readline" && modeText !== "control") {
    throw new UsageError(`-mon ${text}: unknown monitor mode '${modeText}'`);
  }
  const mode = modeText === "control" ? "qmp" : "hmp";
  const chardev = opts.filter((o) => o.name === "chardev")
    .map((o) => ({ text: o.value, items: parseKeyValueList(o.value, { impliedKey: "backend" }) }))
    .find((c) => c.items.some((i) => i.key === "id" && i.value === id));
  if (!chardev) throw new UsageError(`-mon ${text}: chardev "${id}" not found`);
  const cget = (k: string) => chardev.items.find((i) => i.key === k)?.value;
  const backend = cget("backend");
  let spec: MonitorSpec | null;
  if (backend === "stdio") {
    spec = { mode, transport: "stdio", wait: false, text: "stdio" };
  } else if (backend === "vc") {
    // -chardev vc: cols=/rows= in characters, or width=/height= in pixels.
    const size = (chars: string, pixels: string, cell: number, fallback: number) =>
      cget(chars) !== undefined
        ? `${cget(chars)}C`
        : String(cget(pixels) !== undefined ? cget(pixels) : fallback * cell);
    const text = `vc:${size("cols", "width", FONT_WIDTH, 80)}x${
      size("rows", "height", FONT_HEIGHT, 30)
    }`;
    spec = { ...parseVcSize("-chardev", text), mode, text: "vc" };
  } else if (backend === "socket") {
    const flags = ["server", "wait"].filter((k) => cget(k) !== undefined)
      .map((k) => `${k}=${cget(k)}`);
    const where = cget("path") !== undefined
      ? `unix:${cget("path")}`
      : `${cget("telnet") === "on" ? "telnet" : "tcp"}:${cget("host") ?? ""}:${cget("port") ?? ""}`;
    spec = parseMonitorSpec(mode, [where, ...flags].join(","));
  } else {
    throw new UsageError(
      `-chardev ${chardev.text}: a monitor chardev must be 'socket', 'stdio' or 'vc' in vmkit`,
    );
  }
  return { ...spec!, label: id };
}
