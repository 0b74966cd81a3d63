import assert from "node:assert/strict";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import type { NetClient } from "../../../core/net.ts";
import { E1000 } from "./e1000.ts";
import * as R from "./e1000_regs.ts";

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const BAR0 = 0xfebc0000;

function setup() {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  const io = new PortIoSpace();
  const nic = new E1000("e1000-test", MAC, { memory, io, pci: null, kick: () => {} });
  nic.pci.configWrite(0x10, 4, BAR0);
  nic.pci.configWrite(0x14, 4, 0xc000);
  nic.pci.configWrite(0x04, 2, 0x7);
  const sent: Uint8Array[] = [];
  const peer: NetClient = {
    id: "p",
    model: "test",
    peer: null,
    receive: (f) => sent.push(f.slice()) > 0,
  };
  nic.peer = peer;
  const rd = (reg: number) => memory.read32(BAR0 + reg) >>> 0;
  const wr = (reg: number, v: number) => memory.write32(BAR0 + reg, v >>> 0);
  return { memory, ram, io, nic, sent, rd, wr, dv: new DataView(ram.buffer) };
}

/** Reads one EEPROM word the way Linux's e1000 does on an 82540: Microwire through EECD. */
function eepromWord(rd: (r: number) => number, wr: (r: number, v: number) => void, addr: number) {
  let eecd = rd(R.EECD) | R.EECD_REQ;
  wr(R.EECD, eecd);
  assert.ok(rd(R.EECD) & R.EECD_GNT);
  eecd |= R.EECD_CS;
  wr(R.EECD, eecd);
  const out = (value: number, bits: number) => {
    for (let b = bits - 1; b >= 0; b--) {
      eecd = (value >> b) & 1 ? eecd | R.EECD_DI : eecd & ~R.EECD_DI;
      wr(R.EECD, eecd);
      wr(R.EECD, eecd | R.EECD_SK);
      wr(R.EECD, eecd);
    }
  };
  out(0b110, 3);
  out(addr, 6);
  let word = 0;
  eecd &= ~R.EECD_DI;
  for (let b = 0; b < 16; b++) {
    wr(R.EECD, eecd | R.EECD_SK);
    word = (word << 1) | (rd(R.EECD) & R.EECD_DO ? 1 : 0);
    wr(R.EECD, eecd);
  }
  wr(R.EECD, eecd & ~(R.EECD_CS | R.EECD_REQ));
  return word;
}

Deno.test("E1000 EEPROM read bit by bit holds the MAC and sums to 0xBABA", () => {
  const { rd, wr } = setup();
  const words = Array.from({ length: 64 }, (_, i) => eepromWord(rd, wr, i));
  assert.deepEqual(words.slice(0, 3), [0x5452, 0x1200, 0x5634]);
  assert.equal(words.reduce((a, b) => (a + b) & 0xffff, 0), 0xbaba);
  wr(R.EERD, (2 << 8) | R.EERD_START);
  assert.equal(rd(R.EERD) >>> 16, 0x5634);
});

Deno.test("E1000 MDIC reads the M88 PHY's IDs at address 1 and errors elsewhere", () => {
  const { rd, wr } = setup();
  wr(R.MDIC, R.MDIC_OP_READ | (1 << 21) | (R.PHY_ID1 << 16));
  assert.equal(rd(R.MDIC) & 0xffff, 0x0141);
  assert.ok(rd(R.MDIC) & R.MDIC_READY);
  wr(R.MDIC, R.MDIC_OP_READ | (1 << 21) | (R.PHY_ID2 << 16));
  assert.equal(rd(R.MDIC) & 0xffff, 0x0c20);
  wr(R.MDIC, R.MDIC_OP_READ | (2 << 21) | (R.PHY_ID1 << 16));
  assert.ok(rd(R.MDIC) & R.MDIC_ERROR);
  assert.ok(rd(R.STATUS) & R.STATUS_LU);
});

