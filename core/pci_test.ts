import assert from "node:assert/strict";
import { AddressSpace } from "./memory/address_space.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PciConfig,
  PciMsi,
} from "./pci.ts";

function config(): PciConfig {
  return new PciConfig({ vendorId: 0x1234, deviceId: 0x1111, classCode: 0x030000 });
}

Deno.test("PciConfig.addBar() marks a prefetchable memory BAR in its type bits", () => {
  const c = config();
  c.addBar(0, { size: 16 << 20, io: false, prefetchable: true, map: () => {} });
  assert.equal(c.configRead(PCI_BASE_ADDRESS_0, 4), 0x08);
  c.configWrite(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
  assert.equal(c.configRead(PCI_BASE_ADDRESS_0, 4), 0xff000008, "size 16 MiB, type kept");
});

Deno.test("PciConfig.addRomBar() sizes the expansion ROM and keeps the enable bit writable", () => {
  const c = config();
  c.addRomBar({ size: 0x10000, map: () => {} });
  assert.equal(c.configRead(PCI_ROM_ADDRESS, 4), 0);
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xfffff800);
  assert.equal(c.configRead(PCI_ROM_ADDRESS, 4), 0xffff0000);
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(c.configRead(PCI_ROM_ADDRESS, 4), 0xffff0001, "bits 1-10 are reserved");
});

Deno.test("PciConfig maps the expansion ROM only while enabled and memory space is on", () => {
  const c = config();
  const calls: (number | null)[] = [];
  c.addRomBar({ size: 0x10000, map: (base) => calls.push(base) });
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0000);
  c.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.deepEqual(calls, [], "the enable bit is clear");
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0001);
  assert.equal(c.romBase(), 0xfebe0000);
  c.configWrite(PCI_COMMAND, 2, 0);
  c.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0000);
  assert.deepEqual(calls, [0xfebe0000, null, 0xfebe0000, null]);
  c.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0001);
  c.reset();
  assert.deepEqual(calls.slice(4), [0xfebe0000, null], "reset unmaps the ROM");
  assert.equal(c.configRead(PCI_ROM_ADDRESS, 4), 0);
});

Deno.test("PciConfig.addRomBar() refuses a size that is not a power of two of at least 2 KiB", () => {
  const c = config();
  assert.throws(() => c.addRomBar({ size: 0x400, map: () => {} }), RangeError);
  assert.throws(() => c.addRomBar({ size: 0x3000, map: () => {} }), RangeError);
});

Deno.test("PciConfig.addCapability() chains capabilities from 0x40 and keeps them across reset", () => {
  const c = config();
  const msi = new PciMsi(c, new AddressSpace());
  const vendor = c.addCapability([0x09, 0, 4, 0xab], [0, 0, 0, 0xff]);
  assert.equal(msi.offset, 0x40);
  assert.equal(vendor, 0x50);
  const check = () => {
    assert.equal(c.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
    assert.equal(c.configRead(PCI_CAPABILITY_LIST, 1), 0x40);
    assert.equal(c.configRead(0x40, 2), 0x5005, "MSI, next at 0x50");
    assert.equal(c.configRead(0x50, 2), 0x0009, "vendor capability ends the list");
  };
  check();
  c.configWrite(0x40, 2, 0xffff); // ID and next pointer are read-only
  c.configWrite(0x53, 1, 0x12);
  c.configWrite(msi.offset + 2, 2, 1);
  assert.equal(msi.enabled, true);
  c.reset();
  check();
  assert.equal(c.configRead(0x53, 1), 0xab);
  assert.equal(msi.enabled, false);
});
