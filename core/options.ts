// QEMU's option syntax: key=value lists, sizes, booleans, and checking against a plugin's option list

import { OptionError } from "./errors.ts";

/** The type of one declared option, spelled as QEMU's help output spells it. */
export type OptionType = "string" | "size" | "bool" | "number" | "enum";

/** One option a plugin accepts: its name, type, help text and limits. */
export interface OptionSpec {
  /** The name a user types (`cluster_size`, `if`, `l2-cache-size`). */
  readonly name: string;
  /** How the value is parsed. */
  readonly type: OptionType;
  /** One line for `-o help` and `-device foo,help`. */
  readonly help: string;
  /** Allowed values for `enum` options. */
  readonly values?: readonly string[];
  /** The value used when the option is not given (shown in help where QEMU shows it). */
  readonly default?: string | number | boolean;
  /** Leave the option out of help listings (accepted but not advertised). */
  readonly hidden?: boolean;
}

/** A parsed, typed option value. */
export type OptionValue = string | number | boolean;

/** Parsed options: names as typed, values typed by their spec. */
export type ParsedOptions = Record<string, OptionValue>;

/** One raw `key=value` item in the order the user wrote it. */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** True when the item had no `=` (a bare word such as `help` or `readonly`). */
  readonly bare: boolean;
}

/** Options for {@linkcode parseKeyValueList}. */
export interface ParseKeyValueOptions {
  /** The key a bare first item belongs to (`file` for `-drive disk.img`, `model` for `-net nic`). */
  impliedKey?: string;
}

/**
 * Splits a QEMU option string into `key=value` items.
 *
 * `,,` is a literal comma inside a value; a bare first item is the value of
 * `impliedKey` when one is given; any other bare item is kept with `bare: true`
 * (QEMU reads `readonly` as `readonly=on`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseKeyValueList } from "./options.ts";
 *
 * const items = parseKeyValueList("a,,b.img,if=virtio", { impliedKey: "file" });
 * assert.deepEqual(items.map((i) => [i.key, i.value]), [["file", "a,b.img"], ["if", "virtio"]]);
 * ```
 */
export function parseKeyValueList(
  text: string,
  options: ParseKeyValueOptions = {},
): KeyValue[] {
  const items: KeyValue[] = [];
  let pos = 0;
  let first = true;
  while (pos <= text.length) {
    // Read one item up to a single comma; ",," is an escaped comma.
    let raw = "";
    let eqAt = -1;
    while (pos < text.length) {
      const ch = text[pos];
      if (ch === ",") {
        if (text[pos + 1] === ",") {
          raw += ",";
          pos += 2;
          continue;
        }
        break;
      }
      if (ch === "=" && eqAt < 0) eqAt = raw.length;
      raw += ch;
      pos++;
    }
    pos++; // the separating comma (or past the end)
    if (raw === "" && eqAt < 0) {
      if (pos > text.length) break;
      throw new OptionError(`Invalid empty parameter in '${text}'`);
    }
    if (eqAt >= 0) {
      const key = raw.slice(0, eqAt);
      if (key === "") throw new OptionError(`Invalid parameter '${raw}': empty name`);
      items.push({ key, value: raw.slice(eqAt + 1), bare: false });
    } else if (first && options.impliedKey !== undefined && !isHelpWord(raw)) {
      items.push({ key: options.impliedKey, value: raw, bare: false });
    } else {
      items.push({ key: raw, value: "", bare: true });
    }
    first = false;
  }
  return items;
}

/** True for the words QEMU reads as a request for help: `help` and `?`. */
export function isHelpWord(text: string): boolean {
  return text === "help" || text === "?";
}

/** True when an option string asks for help (`help`, `?`, or an item `help`). */
export function isHelpRequest(text: string): boolean {
  if (isHelpWord(text)) return true;
  return text.split(",").some(isHelpWord);
}