Deno.test("E1000 reaches its registers through the I/O BAR's IOADDR and IODATA", () => {
  const { io, rd } = setup();
  io.out(0xc000, 4, R.STATUS);
  assert.equal(io.in(0xc004, 4), rd(R.STATUS));
  io.out(0xc000, 4, R.IMS);
  io.out(0xc004, 4, R.ICR_RXT0);
  assert.equal(rd(R.IMS), R.ICR_RXT0);
});

Deno.test("E1000 transmits a legacy descriptor to its peer, sets DD and raises TXDW", () => {
  const { ram, dv, nic, sent, rd, wr } = setup();
  const ring = 0x10000;
  const buf = 0x20000;
  ram.fill(0xab, buf, buf + 60);
  dv.setUint32(ring, buf, true);
  dv.setUint16(ring + 8, 60, true);
  ram[ring + 11] = R.TXD_CMD_EOP | R.TXD_CMD_RS;
  wr(R.TDBAL, ring);
  wr(R.TDLEN, 8 * 16);
  wr(R.TCTL, R.TCTL_EN);
  wr(R.IMS, R.ICR_TXDW);
  wr(R.TDT, 1);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0], new Uint8Array(60).fill(0xab));
  assert.equal(ram[ring + 12] & R.TXD_STAT_DD, R.TXD_STAT_DD);
  assert.equal(rd(R.TDH), 1);
  assert.equal(rd(R.ICR) & R.ICR_TXDW, R.ICR_TXDW);
  assert.equal(rd(R.ICR), 0, "ICR clears on read");
  assert.equal(nic.stats.txFrames, 1);
});

