// The built-in demo guest: a Multiboot kernel written with our x86 emitter that talks over COM1

import {
  AL,
  Assembler,
  byte,
  CL,
  dword,
  DX,
  EAX,
  EBP,
  EBX,
  ECX,
  EDI,
  EDX,
  ESI,
  ESP,
  mem,
} from "../plugins/machines/x86_asm.ts";
import type { Chardev } from "../core/chardev.ts";
import type { CpuBackend } from "../core/cpu.ts";
import type { MachineExit } from "../core/machine.ts";
import { type CpuDescriptor, Registry } from "../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { createPcMachine } from "../plugins/machines/pc.ts";
import {
  MULTIBOOT_AOUT_KLUDGE,
  MULTIBOOT_HEADER_MAGIC,
  type MultibootKernelConfig,
} from "../plugins/machines/multiboot.ts";

/** Where the guests are linked and loaded: 1 MiB, the usual Multiboot kernel address. */
export const GUEST_LOAD_ADDRESS = 0x100000;
/** The isa-debug-exit port the guests write their status to (`iobase=0xf4`). */
export const DEBUG_EXIT_PORT = 0xf4;
/** The value the demo guest writes to isa-debug-exit; QEMU then exits with (v << 1) | 1 = 33. */
export const DEMO_EXIT_VALUE = 0x10;
/** The process exit code that value gives. */
export const DEMO_EXIT_CODE = (DEMO_EXIT_VALUE << 1) | 1;
/** The first line the demo guest prints. */
export const DEMO_BANNER = "Hello from the vmkit demo guest";

const COM1 = 0x3f8;
/** 8250 registers relative to the base port, and the LSR "transmit holding register empty" bit. */
const UART_IER = 1, UART_FCR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5;
const UART_LSR_THRE = 0x20;
/** A stack in free low memory (below the EBDA SeaBIOS would reserve at 0x9fc00). */
const STACK_TOP = 0x9f000;
/** Guest variable: the MBI address saved from EBX at entry. */
const MBI_SLOT = 0x9f000;

/**
 * Builds a flat Multiboot kernel at {@linkcode GUEST_LOAD_ADDRESS} using the a.out
 * kludge (so no ELF headers are needed): the header, an entry that sets up a stack and
 * saves the MBI pointer in `mbi_ptr`, then `body`, then the library routines `putc`
 * (AL), `puts` (ESI, NUL-terminated), `putdec` (EAX, unsigned), `parse_count` (ESI:
 * the last decimal word of a string, into EAX) and `exit` (AL to isa-debug-exit, then
 * halt). The routines preserve every register except their results.
 */
