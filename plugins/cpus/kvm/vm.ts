// A KVM virtual machine: /dev/kvm, the VM file descriptor and guest memory slots from the address space

import type { CpuContext, InterruptSource } from "../../../core/cpu.ts";
import { IOAPIC, PIC, serviceKey } from "../../../core/device.ts";
import { DIRTY_PAGE_BYTES, type DirtyLog, setDirtyLog } from "../../../core/dirty_log.ts";
import type { IrqController } from "../../../core/irq.ts";
import type { AddressSpace, MemoryRegion } from "../../../core/memory/address_space.ts";
import {
  CPUID_ENTRY_BYTES,
  KVM_API_VERSION,
  KVM_CAP_IRQCHIP,
  KVM_CAP_PIT2,
  KVM_CAP_READONLY_MEM,
  KVM_CAP_SPLIT_IRQCHIP,
  KVM_CAP_USER_MEMORY,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_PIT2,
  KVM_CREATE_VM,
  KVM_ENABLE_CAP,
  KVM_GET_API_VERSION,
  KVM_GET_DIRTY_LOG,
  KVM_GET_MSR_INDEX_LIST,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_IRQ_LINE,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_SET_TSS_ADDR,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SIGNAL_MSI,
} from "./_abi.ts";
import {
  closeFd,
  errno,
  type HostMapping,
  ioctl,
  ioctlBuffer,
  lib,
  mapAnonymous,
  openDevice,
  SysError,
} from "./_libc.ts";

/** The KVM device node. */
export const KVM_DEVICE = "/dev/kvm";
const E2BIG = 7;

/**
 * Why KVM cannot be used: QEMU's words. `preface` is the line QEMU prints on its own
 * first ("Could not access KVM kernel module: ..."); the message follows "failed to
 * initialize kvm: ".
 */
export class KvmInitError extends Error {
  constructor(message: string, readonly preface: string) {
    super(message);
    this.name = "KvmInitError";
  }
}

/**
 * Opens /dev/kvm and checks the API version, as QEMU's kvm_init does; throws
 * {@linkcode KvmInitError} with QEMU's text when it cannot.
 */
export function openKvm(): number {
  let fd: number;
  try {
    fd = openDevice(KVM_DEVICE);
  } catch (e) {
    if (e instanceof SysError) {
      throw new KvmInitError(e.message, `Could not access KVM kernel module: ${e.message}`);
    }
    // No FFI permission or no libc: the same failure as far as the user is concerned.
    const text = e instanceof Error ? e.message : String(e);
    throw new KvmInitError(text, `Could not access KVM kernel module: ${text}`);
  }
  let version: number;
  try {
    version = ioctl(fd, KVM_GET_API_VERSION);
  } catch (e) {
    closeFd(fd);
    // QEMU reads a failed ioctl as a version below 12.
    const text = e instanceof Error ? e.message : String(e);
    throw new KvmInitError(text, "kvm version too old");
  }
  if (version !== KVM_API_VERSION) {
    closeFd(fd);
    throw new KvmInitError("Operation not supported", "kvm version not supported");
  }
  return fd;
}

// Guest RAM a KVM machine allocated (by ArrayBuffer), and host copies of ROM bytes that
// live in ordinary JS memory (by the buffer, then offset and length). Host memory is
// never freed while a machine may still run from it; a process runs one machine.
const hostRam = new WeakMap<ArrayBufferLike, HostMapping>();
const romCopies = new WeakMap<ArrayBufferLike, Map<string, HostMapping>>();

/**
 * Zeroed guest RAM in anonymous host memory: the machine's `Uint8Array` is a view of the
 * same bytes KVM maps into the guest, so device DMA and the guest share them without copies.
 */
export function allocateHostRam(bytes: number): Uint8Array {
  const size = Math.ceil(bytes / 4096) * 4096;
  const mapping = mapAnonymous(Math.max(size, 4096));
  hostRam.set(mapping.bytes.buffer, mapping);
  return mapping.bytes.subarray(0, bytes);
}

/** The host address of `bytes` when they are host memory KVM can map, else null. */
function hostAddressOf(bytes: Uint8Array): bigint | null {
  const mapping = hostRam.get(bytes.buffer);
  return mapping ? mapping.address + BigInt(bytes.byteOffset) : null;
}

