import assert from "node:assert/strict";
import { AddressSpace } from "../../core/memory/address_space.ts";
import { FW_CFG_FILE_DIR, FW_CFG_ID, FW_CFG_SIGNATURE, FwCfg } from "./fw_cfg.ts";

function readBytes(fw: FwCfg, key: number, n: number): number[] {
  fw.select(key);
  return Array.from({ length: n }, () => fw.readData(1));
}

Deno.test("FwCfg answers the signature and an id with the DMA bit", () => {
  const fw = new FwCfg("fw", null, null);
  assert.equal(String.fromCharCode(...readBytes(fw, FW_CFG_SIGNATURE, 4)), "QEMU");
  assert.deepEqual(readBytes(fw, FW_CFG_ID, 4), [3, 0, 0, 0]);
});

Deno.test("FwCfg lists files in a big-endian directory sorted by name", () => {
  const fw = new FwCfg("fw", null, null);
  fw.addFile("etc/e820", new Uint8Array(40));
  fw.addFile("bootorder", new Uint8Array(3));
  const dir = new Uint8Array(readBytes(fw, FW_CFG_FILE_DIR, 4 + 128));
  const view = new DataView(dir.buffer);
  assert.equal(view.getUint32(0), 2);
  assert.equal(view.getUint32(4), 3);
  assert.equal(view.getUint16(8), 0x21);
  assert.equal(String.fromCharCode(...dir.subarray(12, 21)), "bootorder");
  assert.equal(view.getUint16(68 + 4), 0x20);
});

Deno.test("FwCfg reads past the end of an item as zero", () => {
  const fw = new FwCfg("fw", null, null);
  fw.setItem(0x05, new Uint8Array([1, 0]));
  assert.deepEqual(readBytes(fw, 0x05, 4), [1, 0, 0, 0]);
});

Deno.test("FwCfg.runDma() selects, reads into guest memory and clears control", () => {
  const mem = new AddressSpace();
  const ram = mem.addRam("ram", 0, 0x10000);
  const fw = new FwCfg("fw", mem, null);
  fw.addFile("etc/sercon-port", new Uint8Array([0xf8, 0x03]));
  const access = new DataView(ram.buffer, 0x1000, 16);
  access.setUint32(0, (0x20 << 16) | 0x08 | 0x02);
  access.setUint32(4, 4);
  access.setUint32(12, 0x2000);
  // The guest writes the be32 address with outl to 0x518: the port sees it byte-swapped.
  fw.writeDmaRegister(0, 4, 0);
  fw.writeDmaRegister(4, 4, 0x00100000);
  assert.deepEqual(Array.from(ram.subarray(0x2000, 0x2004)), [0xf8, 0x03, 0, 0]);
  assert.equal(access.getUint32(0), 0);
  assert.equal(fw.dmaTransfers, 1);
});

Deno.test("FwCfg.runDma() skips bytes before a read", () => {
  const mem = new AddressSpace();
  const ram = mem.addRam("ram", 0, 0x10000);
  const fw = new FwCfg("fw", mem, null);
  fw.setItem(0x09, new Uint8Array([1, 2, 3, 4, 5]));
  fw.select(0x09);
  const access = new DataView(ram.buffer, 0x100, 16);
  access.setUint32(0, 0x04);
  access.setUint32(4, 3);
  fw.runDma(0x100);
  assert.equal(fw.readData(1), 4);
});

Deno.test("FwCfg DMA with a 4 GiB length errors without allocating it; a length past the item zero-fills RAM", () => {
  const mem = new AddressSpace();
  const ram = mem.addRam("ram", 0, 1 << 20);
  const fw = new FwCfg("fw", mem, null);
  fw.addFile("etc/sercon-port", new Uint8Array([0xf8, 0x03]));
  const access = new DataView(ram.buffer, 0x1000, 16);
  const rssBefore = Deno.memoryUsage().rss;
  // The guest asks for 0xffffffff bytes into RAM at 0x2000: far past its 1 MiB.
  access.setUint32(0, (0x20 << 16) | 0x08 | 0x02);
  access.setUint32(4, 0xffffffff);
  access.setUint32(12, 0x2000);
  fw.writeDmaRegister(0, 4, 0);
  fw.writeDmaRegister(4, 4, 0x00100000); // the port sees 0x1000 byte-swapped
  assert.equal(access.getUint32(0), 1, "FW_CFG_DMA_CTL_ERROR");
  assert.ok(Deno.memoryUsage().rss - rssBefore < 512 << 20, "no 4 GiB buffer");
  // 512 KiB into RAM: 2 bytes of the item, then zeros over what was there.
  ram.fill(0xcc, 0x2000, 0x2000 + (512 << 10) + 1);
  access.setUint32(0, (0x20 << 16) | 0x08 | 0x02);
  access.setUint32(4, 512 << 10);
  fw.runDma(0x1000);
  assert.equal(access.getUint32(0), 0);
  assert.deepEqual(Array.from(ram.subarray(0x2000, 0x2004)), [0xf8, 0x03, 0, 0]);
  assert.equal(ram[0x2000 + (512 << 10) - 1], 0);
  assert.equal(ram[0x2000 + (512 << 10)], 0xcc, "untouched past the length");
});
