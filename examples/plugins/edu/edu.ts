// QEMU's `edu` teaching device as an outside plugin: ID and liveness registers, factorial,
// DMA through a 4 KiB buffer, interrupts by INTx or MSI (QEMU docs/specs/edu.rst)
//
// Load it with `vmkit --plugin examples/plugins/edu/edu.ts system-x86_64 -device edu`. It
// imports vmkit only through mod.ts, as any plugin outside the tree does.

import {
  type Device,
  type DeviceContext,
  type DeviceDescriptor,
  type DeviceState,
  type IrqLine,
  mmioBarMapper,
  optNumber,
  optString,
  parsePciAddr,
  PCI_BUS,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_SUBDEVICE_ID_QEMU,
  PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
  PCI_VENDOR_ID_QEMU,
  type PciBus,
  PciConfig,
  PciMsi,
  PLUGIN_API_VERSION,
  type Timer,
  UsageError,
} from "../../../mod.ts";

/** PCI IDs and class (QEMU's hw/misc/edu.c: PCI_CLASS_OTHERS, revision 0x10). */
export const EDU_DEVICE_ID = 0x11e8;
const EDU_REVISION = 0x10;
const PCI_CLASS_OTHERS = 0xff0000;

/** BAR 0: 1 MiB of registers. */
export const EDU_BAR_SIZE = 1 << 20;

/** Register offsets in BAR 0 (edu.rst "MMIO area spec"). */
export const EDU_ID = 0x00;
export const EDU_LIVENESS = 0x04;
export const EDU_FACTORIAL = 0x08;
export const EDU_STATUS = 0x20;
export const EDU_IRQ_STATUS = 0x24;
export const EDU_IRQ_RAISE = 0x60;
export const EDU_IRQ_ACK = 0x64;
export const EDU_DMA_SRC = 0x80;
export const EDU_DMA_DST = 0x88;
export const EDU_DMA_COUNT = 0x90;
export const EDU_DMA_CMD = 0x98;

/** Version 1.0 in the form 0xRRrr00ed. */
export const EDU_ID_VALUE = 0x010000ed;

export const EDU_STATUS_COMPUTING = 0x01;
export const EDU_STATUS_IRQFACT = 0x80;

export const EDU_DMA_RUN = 0x1;
/** Direction bit: 0 from RAM to the device buffer, 1 from the buffer to RAM. */
export const EDU_DMA_TO_RAM = 0x2;
export const EDU_DMA_IRQ = 0x4;
/** What the interrupt status gets when a DMA with EDU_DMA_IRQ ends. */
export const EDU_DMA_IRQ_VALUE = 0x100;
/** What it gets when a factorial ends with EDU_STATUS_IRQFACT set. */
export const EDU_FACT_IRQ_VALUE = 0x1;

/** The device's DMA buffer: 4 KiB seen by the DMA engine at 0x40000. */
export const EDU_DMA_BUF_START = 0x40000;
export const EDU_DMA_BUF_SIZE = 4096;

/** QEMU's default: the device drives 28 address bits. */
const EDU_DMA_MASK_DEFAULT = (1 << 28) - 1;
/** A DMA takes 100 ms of virtual time, as QEMU's edu timer. */
const EDU_DMA_DELAY_NS = 100_000_000;

/**
 * n! modulo 2^32, as the device's 32-bit register holds it. From 34! on, the product has
 * 32 factors of two, so it is 0: no guest value makes the loop long.
 */
export function factorial32(n: number): number {
  if (n >= 34) return 0;
  let product = 1;
  for (let i = 2; i <= n; i++) product = Math.imul(product, i);
  return product >>> 0;
}

/** The `edu` device: plain state, one timer, one BAR, INTx pin A and an MSI capability. */
export class Edu implements Device {
  readonly model = "edu";
  readonly config: PciConfig;
  readonly msi: PciMsi;
  /** Guest requests refused (a DMA outside the buffer or outside RAM); the guest goes on. */
  guestErrors = 0;

