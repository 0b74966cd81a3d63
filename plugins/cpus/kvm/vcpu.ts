// One KVM vCPU as a CpuBackend: KVM_RUN on this thread, I/O and MMIO exits to the machine's devices

import {
  type CpuBackend,
  type CpuContext,
  type InterruptSource,
  RunExit,
  x86RegisterValues,
  X86State,
} from "../../../core/cpu.ts";
import type { EventLoop } from "../../../core/event_loop.ts";
import { VmkitError } from "../../../core/errors.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86_CS, X86_MSR_INDEX } from "../../../core/x86_state.ts";
import {
  KVM_CREATE_VCPU,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_IRQ_WINDOW_OPEN,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_FPU_BYTES,
  KVM_GET_FPU,
  KVM_GET_MSRS,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_INTERRUPT,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
  KVM_NMI,
  KVM_REGS_BYTES,
  KVM_RUN,
  KVM_SET_CPUID2,
  KVM_SET_FPU,
  KVM_SET_MP_STATE,
  KVM_SET_MSRS,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SREGS_BYTES,
  MSR_ENTRY_BYTES,
  RUN_EXIT_REASON,
  RUN_FAIL_ENTRY_REASON,
  RUN_IF_FLAG,
  RUN_IMMEDIATE_EXIT,
  RUN_INTERNAL_SUBERROR,
  RUN_IO_COUNT,
  RUN_IO_DATA_OFFSET,
  RUN_IO_DIRECTION,
  RUN_IO_PORT,
  RUN_IO_SIZE,
  RUN_MMIO_DATA,
  RUN_MMIO_IS_WRITE,
  RUN_MMIO_LEN,
  RUN_MMIO_PHYS_ADDR,
  RUN_READY_FOR_INTERRUPT_INJECTION,
  RUN_REQUEST_INTERRUPT_WINDOW,
  SREGS_APIC_BASE,
} from "./_abi.ts";
import { errno, ioctl, ioctlBuffer, KickTimer, lib, mapShared, SysError, tgkill } from "./_libc.ts";
import { buildCpuid, type KvmCpuModel } from "./cpuid.ts";
import {
  fpuToState,
  regsToState,
  resetState,
  sregsToState,
  stateToFpu,
  stateToRegs,
  stateToSregs,
} from "./state_map.ts";
import type { KvmVm } from "./vm.ts";

const EINTR = 4, EAGAIN = 11;
const STATS = Deno.env.get("VMKIT_KVM_STATS") === "1";
/** The backstop period of the kick timer: a missed kick costs at most this much. */
const KICK_INTERVAL_NS = 10_000_000;

/** Counts of exits by kind (the bench and `VMKIT_DEBUG` read them). */
export interface KvmExitStats {
  io: number;
  mmio: number;
  hlt: number;
  irqWindow: number;
  intr: number;
  injected: number;
}

/**
 * A vCPU run through KVM with vmkit's own interrupt controllers (QEMU's
 * `kernel-irqchip=off`): port and MMIO exits go to the machine's port space and address
 * space, the PIC/APIC's pending vector is injected with KVM_INTERRUPT when the guest can
 * take it (else KVM is asked to exit when its interrupt window opens), and HLT returns
 * to the event loop. The clock is the host's: a slice of `n` ticks is a host deadline
 * `n * nsPerInstruction` away, enforced by a thread-directed timer signal that makes
 * KVM_RUN return.
 */
export class KvmCpu implements CpuBackend {
  readonly arch = "x86";
  readonly model: string;
  readonly index: number;
  readonly apicId: number;
  readonly stats: KvmExitStats = { io: 0, mmio: 0, hlt: 0, irqWindow: 0, intr: 0, injected: 0 };
  #vm: KvmVm;
  #fd: number;
  #run: Uint8Array;
  #runView: DataView;
  #memory: AddressSpace;
  #io: PortIoSpace;
  #loop: EventLoop | undefined;
  #source: InterruptSource | null = null;
  #signature: number;
  #kick: KickTimer | null = null;
  #retired = 0;
  #halted = false;
  #waitSipi = false;
  #exitRequested = false;
  #resetRequested = false;
  #state = new X86State();
  #regs = new Uint8Array(KVM_REGS_BYTES);
  #sregs = new Uint8Array(KVM_SREGS_BYTES);
  #fpu = new Uint8Array(KVM_FPU_BYTES);
  #injectBuf = new Uint8Array(4);

