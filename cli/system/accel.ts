// -accel, -enable-kvm and -machine accel=: which CPU backend runs the machine, with QEMU's fallbacks

import { UsageError } from "../../core/errors.ts";
import type { Machine } from "../../core/machine.ts";
import { monitorCommands } from "../../core/monitor/commands.ts";
import { type ParsedOptions, parseKeyValueList } from "../../core/options.ts";
import type { CpuDescriptor, Registry } from "../../core/plugin.ts";
import type { SystemOpt } from "./options.ts";

/** One accelerator to try, with the option it came from when QEMU names it in messages. */
export interface AccelChoice {
  name: string;
  /** `-accel kvm` for an -accel option (QEMU's error location); absent for -machine accel=. */
  location?: string;
  /** The -accel option's other properties (`kernel-irqchip=split`), in order. */
  props?: { key: string; value: string }[];
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
      const items = parseKeyValueList(o.value, { impliedKey: "accel" });
      const name = items.find((i) => i.key === "accel")?.value ?? "";
      const props = items.filter((i) => i.key !== "accel").map(({ key, value }) => ({
        key,
        value,
      }));
      const choice: AccelChoice = { name, location: `-accel ${o.value}` };
      if (props.length > 0) choice.props = props;
      return choice;
    });
  }
  return (machineAccel ?? "tcg").split(":").map((name) => ({ name }));
}

/** The first accelerator of {@linkcode accelChoices} (kept for callers that only want the name). */
export function chosenAccel(opts: readonly SystemOpt[]): string {
  return accelChoices(opts)[0]?.name ?? "tcg";
}

/** The values QEMU's `kernel-irqchip` (an OnOffSplit) takes. */
const KERNEL_IRQCHIP_MODES = ["on", "off", "split"];

/**
 * The properties of the chosen accelerator, as QEMU 7.2 applies them: `-machine
 * kernel-irqchip=` (or `kernel_irqchip=`) is sugar for the kvm accelerator's property,
 * ignored by tcg, the last one winning; the `-accel` option's own properties come after
 * it. A bad value or an unknown property is refused with QEMU's words. With KVM, an
 * absent `kernel-irqchip` is `on` (QEMU's default); `off` prints QEMU's two warnings.
 */
export function accelProperties(
  opts: readonly SystemOpt[],
  choice: AccelChoice,
  warn?: (message: string) => void,
): ParsedOptions {
  const out: ParsedOptions = {};
  if (choice.name === "kvm") {
    let sugar: string | undefined;
    for (const o of opts) {
      if (o.name !== "M" && o.name !== "machine") continue;
      for (const i of parseKeyValueList(o.value, { impliedKey: "type" })) {
        if (i.key === "kernel-irqchip" || i.key === "kernel_irqchip") sugar = i.value;
      }
    }
    if (sugar !== undefined) {
      if (!KERNEL_IRQCHIP_MODES.includes(sugar)) {
        const where = choice.location ? `${choice.location}: ` : "";
        throw new UsageError(
          `${where}can't apply global kvm-accel.kernel-irqchip=${sugar}: ` +
            `Parameter 'kernel-irqchip' does not accept value '${sugar}'`,
        );
      }
      out["kernel-irqchip"] = sugar;
    }
  }
  for (const { key, value } of choice.props ?? []) {
    if (choice.name !== "kvm" || key !== "kernel-irqchip") {
      // Only the property KVM has is checked: tcg's own (thread=, tb-size=) pass as before.
      if (key === "kernel-irqchip" || choice.name === "kvm") {
        throw new UsageError(
          `${choice.location}: Property '${choice.name}-accel.${key}' not found`,
        );
      }
      continue;
    }
    if (!KERNEL_IRQCHIP_MODES.includes(value)) {
      throw new UsageError(
        `${choice.location}: Parameter 'kernel-irqchip' does not accept value '${value}'`,
      );
    }
    out["kernel-irqchip"] = value;
  }
  if (choice.name === "kvm") {
    out["kernel-irqchip"] ??= "on";
    if (out["kernel-irqchip"] === "off") {
      warn?.("Userspace local APIC is deprecated for KVM.");
      warn?.("Do not use kernel-irqchip except for the -M isapc machine type.");
    }
  }
  return out;
}

/**
 * Adds `info kvm` and `query-kvm` to the machine's monitors, as QEMU 7.2 answers them:
 * `present` when this vmkit has the kvm backend at all, `enabled` when it runs the guest.
 */
export function addAccelCommands(machine: Machine, accel: string, registry: Registry): void {
  const info = () => ({
    enabled: accel === "kvm",
    present: registry.list("cpu").some((c) => c.accel === "kvm"),
  });
  const table = monitorCommands(machine);
  table.addQmp({ name: "query-kvm", args: [], run: info });
  table.addInfo({
    name: "kvm",
    params: "",
    help: "show KVM information",
    run: () => {
      const { enabled, present } = info();
      return `kvm support: ${present ? (enabled ? "enabled" : "disabled") : "not compiled"}\n`;
    },
  });
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
  return chooseAccelerator(opts, registry, report, program).plugin;
}

/** {@linkcode chooseCpuPlugin}'s plugin with the choice it came from (its -accel properties). */
export function chooseAccelerator(
  opts: readonly SystemOpt[],
  registry: Registry,
  report: (line: string) => void,
  program = "qemu-system-x86_64",
): { plugin: CpuDescriptor; choice: AccelChoice } {
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
      return { plugin: plugin!, choice };
    }
    if (last) throw new UsageError(problem);
    report(`${program}: ${problem}`);
    failed = true;
  }
  throw new UsageError("no accelerator found");
}