  #ctx: DeviceContext;
  #intx: IrqLine | null = null;
  #dmaTimer: Timer;
  #dmaMask: number;
  #state = {
    liveness: 0,
    fact: 0,
    status: 0,
    irqStatus: 0,
    dmaSrc: 0,
    dmaDst: 0,
    dmaCount: 0,
    dmaCmd: 0,
    buffer: new Uint8Array(EDU_DMA_BUF_SIZE),
  };

  constructor(readonly id: string, ctx: DeviceContext, options: { dmaMask?: number } = {}) {
    this.#ctx = ctx;
    this.#dmaMask = options.dmaMask ?? EDU_DMA_MASK_DEFAULT;
    this.config = new PciConfig({
      vendorId: PCI_VENDOR_ID_QEMU,
      deviceId: EDU_DEVICE_ID,
      revision: EDU_REVISION,
      classCode: PCI_CLASS_OTHERS,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
      interruptPin: 1,
    }, { onWrite: (offset, size) => this.#configWritten(offset, size) });
    this.config.addBar(0, {
      size: EDU_BAR_SIZE,
      io: false,
      map: mmioBarMapper(ctx.memory, `${id}-mmio`, EDU_BAR_SIZE, {
        read: (offset, size) => this.read(offset, size),
        write: (offset, size, value) => this.write(offset, size, value),
      }),
    });
    this.msi = new PciMsi(this.config, ctx.memory);
    this.#dmaTimer = ctx.loop.createTimer(`${id}-dma`, () => this.#dmaDone());
  }

  /** Plugs the function into `bus` and takes its INTA line. */
  plug(bus: PciBus, devfn?: number): void {
    const at = bus.plug(this.config, devfn);
    this.#intx = bus.intx(at, 1);
  }

  /** A register read; a size the register does not take reads all ones, as QEMU's edu. */
  read(offset: number, size: 1 | 2 | 4): number {
    const s = this.#state;
    if (size !== 4) return size === 1 ? 0xff : 0xffff;
    switch (offset) {
      case EDU_ID:
        return EDU_ID_VALUE;
      case EDU_LIVENESS:
        return s.liveness;
      case EDU_FACTORIAL:
        return s.fact;
      case EDU_STATUS:
        return s.status;
      case EDU_IRQ_STATUS:
        return s.irqStatus;
      case EDU_DMA_SRC:
        return s.dmaSrc;
      case EDU_DMA_DST:
        return s.dmaDst;
      case EDU_DMA_COUNT:
        return s.dmaCount;
      case EDU_DMA_CMD:
        return s.dmaCmd;
      default:
        return 0xffffffff;
    }
  }

  /** A register write; other sizes and offsets are ignored, as QEMU's edu ignores them. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const s = this.#state;
    if (size !== 4) return;
    value >>>= 0;
    const dmaBusy = (s.dmaCmd & EDU_DMA_RUN) !== 0;
    switch (offset) {
      case EDU_LIVENESS:
        s.liveness = ~value >>> 0;
        break;
      case EDU_FACTORIAL:
        if (s.status & EDU_STATUS_COMPUTING) break;
        s.fact = value;
        s.status |= EDU_STATUS_COMPUTING;
        // QEMU computes in a thread; here the loop runs it after the current slice, so the
        // guest may see the busy bit once before the result.
        this.#ctx.loop.defer(() => this.#factorialDone());
        break;
      case EDU_STATUS:
        s.status = (s.status & ~EDU_STATUS_IRQFACT) | (value & EDU_STATUS_IRQFACT);
        break;
      case EDU_IRQ_RAISE:
        this.#raise(value);
        break;
      case EDU_IRQ_ACK:
        this.#lower(value);
        break;
      case EDU_DMA_SRC:
        if (!dmaBusy) s.dmaSrc = value;
        break;
      case EDU_DMA_DST:
        if (!dmaBusy) s.dmaDst = value;
        break;
      case EDU_DMA_COUNT:
        if (!dmaBusy) s.dmaCount = value;
        break;
      case EDU_DMA_CMD:
        if (dmaBusy || !(value & EDU_DMA_RUN)) break;
        s.dmaCmd = value & (EDU_DMA_RUN | EDU_DMA_TO_RAM | EDU_DMA_IRQ);
        this.#dmaTimer.armIn(EDU_DMA_DELAY_NS);
        break;
    }
  }

  #factorialDone(): void {
    const s = this.#state;
    if (!(s.status & EDU_STATUS_COMPUTING)) return; // reset in between
    s.fact = factorial32(s.fact);
    s.status &= ~EDU_STATUS_COMPUTING;
    if (s.status & EDU_STATUS_IRQFACT) this.#raise(EDU_FACT_IRQ_VALUE);
  }

  /**
   * The DMA of the command register. A range outside the 4 KiB buffer, or a guest address
   * outside RAM, is refused and counted: QEMU's edu stops the whole machine there; a
   * plugin answers the guest and lets the machine run.
   */
  #dmaDone(): void {
    const s = this.#state;
    const count = s.dmaCount;
    const toRam = (s.dmaCmd & EDU_DMA_TO_RAM) !== 0;
    const bufferAddr = toRam ? s.dmaSrc : s.dmaDst;
    const ramAddr = ((toRam ? s.dmaDst : s.dmaSrc) & this.#dmaMask) >>> 0;
    const start = bufferAddr - EDU_DMA_BUF_START;
    const inBuffer = start >= 0 && count > 0 && start + count <= EDU_DMA_BUF_SIZE;
    const mastering = (this.config.get16(PCI_COMMAND) & PCI_COMMAND_MASTER) !== 0;
    if (!inBuffer || !mastering) {
      this.guestErrors++;
    } else {
      const window = s.buffer.subarray(start, start + count);
      try {
        if (toRam) this.#ctx.memory.dmaWrite(ramAddr, window);
        else this.#ctx.memory.dmaRead(ramAddr, window);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        this.guestErrors++;
      }
    }
    s.dmaCmd &= ~EDU_DMA_RUN;
    if (s.dmaCmd & EDU_DMA_IRQ) this.#raise(EDU_DMA_IRQ_VALUE);
  }

  #raise(value: number): void {
    const s = this.#state;
    s.irqStatus = (s.irqStatus | value) >>> 0;
    if (s.irqStatus === 0) return;
    if (!this.msi.notify()) this.#updateIntx();
    this.#ctx.kick();
  }

  #lower(value: number): void {
    const s = this.#state;
    s.irqStatus = (s.irqStatus & ~value) >>> 0;
    if (!this.msi.enabled) this.#updateIntx();
  }

  /** INTA follows the interrupt status unless the guest disabled INTx in the command register. */
  #updateIntx(): void {
    const disabled = (this.config.get16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) !== 0;
    this.#intx?.set(this.#state.irqStatus !== 0 && !disabled && !this.msi.enabled);
  }

  #configWritten(offset: number, size: number): void {
    // Turning MSI on, or INTx off, takes the line down; turning them back re-asserts it.
    if (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND) this.#updateIntx();
    if (offset < this.msi.offset + 4 && offset + size > this.msi.offset) this.#updateIntx();
  }

  reset(): void {
    const s = this.#state;
    this.#dmaTimer.cancel();
    Object.assign(s, {
      liveness: 0,
      fact: 0,
      status: 0,
      irqStatus: 0,
      dmaSrc: 0,
      dmaDst: 0,
      dmaCount: 0,
      dmaCmd: 0,
    });
    s.buffer.fill(0);
    this.config.reset();
    this.#intx?.lower();
  }

  saveState(): DeviceState {
    const s = this.#state;
    return {
      ...s,
      buffer: s.buffer.slice(),
      pci: this.config.save(),
      dmaDeadlineNs: this.#dmaTimer.armed ? this.#dmaTimer.deadlineNs : -1,
    };
  }

  loadState(state: DeviceState): void {
    const s = this.#state;
    for (const key of Object.keys(s) as (keyof typeof s)[]) {
      if (key === "buffer") s.buffer.set(state.buffer as Uint8Array);
      else if (typeof state[key] === "number") (s[key] as number) = (state[key] as number) >>> 0;
    }
    this.config.load(state.pci as Uint8Array);
    const deadline = state.dmaDeadlineNs as number;
    if (deadline >= 0) this.#dmaTimer.arm(deadline);
    else this.#dmaTimer.cancel();
    this.#updateIntx();
  }
}

/** `-device edu[,addr=SLOT][,dma_mask=MASK][,id=ID]`. */
export default {
  kind: "device",
  name: "edu",
  summary: "QEMU's educational PCI device (factorial, DMA, INTx and MSI)",
  apiVersion: PLUGIN_API_VERSION,
  bus: "PCI",
  category: "Misc",
  userCreatable: true,
  options: [
    { name: "id", type: "string", help: "device id" },
    { name: "addr", type: "string", help: "PCI slot[.function] (hex)" },
    { name: "dma_mask", type: "number", help: "DMA address mask (default 0xfffffff, 28 bits)" },
  ],
  create(ctx: DeviceContext, opts): Edu {
    const bus = ctx.findService(PCI_BUS);
    if (!bus) throw new UsageError("edu: this machine has no PCI bus");
    const id = optString(opts, "id") ?? ctx.freeId("edu");
    const addr = optString(opts, "addr");
    const edu = new Edu(id, ctx, { dmaMask: optNumber(opts, "dma_mask") });
    edu.plug(bus, addr === undefined ? undefined : parsePciAddr("edu", addr));
    return edu;
  },
} satisfies DeviceDescriptor;