export function multibootGuest(body: (a: Assembler) => void): Uint8Array {
  const a = new Assembler({ bits: 32, origin: GUEST_LOAD_ADDRESS });
  // Multiboot 0.6.96 §3.1: magic, flags, checksum, then the a.out kludge addresses.
  const flags = MULTIBOOT_AOUT_KLUDGE;
  a.label("multiboot_header");
  a.dd(MULTIBOOT_HEADER_MAGIC, flags, (-(MULTIBOOT_HEADER_MAGIC + flags)) >>> 0);
  a.dd("multiboot_header", GUEST_LOAD_ADDRESS, 0, 0, "start"); // load to end of file, no bss

  a.label("start");
  a.mov(ESP, STACK_TOP).mov(dword(null, MBI_SLOT), EBX);
  a.call("serial_init");
  body(a);
  a.xor(EAX, EAX).jmp("exit");

  // serial_init: 115200 baud 8N1, FIFOs on; not needed by QEMU's UART, but polite.
  a.label("serial_init").push(EAX).push(EDX);
  for (
    const [reg, value] of [[UART_IER, 0], [UART_LCR, 0x80], [0, 1], [1, 0], [UART_LCR, 3], [
      UART_FCR,
      0xc7,
    ], [UART_MCR, 3]]
  ) {
    a.mov(DX, COM1 + reg).mov(AL, value).out(DX, AL);
  }
  a.pop(EDX).pop(EAX).ret();

  // putc: wait until the transmitter can take a byte, then send AL.
  a.label("putc").push(EDX).push(EAX).mov(DX, COM1 + UART_LSR);
  a.label("putc_wait").in(AL, DX).test(AL, UART_LSR_THRE).jcc("z", "putc_wait");
  a.pop(EAX).mov(DX, COM1).out(DX, AL).pop(EDX).ret();

  a.label("puts").pushad();
  a.label("puts_next").lodsb().test(AL, AL).jcc("z", "puts_done", { short: true });
  a.call("putc").jmp("puts_next");
  a.label("puts_done").popad().ret();

  // putdec: push the digits least significant first, then pop and print them.
  a.label("putdec").pushad().mov(EBX, 10).xor(ECX, ECX);
  a.label("putdec_div").xor(EDX, EDX).div(EBX).push(EDX).inc(ECX).test(EAX, EAX);
  a.jcc("nz", "putdec_div");
  a.label("putdec_out").pop(EAX).add(AL, 0x30).call("putc").loop("putdec_out");
  a.popad().ret();

  // parse_count: any non-digit restarts the number, so the last word of digits wins.
  a.label("parse_count").push(ESI).push(EDX).xor(EAX, EAX);
  a.label("parse_next").movzx(EDX, byte(ESI, 0)).inc(ESI).test(EDX, EDX);
  a.jcc("z", "parse_done", { short: true });
  a.sub(EDX, 0x30).cmp(EDX, 9).jcc("a", "parse_reset", { short: true });
  a.lea(EAX, mem(EAX, 0, { index: EAX, scale: 4 })).add(EAX, EAX).add(EAX, EDX);
  a.jmp("parse_next");
  a.label("parse_reset").xor(EAX, EAX).jmp("parse_next");
  a.label("parse_done").pop(EDX).pop(ESI).ret();

  // exit: isa-debug-exit ends the run; without the device, halt with interrupts off.
  a.label("exit").out(DEBUG_EXIT_PORT, AL);
  a.label("halt").cli().hlt().jmp("halt");
  return a.assemble();
}

/** Emits `mov esi, <string>; call puts` with the string placed in a data area at `label`. */
function print(a: Assembler, strings: Map<string, string>, text: string): void {
  const label = `str${strings.size}`;
  strings.set(label, text);
  a.mov(ESI, label).call("puts");
}

/**
 * Builds the demo guest. It prints a banner, what the Multiboot loader told it (the
 * command line, the boot loader name, the memory size), the first ten primes and the
 * sum of all primes below 10000 (5736396, about two million instructions of trial
 * division), then writes {@linkcode DEMO_EXIT_VALUE} to isa-debug-exit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildDemoGuest } from "./demo_guest.ts";
 *
 * const kernel = buildDemoGuest();
 * assert.equal(new DataView(kernel.buffer).getUint32(0, true), 0x1badb002);
 * ```
 */
