// vmkit's version, printed by --version and the help texts

/** vmkit's own release. */
export const VMKIT_VERSION = "0.1.0";

/** The QEMU release whose command lines and output vmkit follows. */
export const QEMU_VERSION = "7.2.0";

/** The version line of `--version`: `qemu-img version 7.2.0 (vmkit 0.1.0)`. */
export function versionLine(program: string): string {
  return `${program} version ${QEMU_VERSION} (vmkit ${VMKIT_VERSION})`;
}
