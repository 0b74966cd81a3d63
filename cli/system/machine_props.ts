// -M/-machine properties: the ones vmkit's pc board honours, the ones QEMU 7.2's board has
// that vmkit does not build yet, and QEMU's refusal of any other name.

import { UsageError } from "../../core/errors.ts";
import { parseKeyValueList } from "../../core/options.ts";
import type { SystemOpt } from "./options.ts";

/** Keys vmkit reads from -machine: the board, the accelerator sugar and graphics=. */
const HONOURED = new Set(["type", "accel", "kernel-irqchip", "kernel_irqchip", "graphics"]);

/** The rest of `qemu-system-x86_64 -M pc,help` (QEMU 7.2): known there, not built here. */
const QEMU_ONLY = new Set([
  "acpi",
  "append",
  "boot",
  "bus-lock-ratelimit",
  "confidential-guest-support",
  "default-bus-bypass-iommu",
  "dt-compatible",
  "dtb",
  "dump-guest-core",
  "dumpdtb",
  "firmware",
  "hpet",
  "i8042",
  "initrd",
  "kernel",
  "max-fw-size",
  "max-ram-below-4g",
  "mem-merge",
  "memory-backend",
  "memory-encryption",
  "memory",
  "phandle-start",
  "pic",
  "pit",
  "sata",
  "sgx-epc",
  "smbios-entry-point-type",
  "smbus",
  "smm",
  "smp",
  "suppress-vmdesc",
  "usb",
  "vmport",
  "x-oem-id",
  "x-oem-table-id",
]);

/** QEMU 7.2 pc board parts vmkit does not build: `KEY=off` is accepted. */
const ABSENT_PARTS = new Set(["usb", "vmport", "hpet", "smm", "sata", "smbus"]);
/** Properties that only tell the host what to do with guest memory or migration data. */
const HOST_HINTS = new Set(["dump-guest-core", "mem-merge", "suppress-vmdesc"]);
const OFF = new Set(["off", "false", "no"]);
const BOOLEAN = new Set(["on", "true", "yes", ...OFF]);
/** The parts QEMU takes on, off or auto for (OnOffAuto), not a boolean. */
const ON_OFF_AUTO = new Set(["vmport", "smm"]);

/** A value QEMU 7.2 would not parse for that switch is refused in its words. */
function checkSwitchValue(key: string, value: string): void {
  if (ON_OFF_AUTO.has(key)) {
    if (!["on", "off", "auto"].includes(value)) {
      throw new UsageError(`Parameter '${key}' does not accept value '${value}'`);
    }
  } else if (!BOOLEAN.has(value)) {
    throw new UsageError(`Parameter '${key}' expects 'on' or 'off'`);
  }
}

/**
 * Refuses a -machine property the board does not have, in QEMU 7.2's words (`Property
 * 'pc-i440fx-7.2-machine.foo' not found`, exit 1), and a bare word after the type
 * (`Expected '=' after parameter 'x'`). A property QEMU has but vmkit does not build is
 * refused as not supported rather than ignored.
 */
export function checkMachineProperties(opts: readonly SystemOpt[], machineName: string): void {
  for (const o of opts) {
    if (o.name !== "M" && o.name !== "machine") continue;
    const items = parseKeyValueList(o.value, { impliedKey: "type" });
    // QEMU parses the whole option before it looks any name up.
    const bare = items.find((i) => i.bare);
    if (bare) {
      throw new UsageError(`-${o.name} ${o.value}: Expected '=' after parameter '${bare.key}'`);
    }
    for (const item of items) {
      if (HONOURED.has(item.key)) continue;
      // Asking for a part the board does not build to be off is what it has (libvirt's
      // lines say usb=off,vmport=off); a hint to the host alone changes nothing guests see.
      if (ABSENT_PARTS.has(item.key) || HOST_HINTS.has(item.key)) {
        checkSwitchValue(item.key, item.value);
        if (HOST_HINTS.has(item.key) || OFF.has(item.value)) continue;
      }
      if (QEMU_ONLY.has(item.key)) {
        throw new UsageError(
          `-${o.name} ${o.value}: machine property '${item.key}' not supported by vmkit yet`,
        );
      }
      throw new UsageError(`Property '${machineName}-machine.${item.key}' not found`);
    }
  }
}