export function buildDemoGuest(): Uint8Array {
  const strings = new Map<string, string>();
  return multibootGuest((a) => {
    print(a, strings, `${DEMO_BANNER}\r\n`);
    // EAX still holds the boot loader magic (serial_init preserves it).
    a.cmp(EAX, 0x2badb002).jcc("ne", "no_magic");
    a.mov(EBX, dword(null, MBI_SLOT));
    print(a, strings, "Multiboot loader: ");
    a.mov(ESI, dword(EBX, 64)).call("puts"); // boot_loader_name
    print(a, strings, "\r\nCommand line: ");
    a.mov(ESI, dword(EBX, 16)).call("puts"); // cmdline
    print(a, strings, "\r\nMemory: ");
    a.mov(EAX, dword(EBX, 8)).add(EAX, 1024).shr(EAX, 10).call("putdec"); // (mem_upper + 1 MiB) in MiB
    print(a, strings, " MiB\r\n");
    a.jmp("primes");
    a.label("no_magic");
    print(a, strings, "Not started by a Multiboot loader\r\n");

    // Trial division: ECX = candidate, EBX = divisor, EDI = sum, EBP = count.
    a.label("primes");
    print(a, strings, "First primes: ");
    a.xor(EDI, EDI).xor(EBP, EBP).mov(ECX, 2);
    a.label("next_n").cmp(ECX, 4).jcc("b", "is_prime");
    a.test(CL, 1).jcc("z", "not_prime");
    a.mov(EBX, 3);
    a.label("try_divisor").mov(EAX, EBX).mul(EBX).cmp(EAX, ECX).jcc("a", "is_prime");
    a.mov(EAX, ECX).xor(EDX, EDX).div(EBX).test(EDX, EDX).jcc("z", "not_prime");
    a.add(EBX, 2).jmp("try_divisor");
    a.label("is_prime").add(EDI, ECX).inc(EBP).cmp(EBP, 10).jcc("a", "not_prime");
    a.mov(EAX, ECX).call("putdec").mov(AL, 0x20).call("putc");
    a.label("not_prime").inc(ECX).cmp(ECX, 10000).jcc("b", "next_n");
    print(a, strings, "\r\nSum of the primes below 10000: ");
    a.mov(EAX, EDI).call("putdec");
    print(a, strings, "\r\nBye!\r\n");
    a.mov(AL, DEMO_EXIT_VALUE).jmp("exit");

    for (const [label, text] of strings) a.label(label).ascii(text, { nul: true });
  });
}

/** The x86 interpreter plugin's module (being written alongside; absent in early trees). */
export const X86_CPU_MODULE = new URL("../plugins/cpus/x86/mod.ts", import.meta.url);

/** True when the x86 interpreter plugin exists in this tree. */
export function haveX86Cpu(): boolean {
  try {
    return Deno.statSync(X86_CPU_MODULE).isFile;
  } catch {
    return false;
  }
}

/** What {@linkcode runPcKernel} reports. */
export interface GuestRun {
  exit: MachineExit;
  /** Instructions the CPU retired from reset to the exit (boot ROM included). */
  instructions: number;
  /** Wall time of `machine.run()` alone (machine construction excluded). */
  seconds: number;
}

/**
 * Boots `kernel` on the `-M pc` board with the x86 interpreter as
 * `vmkit system-x86_64 -kernel FILE -append CMDLINE -nographic -device
 * isa-debug-exit,iobase=0xf4,iosize=0x04` does, with COM1 on `serial`.
 */
export async function runPcKernel(
  kernel: Uint8Array,
  options: {
    serial: Chardev;
    cmdline?: string;
    kernelName?: string;
    ramBytes?: number;
    maxInstructions?: number;
  },
): Promise<GuestRun> {
  const cpuPlugin = (await import(X86_CPU_MODULE.href)).default as CpuDescriptor;
  const kernelConfig: MultibootKernelConfig = {
    kernel,
    cmdline: options.cmdline ?? "",
    kernelName: options.kernelName,
  };
  const machine = createPcMachine({
    ramBytes: options.ramBytes ?? 128 << 20,
    smp: 1,
    drives: [],
    serial: [options.serial],
    nographic: true,
    kernel: kernelConfig,
    registry: new Registry().addAll(BUILTIN_PLUGINS),
    allocateRam: cpuPlugin.allocateRam,
    createCpu: (m, index) =>
      cpuPlugin.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  });
  machine.createDevice("isa-debug-exit", { iobase: DEBUG_EXIT_PORT, iosize: 4 });
  await machine.realize();
  const t0 = performance.now();
  const exit = await machine.run({ maxInstructions: options.maxInstructions });
  const seconds = (performance.now() - t0) / 1000;
  return { exit, instructions: machine.cpus[0].instructionsRetired, seconds };
}