  constructor(vm: KvmVm, ctx: CpuContext, model: KvmCpuModel) {
    this.#vm = vm;
    this.model = model.name;
    this.index = ctx.index ?? 0;
    this.apicId = ctx.apicId ?? this.index;
    this.#memory = ctx.memory;
    this.#io = ctx.io;
    this.#loop = ctx.loop;
    this.#fd = ioctl(vm.vmFd, KVM_CREATE_VCPU, this.apicId);
    const run = mapShared(this.#fd, vm.runBytes);
    this.#run = run.bytes;
    this.#runView = new DataView(run.bytes.buffer, run.bytes.byteOffset, run.bytes.byteLength);
    const topology = ctx.topology ?? { sockets: 1, dies: 1, cores: 1, threads: 1 };
    const cpuid = buildCpuid(vm.supportedCpuid(), model, { apicId: this.apicId, topology });
    ioctlBuffer(this.#fd, KVM_SET_CPUID2, cpuid.buffer);
    this.#signature = cpuid.signature;
  }

  get instructionsRetired(): number {
    return this.#retired;
  }

  get halted(): boolean {
    // With KVM's irqchip, HLT and wait-for-SIPI happen inside KVM_RUN, unseen here.
    return !this.#vm.lapicInKernel && (this.#halted || this.#waitSipi);
  }

  reset(): void {
    this.#powerOn(this.index !== 0);
  }

  #powerOn(waitSipi: boolean): void {
    const s = this.#state;
    resetState(s, this.#signature);
    if (this.index === 0) s.setMsr(0x1b, 0xfee00900n);
    this.setState(s);
    this.#halted = false;
    this.#waitSipi = waitSipi;
    this.#run[RUN_REQUEST_INTERRUPT_WINDOW] = 0;
    if (this.#vm.lapicInKernel) {
      // KVM's local APIC runs INIT/SIPI: an application processor waits for its SIPI.
      this.#waitSipi = false;
      const mp = new Uint8Array(4);
      new DataView(mp.buffer).setUint32(
        0,
        waitSipi ? KVM_MP_STATE_UNINITIALIZED : KVM_MP_STATE_RUNNABLE,
        true,
      );
      ioctlBuffer(this.#fd, KVM_SET_MP_STATE, mp);
    }
  }

  init(): void {
    this.#powerOn(this.index !== 0);
  }

  startup(vector: number): void {
    if (!this.#waitSipi) return;
    const s = this.#state;
    this.getState(s);
    s.setSegment(X86_CS, {
      selector: (vector & 0xff) << 8,
      attributes: 0x9b,
      limit: 0xffff,
      base: (vector & 0xff) << 12,
    });
    s.rip = 0;
    this.setState(s);
    this.#waitSipi = false;
    this.#halted = false;
  }

  setInterruptSource(source: InterruptSource | null): void {
    // kernel-irqchip=split: the local APICs are KVM's, so the boot vCPU takes the PIC's
    // ExtINT straight from vmkit's PIC (KVM_INTERRUPT) and the others take none from here.
    if (this.#vm.splitIrqchip) source = this.index === 0 ? this.#vm.splitPic : null;
    this.#source = source;
  }

  raiseNmi(): void {
    ioctl(this.#fd, KVM_NMI);
    this.#halted = false;
  }

  requestExit(): void {
    this.#exitRequested = true;
  }

  requestReset(): void {
    this.#resetRequested = true;
    this.#exitRequested = true;
  }

  registers(): Record<string, number> {
    this.getState(this.#state);
    return x86RegisterValues(this.#state);
  }

  /** True when an interrupt is requested and the guest's IF (from the last exit) allows it. */
  #interruptible(): boolean {
    if (this.#vm.lapicInKernel) return true; // KVM's HLT exits only when it is woken
    return this.#source !== null && this.#source.hasPending() && this.#run[RUN_IF_FLAG] !== 0;
  }

  run(maxInstructions: number): RunExit {
    this.#exitRequested = false;
    if (this.#resetRequested) {
      this.#resetRequested = false;
      return RunExit.Reset;
    }
    if (this.#waitSipi) return RunExit.Halt;
    if (this.#halted) {
      if (!this.#interruptible()) {
        return this.#run[RUN_IF_FLAG] ? RunExit.Halt : RunExit.HaltNoInterrupts;
      }
      this.#halted = false;
    }
    const loop = this.#loop;
    const nsPerTick = loop?.nsPerInstruction ?? 1;
    const startNs = loop ? loop.nowNs : performance.now() * 1e6;
    const endNs = startNs + maxInstructions * nsPerTick;
    if (loop) {
      this.#kick ??= new KickTimer();
      this.#kick.arm(endNs - startNs, KICK_INTERVAL_NS);
    }
    let exit: RunExit = RunExit.Budget;
    if (STATS) this.#printStats();
    try {
      exit = this.#runUntil(endNs);
    } finally {
      const nowNs = loop ? loop.nowNs : performance.now() * 1e6;
      this.#retired += Math.max(0, Math.floor((nowNs - startNs) / nsPerTick));
      // A slice that used its budget is followed by the next at once; anything else
      // (halt, a stop, a reset) may leave the thread in the host event loop for long.
      if (exit !== RunExit.Budget) this.#kick?.disarm();
    }
    return exit;
  }

  #statsAtMs = 0;
  /** VMKIT_KVM_STATS=1: the exit counts once per host second, on stderr. */
  #printStats(): void {
    const now = performance.now();
    if (now - this.#statsAtMs < 1000) return;
    this.#statsAtMs = now;
    const regs = this.registers();
    console.error(
      `kvm cpu${this.index}: ${JSON.stringify(this.stats)} slots=${this.#vm.slotUpdates} cs:eip=${
        regs.cs.toString(16)
      }:${regs.eip.toString(16)} eflags=${regs.eflags.toString(16)} eax=${
        regs.eax.toString(16)
      } ecx=${regs.ecx.toString(16)}`,
    );
  }

  #runUntil(endNs: number): RunExit {
    const fd = this.#fd;
    const ffi = lib();
    const loop = this.#loop;
    for (;;) {
      this.enter();
      const r = ffi.ioctl(fd, KVM_RUN, 0);
      const exit = this.exited(r < 0 ? errno() : 0);
      if (exit !== null) return exit;
      if (loop && loop.nowNs >= endNs) return RunExit.Budget;
    }
  }

  /** True when KVM's irqchip delivers this vCPU's interrupts. */
  get irqchipInKernel(): boolean {
    return this.#vm.irqchipInKernel;
  }

  /** The vCPU's file descriptor (a vCPU thread runs KVM_RUN on it). */
  get fd(): number {
    return this.#fd;
  }

  /** True when an exit was requested (a stop, a reset) since the last {@linkcode clearExitRequest}. */
  get exitRequested(): boolean {
    return this.#exitRequested;
  }

  /** Forgets a handled exit request (the thread executor's start of a slice). */
  clearExitRequest(): void {
    this.#exitRequested = false;
  }

  /**
   * Makes a KVM_RUN on another thread return soon: KVM leaves at once when
   * `immediate_exit` is set before it enters, and the signal ends a run in progress.
   */
  kickThread(tid: number): void {
    this.#run[RUN_IMMEDIATE_EXIT] = 1;
    tgkill(tid);
  }

  /** True when a halted vCPU has an interrupt to take (it may run again). */
  get wakeable(): boolean {
    return !this.#waitSipi && this.#interruptible();
  }

  /**
   * Readies the next KVM_RUN: the slots follow the address space, and an interrupt from
   * vmkit's PIC/APIC is injected when KVM can take one now. With IF=1 but an interrupt
   * shadow (STI, MOV SS), KVM is asked to exit when the window opens, one instruction
   * later. With IF=0 it is not: a paravirtual KVM without hardware interrupt-window
   * exiting (PVM) emulates every instruction until IF=1, hundreds of times slower; the
   * next exit or the slice's kick looks again instead.
   */
  enter(): void {
    const run = this.#run;
    run[RUN_IMMEDIATE_EXIT] = 0;
    this.#halted = false;
    this.#vm.sync(); // PAM or a BAR moved: the slots follow the address space
    const source = this.#vm.irqchipInKernel ? null : this.#source;
    if (source !== null && source.hasPending()) {
      if (run[RUN_READY_FOR_INTERRUPT_INJECTION] && run[RUN_IF_FLAG]) {
        const vector = source.acknowledge();
        new DataView(this.#injectBuf.buffer).setUint32(0, vector, true);
        ioctlBuffer(this.#fd, KVM_INTERRUPT, this.#injectBuf);
        this.stats.injected++;
        run[RUN_REQUEST_INTERRUPT_WINDOW] = 0;
      } else {
        run[RUN_REQUEST_INTERRUPT_WINDOW] = run[RUN_IF_FLAG];
      }
    } else {
      run[RUN_REQUEST_INTERRUPT_WINDOW] = 0;
    }
  }

  /**
   * Handles what ended a KVM_RUN (`error` is its errno, 0 when it returned an exit):
   * port and MMIO exits go to the devices. Returns null when the vCPU should simply run
   * again, else why it stops (HLT with nothing to take, a shutdown, a reset, a request).
   */
  exited(error: number): RunExit | null {
    const view = this.#runView;
    if (error !== 0) {
      if (error !== EINTR && error !== EAGAIN) throw new SysError("KVM_RUN", error);
      this.stats.intr++;
    } else {
      switch (view.getUint32(RUN_EXIT_REASON, true)) {
        case KVM_EXIT_IO:
          this.stats.io++;
          this.#portIo(view);
          break;
        case KVM_EXIT_MMIO:
          this.stats.mmio++;
          this.#mmio(view);
          break;
        case KVM_EXIT_HLT:
          this.stats.hlt++;
          if (!this.#interruptible()) {
            this.#halted = true;
            return this.#run[RUN_IF_FLAG] ? RunExit.Halt : RunExit.HaltNoInterrupts;
          }
          break;
        case KVM_EXIT_IRQ_WINDOW_OPEN:
          this.stats.irqWindow++;
          break;
        case KVM_EXIT_INTR:
          this.stats.intr++;
          break;
        case KVM_EXIT_SHUTDOWN:
          return RunExit.Shutdown;
        case KVM_EXIT_SYSTEM_EVENT:
          return view.getUint32(32, true) === 2 ? RunExit.Reset : RunExit.Shutdown;
        default:
          throw this.#failure(view);
      }
    }
    if (this.#resetRequested) {
      this.#resetRequested = false;
      return RunExit.Reset;
    }
    if (this.#exitRequested) return RunExit.Exit;
    return null;
  }

  #portIo(view: DataView): void {
    const size = view.getUint8(RUN_IO_SIZE) as 1 | 2 | 4;
    const port = view.getUint16(RUN_IO_PORT, true);
    const count = view.getUint32(RUN_IO_COUNT, true);
    let at = Number(view.getBigUint64(RUN_IO_DATA_OFFSET, true));
    const io = this.#io;
    if (view.getUint8(RUN_IO_DIRECTION) === KVM_EXIT_IO_OUT) {
      for (let i = 0; i < count; i++, at += size) {
        const v = size === 1
          ? view.getUint8(at)
          : size === 2
          ? view.getUint16(at, true)
          : view.getUint32(at, true);
        io.out(port, size, v);
      }
    } else {
      for (let i = 0; i < count; i++, at += size) {
        const v = io.in(port, size);
        if (size === 1) view.setUint8(at, v);
        else if (size === 2) view.setUint16(at, v, true);
        else view.setUint32(at, v >>> 0, true);
      }
    }
  }

  #mmio(view: DataView): void {
    const address = Number(view.getBigUint64(RUN_MMIO_PHYS_ADDR, true));
    const len = view.getUint32(RUN_MMIO_LEN, true);
    const mem = this.#memory;
    if (address + len > 2 ** 32) {
      // Above the 32-bit address space nothing answers: reads float high.
      if (!view.getUint8(RUN_MMIO_IS_WRITE)) {
        for (let i = 0; i < len; i++) view.setUint8(RUN_MMIO_DATA + i, 0xff);
      }
      return;
    }
    if (view.getUint8(RUN_MMIO_IS_WRITE)) {
      if (len === 1) mem.write8(address, view.getUint8(RUN_MMIO_DATA));
      else if (len === 2) mem.write16(address, view.getUint16(RUN_MMIO_DATA, true));
      else if (len === 4) mem.write32(address, view.getUint32(RUN_MMIO_DATA, true));
      else {
        for (let i = 0; i < len; i += 4) {
          mem.write32(address + i, view.getUint32(RUN_MMIO_DATA + i, true));
        }
      }
    } else {
      if (len === 1) view.setUint8(RUN_MMIO_DATA, mem.read8(address));
      else if (len === 2) view.setUint16(RUN_MMIO_DATA, mem.read16(address), true);
      else if (len === 4) view.setUint32(RUN_MMIO_DATA, mem.read32(address), true);
      else {
        for (let i = 0; i < len; i += 4) {
          view.setUint32(RUN_MMIO_DATA + i, mem.read32(address + i), true);
        }
      }
    }
  }

  /** QEMU's words for an exit it cannot handle, with the guest's CS:IP. */
  #failure(view: DataView): Error {
    const reason = view.getUint32(RUN_EXIT_REASON, true);
    const regs = this.registers();
    const where = `CS=${regs.cs.toString(16)} EIP=${regs.eip.toString(16)}`;
    if (reason === KVM_EXIT_INTERNAL_ERROR) {
      return new VmkitError(
        `KVM internal error. Suberror: ${view.getUint32(RUN_INTERNAL_SUBERROR, true)} (${where})`,
      );
    }
    if (reason === KVM_EXIT_FAIL_ENTRY) {
      const why = view.getBigUint64(RUN_FAIL_ENTRY_REASON, true);
      return new VmkitError(`KVM: entry failed, hardware error 0x${why.toString(16)} (${where})`);
    }
    return new VmkitError(`KVM: unhandled exit ${reason} (${where})`);
  }

  getState(state: X86State): void {
    const regs = new DataView(this.#regs.buffer);
    const sregs = new DataView(this.#sregs.buffer);
    ioctlBuffer(this.#fd, KVM_GET_REGS, this.#regs);
    ioctlBuffer(this.#fd, KVM_GET_SREGS, this.#sregs);
    ioctlBuffer(this.#fd, KVM_GET_FPU, this.#fpu);
    regsToState(regs, state);
    sregsToState(sregs, state);
    fpuToState(this.#fpu, state);
    state.setMsr(0x1b, sregs.getBigUint64(SREGS_APIC_BASE, true));
    const msrs = this.#msrList(state);
    if (msrs.length > 0) {
      const buf = this.#msrBuffer(msrs.map((i) => [i, 0n]));
      const n = ioctlBuffer(this.#fd, KVM_GET_MSRS, buf);
      const v = new DataView(buf.buffer);
      for (let i = 0; i < n; i++) {
        const at = 8 + i * MSR_ENTRY_BYTES;
        state.setMsr(v.getUint32(at, true), v.getBigUint64(at + 8, true));
      }
    }
    let events = 0;
    if (this.#halted) events |= 0x1;
    if (this.#waitSipi) events |= 0x10;
    state.events = events;
  }

  setState(state: X86State): void {
    const regs = new DataView(this.#regs.buffer);
    const sregs = new DataView(this.#sregs.buffer);
    // Read first so fields X86State does not hold (the interrupt bitmap) stay KVM's.
    ioctlBuffer(this.#fd, KVM_GET_SREGS, this.#sregs);
    stateToRegs(state, regs);
    stateToSregs(state, sregs);
    sregs.setBigUint64(SREGS_APIC_BASE, state.msr(0x1b) ?? 0xfee00800n, true);
    for (let i = 280; i < 312; i++) this.#sregs[i] = 0; // no interrupt pending in KVM
    ioctlBuffer(this.#fd, KVM_SET_REGS, this.#regs);
    ioctlBuffer(this.#fd, KVM_SET_SREGS, this.#sregs);
    stateToFpu(state, this.#fpu);
    ioctlBuffer(this.#fd, KVM_SET_FPU, this.#fpu);
    const msrs = this.#msrList(state).filter((i) => i !== 0x1b);
    if (msrs.length > 0) {
      ioctlBuffer(
        this.#fd,
        KVM_SET_MSRS,
        this.#msrBuffer(msrs.map((i) => [i, state.msr(i) ?? 0n])),
      );
    }
    this.#halted = (state.events & 0x1) !== 0;
    this.#waitSipi = (state.events & 0x10) !== 0;
  }

  /** The state's MSRs KVM keeps (IA32_TSC left alone: KVM's TSC runs on host time). */
  #msrList(state: X86State): number[] {
    const known = this.#vm.msrIndexList();
    return [...X86_MSR_INDEX, ...state.tableMsrs()].filter((i) => i !== 0x10 && known.has(i));
  }

  #msrBuffer(entries: [number, bigint][]): Uint8Array {
    const buf = new Uint8Array(8 + entries.length * MSR_ENTRY_BYTES);
    const v = new DataView(buf.buffer);
    v.setUint32(0, entries.length, true);
    entries.forEach(([index, value], i) => {
      v.setUint32(8 + i * MSR_ENTRY_BYTES, index, true);
      v.setBigUint64(8 + i * MSR_ENTRY_BYTES + 8, BigInt.asUintN(64, value), true);
    });
    return buf;
  }
}
