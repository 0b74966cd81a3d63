// Finding firmware and option ROMs by name, as QEMU's qemu_find_file() does

import { VmkitError } from "./errors.ts";

/** The directories Debian installs SeaBIOS and QEMU's ROMs in, searched after `-L` ones. */
export const DEFAULT_FIRMWARE_DIRS: readonly string[] = [
  "/usr/share/seabios",
  "/usr/share/qemu",
  "/usr/lib/ipxe/qemu",
];

/**
 * The environment variable that replaces {@linkcode DEFAULT_FIRMWARE_DIRS}: a
 * colon-separated list of directories; set but empty, no built-in directory is searched
 * (QEMU fixes the list when it is built; a single vmkit binary lets the user move it).
 */
export const FIRMWARE_PATH_ENV = "VMKIT_FIRMWARE_PATH";

/** A firmware file that could not be found anywhere searched, or not read. */
export class FirmwareNotFoundError extends VmkitError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "FirmwareNotFoundError";
  }
}

/** The built-in firmware directories: `$VMKIT_FIRMWARE_PATH` when set, else the defaults. */
export function builtinFirmwareDirs(): string[] {
  let value: string | undefined;
  try {
    value = Deno.env.get(FIRMWARE_PATH_ENV);
  } catch {
    // No permission to read the environment: the defaults.
  }
  if (value === undefined) return [...DEFAULT_FIRMWARE_DIRS];
  return value.split(":").filter((d) => d !== "");
}

/**
 * The directories searched for a firmware name, in order: `dataDirs` (`-L`), then
 * {@linkcode builtinFirmwareDirs}. This is what `-L help` lists.
 */
export function firmwareDirs(dataDirs: readonly string[] = []): string[] {
  return [...dataDirs, ...builtinFirmwareDirs()];
}

function isReadableFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Finds a firmware file the way QEMU's qemu_find_file() does: the name as given first
 * (so `-bios test.bin` uses ./test.bin), then the name inside each of
 * {@linkcode firmwareDirs}.
 *
 * @returns the path found (or null) and every path tried, for the error message
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findFirmware } from "./firmware.ts";
 *
 * const dir = Deno.makeTempDirSync();
 * Deno.writeFileSync(`${dir}/rom.bin`, new Uint8Array(512));
 * assert.equal(findFirmware("rom.bin", [dir]).path, `${dir}/rom.bin`);
 * assert.equal(findFirmware(`${dir}/rom.bin`).path, `${dir}/rom.bin`);
 * assert.equal(findFirmware("no-such.bin", [dir]).path, null);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function findFirmware(
  name: string,
  dataDirs: readonly string[] = [],
): { path: string | null; searched: string[] } {
  const searched = [name];
  if (isReadableFile(name)) return { path: name, searched };
  // An absolute name is not looked for under the data directories.
  if (name.startsWith("/")) return { path: null, searched };
  for (const dir of firmwareDirs(dataDirs)) {
    const path = `${dir.replace(/\/$/, "")}/${name}`;
    searched.push(path);
    if (isReadableFile(path)) return { path, searched };
  }
  return { path: null, searched };
}

/**
 * Finds ({@linkcode findFirmware}) and reads a firmware file.
 *
 * @returns the path found and the bytes
 * @throws FirmwareNotFoundError when it is nowhere, naming the places searched
 */
export function loadFirmware(
  name: string,
  dataDirs: readonly string[] = [],
): { path: string; bytes: Uint8Array } {
  const { path, searched } = findFirmware(name, dataDirs);
  if (path === null) {
    throw new FirmwareNotFoundError(
      `Could not find firmware '${name}' (searched: ${searched.join(", ")}); ` +
        `install SeaBIOS (Debian package seabios) or give -bios FILE or -L DIR`,
    );
  }
  try {
    return { path, bytes: Deno.readFileSync(path) };
  } catch (error) {
    throw new FirmwareNotFoundError(`Could not load firmware '${path}'`, { cause: error });
  }
}

/** True when a boot order (`-boot order=`/`once=` letters) asks for the network (`n`). */
export function netBootRequested(config: { bootOrder?: string; bootOnce?: string }): boolean {
  return `${config.bootOrder ?? ""}${config.bootOnce ?? ""}`.includes("n");
}

/**
 * The option ROM a PCI device is created with, as QEMU's pci_add_option_rom() picks it:
 * `romfile` given names a ROM the user asked for, which must exist (an empty value means
 * none); without it the device's own default (`efi-e1000.rom`) is used when it is found,
 * and otherwise the device works without one after a warning (QEMU refuses to start; a
 * missing ROM package should not cost a NIC its network).
 *
 * Unlike QEMU, the default ROM is only loaded when `netBoot` says the boot order asks
 * for the network: under the interpreter iPXE's start-up and its DHCP attempt take
 * minutes, which every boot that falls through to the ROM's boot entry would pay before
 * "No bootable device" (drop this condition once guest code runs near QEMU's speed).
 *
 * @returns the image padded with zeros to a power of two of at least 2 KiB (the sizes an
 * expansion ROM BAR decodes), or null for none
 * @throws FirmwareNotFoundError with QEMU's `failed to find romfile` when a ROM asked for
 * is nowhere, or cannot be read
 */
export function loadOptionRom(
  romfile: string | undefined,
  defaultName: string,
  options: {
    dataDirs?: readonly string[];
    warn?: (message: string) => void;
    what?: string;
    netBoot?: boolean;
  } = {},
): Uint8Array | null {
  if (romfile === "") return null;
  if (romfile === undefined && options.netBoot === false) return null;
  const name = romfile ?? defaultName;
  const { path, searched } = findFirmware(name, options.dataDirs);
  if (path === null) {
    if (romfile === undefined) {
      options.warn?.(
        `${options.what ?? "device"}: option ROM "${name}" not found (searched: ` +
          `${searched.join(", ")}): the device runs without it`,
      );
      return null;
    }
    throw new FirmwareNotFoundError(
      `failed to find romfile "${name}" (searched: ${searched.join(", ")})`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (error) {
    throw new FirmwareNotFoundError(`Could not load option rom '${path}'`, { cause: error });
  }
  if (bytes.length === 0) throw new FirmwareNotFoundError(`Option rom '${path}' is empty`);
  let size = 0x800;
  while (size < bytes.length) size *= 2;
  const rom = new Uint8Array(size);
  rom.set(bytes);
  return rom;
}

/**
 * A ROM image as `info roms` lists it (QEMU's rom list): one loaded at a guest address
 * (`addr`), or a file the firmware reads from fw_cfg (`fwDir`/`fwFile`).
 */
export type RomEntry =
  & { readonly name: string; readonly size: number }
  & (
    | { readonly addr: number; readonly isRom: boolean }
    | { readonly fwDir: string; readonly fwFile: string }
  );

const romsOf = new WeakMap<object, RomEntry[]>();

/** Records a ROM the board loaded for `machine`, for `info roms`. */
export function recordRom(machine: object, rom: RomEntry): void {
  let list = romsOf.get(machine);
  if (!list) romsOf.set(machine, list = []);
  list.push(rom);
}

/**
 * The ROMs {@linkcode recordRom} recorded, in QEMU's order: fw_cfg files (at address 0)
 * as they were added, then the ROMs at guest addresses by address.
 */
export function machineRoms(machine: object): RomEntry[] {
  const list = romsOf.get(machine) ?? [];
  const at = (r: RomEntry) => ("addr" in r ? r.addr : 0);
  return [...list].sort((a, b) => at(a) - at(b));
}
