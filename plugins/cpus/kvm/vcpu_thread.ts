// A vCPU thread (a Worker): KVM_RUN on one vCPU, each exit handed to the main thread's devices

import { KVM_RUN } from "./_abi.ts";
import { errno, lib } from "./_libc.ts";
import {
  BOX_ERRNO,
  BOX_STATE,
  BOX_TID,
  STATE_EXITED,
  STATE_QUIT,
  STATE_RUN,
  type VcpuThreadStart,
} from "./_mailbox.ts";

// The thread only runs the vCPU: it touches no guest memory and no device. The exit's
// data sits in the vCPU's kvm_run page, which the main thread maps too; the main thread
// handles the exit there and sets the state back to RUN.
/** The Worker's global scope (checked with the main thread's types, hence the cast). */
const scope = self as unknown as {
  onmessage: (event: MessageEvent<VcpuThreadStart>) => void;
  close(): void;
};

scope.onmessage = (event) => {
  const { fd } = event.data;
  const box = new Int32Array(event.data.box);
  const bell = new Int32Array(event.data.bell);
  const ffi = lib();
  Atomics.store(box, BOX_TID, ffi.gettid());
  Atomics.notify(box, BOX_TID);
  for (;;) {
    let state = Atomics.load(box, BOX_STATE);
    while (state !== STATE_RUN) {
      if (state === STATE_QUIT) {
        scope.close();
        return;
      }
      Atomics.wait(box, BOX_STATE, state);
      state = Atomics.load(box, BOX_STATE);
    }
    const r = ffi.ioctl(fd, KVM_RUN, 0);
    box[BOX_ERRNO] = r < 0 ? errno() : 0;
    Atomics.store(box, BOX_STATE, STATE_EXITED);
    Atomics.add(bell, 0, 1);
    Atomics.notify(bell, 0);
  }
};
