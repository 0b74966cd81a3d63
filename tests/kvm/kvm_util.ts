// Shared by the KVM tests and bench: can this host run KVM guests, and the skip note when not

import { probeKvm } from "../../plugins/cpus/kvm/mod.ts";
import { haveProgram } from "../test_util.ts";

/** Why KVM cannot be used here (`/dev/kvm: No such file or directory`), or null when it can. */
export function kvmUnavailable(): string | null {
  try {
    probeKvm();
    return null;
  } catch (e) {
    return `/dev/kvm: ${(e as Error).message}`;
  }
}

/** True when /dev/kvm opens and answers. */
export function kvmUsable(): boolean {
  return kvmUnavailable() === null;
}

/** The note a KVM test appends to its name when it is skipped. */
export const NEEDS_KVM = (() => {
  const why = kvmUnavailable();
  return why === null ? "" : ` (ignored: KVM cannot be used here: ${why})`;
})();

/** True when real QEMU can be run with -accel kvm for a comparison (it and /dev/kvm exist). */
export function haveQemuKvm(): boolean {
  return haveProgram("qemu-system-x86_64") && kvmUsable();
}
