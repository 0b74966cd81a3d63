import assert from "node:assert/strict";
import type { DeviceState } from "../../../core/device.ts";
import { VIRTIO_PCI_COMMON_NUMQ, VIRTQ_DESC_F_NEXT } from "./constants.ts";
import type { VirtioDeviceModel, VirtioHost } from "./pci.ts";
import { MODERN_BAR_BASE, TestDriver } from "./test_util.ts";

/** A device that hands every chain straight back: enough to exercise the transport. */
class EchoDevice implements VirtioDeviceModel {
  readonly deviceType = 2;
  readonly classCode = 0x010000;
  readonly queueSizes = [16, 8];
  readonly featureBits = [3];
  readonly config = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  host!: VirtioHost;
  resets = 0;
  attach(host: VirtioHost): void {
    this.host = host;
  }
  queueNotify(index: number): void {
    const q = this.host.queue(index);
    for (let c = q.pop(); c; c = q.pop()) q.push(c.head, c.writableBytes);
    this.host.notifyQueue(index);
  }
  reset(): void {
    this.resets++;
  }
  saveState(): DeviceState {
    return {};
  }
  loadState(): void {}
}

Deno.test("VirtioPciDevice shows QEMU's transitional IDs, BARs and capability chain", () => {
  const d = new TestDriver(new EchoDevice(), "modern");
  assert.equal(d.cfgRead(0x00, 4), 0x10011af4);
  assert.equal(d.cfgRead(0x08, 4) >>> 8, 0x010000); // class, revision 0
  assert.equal(d.cfgRead(0x2c, 4), 0x00021af4); // subsystem: vendor, device type
  assert.equal(d.cfgRead(0x3d, 1), 1); // INTA
  assert.ok(d.cfgRead(0x06, 2) & 0x10, "capability list");
  // BAR sizing: BAR0 I/O of 32 bytes (20 + 8 of config), BAR4 64-bit prefetchable 16 KiB.
  d.cfgWrite(0x04, 2, 0);
  d.cfgWrite(0x10, 4, 0xffffffff);
  assert.equal(d.cfgRead(0x10, 4), 0xffffffe1);
  d.cfgWrite(0x20, 4, 0xffffffff);
  d.cfgWrite(0x24, 4, 0xffffffff);
  assert.equal(d.cfgRead(0x20, 4), 0xffffc00c);
  assert.equal(d.cfgRead(0x24, 4), 0xffffffff);
  const caps: number[][] = [];
  for (let at = d.cfgRead(0x34, 1); at; at = d.cfgRead(at + 1, 1)) {
    caps.push([
      at,
      d.cfgRead(at, 1),
      d.cfgRead(at + 3, 1),
      d.cfgRead(at + 4, 1),
      d.cfgRead(at + 8, 4),
    ]);
  }
  assert.deepEqual(caps, [
    [0x84, 9, 5, 0, 0],
    [0x70, 9, 2, 4, 0x3000],
    [0x60, 9, 4, 4, 0x2000],
    [0x50, 9, 3, 4, 0x1000],
    [0x40, 9, 1, 4, 0x0000],
  ]);
  assert.equal(d.cfgRead(0x70 + 16, 4), 4, "notify_off_multiplier");
});

Deno.test("VirtioPciDevice with disable-legacy is a virtio 1.0 device with no I/O BAR", () => {
  const d = new TestDriver(new EchoDevice(), "modern", { legacy: false });
  assert.equal(d.cfgRead(0x00, 4), 0x10421af4);
  assert.equal(d.cfgRead(0x08, 1), 1);
  d.cfgWrite(0x10, 4, 0xffffffff);
  assert.equal(d.cfgRead(0x10, 4), 0);
  assert.equal(d.device.legacyBase, null);
});

Deno.test("VirtioPciDevice with disable-modern has no capabilities and no VERSION_1", () => {
  const d = new TestDriver(new EchoDevice(), "legacy", { modern: false });
  assert.equal(d.cfgRead(0x06, 2) & 0x10, 0);
  assert.equal(d.cfgRead(0x34, 1), 0);
  assert.equal(d.device.modernBarBase(), null);
  assert.equal(d.device.offeredFeatures[1], 0);
});

Deno.test("VirtioPciDevice refuses FEATURES_OK for a feature it did not offer", () => {
  const d = new TestDriver(new EchoDevice(), "modern");
  const [lo, hi] = d.deviceFeatures();
  assert.ok(lo & (1 << 3) && lo & (1 << 28) && lo & (1 << 29));
  assert.equal(hi, 1, "VERSION_1");
  const status = d.init(2, [lo | (1 << 7), hi]);
  assert.equal(status & 8, 0);
  assert.ok(d.init(2) & 8);
});

