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
      // The board has no USB controller: asking for none is what it has.
      if (item.key === "usb" && ["off", "false", "no"].includes(item.value)) continue;
      if (QEMU_ONLY.has(item.key)) {
        throw new UsageError(
          `-${o.name} ${o.value}: machine property '${item.key}' not supported by vmkit yet`,
        );
      }
      throw new UsageError(`Property '${machineName}-machine.${item.key}' not found`);
    }
  }
}
