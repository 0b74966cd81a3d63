// The Realtek RTL8139C+ (QEMU's `rtl8139`, 10ec:8139 revision 20h, which Linux drives with
// 8139cp): C+ mode descriptor rings for receive and transmit with checksum and large-send
// offloads, the MII registers, and the 93C46 EEPROM behind 9346CR. The classic RTL8139
// mode (a receive ring buffer and four transmit slots) is not modelled.

import type { Device, DeviceState } from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import type { NetClient } from "../../../core/net.ts";
import { type PciBus, PciConfig } from "../../../core/pci.ts";
import { mapIoWindow, MmioWindow } from "./_windows.ts";
import { MicrowireEeprom } from "./e1000_eeprom.ts";
import { emptyTxContext, segment } from "./e1000_tx.ts";

export const RTL8139_VENDOR_ID = 0x10ec;
export const RTL8139_DEVICE_ID = 0x8139;
/** Revision 20h makes it a C+ part. */
export const RTL8139_REVISION = 0x20;
const REGS_BYTES = 256;
/** The memory BAR: a page, since vmkit maps MMIO by pages (QEMU's is the 256 bytes). */
const MMIO_BAR_BYTES = 0x1000;

// Registers.
const IDR0 = 0x00;
const TNPDS = 0x20; // C+ normal-priority transmit descriptors (64-bit)
const CR = 0x37;
const IMR = 0x3c;
const ISR = 0x3e;
const TCR = 0x40;
const RCR = 0x44;
const CR9346 = 0x50;
const BMCR = 0x62;
const BMSR = 0x64;
const ANAR = 0x66;
const ANLPAR = 0x68;
const ANER = 0x6a;
const TPPOLL = 0xd9;
const CPCR = 0xe0;
const RDSAR = 0xe4; // C+ receive descriptors (64-bit)

const CR_RST = 0x10;
const CR_RE = 0x08;
const CR_TE = 0x04;
const CR_BUFE = 0x01;
const CPCR_RX = 0x02;
const CPCR_TX = 0x01;
const TPPOLL_NPQ = 0x40;

// ISR bits.
export const ISR_ROK = 0x0001;
export const ISR_TOK = 0x0004;
export const ISR_RXOVW = 0x0010;
export const ISR_TX_EMPTY = 0x0080;

// RCR accept bits.
const RCR_AAP = 0x01;
const RCR_APM = 0x02;
const RCR_AM = 0x04;
const RCR_AB = 0x08;

// C+ descriptor opts1 bits.
export const DESC_OWN = 1 << 31;
export const DESC_EOR = 1 << 30;
export const DESC_FS = 1 << 29;
export const DESC_LS = 1 << 28;
const TX_LGSEN = 1 << 27;
const TX_IPCS = 1 << 18;
const TX_UDPCS = 1 << 17;
const TX_TCPCS = 1 << 16;
/** TCR's hardware version bits for an RTL8139C+. */
const TCR_HWVERID_8139CP = 0x74800000;
const MAX_TX_PACKET = 65536;
/** Descriptors looked at per poll at most (8139cp rings hold 64). */
const MAX_RING = 1024;

/** Where the device lives in the machine. */
export interface Rtl8139Host {
  memory: AddressSpace;
  io: PortIoSpace;
  pci: PciBus | null;
  devfn?: number;
  kick(): void;
}