for (const mode of ["legacy", "modern"] as const) {
  Deno.test(`VirtioPciDevice raises INTx for used buffers and lowers it on ISR read (${mode})`, () => {
    const d = new TestDriver(new EchoDevice(), mode);
    d.init(2);
    d.submit(1, 0, [{ writeLength: 64 }]);
    d.notify(1);
    assert.deepEqual(d.takeUsed(1), [{ id: 0, len: 64 }]);
    assert.equal(d.bus.line.level, true);
    assert.ok(d.cfgRead(0x06, 2) & 0x08, "interrupt status");
    assert.equal(d.readIsr(), 1);
    assert.equal(d.bus.line.level, false);
    // INTx disable in the command register masks the line but keeps the ISR.
    d.cfgWrite(0x04, 2, 0x407);
    d.submit(1, 1, [{ writeLength: 8 }]);
    d.notify(1);
    assert.equal(d.bus.line.level, false);
    d.cfgWrite(0x04, 2, 0x007);
    assert.equal(d.bus.line.level, true);
  });
}

Deno.test("VirtioPciDevice sets NEEDS_RESET and raises a config interrupt on a broken ring", () => {
  const model = new EchoDevice();
  const d = new TestDriver(model, "modern");
  d.init(2);
  const r = d.rings(0);
  d.writeDesc(r.desc, 0, 0x1000, 4, VIRTQ_DESC_F_NEXT, 0); // points at itself
  d.publish(0, 0);
  d.notify(0);
  assert.ok(d.status() & 0x40);
  assert.equal(d.readIsr(), 2);
  assert.equal(d.device.errors, 1);
  // Further notifies are ignored until the driver resets the device.
  d.notify(0);
  assert.equal(d.device.errors, 1);
  d.setStatus(0);
  assert.equal(d.status(), 0);
  assert.ok(model.resets >= 1);
});

Deno.test("VirtioPciDevice reaches BAR4 through the PCI configuration access capability", () => {
  const d = new TestDriver(new EchoDevice(), "modern");
  d.cfgWrite(0x84 + 4, 1, 4);
  d.cfgWrite(0x84 + 8, 4, VIRTIO_PCI_COMMON_NUMQ);
  d.cfgWrite(0x84 + 12, 4, 2);
  assert.equal(d.cfgRead(0x84 + 16, 2), 2);
  // A write through the window sets the status register.
  d.cfgWrite(0x84 + 8, 4, 0x14);
  d.cfgWrite(0x84 + 12, 4, 1);
  d.cfgWrite(0x84 + 16, 1, 1);
  assert.equal(d.status(), 1);
});

Deno.test("VirtioPciDevice maps BAR4 only while memory decoding is on", () => {
  const d = new TestDriver(new EchoDevice(), "modern");
  assert.equal(d.device.modernBarBase(), MODERN_BAR_BASE);
  assert.equal(d.memory.read16(MODERN_BAR_BASE + VIRTIO_PCI_COMMON_NUMQ), 2);
  d.cfgWrite(0x04, 2, 0x5);
  assert.equal(d.memory.read16(MODERN_BAR_BASE + VIRTIO_PCI_COMMON_NUMQ), 0xffff);
  d.cfgWrite(0x04, 2, 0x7);
  assert.equal(d.memory.read16(MODERN_BAR_BASE + VIRTIO_PCI_COMMON_NUMQ), 2);
});

Deno.test("VirtioPciDevice reads device config on both interfaces, all ones past its end", () => {
  for (const mode of ["legacy", "modern"] as const) {
    const d = new TestDriver(new EchoDevice(), mode);
    assert.equal(d.config(0, 4), 0x04030201);
    assert.equal(d.config(6, 2), 0x0807);
    assert.equal(d.config(8, 1), 0xff);
  }
});

Deno.test("VirtioPciDevice.saveState() round-trips queues and transport registers", () => {
  const d = new TestDriver(new EchoDevice(), "modern");
  d.init(2);
  const state = structuredClone(d.device.saveState());
  d.setStatus(0);
  d.device.loadState(state);
  assert.equal(d.status() & 4, 4);
  d.submit(0, 0, [{ writeLength: 4 }]);
  d.notify(0);
  assert.deepEqual(d.takeUsed(0), [{ id: 0, len: 4 }]);
});