/** A host copy of ROM bytes held in JS memory (ROM never changes under the guest). */
function romHostAddress(bytes: Uint8Array): bigint {
  let copies = romCopies.get(bytes.buffer);
  if (!copies) romCopies.set(bytes.buffer, copies = new Map());
  const key = `${bytes.byteOffset}:${bytes.length}`;
  let mapping = copies.get(key);
  if (!mapping) {
    mapping = mapAnonymous(Math.ceil(bytes.length / 4096) * 4096);
    mapping.bytes.set(bytes);
    copies.set(key, mapping);
  }
  return mapping.address;
}

/** One KVM memory slot as installed. */
interface Slot {
  id: number;
  guestAddress: number;
  size: number;
  hostAddress: bigint;
  flags: number;
}

function slotKey(s: Omit<Slot, "id">): string {
  return `${s.guestAddress}:${s.size}:${s.hostAddress}:${s.flags}`;
}

/** Inputs of KVM's IOAPIC (its PICs take GSI 0..15 of them). */
const KVM_IRQCHIP_PINS = 24;

/** The identity map page and TSS KVM needs for real mode on Intel hosts (QEMU's addresses). */
const IDENTITY_MAP_ADDRESS = 0xfeffc000;

/**
 * A KVM VM: the fds, the supported CPUID and MSR lists, and the memory slots kept equal
 * to the machine's flattened address space. RAM and ROM regions backed by host memory
 * become slots (ROM read-only); MMIO and RAM held in JS memory (a display's VRAM) stay
 * out, so the guest's accesses there exit to the same device code the interpreter calls.
 */
export class KvmVm {
  readonly kvmFd: number;
  readonly vmFd: number;
  /** Bytes of each vCPU's shared kvm_run mapping. */
  readonly runBytes: number;
  readonly readonlyMemory: boolean;
  #memory: AddressSpace;
  #generation = -1;
  #slots = new Map<string, Slot>();
  #freeIds: number[] = [];
  #nextId = 0;
  #supportedCpuid: Uint8Array | null = null;
  #msrIndexList: Set<number> | null = null;
  /** Slot updates made (a test and the bench read it). */
  slotUpdates = 0;