const SIZE_SUFFIX_SHIFT: Record<string, number> = {
  b: 0,
  k: 10,
  m: 20,
  g: 30,
  t: 40,
  p: 50,
  e: 60,
};

/** Options for {@linkcode parseSize}. */
export interface ParseSizeOptions {
  /** Unit of a number without suffix: `b` (bytes, the default) or `m` (as `-m 768` reads). */
  defaultSuffix?: "b" | "k" | "m" | "g";
  /** What the value is, for the error message (`size`, `cluster_size`). */
  what?: string;
}

/**
 * Reads a size as QEMU's `qemu_strtosz` does: a decimal number, an optional
 * fraction, and an optional binary suffix `B K M G T P E` (case-insensitive).
 *
 * @returns the size in bytes (at most 2^63 - 1; sizes that large lose precision
 * as a `number`, and every caller bounds them far below that)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSize } from "./options.ts";
 *
 * assert.equal(parseSize("8G"), 8 * 1024 ** 3);
 * assert.equal(parseSize("512K"), 512 * 1024);
 * assert.equal(parseSize("1.5M"), 1572864);
 * assert.equal(parseSize("768", { defaultSuffix: "m" }), 768 * 1024 * 1024);
 * ```
 */
export function parseSize(text: string, options: ParseSizeOptions = {}): number {
  const what = options.what ?? "size";
  const m = /^\s*(\d+)(?:\.(\d+))?\s*([bkmgtpeBKMGTPE])?$/.exec(text);
  if (!m) {
    throw new OptionError(
      `Parameter '${what}' expects a non-negative number below 2^64: got '${text}'`,
    );
  }
  const suffix = (m[3] ?? options.defaultSuffix ?? "b").toLowerCase();
  const shift = SIZE_SUFFIX_SHIFT[suffix];
  const whole = BigInt(m[1]);
  let bytes = whole << BigInt(shift);
  if (m[2] !== undefined) {
    // QEMU allows a fraction only with a suffix other than bytes.
    if (shift === 0) {
      throw new OptionError(`Parameter '${what}' expects a whole number of bytes: got '${text}'`);
    }
    const frac = BigInt(m[2]);
    const denom = 10n ** BigInt(m[2].length);
    bytes += (frac << BigInt(shift)) / denom;
  }
  if (bytes >= 1n << 63n) {
    throw new OptionError(
      `Parameter '${what}' expects a non-negative number below 2^64: got '${text}'`,
    );
  }
  return Number(bytes);
}

/**
 * Reads a size with an optional sign, as `qemu-img resize` takes `+2G`, `-1G` or `10G`.
 *
 * @returns `{ relative, bytes }` where `bytes` is negative for a `-` size.
 */
export function parseSignedSize(text: string): { relative: boolean; bytes: number } {
  if (text.startsWith("+")) return { relative: true, bytes: parseSize(text.slice(1)) };
  if (text.startsWith("-")) return { relative: true, bytes: -parseSize(text.slice(1)) };
  return { relative: false, bytes: parseSize(text) };
}

const TRUE_WORDS = new Set(["on", "yes", "true", "y"]);
const FALSE_WORDS = new Set(["off", "no", "false", "n"]);

/**
 * Reads a boolean as QEMU does: `on/off`, `yes/no`, `true/false`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBool } from "./options.ts";
 *
 * assert.equal(parseBool("on", "lazy_refcounts"), true);
 * assert.equal(parseBool("no", "lazy_refcounts"), false);
 * ```
 */
export function parseBool(text: string, name: string): boolean {
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  throw new OptionError(`Parameter '${name}' expects 'on' or 'off'`);
}

/** Reads a non-negative decimal (or 0x hex) integer option. */
export function parseNumber(text: string, name: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (/^0x[0-9a-fA-F]+$/.test(t)) return Number.parseInt(t.slice(2), 16);
  throw new OptionError(`Parameter '${name}' expects a number`);
}