function sum16(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  let i = start;
  for (; i + 1 < end; i += 2) s += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) s += bytes[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Where the IPv4 and TCP/UDP headers of an Ethernet frame are; null when it has none. */
function ipv4Layout(f: Uint8Array): { ip: number; l4: number; proto: number; end: number } | null {
  if (f.length < 34 || f[12] !== 8 || f[13] !== 0 || f[14] >> 4 !== 4) return null;
  const ihl = (f[14] & 15) * 4;
  const total = (f[16] << 8) | f[17];
  if (ihl < 20 || 14 + ihl > f.length) return null;
  return { ip: 14, l4: 14 + ihl, proto: f[23], end: Math.min(f.length, 14 + total) };
}

/** The pseudo-header sum (without or with the length) of the frame's IPv4 header. */
function pseudo(f: Uint8Array, proto: number, length: number): number {
  return sum16(f, 26, 34, proto + length);
}

/** Computes the checksums 8139cp asks for in a frame (from scratch, as the chip does). */
function checksum(f: Uint8Array, ipcs: boolean, l4cs: boolean): void {
  const lay = ipv4Layout(f);
  if (!lay) return;
  if (ipcs) {
    f[lay.ip + 10] = f[lay.ip + 11] = 0;
    const s = ~sum16(f, lay.ip, lay.l4) & 0xffff;
    f[lay.ip + 10] = s >> 8;
    f[lay.ip + 11] = s & 0xff;
  }
  if (l4cs && (lay.proto === 6 || lay.proto === 17)) {
    const at = lay.l4 + (lay.proto === 6 ? 16 : 6);
    if (at + 2 > lay.end) return;
    f[at] = f[at + 1] = 0;
    let s = ~sum16(f, lay.l4, lay.end, pseudo(f, lay.proto, lay.end - lay.l4)) & 0xffff;
    if (s === 0 && lay.proto === 17) s = 0xffff;
    f[at] = s >> 8;
    f[at + 1] = s & 0xff;
  }
}

/** One RTL8139C+. */
export class Rtl8139 implements Device, NetClient {
  readonly model = "rtl8139";
  readonly pci: PciConfig;
  readonly devfn: number;
  peer: NetClient | null = null;
  readonly regs = new Uint8Array(REGS_BYTES);
  readonly stats = { txFrames: 0, rxFrames: 0, rxDropped: 0, txErrors: 0 };
  readonly eeprom: MicrowireEeprom;
  #view = new DataView(this.regs.buffer);
  #mac: Uint8Array;
  #host: Rtl8139Host;
  #irq: IrqLine | null;
  #txIndex = 0;
  #rxIndex = 0;

  constructor(readonly id: string, mac: Uint8Array, host: Rtl8139Host) {
    this.#mac = mac.slice();
    this.#host = host;
    const words = new Uint16Array(64);
    words[0] = 0x8129;
    words[1] = RTL8139_VENDOR_ID;
    words[2] = RTL8139_DEVICE_ID;
    for (let i = 0; i < 3; i++) words[7 + i] = mac[2 * i] | (mac[2 * i + 1] << 8);
    this.eeprom = new MicrowireEeprom(words, { cs: 0x08, sk: 0x04, di: 0x02, do: 0x01 });
    this.pci = new PciConfig({
      vendorId: RTL8139_VENDOR_ID,
      deviceId: RTL8139_DEVICE_ID,
      revision: RTL8139_REVISION,
      classCode: 0x020000,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      interruptPin: 1,
    });
    const regs = {
      read: (offset: number, size: 1 | 2 | 4) => this.read(offset, size),
      write: (offset: number, size: 1 | 2 | 4, value: number) => this.write(offset, size, value),
    };
    const mmio = new MmioWindow(host.memory, `${id}-mmio`, MMIO_BAR_BYTES, regs);
    this.pci.addBar(0, {
      size: REGS_BYTES,
      io: true,
      map: (b) => mapIoWindow(host.io, `${id}-io`, b, REGS_BYTES, regs),
    });
    this.pci.addBar(1, { size: MMIO_BAR_BYTES, io: false, map: (b) => mmio.map(b) });
    this.devfn = host.pci?.plug(this.pci, host.devfn) ?? host.devfn ?? 0;
    this.#irq = host.pci?.intx(this.devfn, 1) ?? null;
    this.#reset();
  }

  /** The MAC address the EEPROM holds. */
  get mac(): Uint8Array {
    return this.#mac.slice();
  }

  #reset(): void {
    this.regs.fill(0);
    this.regs.set(this.#mac, IDR0);
    this.regs[CR] = CR_BUFE;
    this.#view.setUint32(TCR, TCR_HWVERID_8139CP, true);
    this.#view.setUint16(BMCR, 0x3100, true); // 100 Mb/s, autonegotiation, full duplex
    this.#view.setUint16(BMSR, 0x782d, true); // capabilities, autonegotiation done, link up
    this.#view.setUint16(ANAR, 0x05e1, true);
    this.#view.setUint16(ANLPAR, 0x45e1, true);
    this.#view.setUint16(ANER, 0x0001, true);
    this.#txIndex = 0;
    this.#rxIndex = 0;
    this.eeprom.reset();
    this.#updateIrq();
  }

  /** Reads `size` bytes at register offset `at`. */
  read(at: number, size: number): number {
    if (at < 0 || at + size > REGS_BYTES) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    if (at === CR9346 && size === 1) return this.eeprom.read(this.regs[CR9346]);
    if (size === 1) return this.regs[at];
    if (size === 2) return this.#view.getUint16(at, true);
    return this.#view.getUint32(at, true);
  }

  /** Writes `size` bytes at register offset `at`. */
  write(at: number, size: number, value: number): void {
    if (at < 0 || at + size > REGS_BYTES) return;
    if (at === ISR && size >= 2) {
      this.#view.setUint16(ISR, this.#view.getUint16(ISR, true) & ~value, true);
      this.#updateIrq();
      return;
    }
    if (at === CR && size === 1) {
      if (value & CR_RST) {
        this.#reset();
        return;
      }
      this.regs[CR] = (value & (CR_RE | CR_TE)) | CR_BUFE;
      return;
    }
    if (at === CR9346 && size === 1) {
      this.regs[CR9346] = value & 0xfe;
      this.eeprom.write(value);
      return;
    }
    if (at === TPPOLL && size === 1) {
      if (value & TPPOLL_NPQ) this.#transmit();
      return;
    }
    if (at === TCR && size === 4) {
      this.#view.setUint32(TCR, (TCR_HWVERID_8139CP | (value & 0x030f07f1)) >>> 0, true);
      return;
    }
    if (at === BMSR || at === BMSR + 1) return;
    if (size === 1) this.regs[at] = value;
    else if (size === 2) this.#view.setUint16(at, value, true);
    else this.#view.setUint32(at, value >>> 0, true);
    if (at >= TNPDS && at < TNPDS + 8) this.#txIndex = 0;
    if (at >= RDSAR && at < RDSAR + 8) this.#rxIndex = 0;
    if (at === IMR) this.#updateIrq();
  }

  #cause(bits: number): void {
    this.#view.setUint16(ISR, this.#view.getUint16(ISR, true) | bits, true);
    this.#updateIrq();
  }

  #updateIrq(): void {
    const level = (this.#view.getUint16(ISR, true) & this.#view.getUint16(IMR, true)) !== 0;
    this.#irq?.set(level);
    if (level) this.#host.kick();
  }

  #ringAddr(at: number): number {
    return this.#view.getUint32(at, true) + this.#view.getUint32(at + 4, true) * 2 ** 32;
  }

  #transmit(): void {
    if (!(this.regs[CR] & CR_TE) || !(this.#view.getUint16(CPCR, true) & CPCR_TX)) return;
    const ring = this.#ringAddr(TNPDS);
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    const packet = new Uint8Array(MAX_TX_PACKET);
    let length = 0;
    let bad = false;
    let sent = false;
    for (let n = 0; n < MAX_RING; n++) {
      const at = ring + this.#txIndex * 16;
      try {
        this.#host.memory.dmaRead(at, desc);
      } catch {
        this.stats.txErrors++;
        break;
      }
      const opts1 = dv.getUint32(0, true);
      if (!(opts1 & DESC_OWN)) break;
      const len = opts1 & 0xffff;
      const buf = dv.getUint32(8, true) + dv.getUint32(12, true) * 2 ** 32;
      if (opts1 & DESC_FS) {
        length = 0;
        bad = false;
      }
      try {
        if (length + len > MAX_TX_PACKET) bad = true;
        else this.#host.memory.dmaRead(buf, packet.subarray(length, length + len));
        length += len;
        dv.setUint32(0, opts1 & ~DESC_OWN, true);
        this.#host.memory.dmaWrite(at, desc.subarray(0, 4));
      } catch {
        bad = true;
      }
      this.#txIndex = opts1 & DESC_EOR ? 0 : this.#txIndex + 1;
      sent = true;
      if (!(opts1 & DESC_LS)) continue;
      if (bad || length < 14) {
        this.stats.txErrors++;
        continue;
      }
      this.#sendPacket(packet.slice(0, length), opts1);
    }
    if (sent) this.#cause(ISR_TOK | ISR_TX_EMPTY);
  }

  #sendPacket(frame: Uint8Array, opts1: number): void {
    if (opts1 & TX_LGSEN) {
      const mss = (opts1 >>> 16) & 0x7ff;
      const lay = ipv4Layout(frame);
      if (!lay || lay.proto !== 6 || lay.l4 + 20 > frame.length || mss === 0) {
        this.stats.txErrors++;
        return;
      }
      const hdrlen = lay.l4 + (frame[lay.l4 + 12] >> 4) * 4;
      // Each segment's TCP sum starts from the pseudo-header without the length.
      const seed = pseudo(frame, 6, 0);
      frame[lay.l4 + 16] = seed >> 8;
      frame[lay.l4 + 17] = seed & 0xff;
      const frames = segment(
        frame,
        {
          ...emptyTxContext(),
          ipcss: lay.ip,
          ipcso: lay.ip + 10,
          ipcse: lay.l4 - 1,
          tucss: lay.l4,
          tucso: lay.l4 + 16,
          tucmd: 0x03,
          hdrlen,
          mss,
        },
        true,
        true,
      );
      if (!frames) {
        this.stats.txErrors++;
        return;
      }
      for (const f of frames) this.#emit(f);
      return;
    }
    checksum(frame, (opts1 & TX_IPCS) !== 0, (opts1 & (TX_TCPCS | TX_UDPCS)) !== 0);
    this.#emit(frame);
  }

  #emit(frame: Uint8Array): void {
    this.stats.txFrames++;
    this.peer?.receive(frame);
  }

  #accepts(frame: Uint8Array): boolean {
    const rcr = this.#view.getUint32(RCR, true);
    if (rcr & RCR_AAP) return true;
    if (frame[0] & 1) {
      if (frame.subarray(0, 6).every((b) => b === 0xff)) return (rcr & RCR_AB) !== 0;
      return (rcr & RCR_AM) !== 0;
    }
    return (rcr & RCR_APM) !== 0 && frame.subarray(0, 6).every((b, i) => b === this.regs[IDR0 + i]);
  }

  /** A frame from the peer: into the next C+ receive descriptor the driver owns us. */
  receive(frame: Uint8Array): boolean {
    if (!(this.regs[CR] & CR_RE) || !(this.#view.getUint16(CPCR, true) & CPCR_RX)) return false;
    if (frame.length < 14 || !this.#accepts(frame)) return true;
    const at = this.#ringAddr(RDSAR) + this.#rxIndex * 16;
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    try {
      this.#host.memory.dmaRead(at, desc);
    } catch {
      this.stats.rxDropped++;
      return true;
    }
    const opts1 = dv.getUint32(0, true);
    if (!(opts1 & DESC_OWN)) {
      this.#cause(ISR_RXOVW);
      this.stats.rxDropped++;
      return false;
    }
    const bufBytes = opts1 & 0x1fff;
    const data = new Uint8Array(Math.max(60, frame.length) + 4); // with the FCS
    data.set(frame);
    const buf = dv.getUint32(8, true) + dv.getUint32(12, true) * 2 ** 32;
    if (data.length > bufBytes) {
      this.stats.rxDropped++;
      return true;
    }
    try {
      this.#host.memory.dmaWrite(buf, data);
      dv.setUint32(0, ((opts1 & DESC_EOR) | DESC_FS | DESC_LS | data.length) >>> 0, true);
      dv.setUint32(4, 0, true);
      this.#host.memory.dmaWrite(at, desc.subarray(0, 8));
    } catch {
      this.stats.rxDropped++;
    }
    this.#rxIndex = opts1 & DESC_EOR ? 0 : (this.#rxIndex + 1) % MAX_RING;
    this.stats.rxFrames++;
    this.#cause(ISR_ROK);
    return true;
  }

  reset(): void {
    this.#reset();
  }

  saveState(): DeviceState {
    return { pci: this.pci.save(), regs: this.regs.slice(), tx: this.#txIndex, rx: this.#rxIndex };
  }

  loadState(state: DeviceState): void {
    this.regs.set(state.regs as Uint8Array);
    this.#txIndex = state.tx as number;
    this.#rxIndex = state.rx as number;
    this.pci.load(state.pci as Uint8Array);
    this.#updateIrq();
  }
}