  constructor(memory: AddressSpace) {
    this.#memory = memory;
    this.kvmFd = openKvm();
    try {
      if (ioctl(this.kvmFd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
        throw new KvmInitError("Operation not supported", "kvm: user memory is not supported");
      }
      this.vmFd = ioctl(this.kvmFd, KVM_CREATE_VM, 0);
    } catch (e) {
      closeFd(this.kvmFd);
      throw e;
    }
    this.runBytes = ioctl(this.kvmFd, KVM_GET_VCPU_MMAP_SIZE);
    this.readonlyMemory = ioctl(this.vmFd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
    // Intel's VMX needs a TSS and an identity-mapped page table for real mode; QEMU puts
    // them just below the BIOS. Other hosts refuse or ignore it.
    try {
      const addr = new Uint8Array(8);
      new DataView(addr.buffer).setBigUint64(0, BigInt(IDENTITY_MAP_ADDRESS), true);
      ioctlBuffer(this.vmFd, KVM_SET_IDENTITY_MAP_ADDR, addr);
      ioctl(this.vmFd, KVM_SET_TSS_ADDR, IDENTITY_MAP_ADDRESS + 0x1000);
    } catch {
      // Not needed on this host.
    }
  }

  /** Guest ranges whose RAM slots carry KVM_MEM_LOG_DIRTY_PAGES (see {@linkcode DirtyLog}). */
  #logged: { address: number; bytes: number }[] = [];
  /** Dirty bits KVM handed over that a slot change would otherwise lose, by page number. */
  #carried = new Set<number>();

  /** Installs the slots for the current address space when it changed since the last call. */
  sync(force = false): void {
    if (this.#memory.generation === this.#generation && !force) return;
    this.#generation = this.#memory.generation;
    const wanted = new Map<string, Omit<Slot, "id">>();
    for (const s of this.#flatten()) wanted.set(slotKey(s), s);
    // Remove first: KVM refuses a slot overlapping another.
    for (const [key, slot] of this.#slots) {
      if (wanted.has(key)) continue;
      // A logged slot's bits go with it: keep them for the next collect().
      if (slot.flags & KVM_MEM_LOG_DIRTY_PAGES) this.#carryDirty(slot);
      this.#setSlot(slot.id, 0, 0, 0n, 0);
      this.#slots.delete(key);
      this.#freeIds.push(slot.id);
    }
    for (const [key, s] of wanted) {
      if (this.#slots.has(key)) continue;
      const id = this.#freeIds.pop() ?? this.#nextId++;
      this.#setSlot(id, s.guestAddress, s.size, s.hostAddress, s.flags);
      this.#slots.set(key, { id, ...s });
    }
  }

  /** The slots as installed (guest address order), for tests and `info kvm`. */
  slots(): readonly Slot[] {
    return [...this.#slots.values()].sort((a, b) => a.guestAddress - b.guestAddress);
  }

  #setSlot(id: number, guest: number, size: number, host: bigint, flags: number): void {
    const region = new Uint8Array(32);
    const v = new DataView(region.buffer);
    v.setUint32(0, id, true);
    v.setUint32(4, flags, true);
    v.setBigUint64(8, BigInt(guest), true);
    v.setBigUint64(16, BigInt(size), true);
    v.setBigUint64(24, host, true);
    ioctlBuffer(this.vmFd, KVM_SET_USER_MEMORY_REGION, region);
    this.slotUpdates++;
  }

  /**
   * The address space as runs of pages with one covering region: every region edge is a
   * boundary, so between two consecutive boundaries the page table names one region.
   */
  #flatten(): Omit<Slot, "id">[] {
    const mem = this.#memory;
    const regions = mem.regions;
    const edges = new Set<number>();
    for (const r of regions) {
      edges.add(r.base);
      edges.add(r.base + r.size);
    }
    const points = [...edges].sort((a, b) => a - b);
    const out: Omit<Slot, "id">[] = [];
    let run: { region: MemoryRegion; start: number; end: number } | null = null;
    const flush = () => {
      if (run) out.push(...this.#slotFor(run.region, run.start, run.end));
      run = null;
    };
    for (let i = 0; i + 1 < points.length; i++) {
      const start = points[i], end = points[i + 1];
      const region = mem.regionAt(start);
      if (run !== null && region === (run as { region: MemoryRegion }).region) {
        (run as { end: number }).end = end;
        continue;
      }
      flush();
      if (region) run = { region, start, end };
    }
    flush();
    return out;
  }

  #slotFor(r: MemoryRegion, start: number, end: number): Omit<Slot, "id">[] {
    if (r.kind === "mmio" || !r.bytes) return [];
    let host = hostAddressOf(r.bytes);
    if (r.kind === "ram") {
      // RAM in JS memory (VRAM) cannot be mapped: its accesses exit as MMIO.
      if (host === null) return [];
      // A logged range splits the run: only its pages pay for the log.
      const out: Omit<Slot, "id">[] = [];
      const cuts = new Set([start, end]);
      for (const l of this.#logged) {
        for (const at of [l.address, l.address + l.bytes]) if (at > start && at < end) cuts.add(at);
      }
      const points = [...cuts].sort((a, b) => a - b);
      for (let i = 0; i + 1 < points.length; i++) {
        const a = points[i], b = points[i + 1];
        const logged = this.#logged.some((l) => l.address <= a && l.address + l.bytes >= b);
        out.push({
          guestAddress: a,
          size: b - a,
          hostAddress: host + BigInt(a - r.base),
          flags: logged ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        });
      }
      return out;
    }
    if (!this.readonlyMemory) return []; // ROM without read-only slots: every access exits
    if (host === null) host = romHostAddress(r.bytes);
    return [{
      guestAddress: start,
      size: end - start,
      hostAddress: host + BigInt(start - r.base),
      flags: KVM_MEM_READONLY,
    }];
  }

  /** True once {@linkcode createIrqchip} made the in-kernel PIC, IOAPIC and local APICs. */
  irqchipInKernel = false;
  /** True once {@linkcode enableSplitIrqchip} made KVM's local APICs (only those). */
  splitIrqchip = false;
  /** With {@linkcode splitIrqchip}: vmkit's PIC, whose ExtINT the boot vCPU injects. */
  splitPic: InterruptSource | null = null;
  #msiBuf = new Uint8Array(32);

  /** True when the local APICs are KVM's (`on` and `split`): HLT and INIT/SIPI stay in KVM. */
  get lapicInKernel(): boolean {
    return this.irqchipInKernel || this.splitIrqchip;
  }

  /**
   * QEMU's `kernel-irqchip=split`: KVM's local APICs, vmkit's PIC, IOAPIC and PIT. Must
   * come before the first vCPU. The IOAPIC's messages go to KVM as MSIs
   * ({@linkcode signalMsi}); the PIC's interrupt is injected into the boot vCPU.
   */
  enableSplitIrqchip(): void {
    if (ioctl(this.vmFd, KVM_CHECK_EXTENSION, KVM_CAP_SPLIT_IRQCHIP) <= 0) {
      throw new KvmInitError("Operation not supported", "kvm: no split irqchip");
    }
    // struct kvm_enable_cap: cap u32, flags u32, args u64[4], pad; args[0]: IOAPIC pins.
    const cap = new Uint8Array(104);
    const v = new DataView(cap.buffer);
    v.setUint32(0, KVM_CAP_SPLIT_IRQCHIP, true);
    v.setBigUint64(8, BigInt(KVM_IRQCHIP_PINS), true);
    ioctlBuffer(this.vmFd, KVM_ENABLE_CAP, cap);
    this.splitIrqchip = true;
  }

  /** KVM_SIGNAL_MSI: an MSI write of `data` to `address` (0xfeeXXXXX) reaches KVM's APICs. */
  signalMsi(address: number, data: number): void {
    const v = new DataView(this.#msiBuf.buffer);
    v.setUint32(0, address >>> 0, true);
    v.setUint32(4, 0, true);
    v.setUint32(8, data >>> 0, true);
    ioctlBuffer(this.vmFd, KVM_SIGNAL_MSI, this.#msiBuf);
  }
  /** Per GSI, a bit per source that drives it high (the PIC side, the IOAPIC side). */
  #gsiLevels = new Uint8Array(KVM_IRQCHIP_PINS);
  #irqLineBuf = new Uint8Array(8);

  /**
   * Makes KVM's own interrupt controllers (QEMU's `kernel-irqchip=on`): two 8259 PICs,
   * an IOAPIC and a local APIC per vCPU created afterwards; with `pit`, the 8254 too
   * (port 61h included). Must come before the first vCPU. Port and MMIO accesses to them
   * then never exit, HLT waits inside KVM_RUN, and devices raise lines with
   * {@linkcode irqLine}.
   */
  createIrqchip(options: { pit?: boolean } = {}): void {
    if (ioctl(this.vmFd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0) {
      throw new KvmInitError("Operation not supported", "kvm: no in-kernel irqchip");
    }
    ioctl(this.vmFd, KVM_CREATE_IRQCHIP);
    this.irqchipInKernel = true;
    if (options.pit) {
      if (ioctl(this.vmFd, KVM_CHECK_EXTENSION, KVM_CAP_PIT2) <= 0) {
        throw new KvmInitError("Operation not supported", "kvm: no in-kernel PIT");
      }
      // struct kvm_pit_config: flags u32, then padding.
      const config = new Uint8Array(64);
      new DataView(config.buffer).setUint32(0, KVM_PIT_SPEAKER_DUMMY, true);
      ioctlBuffer(this.vmFd, KVM_CREATE_PIT2, config);
    }
  }

  /** Sets in-kernel interrupt line `gsi` (ISA IRQs 0..15 reach both PIC and IOAPIC) to `level`. */
  irqLine(gsi: number, level: boolean): void {
    const v = new DataView(this.#irqLineBuf.buffer);
    v.setUint32(0, gsi, true);
    v.setUint32(4, level ? 1 : 0, true);
    ioctlBuffer(this.vmFd, KVM_IRQ_LINE, this.#irqLineBuf);
  }

  /**
   * Moves the inputs of the board's PIC and IOAPIC (core's `IrqController`s) to KVM's:
   * the devices keep raising their lines as with any accelerator, and the levels go to
   * KVM_IRQ_LINE. An ISA line reaches both controllers on a PC, and KVM's default
   * routing sends GSI 0..15 to both as well, so a GSI is high while either side drives
   * it (a PCI INTx routed by the PIIX3 to an ISA IRQ shares it with ISA devices).
   */
  takeIrqInputs(pic: IrqController | undefined, ioapic: IrqController | undefined): void {
    const set = (bit: number) => (pin: number, level: boolean) => {
      if (pin < 0 || pin >= KVM_IRQCHIP_PINS) return;
      const before = this.#gsiLevels[pin] !== 0;
      this.#gsiLevels[pin] = level ? this.#gsiLevels[pin] | bit : this.#gsiLevels[pin] & ~bit;
      const after = this.#gsiLevels[pin] !== 0;
      if (after !== before) this.irqLine(pin, after);
    };
    if (pic) pic.setIrq = set(1);
    if (ioapic) ioapic.setIrq = set(2);
  }

  /** The dirty log of this VM's RAM slots (core's {@linkcode DirtyLog}). */
  readonly dirtyLog: DirtyLog = {
    start: (address, bytes) => {
      this.#logged.push({ address, bytes });
      for (let p = address / DIRTY_PAGE_BYTES; p < (address + bytes) / DIRTY_PAGE_BYTES; p++) {
        this.#carried.add(p);
      }
      this.sync(true);
    },
    collect: (address, bytes) => this.#collect(address, bytes),
    stop: (address, bytes) => {
      this.#logged = this.#logged.filter((l) => l.address !== address || l.bytes !== bytes);
      this.sync(true);
    },
  };

  /** KVM_GET_DIRTY_LOG of one slot: its bitmap (a bit per page, 64-bit words). */
  #slotDirty(slot: Slot): Uint8Array {
    const pages = slot.size / DIRTY_PAGE_BYTES;
    const bitmap = new Uint8Array(Math.ceil(pages / 64) * 8);
    const request = new Uint8Array(16);
    const v = new DataView(request.buffer);
    v.setUint32(0, slot.id, true);
    const pointer = Deno.UnsafePointer.of(bitmap as Uint8Array<ArrayBuffer>);
    v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(pointer)), true);
    ioctlBuffer(this.vmFd, KVM_GET_DIRTY_LOG, request);
    return bitmap;
  }

  #carryDirty(slot: Slot): void {
    const bitmap = this.#slotDirty(slot);
    const first = slot.guestAddress / DIRTY_PAGE_BYTES;
    for (let i = 0; i < slot.size / DIRTY_PAGE_BYTES; i++) {
      if (bitmap[i >> 3] & (1 << (i & 7))) this.#carried.add(first + i);
    }
  }

  #collect(address: number, bytes: number): Uint8Array {
    this.sync();
    const firstPage = Math.floor(address / DIRTY_PAGE_BYTES);
    const pages = Math.ceil(bytes / DIRTY_PAGE_BYTES);
    const out = new Uint8Array(Math.ceil(pages / 8));
    const mark = (page: number) => {
      const i = page - firstPage;
      if (i >= 0 && i < pages) out[i >> 3] |= 1 << (i & 7);
    };
    for (const slot of this.#slots.values()) {
      if (!(slot.flags & KVM_MEM_LOG_DIRTY_PAGES)) continue;
      if (slot.guestAddress >= address + bytes || slot.guestAddress + slot.size <= address) {
        continue;
      }
      const bitmap = this.#slotDirty(slot);
      const first = slot.guestAddress / DIRTY_PAGE_BYTES;
      for (let i = 0; i < slot.size / DIRTY_PAGE_BYTES; i++) {
        if (bitmap[i >> 3] & (1 << (i & 7))) mark(first + i);
      }
    }
    for (const page of this.#carried) {
      if (page >= firstPage && page < firstPage + pages) {
        mark(page);
        this.#carried.delete(page);
      }
    }
    return out;
  }

  /** KVM_GET_SUPPORTED_CPUID: the entries (40 bytes each) the host lets a guest see. */
  supportedCpuid(): Uint8Array {
    if (this.#supportedCpuid) return this.#supportedCpuid;
    for (let n = 64;; n *= 2) {
      const buf = new Uint8Array(8 + n * CPUID_ENTRY_BYTES);
      new DataView(buf.buffer).setUint32(0, n, true);
      const r = lib().ioctl_ptr(this.kvmFd, KVM_GET_SUPPORTED_CPUID, buf);
      if (r < 0) {
        const code = errno();
        if (code === E2BIG && n < 4096) continue;
        throw new SysError("KVM_GET_SUPPORTED_CPUID", code);
      }
      const count = new DataView(buf.buffer).getUint32(0, true);
      this.#supportedCpuid = buf.slice(8, 8 + count * CPUID_ENTRY_BYTES);
      return this.#supportedCpuid;
    }
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores. */
  msrIndexList(): Set<number> {
    if (this.#msrIndexList) return this.#msrIndexList;
    for (let n = 256;; n *= 2) {
      const buf = new Uint8Array(4 + 4 * n);
      new DataView(buf.buffer).setUint32(0, n, true);
      const r = lib().ioctl_ptr(this.kvmFd, KVM_GET_MSR_INDEX_LIST, buf);
      if (r < 0) {
        const code = errno();
        if (code === E2BIG && n < 65536) continue;
        throw new SysError("KVM_GET_MSR_INDEX_LIST", code);
      }
      const v = new DataView(buf.buffer);
      const count = v.getUint32(0, true);
      const out = new Set<number>();
      for (let i = 0; i < count; i++) out.add(v.getUint32(4 + 4 * i, true));
      this.#msrIndexList = out;
      return out;
    }
  }
}

const vms = new WeakMap<AddressSpace, KvmVm>();

/** The APIC bus message the board's IOAPIC delivers (the `lapic` service's contract). */
interface ApicMessageLike {
  vector: number;
  deliveryMode: number;
  destination: number;
  logical: boolean;
  level: boolean;
}

/** What the IOAPIC calls on the `lapic` service. */
interface ApicDelivery {
  deliver(message: ApicMessageLike): void;
}

/** The `lapic` service by its name (its typed key lives with the APIC device). */
const LAPIC_SERVICE = serviceKey<ApicDelivery>("lapic");

/** An APIC message's MSI address (Intel SDM vol. 3 §11.11.1): destination and mode. */
function msiAddress(m: ApicMessageLike): number {
  return 0xfee00000 | ((m.destination & 0xff) << 12) | (m.logical ? 1 << 2 : 0);
}

/** An APIC message's MSI data (§11.11.2): vector, delivery mode, level-triggered and asserted. */
function msiData(m: ApicMessageLike): number {
  return (m.vector & 0xff) | ((m.deliveryMode & 7) << 8) | (1 << 14) | (m.level ? 1 << 15 : 0);
}

/** QEMU's `kernel-irqchip`: where the interrupt controllers live. */
export type KernelIrqchip = "on" | "off" | "split";

/**
 * The VM of a machine (by its address space), made when its first vCPU is; with
 * `irqchip` `on`, KVM's PICs, IOAPIC and PIT are made with it (before any vCPU, as KVM
 * requires) and take the board's interrupt lines (`findService` finds its PIC and IOAPIC).
 */
export function vmFor(
  memory: AddressSpace,
  options: { irqchip?: KernelIrqchip; findService?: CpuContext["findService"] } = {},
): KvmVm {
  let vm = vms.get(memory);
  if (!vm) {
    vm = new KvmVm(memory);
    vms.set(memory, vm);
    setDirtyLog(memory, vm.dirtyLog);
    if (options.irqchip === "on") {
      vm.createIrqchip({ pit: true });
      vm.takeIrqInputs(options.findService?.(PIC), options.findService?.(IOAPIC));
    } else if (options.irqchip === "split") {
      vm.enableSplitIrqchip();
      vm.splitPic = options.findService?.(PIC) ?? null;
      // The IOAPIC hands its messages to the local APICs' service (`lapic`, an
      // `{ deliver(message) }` of the APIC bus): they become MSIs to KVM's APICs.
      const lapic = options.findService<ApicDelivery>?.(LAPIC_SERVICE);
      if (lapic) lapic.deliver = (m) => vm!.signalMsi(msiAddress(m), msiData(m));
    }
  }
  return vm;
}
