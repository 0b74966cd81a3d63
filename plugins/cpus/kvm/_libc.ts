// The few libc calls KVM needs (open, ioctl, mmap, a thread-directed timer), through Deno FFI

/** `open(2)` flags and `mmap(2)` constants (x86-64 Linux). */
const O_RDWR = 2, O_CLOEXEC = 0o2000000;
const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
const CLOCK_MONOTONIC = 1, SIGEV_THREAD_ID = 4, SA_RESTART = 0x10000000;
/** The signal that kicks a vCPU out of KVM_RUN (QEMU uses SIGUSR1 as SIG_IPI; vmkit leaves it alone). */
export const KICK_SIGNAL = 12; // SIGUSR2

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u32", "u32"], result: "i32" },
  ioctl_ptr: { name: "ioctl", parameters: ["i32", "u32", "buffer"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  gettid: { parameters: [], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" },
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  sigaction: { parameters: ["i32", "buffer", "pointer"], result: "i32" },
  timer_create: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  timer_settime: { parameters: ["pointer", "i32", "buffer", "pointer"], result: "i32" },
  timer_delete: { parameters: ["pointer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | null = null;

/** libc's symbols, opened on first use (FFI needs --allow-ffi). */
export function lib(): Libc {
  if (libc === null) libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

/** The calling thread's errno. */
export function errno(): number {
  const p = lib().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32(0);
}

/** The C library's text for an errno value (`No such file or directory`). */
export function strerror(code: number): string {
  const p = lib().strerror(code);
  return p === null ? `errno ${code}` : new Deno.UnsafePointerView(p).getCString();
}

/** A failed system call: `code` is errno, the message is strerror's text. */
export class SysError extends Error {
  constructor(readonly call: string, readonly code: number) {
    super(strerror(code));
    this.name = "SysError";
  }
}

/** Opens a device node read-write (close-on-exec); throws {@linkcode SysError}. */
export function openDevice(path: string): number {
  const fd = lib().open(new TextEncoder().encode(path + "\0"), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw new SysError(`open ${path}`, errno());
  return fd;
}

/** Closes a file descriptor. */
export function closeFd(fd: number): void {
  lib().close(fd);
}

/** `ioctl(fd, request, arg)` with an integer argument; throws {@linkcode SysError} on -1. */
export function ioctl(fd: number, request: number, arg = 0): number {
  const r = lib().ioctl(fd, request, arg);
  if (r < 0) throw new SysError(`ioctl 0x${request.toString(16)}`, errno());
  return r;
}

/** `ioctl(fd, request, buffer)`; throws {@linkcode SysError} on -1. */
export function ioctlBuffer(fd: number, request: number, buffer: Uint8Array): number {
  const r = lib().ioctl_ptr(fd, request, buffer);
  if (r < 0) throw new SysError(`ioctl 0x${request.toString(16)}`, errno());
  return r;
}

/** Host memory from mmap: its address and the bytes as an ArrayBuffer over it. */
export interface HostMapping {
  readonly pointer: Deno.PointerObject;
  readonly address: bigint;
  readonly bytes: Uint8Array;
}

function mapped(p: Deno.PointerValue, size: number, call: string): HostMapping {
  if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
    throw new SysError(call, errno());
  }
  const buffer = Deno.UnsafePointerView.getArrayBuffer(p, size);
  return {
    pointer: p,
    address: BigInt(Deno.UnsafePointer.value(p)),
    bytes: new Uint8Array(buffer),
  };
}

/** Anonymous zeroed memory of `size` bytes (page aligned), reserved lazily as guest RAM is. */
export function mapAnonymous(size: number): HostMapping {
  const p = lib().mmap(
    null,
    BigInt(size),
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    -1,
    0n,
  );
  return mapped(p, size, "mmap");
}

/** Maps `size` bytes of a file descriptor shared (a vCPU's kvm_run page). */
export function mapShared(fd: number, size: number): HostMapping {
  const p = lib().mmap(null, BigInt(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
  return mapped(p, size, "mmap");
}

/** Unmaps memory from {@linkcode mapAnonymous} or {@linkcode mapShared}. */
export function unmap(mapping: HostMapping): void {
  lib().munmap(mapping.pointer, BigInt(mapping.bytes.byteLength));
}

/** Sends {@linkcode KICK_SIGNAL} to thread `tid` of this process (a vCPU thread in KVM_RUN). */
export function tgkill(tid: number): void {
  installKickHandler();
  lib().tgkill(lib().getpid(), tid, KICK_SIGNAL);
}

let handlerInstalled = false;

/**
 * Installs a handler for {@linkcode KICK_SIGNAL} that does nothing, so the signal only
 * interrupts a blocking KVM_RUN (which then returns EINTR) instead of killing the process.
 * The handler is libc's getpid: a C function that is safe in a signal handler and needs no
 * JavaScript (a JS callback cannot run while the thread sits in an FFI call). SA_RESTART
 * makes other system calls the signal lands in resume; KVM_RUN never restarts.
 */
export function installKickHandler(): void {
  if (handlerInstalled) return;
  const getpid = lib().dlsym(null, new TextEncoder().encode("getpid\0"));
  if (getpid === null) throw new Error("dlsym(getpid) failed");
  // glibc's struct sigaction: sa_handler u64, sa_mask 128 bytes, sa_flags i32, sa_restorer.
  const act = new Uint8Array(152);
  const view = new DataView(act.buffer);
  view.setBigUint64(0, BigInt(Deno.UnsafePointer.value(getpid)), true);
  view.setInt32(136, SA_RESTART, true);
  if (lib().sigaction(KICK_SIGNAL, act, null) < 0) throw new SysError("sigaction", errno());
  handlerInstalled = true;
}

/**
 * A POSIX timer that sends {@linkcode KICK_SIGNAL} to the thread that created it, to end
 * a KVM_RUN at a host deadline (the next timer of the machine's event loop).
 */
export class KickTimer {
  #id: Deno.PointerValue;
  #spec = new Uint8Array(32);
  #specView = new DataView(this.#spec.buffer);

  constructor() {
    installKickHandler();
    // struct sigevent: sigev_value u64, sigev_signo i32 @8, sigev_notify i32 @12, _tid i32 @16.
    const ev = new Uint8Array(64);
    const view = new DataView(ev.buffer);
    view.setInt32(8, KICK_SIGNAL, true);
    view.setInt32(12, SIGEV_THREAD_ID, true);
    view.setInt32(16, lib().gettid(), true);
    const id = new Uint8Array(8);
    if (lib().timer_create(CLOCK_MONOTONIC, ev, id) < 0) {
      throw new SysError("timer_create", errno());
    }
    this.#id = Deno.UnsafePointer.create(new DataView(id.buffer).getBigUint64(0, true));
  }

  /**
   * Fires first after `firstNs`, then every `intervalNs` (0: once) until {@linkcode disarm}.
   * A zero `firstNs` disarms (as timer_settime does), so it is raised to 1 ns.
   */
  arm(firstNs: number, intervalNs: number): void {
    const v = this.#specView;
    const first = Math.max(1, Math.floor(firstNs));
    v.setBigInt64(0, BigInt(Math.floor(intervalNs / 1e9)), true);
    v.setBigInt64(8, BigInt(Math.floor(intervalNs % 1e9)), true);
    v.setBigInt64(16, BigInt(Math.floor(first / 1e9)), true);
    v.setBigInt64(24, BigInt(first % 1e9), true);
    lib().timer_settime(this.#id, 0, this.#spec, null);
  }

  /** Stops the timer. */
  disarm(): void {
    this.#spec.fill(0);
    lib().timer_settime(this.#id, 0, this.#spec, null);
  }

  /** Deletes the timer. */
  close(): void {
    lib().timer_delete(this.#id);
  }
}
