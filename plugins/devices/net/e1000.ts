// The Intel 82540EM gigabit NIC (QEMU's `e1000`, the default NIC of `-M pc`): registers in
// a 128 KiB memory BAR and an I/O window, descriptor rings for receive and transmit,
// checksum and segmentation offloads, a Microwire EEPROM and an M88 PHY

import type { Device, DeviceState } from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import type { NetClient } from "../../../core/net.ts";
import { type PciBus, PciConfig } from "../../../core/pci.ts";
import { mapIoWindow, MmioWindow } from "./_windows.ts";
import { eepromImage, MicrowireEeprom, Phy } from "./e1000_eeprom.ts";
import * as R from "./e1000_regs.ts";
import {
  emptyTxContext,
  offloadChecksums,
  readTxContext,
  segment,
  type TxContext,
} from "./e1000_tx.ts";

/** The largest packet the transmit path gathers (a TSO packet is at most 64 KiB). */
const MAX_TX_PACKET = 65536 + 256;

/** Frame counters, for tests and the monitor. */
export interface E1000Stats {
  [key: string]: number;
  txFrames: number;
  rxFrames: number;
  rxDropped: number;
  txErrors: number;
}

/** Where the device lives in the machine. */
export interface E1000Host {
  memory: AddressSpace;
  io: PortIoSpace;
  pci: PciBus | null;
  devfn?: number;
  /** Called when the interrupt line may need the CPU's attention. */
  kick(): void;
}

/** One 82540EM. */
export class E1000 implements Device, NetClient {
  readonly model = "e1000";
  readonly pci: PciConfig;
  readonly devfn: number;
  peer: NetClient | null = null;
  readonly stats: E1000Stats = { txFrames: 0, rxFrames: 0, rxDropped: 0, txErrors: 0 };
  /** The registers, one 32-bit word per 4 bytes of BAR 0. */
  readonly regs = new Uint32Array(R.E1000_MMIO_BYTES / 4);
  readonly eeprom: MicrowireEeprom;
  readonly phy = new Phy();
  #mac: Uint8Array;
  #host: E1000Host;
  #irq: IrqLine | null;
  #ioAddr = 0;
  #ctx: TxContext = emptyTxContext();
  #txPacket = new Uint8Array(MAX_TX_PACKET);
  #txLength = 0;
  #txTse = false;
  #txPopts = 0;
  #txBad = false;

  constructor(readonly id: string, mac: Uint8Array, host: E1000Host) {
    this.#mac = mac.slice();
    this.#host = host;
    this.eeprom = new MicrowireEeprom(eepromImage(mac, R.E1000_DEV_ID_82540EM, R.E1000_VENDOR_ID));
    this.pci = new PciConfig({
      vendorId: R.E1000_VENDOR_ID,
      deviceId: R.E1000_DEV_ID_82540EM,
      revision: 3,
      classCode: 0x020000,
      // QEMU's default subsystem (Red Hat/Qumranet 1af4:1100), which its e1000 keeps.
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      interruptPin: 1,
    });
    const mmio = new MmioWindow(host.memory, `${id}-mmio`, R.E1000_MMIO_BYTES, {
      read: (offset, size) => this.#readSized(offset, size),
      write: (offset, size, value) => this.#writeSized(offset, size, value),
    });
    this.pci.addBar(0, { size: R.E1000_MMIO_BYTES, io: false, map: (b) => mmio.map(b) });
    this.pci.addBar(1, { size: R.E1000_IO_BYTES, io: true, map: (b) => this.#mapIo(b) });
    this.devfn = host.pci?.plug(this.pci, host.devfn) ?? host.devfn ?? 0;
    this.#irq = host.pci?.intx(this.devfn, 1) ?? null;
    this.#resetRegisters();
  }

  /** The MAC address the EEPROM holds. */
  get mac(): Uint8Array {
    return this.#mac.slice();
  }

  #mapIo(base: number | null): void {
    mapIoWindow(this.#host.io, `${this.id}-io`, base, R.E1000_IO_BYTES, {
      read: (offset, size) => {
        const off = offset & ~3;
        if (off === 0) return this.#ioAddr;
        if (off === 4) return this.readRegister(this.#ioAddr & 0x1fffc) >>> 0;
        return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
      },
      write: (offset, _size, value) => {
        const off = offset & ~3;
        if (off === 0) this.#ioAddr = value >>> 0;
        else if (off === 4) this.writeRegister(this.#ioAddr & 0x1fffc, value >>> 0);
      },
    });
  }

  #readSized(offset: number, size: number): number {
    const value = this.readRegister(offset & ~3);
    if (size === 4) return value >>> 0;
    const shift = (offset & 3) * 8;
    return (value >>> shift) & ((1 << (8 * size)) - 1);
  }

  #writeSized(offset: number, size: number, value: number): void {
    if (size === 4) {
      this.writeRegister(offset & ~3, value >>> 0);
      return;
    }
    // A narrow write merges into the register as it stands.
    const at = offset & ~3;
    const shift = (offset & 3) * 8;
    const mask = ((1 << (8 * size)) - 1) << shift;
    const old = this.regs[at >> 2];
    this.writeRegister(at, ((old & ~mask) | ((value << shift) & mask)) >>> 0);
  }

