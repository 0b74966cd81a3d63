import assert from "node:assert/strict";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import type { NetClient } from "../../../core/net.ts";
import {
  DESC_EOR,
  DESC_FS,
  DESC_LS,
  DESC_OWN,
  ISR_ROK,
  ISR_RXOVW,
  ISR_TOK,
  Rtl8139,
} from "./rtl8139.ts";

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x57]);
const BAR1 = 0xfebf0000;

function setup() {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  const io = new PortIoSpace();
  const nic = new Rtl8139("rtl-test", MAC, { memory, io, pci: null, kick: () => {} });
  nic.pci.configWrite(0x10, 4, 0xc100);
  nic.pci.configWrite(0x14, 4, BAR1);
  nic.pci.configWrite(0x04, 2, 0x7);
  const sent: Uint8Array[] = [];
  const peer: NetClient = {
    id: "p",
    model: "t",
    peer: null,
    receive: (f) => sent.push(f.slice()) > 0,
  };
  nic.peer = peer;
  const r8 = (at: number) => memory.read8(BAR1 + at);
  const w8 = (at: number, v: number) => memory.write8(BAR1 + at, v);
  const r16 = (at: number) => memory.read16(BAR1 + at);
  const w16 = (at: number, v: number) => memory.write16(BAR1 + at, v);
  const w32 = (at: number, v: number) => memory.write32(BAR1 + at, v >>> 0);
  return { ram, dv: new DataView(ram.buffer), nic, sent, r8, w8, r16, w16, w32 };
}

/** Linux 8139cp's read_eeprom(): 9346CR bit-banged with the address length it chose. */
function readEeprom(
  r8: (a: number) => number,
  w8: (a: number, v: number) => void,
  loc: number,
  bits: number,
) {
  const ENB = 0x80 | 0x08;
  w8(0x50, ENB & ~0x08);
  w8(0x50, ENB);
  const cmd = loc | (6 << bits);
  for (let i = 2 + bits; i >= 0; i--) {
    const d = cmd & (1 << i) ? 0x02 : 0;
    w8(0x50, ENB | d);
    w8(0x50, ENB | d | 0x04);
  }
  w8(0x50, ENB);
  let v = 0;
  for (let i = 16; i > 0; i--) {
    w8(0x50, ENB | 0x04);
    v = (v << 1) | (r8(0x50) & 0x01);
    w8(0x50, ENB);
  }
  w8(0x50, 0);
  return v;
}

Deno.test("Rtl8139 EEPROM gives Linux 8139cp the MAC in words 7..9 with 6-bit addresses", () => {
  const { r8, w8 } = setup();
  assert.notEqual(readEeprom(r8, w8, 0, 8), 0x8129, "8-bit addressing is not this part's");
  assert.equal(readEeprom(r8, w8, 0, 6), 0x8129);
  assert.deepEqual([7, 8, 9].map((w) => readEeprom(r8, w8, w, 6)), [0x5452, 0x1200, 0x5734]);
});

Deno.test("Rtl8139 resets through CR, reports link in BMSR and the C+ version in TCR", () => {
  const { nic, r8, w8, r16 } = setup();
  w8(0x37, 0x10);
  assert.equal(r8(0x37) & 0x10, 0, "reset completes at once");
  assert.equal(r16(0x64) & 0x24, 0x24, "link up, autonegotiation complete");
  assert.equal(nic.read(0x40, 4) & 0x7c800000, 0x74800000);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => r8(i)), [...MAC]);
});

Deno.test("Rtl8139 transmits C+ descriptors, hands back ownership and computes checksums", () => {
  const { ram, dv, sent, r16, w8, w16, w32 } = setup();
  const ring = 0x10000;
  const buf = 0x20000;
  // An IPv4/UDP frame split over two descriptors, with IPCS and UDPCS asked for.
  const f = ram.subarray(buf, buf + 50);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC, 8, 0]);
  f.set([0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2], 14);
  f.set([0x13, 0x88, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], 34);
  dv.setUint32(ring, DESC_OWN | DESC_FS | (1 << 18) | (1 << 17) | 20, true);
  dv.setUint32(ring + 8, buf, true);
  dv.setUint32(ring + 16, DESC_OWN | DESC_LS | DESC_EOR | (1 << 18) | (1 << 17) | 30, true);
  dv.setUint32(ring + 24, buf + 20, true);
  w32(0x20, ring);
  w32(0x24, 0);
  w16(0xe0, 0x03);
  w8(0x37, 0x0c);
  w16(0x3c, 0xffff);
  w8(0xd9, 0x40);
  assert.equal(sent.length, 1);
  const out = sent[0];
  assert.equal(out.length, 50);
  let s = 0;
  for (let i = 14; i < 34; i += 2) s += (out[i] << 8) | out[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  assert.equal(s, 0xffff, "IP header checksum");
  assert.notEqual((out[40] << 8) | out[41], 0, "UDP checksum filled in");
  assert.equal(dv.getUint32(ring, true) & DESC_OWN, 0);
  assert.equal(dv.getUint32(ring + 16, true) & DESC_OWN, 0);
  assert.equal(r16(0x3e) & ISR_TOK, ISR_TOK);
  w16(0x3e, ISR_TOK);
  assert.equal(r16(0x3e) & ISR_TOK, 0, "ISR bits clear when written with 1");
});

Deno.test("Rtl8139 receives into the next owned C+ descriptor and refuses when it has none", () => {
  const { ram, dv, nic, r16, w8, w16, w32 } = setup();
  const ring = 0x10000;
  dv.setUint32(ring, DESC_OWN | 1536, true);
  dv.setUint32(ring + 8, 0x30000, true);
  dv.setUint32(ring + 16, DESC_OWN | DESC_EOR | 1536, true);
  dv.setUint32(ring + 24, 0x31000, true);
  w32(0xe4, ring);
  w32(0xe8, 0);
  w32(0x44, 0x0a); // accept broadcast and my MAC
  w16(0xe0, 0x03);
  w8(0x37, 0x0c);
  const frame = new Uint8Array(80).fill(3);
  frame.set(MAC, 0);
  assert.equal(nic.receive(frame), true);
  const opts1 = dv.getUint32(ring, true);
  assert.equal(opts1 & DESC_OWN, 0);
  assert.equal(opts1 & 0x1fff, 84, "length with the FCS");
  assert.ok(opts1 & DESC_FS && opts1 & DESC_LS);
  assert.deepEqual(ram.subarray(0x30000, 0x30000 + 80), frame);
  assert.ok(r16(0x3e) & ISR_ROK);
  const other = frame.slice();
  other[0] = 0x02;
  assert.equal(nic.receive(other), true, "another MAC: filtered");
  assert.equal(dv.getUint32(ring + 16, true) & DESC_OWN, DESC_OWN);
  assert.equal(nic.receive(new Uint8Array(60).fill(0xff)), true);
  assert.equal(dv.getUint32(ring + 16, true) & DESC_OWN, 0);
  assert.equal(
    nic.receive(frame),
    false,
    "the ring wrapped to a descriptor the driver has not given back",
  );
  assert.ok(r16(0x3e) & ISR_RXOVW);
});
