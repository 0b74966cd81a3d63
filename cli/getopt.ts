// GNU getopt_long for the command lines qemu-img and qemu-system accept

import { UsageError } from "../core/errors.ts";

/** A long option: its name and whether it takes an argument. */
export interface LongOption {
  readonly name: string;
  /** `true`: `--name=value` or `--name value`; `false`: a flag. */
  readonly hasArg: boolean;
  /** The short letter it stands for, if any (`help` -> `h`). */
  readonly short?: string;
}

/** One parsed option, in command line order. */
export interface ParsedOpt {
  /** The short letter, or the long name when it has no short form. */
  readonly name: string;
  readonly value: string;
}

/** The result of {@linkcode getopt}. */
export interface GetoptResult {
  readonly opts: ParsedOpt[];
  /** Arguments that are not options, in order. */
  readonly positional: string[];
}

/**
 * A command line getopt refuses, worded as qemu-img's `unrecognized_option` and
 * `missing_argument` (the caller adds the `Try ... --help` line).
 */
export class GetoptError extends UsageError {
  /**
   * What glibc's getopt itself prints after `PROGRAM: ` when the caller leaves error
   * reporting to it (no leading `:` in the option string, as qemu-img's `measure`).
   */
  readonly glibcMessage: string;
  constructor(message: string, glibcMessage: string = message) {
    super(message);
    this.name = "GetoptError";
    this.glibcMessage = glibcMessage;
  }
}

/**
 * Parses arguments as GNU `getopt_long` does: `short` is a getopt string (`"hf:o:q"`,
 * a colon after a letter means it takes an argument); options and positional
 * arguments may be mixed; `--` ends the options; short flags may be grouped (`-qp`);
 * an argument may be attached (`-fqcow2`, `--output=json`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getopt } from "./getopt.ts";
 *
 * const r = getopt(["-f", "qcow2", "x.img", "--output=json", "-q"], "f:q", [
 *   { name: "output", hasArg: true },
 * ]);
 * assert.deepEqual(r.opts, [
 *   { name: "f", value: "qcow2" },
 *   { name: "output", value: "json" },
 *   { name: "q", value: "" },
 * ]);
 * assert.deepEqual(r.positional, ["x.img"]);
 * ```
 */
export function getopt(
  args: readonly string[],
  short: string,
  long: readonly LongOption[] = [],
): GetoptResult {
  const opts: ParsedOpt[] = [];
  const positional: string[] = [];
  const shortArg = new Map<string, boolean>();
  for (let i = 0; i < short.length; i++) {
    const ch = short[i];
    if (ch === ":" || ch === "+") continue;
    shortArg.set(ch, short[i + 1] === ":");
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      // GNU accepts any unambiguous prefix of a long option.
      const exact = long.find((l) => l.name === name);
      const prefixed = exact ? [exact] : long.filter((l) => l.name.startsWith(name));
      if (prefixed.length !== 1) {
        throw prefixed.length === 0
          ? new GetoptError(`unrecognized option '${arg}'`)
          : new GetoptError(
            `option '${arg}' is ambiguous`,
            `option '${arg}' is ambiguous; possibilities:${
              prefixed.map((l) => ` '--${l.name}'`).join("")
            }`,
          );
      }
      const opt = prefixed[0];
      let value = "";
      if (opt.hasArg) {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i + 1 < args.length) value = args[++i];
        else {
          throw new GetoptError(
            `missing argument for option '${arg}'`,
            `option '--${opt.name}' requires an argument`,
          );
        }
      } else if (eq >= 0) {
        throw new GetoptError(
          `unrecognized option '${arg}'`,
          `option '--${opt.name}' doesn't allow an argument`,
        );
      }
      opts.push({ name: opt.short ?? opt.name, value });
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const ch = arg[j];
        const takesArg = shortArg.get(ch);
        if (takesArg === undefined) {
          // qemu-img names argv[optind - 1]: this argument once its last letter is read,
          // the one before it while letters of this one remain.
          const named = j === arg.length - 1 ? arg : (i > 0 ? args[i - 1] : arg);
          throw new GetoptError(`unrecognized option '${named}'`, `invalid option -- '${ch}'`);
        }
        if (!takesArg) {
          opts.push({ name: ch, value: "" });
          continue;
        }
        let value: string;
        if (j + 1 < arg.length) value = arg.slice(j + 1);
        else if (i + 1 < args.length) value = args[++i];
        else {
          throw new GetoptError(
            `missing argument for option '${arg}'`,
            `option requires an argument -- '${ch}'`,
          );
        }
        opts.push({ name: ch, value });
        break;
      }
      continue;
    }
    positional.push(arg);
  }
  return { opts, positional };
}