  #resetRegisters(): void {
    this.regs.fill(0);
    this.regs[R.CTRL >> 2] = R.CTRL_SLU | (1 << 3) /* ASDE */ | (1 << 0) /* FD */;
    this.regs[R.STATUS >> 2] = R.STATUS_FD | R.STATUS_LU | R.STATUS_SPEED_1000 | (1 << 9);
    this.regs[R.EECD >> 2] = R.EECD_PRES | R.EECD_GNT;
    this.regs[R.RAL0 >> 2] = (this.#mac[0] | (this.#mac[1] << 8) | (this.#mac[2] << 16) |
      (this.#mac[3] << 24)) >>> 0;
    this.regs[R.RAH0 >> 2] = (this.#mac[4] | (this.#mac[5] << 8) | (1 << 31)) >>> 0;
    this.regs[0x1000 >> 2] = 0x00100030; // PBA: 48 KiB receive, 16 KiB transmit
    this.eeprom.reset();
    this.phy.reset();
    this.#ctx = emptyTxContext();
    this.#txLength = 0;
    this.#txTse = false;
    this.#txBad = false;
    this.#updateIrq();
  }

  /** Reads the register at byte offset `at` (4-aligned). */
  readRegister(at: number): number {
    const i = at >> 2;
    switch (at) {
      case R.ICR: {
        const v = this.regs[i];
        this.regs[i] = 0;
        this.#updateIrq();
        return v;
      }
      case R.EECD:
        return this.eeprom.read(this.regs[i]) | R.EECD_PRES | R.EECD_GNT;
      case R.ICS:
        return this.regs[R.ICR >> 2];
      case R.IMC:
        return 0;
    }
    if (at >= R.STATS_START && at < R.STATS_END) {
      const v = this.regs[i];
      this.regs[i] = 0;
      return v;
    }
    return this.regs[i] ?? 0;
  }

  /** Writes the register at byte offset `at` (4-aligned). */
  writeRegister(at: number, value: number): void {
    const i = at >> 2;
    if (i >= this.regs.length) return;
    switch (at) {
      case R.CTRL:
        if (value & R.CTRL_RST) {
          this.#resetRegisters();
          return;
        }
        if (value & R.CTRL_PHY_RST) this.phy.reset();
        this.regs[i] = value & ~(R.CTRL_RST | R.CTRL_PHY_RST);
        return;
      case R.STATUS:
        return;
      case R.EECD:
        this.regs[i] = value & (R.EECD_SK | R.EECD_CS | R.EECD_DI | R.EECD_REQ);
        this.eeprom.write(value);
        return;
      case R.EERD: {
        const addr = (value >>> 8) & 0xff;
        const word = addr < R.EEPROM_WORDS ? this.eeprom.words[addr] : 0;
        this.regs[i] = ((word << 16) | (addr << 8) | R.EERD_DONE) >>> 0;
        return;
      }
      case R.MDIC: {
        const phyAddr = (value >>> 21) & 31;
        const reg = (value >>> 16) & 31;
        const op = value & (3 << 26);
        let out = value & ~(R.MDIC_ERROR | R.MDIC_READY);
        if (phyAddr !== R.PHY_ADDR) {
          out |= R.MDIC_ERROR;
        } else if (op === R.MDIC_OP_READ) {
          out = (out & ~0xffff) | this.phy.read(reg);
        } else if (op === R.MDIC_OP_WRITE) {
          this.phy.write(reg, value & 0xffff);
        }
        this.regs[i] = (out | R.MDIC_READY) >>> 0;
        return;
      }
      case R.ICR:
        this.regs[i] &= ~value;
        this.#updateIrq();
        return;
      case R.ICS:
        this.#cause(value);
        return;
      case R.IMS:
        this.regs[i] |= value;
        this.#updateIrq();
        return;
      case R.IMC:
        this.regs[R.IMS >> 2] &= ~value;
        this.#updateIrq();
        return;
      case R.RDLEN:
      case R.TDLEN:
        this.regs[i] = value & 0xfff80;
        return;
      case R.RDH:
      case R.RDT:
      case R.TDH:
        this.regs[i] = value & 0xffff;
        return;
      case R.TDT:
        this.regs[i] = value & 0xffff;
        this.#transmit();
        return;
    }
    if (at >= R.STATS_START && at < R.STATS_END) return;
    this.regs[i] = value >>> 0;
  }

  #cause(bits: number): void {
    this.regs[R.ICR >> 2] |= bits;
    this.#updateIrq();
  }

  #updateIrq(): void {
    const level = (this.regs[R.ICR >> 2] & this.regs[R.IMS >> 2]) !== 0;
    this.#irq?.set(level);
    if (level) this.#host.kick();
  }

