// Firmware lookup: -bios FILE, -L DIR, then the directories Debian installs SeaBIOS and QEMU ROMs in

import { VmkitError } from "../../core/errors.ts";

/** The directories searched after `-L` ones, in order. */
export const DEFAULT_FIRMWARE_DIRS = ["/usr/share/seabios", "/usr/share/qemu"];

/** A firmware file that could not be found anywhere searched. */
export class FirmwareNotFoundError extends VmkitError {
  constructor(message: string) {
    super(message, { exitCode: 1 });
    this.name = "FirmwareNotFoundError";
  }
}

/**
 * Finds and reads a firmware file. A name with a `/` is used as given; a bare name is
 * searched in `dataDirs` (from `-L`), then in {@linkcode DEFAULT_FIRMWARE_DIRS}.
 *
 * @returns the path found and the bytes
 */
export function loadFirmware(
  name: string,
  dataDirs: readonly string[] = [],
): { path: string; bytes: Uint8Array } {
  const candidates = name.includes("/")
    ? [name]
    : [...dataDirs, ...DEFAULT_FIRMWARE_DIRS].map((d) => `${d.replace(/\/$/, "")}/${name}`);
  for (const path of candidates) {
    try {
      return { path, bytes: Deno.readFileSync(path) };
    } catch (error) {
      if (
        !(error instanceof Deno.errors.NotFound) && !(error instanceof Deno.errors.IsADirectory)
      ) {
        throw new FirmwareNotFoundError(
          `Could not load firmware '${path}': ${(error as Error).message}`,
        );
      }
    }
  }
  throw new FirmwareNotFoundError(
    `Could not find firmware '${name}' (searched: ${candidates.join(", ")}); ` +
      `install SeaBIOS (Debian package seabios) or give -bios FILE or -L DIR`,
  );
}
