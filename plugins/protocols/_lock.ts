// Image locks as QEMU's file-posix takes them: OFD byte-range locks, one byte per permission held or denied

import { ImageOpenError } from "../../core/errors.ts";
import { BLK_PERM_ALL, BLK_PERM_COUNT, BLK_PERM_NAMES } from "../../core/block/perm.ts";
import { dlopenLibc } from "./_posix.ts";

/** The lock byte of a permission the node holds is `RAW_LOCK_PERM_BASE + bit`. */
export const RAW_LOCK_PERM_BASE = 100;
/** The lock byte of a permission the node does not share is `RAW_LOCK_SHARED_BASE + bit`. */
export const RAW_LOCK_SHARED_BASE = 200;

/** `fcntl` commands and lock types on Linux (the same on x86-64 and arm64). */
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const O_RDONLY = 0;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const EINTR = 4;

// Four symbols of their own: the ten of _posix.ts cost ~10 ms to bind, more than
// `img info` on a qcow2 (which locks) spends on everything else.
const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // fcntl is variadic; its third argument is the struct flock pointer for the lock commands.
  fcntl: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type LockLibc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: LockLibc | null | undefined;

/** libc's locking calls through FFI, or null where FFI is not allowed (no `--allow-ffi`). */
export function lockLibc(): LockLibc | null {
  if (libc === undefined) libc = dlopenLibc(SYMBOLS);
  return libc;
}