/** Types one raw value by its spec. */
export function parseOptionValue(spec: OptionSpec, raw: string): OptionValue {
  switch (spec.type) {
    case "string":
      return raw;
    case "size":
      return parseSize(raw, { what: spec.name });
    case "bool":
      return parseBool(raw, spec.name);
    case "number":
      return parseNumber(raw, spec.name);
    case "enum": {
      const values = spec.values ?? [];
      if (!values.includes(raw)) {
        throw new OptionError(
          `Parameter '${spec.name}' does not accept value '${raw}' (allowed values: ${
            values.join(", ")
          })`,
        );
      }
      return raw;
    }
  }
}

/** Options for {@linkcode parseOptions}. */
export interface ParseOptionsOptions extends ParseKeyValueOptions {
  /** Already-parsed options to extend (a later `-o` overrides an earlier one). */
  into?: ParsedOptions;
  /** Keep keys that match no spec instead of refusing them (for pass-through groups). */
  allowUnknown?: boolean;
}

/**
 * Parses and types an option string against a declared option list.
 *
 * A key that is not declared is an error naming it, as QEMU's
 * `Invalid parameter 'clustr_size'`; a bare boolean option (`readonly`) means on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOptions } from "./options.ts";
 *
 * const specs = [
 *   { name: "cluster_size", type: "size", help: "qcow2 cluster size" },
 *   { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates" },
 * ] as const;
 * assert.deepEqual(parseOptions("cluster_size=4k,lazy_refcounts=on", specs), {
 *   cluster_size: 4096,
 *   lazy_refcounts: true,
 * });
 * assert.throws(() => parseOptions("clustr_size=4k", specs), /Invalid parameter 'clustr_size'/);
 * ```
 */
export function parseOptions(
  text: string,
  specs: readonly OptionSpec[],
  options: ParseOptionsOptions = {},
): ParsedOptions {
  const out: ParsedOptions = options.into ?? {};
  for (const item of parseKeyValueList(text, options)) {
    const spec = specs.find((s) => s.name === item.key);
    if (!spec) {
      if (options.allowUnknown) {
        out[item.key] = item.value;
        continue;
      }
      throw new OptionError(`Invalid parameter '${item.key}'`);
    }
    if (item.bare) {
      if (spec.type !== "bool") {
        throw new OptionError(`Parameter '${spec.name}' is missing a value`);
      }
      out[spec.name] = true;
      continue;
    }
    out[spec.name] = parseOptionValue(spec, item.value);
  }
  return out;
}

/** QEMU's help label for an option type (`<size>`, `<bool (on/off)>`, `<num>`, `<str>`). */
export function optionTypeLabel(spec: OptionSpec): string {
  switch (spec.type) {
    case "size":
      return "size";
    case "bool":
      return "bool (on/off)";
    case "number":
      return "num";
    default:
      return "str";
  }
}

/**
 * Formats an option list the way QEMU prints `-o help` and `-device foo,help`:
 * `  name=<type>  - help text`, names sorted, the dash column at least 24 wide.
 */
export function formatOptionHelp(specs: readonly OptionSpec[]): string {
  const lines: string[] = [];
  const visible = specs.filter((s) => !s.hidden).slice().sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  for (const spec of visible) {
    const left = `${spec.name}=<${optionTypeLabel(spec)}>`;
    lines.push(`  ${left.padEnd(22)} - ${spec.help}`);
  }
  return lines.join("\n");
}

/** Reads a typed option with a fallback, checking its JS type. */
export function optString(opts: ParsedOptions, name: string): string | undefined {
  const v = opts[name];
  return v === undefined ? undefined : String(v);
}

/** Reads a numeric (size or number) option. */
export function optNumber(opts: ParsedOptions, name: string): number | undefined {
  const v = opts[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number") throw new OptionError(`Parameter '${name}' expects a number`);
  return v;
}

/** Reads a boolean option. */
export function optBool(opts: ParsedOptions, name: string): boolean | undefined {
  const v = opts[name];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") return parseBool(String(v), name);
  return v;
}
