// The built-in device plugins, for plugins/mod.ts and for tests that build a board

import type { DeviceDescriptor } from "../../core/plugin.ts";
import apic from "./apic.ts";
import debugExit from "./debug_exit.ts";
import debugcon from "./debugcon.ts";
import dmaI8257 from "./dma_i8257.ts";
import fdcIsa from "./fdc/mod.ts";
import fwCfg from "./fw_cfg.ts";
import piix3Ide from "./ide/mod.ts";
import ioapic from "./ioapic.ts";
import kbdI8042 from "./kbd_i8042.ts";
import { NET_DEVICE_PLUGINS } from "./net/mod.ts";
import i440fx from "./pci/i440fx.ts";
import piix3 from "./pci/piix3.ts";
import piix4Pm from "./pci/piix4_pm.ts";
import picI8259 from "./pic_i8259.ts";
import pitI8254 from "./pit_i8254.ts";
import rtcMc146818 from "./rtc_mc146818.ts";
import serial8250 from "./serial_8250.ts";
import { VGA_PLUGINS } from "./vga/mod.ts";
import { VIRTIO_DEVICE_PLUGINS } from "./virtio/mod.ts";

/** Every built-in device descriptor. */
export const DEVICE_PLUGINS: readonly DeviceDescriptor[] = [
  picI8259,
  apic,
  ioapic,
  i440fx,
  piix3,
  piix4Pm,
  piix3Ide,
  pitI8254,
  rtcMc146818,
  kbdI8042,
  dmaI8257,
  fdcIsa,
  serial8250,
  debugcon,
  debugExit,
  fwCfg,
  ...VGA_PLUGINS,
  ...VIRTIO_DEVICE_PLUGINS,
  ...NET_DEVICE_PLUGINS,
];