function checksumOk(bytes: Uint8Array, seed = 0): boolean {
  let s = seed;
  for (let i = 0; i + 1 < bytes.length; i += 2) s += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) s += bytes[bytes.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

Deno.test("E1000 cuts a TSO packet into MSS frames with IP and TCP checksums", () => {
  const { ram, dv, sent, wr } = setup();
  const ring = 0x10000;
  const buf = 0x20000;
  const payload = 2500;
  // Ethernet (14) + IPv4 (20) + TCP (20) headers, as Linux's e1000_tso leaves them.
  const hdr = ram.subarray(buf, buf + 54);
  hdr.set([2, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 8, 0]);
  hdr.set([0x45, 0, 0, 0, 0, 7, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2], 14);
  hdr.set([0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0], 34);
  // The TCP checksum field holds the pseudo-header sum without the length.
  const pseudo = 0x0a00 + 0x020f + 0x0a00 + 0x0202 + 6;
  hdr[34 + 16] = pseudo >> 8;
  hdr[34 + 17] = pseudo & 0xff;
  for (let i = 0; i < payload; i++) ram[buf + 54 + i] = i & 0xff;
  // Context descriptor: IPCSS 14, IPCSO 24, IPCSE 33, TUCSS 34, TUCSO 50, TSE|IP|TCP.
  const c = ring;
  ram.set([14, 24, 33, 0, 34, 50, 0, 0], c);
  dv.setUint32(c + 8, payload | (R.TXD_CMD_DEXT | 0x04 | 0x02 | 0x01) << 24, true);
  ram[c + 13] = 54;
  dv.setUint16(c + 14, 1000, true);
  // Data descriptor: the whole packet, DEXT|TSE|EOP|RS, POPTS IXSM|TXSM.
  const d = ring + 16;
  dv.setUint32(d, buf, true);
  dv.setUint32(d + 8, (54 + payload) | (R.TXD_DTYP_DATA << 20), true);
  ram[d + 11] = R.TXD_CMD_DEXT | R.TXD_CMD_TSE | R.TXD_CMD_EOP | R.TXD_CMD_RS;
  ram[d + 13] = R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM;
  wr(R.TDBAL, ring);
  wr(R.TDLEN, 8 * 16);
  wr(R.TCTL, R.TCTL_EN);
  wr(R.TDT, 2);
  assert.deepEqual(sent.map((f) => f.length), [1054, 1054, 554]);
  sent.forEach((f, n) => {
    const v = new DataView(f.buffer);
    assert.equal(v.getUint16(16), f.length - 14, "IP total length");
    assert.equal(v.getUint16(18), 7 + n, "IP ID");
    assert.ok(checksumOk(f.subarray(14, 34)), "IP checksum");
    assert.equal(v.getUint32(38), n * 1000, "sequence");
    const tcpLen = f.length - 34;
    assert.ok(checksumOk(f.subarray(34), pseudo + tcpLen), `TCP checksum of frame ${n}`);
    assert.equal(f[47] & 0x08, n === 2 ? 0x08 : 0, "PSH only on the last");
    assert.equal(f[54], (n * 1000) & 0xff);
  });
});

Deno.test("E1000 receives into descriptors with the FCS counted, and refuses when the ring is full", () => {
  const { ram, dv, nic, rd, wr } = setup();
  const ring = 0x10000;
  for (let i = 0; i < 8; i++) dv.setUint32(ring + 16 * i, 0x40000 + 0x800 * i, true);
  wr(R.RDBAL, ring);
  wr(R.RDLEN, 8 * 16);
  wr(R.RDH, 0);
  wr(R.RDT, 2);
  wr(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
  const frame = new Uint8Array(100).fill(7);
  frame.set(MAC, 0);
  assert.equal(nic.receive(frame), true);
  assert.equal(dv.getUint16(ring + 8, true), 104);
  assert.equal(ram[ring + 12] & 3, R.RXD_STAT_DD | R.RXD_STAT_EOP);
  assert.deepEqual(ram.subarray(0x40000, 0x40000 + 100), frame);
  assert.equal(rd(R.RDH), 1);
  assert.ok(rd(R.ICR) & R.ICR_RXT0);
  // Another MAC's unicast is filtered (taken, not stored); broadcast is stored.
  const other = frame.slice();
  other[5] = 0x99;
  assert.equal(nic.receive(other), true);
  assert.equal(rd(R.RDH), 1);
  assert.equal(nic.receive(new Uint8Array(60).fill(0xff)), true);
  assert.equal(rd(R.RDH), 2);
  assert.equal(nic.receive(frame), false, "no descriptors left");
  assert.ok(rd(R.ICR) & R.ICR_RXO);
});

Deno.test("E1000 survives descriptors that point outside RAM and rings with bogus heads", () => {
  const { dv, nic, sent, wr } = setup();
  const ring = 0x10000;
  dv.setUint32(ring, 0xfff00000, true); // buffer outside RAM
  dv.setUint16(ring + 8, 60, true);
  dv.setUint8(ring + 11, R.TXD_CMD_EOP | R.TXD_CMD_RS);
  wr(R.TDBAL, ring);
  wr(R.TDLEN, 8 * 16);
  wr(R.TCTL, R.TCTL_EN);
  wr(R.TDT, 1);
  assert.equal(sent.length, 0);
  assert.equal(nic.stats.txErrors, 1);
  wr(R.TDH, 500);
  wr(R.TDT, 3);
  wr(R.RDBAL, 0xfff00000);
  wr(R.RDLEN, 128);
  wr(R.RDT, 5);
  wr(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
  nic.receive(new Uint8Array(60).fill(0xff));
  wr(R.CTRL, R.CTRL_RST);
  assert.equal(nic.readRegister(R.RCTL), 0);
});

Deno.test("E1000 inserts a legacy descriptor's checksum at CSO over CSS..end", () => {
  const { ram, dv, sent, wr } = setup();
  const ring = 0x10000;
  const buf = 0x20000;
  const frame = ram.subarray(buf, buf + 34);
  frame.set([0x45, 0, 0, 20, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2], 14);
  dv.setUint32(ring, buf, true);
  dv.setUint16(ring + 8, 34, true);
  ram[ring + 10] = 24; // CSO: the IPv4 header checksum
  ram[ring + 11] = R.TXD_CMD_EOP | R.TXD_CMD_IC;
  ram[ring + 13] = 14; // CSS
  wr(R.TDBAL, ring);
  wr(R.TDLEN, 8 * 16);
  wr(R.TCTL, R.TCTL_EN);
  wr(R.TDT, 1);
  assert.equal(sent.length, 1);
  assert.ok(checksumOk(sent[0].subarray(14, 34)));
  assert.notEqual(sent[0][24] | sent[0][25], 0);
});
