// -accel, -enable-kvm and -machine accel=: which CPU backend runs the machine, with QEMU's fallbacks

import { UsageError } from "../../core/errors.ts";
import { parseKeyValueList } from "../../core/options.ts";
import type { CpuDescriptor, Registry } from "../../core/plugin.ts";
import type { SystemOpt } from "./options.ts";

/** One accelerator to try, with the option it came from when QEMU names it in messages. */
export interface AccelChoice {
  name: string;
  /** `-accel kvm` for an -accel option (QEMU's error location); absent for -machine accel=. */
  location?: string;
}

/**
 * The accelerators to try, in order, as QEMU 7.2's configure_accelerators reads them:
 * every `-accel` option in turn, else the last `-machine accel=a:b:...` list
 * (`-enable-kvm` is `-machine accel=kvm`), else tcg.
 */
export function accelChoices(opts: readonly SystemOpt[]): AccelChoice[] {
  const accels = opts.filter((o) => o.name === "accel");
  let machineAccel: string | undefined;
  for (const o of opts) {
    if (o.name === "enable-kvm") machineAccel = "kvm";
    else if (o.name === "M" || o.name === "machine") {
      const a = parseKeyValueList(o.value, { impliedKey: "type" }).find((i) => i.key === "accel");
      if (a) machineAccel = a.value;
    }
  }
  if (accels.length > 0) {
    if (machineAccel !== undefined) {
      throw new UsageError('The -accel and "-machine accel=" options are incompatible');
    }
    return accels.map((o) => {
      const name = parseKeyValueList(o.value, { impliedKey: "accel" })
        .find((i) => i.key === "accel")?.value ?? "";
      return { name, location: `-accel ${o.value}` };
    });
  }
  return (machineAccel ?? "tcg").split(":").map((name) => ({ name }));
}

/** The first accelerator of {@linkcode accelChoices} (kept for callers that only want the name). */
export function chosenAccel(opts: readonly SystemOpt[]): string {
  return accelChoices(opts)[0]?.name ?? "tcg";
}

/**
 * The CPU plugin of the first accelerator that initialises, trying each choice as QEMU
 * does: a failing one prints its reasons through `report` (raw lines, the program name
 * already in front where QEMU puts it) and the next is tried, announced with "falling
 * back to X". When the last choice fails its reason is thrown, so the CLI prints it and
 * exits 1.
 */
export function chooseCpuPlugin(
  opts: readonly SystemOpt[],
  registry: Registry,
  report: (line: string) => void,
  program = "qemu-system-x86_64",
): CpuDescriptor {
  const choices = accelChoices(opts);
  let failed = false;
  for (let i = 0; i < choices.length; i++) {
    const choice = choices[i];
    const last = i === choices.length - 1;
    const where = choice.location ? `${choice.location}: ` : "";
    const plugin = registry.list("cpu").find((c) => c.accel === choice.name);
    let problem: string | null = null;
    if (!plugin) {
      problem = `${where}invalid accelerator ${choice.name}`;
    } else {
      try {
        plugin.probe?.();
      } catch (e) {
        const preface = (e as { preface?: unknown }).preface;
        if (typeof preface === "string") report(preface);
        problem = `${where}failed to initialize ${choice.name}: ${(e as Error).message}`;
      }
    }
    if (problem === null) {
      if (failed) report(`${program}: falling back to ${choice.name}`);
      return plugin!;
    }
    if (last) throw new UsageError(problem);
    report(`${program}: ${problem}`);
    failed = true;
  }
  throw new UsageError("no accelerator found");
}