  #ring(base: number): { addr: number; count: number } {
    const addr = this.regs[base >> 2] + this.regs[(base + 4) >> 2] * 2 ** 32;
    return { addr, count: Math.floor(this.regs[(base + 8) >> 2] / 16) };
  }

  #transmit(): void {
    if (!(this.regs[R.TCTL >> 2] & R.TCTL_EN)) return;
    const { addr, count } = this.#ring(R.TDBAL);
    if (count === 0) return;
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    let sent = false;
    for (let guard = 0; guard < count; guard++) {
      const head = this.regs[R.TDH >> 2];
      if (head === this.regs[R.TDT >> 2] || head >= count || this.regs[R.TDT >> 2] >= count) break;
      const at = addr + head * 16;
      let cmd = 0;
      try {
        this.#host.memory.dmaRead(at, desc);
        cmd = desc[11];
        this.#txDescriptor(desc, dv);
        if (cmd & (R.TXD_CMD_RS | R.TXD_CMD_RPS)) {
          desc[12] |= R.TXD_STAT_DD;
          this.#host.memory.dmaWrite(at + 12, desc.subarray(12, 13));
        }
      } catch {
        this.stats.txErrors++;
      }
      this.regs[R.TDH >> 2] = (head + 1) % count;
      sent = true;
    }
    if (sent) this.#cause(R.ICR_TXDW | R.ICR_TXQE);
  }

  #txDescriptor(desc: Uint8Array, dv: DataView): void {
    const cmd = desc[11];
    const extended = (cmd & R.TXD_CMD_DEXT) !== 0;
    const dtyp = (desc[10] >> 4) & 0xf;
    if (extended && dtyp === R.TXD_DTYP_CONTEXT) {
      this.#ctx = readTxContext(desc);
      return;
    }
    const bufAddr = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
    const length = extended ? dv.getUint32(8, true) & 0xfffff : dv.getUint16(8, true);
    if (this.#txLength === 0) {
      // The first descriptor of a packet says how it is offloaded.
      this.#txTse = extended && (cmd & R.TXD_CMD_TSE) !== 0;
      this.#txPopts = extended ? desc[13] : 0;
      this.#txBad = false;
    }
    if (this.#txLength + length > MAX_TX_PACKET) {
      this.#txBad = true;
    } else if (length > 0) {
      this.#host.memory.dmaRead(
        bufAddr,
        this.#txPacket.subarray(this.#txLength, this.#txLength + length),
      );
      this.#txLength += length;
    }
    if (!(cmd & R.TXD_CMD_EOP)) return;
    const packet = this.#txPacket.slice(0, this.#txLength);
    this.#txLength = 0;
    if (this.#txBad) {
      this.stats.txErrors++;
      return;
    }
    const ixsm = (this.#txPopts & R.TXD_POPTS_IXSM) !== 0;
    const txsm = (this.#txPopts & R.TXD_POPTS_TXSM) !== 0;
    if (this.#txTse) {
      const frames = segment(packet, this.#ctx, ixsm, txsm);
      if (!frames) {
        this.stats.txErrors++;
        return;
      }
      for (const f of frames) this.#send(f);
      return;
    }
    if (!extended && cmd & R.TXD_CMD_IC) {
      // Legacy: CSS and CSO in the descriptor.
      const css = desc[13];
      const cso = desc[10];
      offloadChecksums(packet, { ...emptyTxContext(), tucss: css, tucso: cso }, false, true);
    } else if (extended) {
      offloadChecksums(packet, this.#ctx, ixsm, txsm);
    }
    this.#send(packet);
  }

  #send(frame: Uint8Array): void {
    if (frame.length < 14) {
      this.stats.txErrors++;
      return;
    }
    this.stats.txFrames++;
    this.regs[R.GPTC >> 2]++;
    this.regs[R.TPT >> 2]++;
    this.regs[R.GOTCL >> 2] = (this.regs[R.GOTCL >> 2] + frame.length) >>> 0;
    this.peer?.receive(frame);
  }

  #accepts(frame: Uint8Array): boolean {
    const rctl = this.regs[R.RCTL >> 2];
    if (frame[0] & 1) {
      const broadcast = frame.subarray(0, 6).every((b) => b === 0xff);
      if (broadcast) return (rctl & R.RCTL_BAM) !== 0 || (rctl & R.RCTL_MPE) !== 0;
      return true; // multicast: vmkit does not filter by the MTA hash
    }
    if (rctl & R.RCTL_UPE) return true;
    for (let n = 0; n < 16; n++) {
      const lo = this.regs[(R.RAL0 >> 2) + 2 * n];
      const hi = this.regs[(R.RAH0 >> 2) + 2 * n];
      if (!(hi & (1 << 31))) continue;
      if (
        frame[0] === (lo & 0xff) && frame[1] === ((lo >>> 8) & 0xff) &&
        frame[2] === ((lo >>> 16) & 0xff) && frame[3] === lo >>> 24 &&
        frame[4] === (hi & 0xff) && frame[5] === ((hi >>> 8) & 0xff)
      ) {
        return true;
      }
    }
    return false;
  }

  #rxBufferBytes(): number {
    const rctl = this.regs[R.RCTL >> 2];
    const bsize = (rctl >>> 16) & 3;
    if (rctl & R.RCTL_BSEX) return [2048, 16384, 8192, 4096][bsize];
    return [2048, 1024, 512, 256][bsize];
  }

  /** A frame from the peer: into receive descriptors, or refused when there are none. */
  receive(frame: Uint8Array): boolean {
    const rctl = this.regs[R.RCTL >> 2];
    if (!(rctl & R.RCTL_EN)) return false;
    if (frame.length < 14 || !this.#accepts(frame)) return true; // filtered: taken and dropped
    const { addr, count } = this.#ring(R.RDBAL);
    if (count === 0) return false;
    const bufBytes = this.#rxBufferBytes();
    // The frame as the wire had it: at least 60 bytes, then the 4-byte FCS unless stripped.
    const minLen = Math.max(60, frame.length);
    const total = minLen + (rctl & R.RCTL_SECRC ? 0 : 4);
    const data = new Uint8Array(total);
    data.set(frame);
    const need = Math.ceil(total / bufBytes);
    const head = this.regs[R.RDH >> 2];
    const tail = this.regs[R.RDT >> 2];
    if (head >= count || tail >= count) return false;
    const free = (tail - head + count) % count;
    if (free < need) {
      this.#cause(R.ICR_RXO);
      this.stats.rxDropped++;
      return false;
    }
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    let h = head;
    try {
      for (let done = 0; done < total;) {
        const at = addr + h * 16;
        this.#host.memory.dmaRead(at, desc);
        const bufAddr = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
        const n = Math.min(bufBytes, total - done);
        this.#host.memory.dmaWrite(bufAddr, data.subarray(done, done + n));
        done += n;
        dv.setUint16(8, n, true);
        dv.setUint16(10, 0, true);
        desc[12] = R.RXD_STAT_DD | R.RXD_STAT_IXSM | (done === total ? R.RXD_STAT_EOP : 0);
        desc[13] = 0;
        dv.setUint16(14, 0, true);
        this.#host.memory.dmaWrite(at + 8, desc.subarray(8, 16));
        h = (h + 1) % count;
      }
    } catch {
      // A descriptor or buffer outside RAM: the frame is lost, the ring moves on.
      this.stats.rxDropped++;
    }
    this.regs[R.RDH >> 2] = h;
    this.stats.rxFrames++;
    this.regs[R.GPRC >> 2]++;
    this.regs[R.TPR >> 2]++;
    this.regs[R.GORCL >> 2] = (this.regs[R.GORCL >> 2] + total) >>> 0;
    let cause = R.ICR_RXT0;
    const left = (tail - h + count) % count;
    const threshold = count >> (1 + ((rctl >>> 8) & 3)); // RDMTS: 1/2, 1/4, 1/8
    if (left <= threshold) cause |= R.ICR_RXDMT0;
    this.#cause(cause);
    return true;
  }

  reset(): void {
    this.#resetRegisters();
  }

  saveState(): DeviceState {
    return { pci: this.pci.save(), regs: this.regs.slice(), ioAddr: this.#ioAddr };
  }

  loadState(state: DeviceState): void {
    this.regs.set(state.regs as Uint32Array);
    this.#ioAddr = state.ioAddr as number;
    this.pci.load(state.pci as Uint8Array);
    this.#updateIrq();
  }
}