function errno(lib: LockLibc): number {
  const p = lib.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** The error QEMU reports for a lock another process holds (raw_check_lock_bytes plus its hint). */
function lockError(bit: number, shared: boolean, filename: string): ImageOpenError {
  const what = shared ? "shared " : "";
  return new ImageOpenError(
    `Failed to get ${what}"${BLK_PERM_NAMES[bit]}" lock\n` +
      `Is another process using the image [${filename}]?`,
  );
}

/**
 * The locks one open of an image file holds, on a descriptor of its own (an open file
 * description: OFD locks conflict between descriptions, even in one process, and go
 * away when the description is closed or the process ends, however it ends).
 *
 * Every lock is a shared read lock on one byte: byte 100+i while the node holds
 * permission i, byte 200+i while it does not let others hold permission i. A node that
 * wants permission i checks that nobody else locks 200+i; a node that denies i checks
 * that nobody else locks 100+i. Readers of an image therefore never block each other.
 */
export class ImageLock {
  #lib: LockLibc;
  #fd: number;
  /** Bytes locked now: permission bits at 100+i and denied bits at 200+i. */
  #lockedPerm = 0;
  #lockedDenied = 0;
  #flock = new Uint8Array(32);
  #view = new DataView(this.#flock.buffer);

  private constructor(lib: LockLibc, fd: number, readonly filename: string) {
    this.#lib = lib;
    this.#fd = fd;
  }

  /**
   * Opens a descriptor of `path` for its locks; null where there is no FFI. A failed
   * open (the file vanished since the node opened it) is an error with errno's code.
   */
  static open(path: string, filename: string, writable: boolean): ImageLock | null {
    const lib = lockLibc();
    if (!lib) return null;
    const name = new TextEncoder().encode(`${path}\0`);
    for (;;) {
      const fd = lib.open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
      if (fd >= 0) return new ImageLock(lib, fd, filename);
      if (errno(lib) !== EINTR) {
        throw new ImageOpenError(`Could not open '${filename}' for locking: errno ${errno(lib)}`);
      }
    }
  }

  /** The bytes locked now, as QEMU's byte numbers (for tests and `/proc/locks` comparisons). */
  lockedBytes(): number[] {
    const out: number[] = [];
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      if (this.#lockedPerm & (1 << i)) out.push(RAW_LOCK_PERM_BASE + i);
    }
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      if (this.#lockedDenied & (1 << i)) out.push(RAW_LOCK_SHARED_BASE + i);
    }
    return out;
  }

  /**
   * Moves to holding `perm` and sharing `shared`, as QEMU's raw_handle_perm_lock does:
   * lock the union of old and new bytes, check the new permissions against the other
   * holders, then drop what is no longer needed. A refusal leaves the old locks as they
   * were and throws QEMU's `Failed to get "write" lock` with its hint.
   */
  apply(perm: number, shared: number): void {
    perm &= BLK_PERM_ALL;
    const denied = ~shared & BLK_PERM_ALL;
    const onlyDropping = (this.#lockedPerm | perm) === this.#lockedPerm &&
      (this.#lockedDenied | denied) === this.#lockedDenied;
    if (!onlyDropping) {
      const oldPerm = this.#lockedPerm;
      const oldDenied = this.#lockedDenied;
      try {
        this.#set(oldPerm | perm, oldDenied | denied);
        this.#check(perm, denied);
      } catch (e) {
        try {
          this.#set(oldPerm, oldDenied);
        } catch {
          // Unlocking does not fail on a file that locked; the first error is the news.
        }
        throw e;
      }
    }
    this.#set(perm, denied);
  }

  /** Closes the descriptor, which drops every lock it holds. */
  close(): void {
    if (this.#fd < 0) return;
    this.#lib.close(this.#fd);
    this.#fd = -1;
    this.#lockedPerm = 0;
    this.#lockedDenied = 0;
  }

  /** Locks and unlocks bytes so exactly `perm` (at 100+) and `denied` (at 200+) are held. */
  #set(perm: number, denied: number): void {
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      const bit = 1 << i;
      if ((perm & bit) !== (this.#lockedPerm & bit)) {
        this.#fcntl(F_OFD_SETLK, perm & bit ? F_RDLCK : F_UNLCK, RAW_LOCK_PERM_BASE + i);
        this.#lockedPerm ^= bit;
      }
    }
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      const bit = 1 << i;
      if ((denied & bit) !== (this.#lockedDenied & bit)) {
        this.#fcntl(F_OFD_SETLK, denied & bit ? F_RDLCK : F_UNLCK, RAW_LOCK_SHARED_BASE + i);
        this.#lockedDenied ^= bit;
      }
    }
  }

  /** Throws when another description locks a byte that `perm` or `denied` conflicts with. */
  #check(perm: number, denied: number): void {
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      if (perm & (1 << i) && this.#heldElsewhere(RAW_LOCK_SHARED_BASE + i)) {
        throw lockError(i, false, this.filename);
      }
    }
    for (let i = 0; i < BLK_PERM_COUNT; i++) {
      if (denied & (1 << i) && this.#heldElsewhere(RAW_LOCK_PERM_BASE + i)) {
        throw lockError(i, true, this.filename);
      }
    }
  }

  /** F_OFD_GETLK for a write lock on `byte`: true when another description holds it (or fcntl fails). */
  #heldElsewhere(byte: number): boolean {
    try {
      this.#fcntl(F_OFD_GETLK, F_WRLCK, byte);
    } catch {
      return true;
    }
    return this.#view.getInt16(0, true) !== F_UNLCK;
  }

  #fcntl(cmd: number, type: number, byte: number): void {
    const v = this.#view;
    // struct flock: l_type, l_whence (short), l_start, l_len (off_t at 8 and 16), l_pid (0 for OFD).
    this.#flock.fill(0);
    v.setInt16(0, type, true);
    v.setInt16(2, 0, true); // SEEK_SET
    v.setBigInt64(8, BigInt(byte), true);
    v.setBigInt64(16, 1n, true);
    for (;;) {
      if (this.#lib.fcntl(this.#fd, cmd, this.#flock) === 0) return;
      if (errno(this.#lib) !== EINTR) break;
    }
    // A filesystem without OFD locks (some NFS and FUSE mounts) refuses: QEMU's words.
    throw new ImageOpenError(`Failed to lock byte ${byte}`);
  }
}
