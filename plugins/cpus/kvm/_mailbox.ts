// The mailbox between a vCPU thread and the main thread: one Int32Array over shared memory

/** Slots of a vCPU's mailbox. */
export const BOX_STATE = 0, BOX_TID = 1, BOX_ERRNO = 2, BOX_SLOTS = 4;

/**
 * Mailbox states. `PARKED`: the main thread owns the vCPU (it may read its registers,
 * inject, reset); `RUN`: the thread is in KVM_RUN or about to be; `EXITED`: KVM_RUN
 * returned and the thread waits for the main thread to handle the exit; `QUIT`: the
 * thread ends.
 */
export const STATE_PARKED = 0, STATE_RUN = 1, STATE_EXITED = 2, STATE_QUIT = 3;

/** What the main thread sends a new vCPU thread. */
export interface VcpuThreadStart {
  /** The vCPU file descriptor (fds are the process's: the thread uses it as is). */
  fd: number;
  /** The vCPU's mailbox ({@linkcode BOX_SLOTS} Int32 slots). */
  box: SharedArrayBuffer;
  /** The main thread's doorbell: one Int32 every exit increments and notifies. */
  bell: SharedArrayBuffer;
}
