// Helpers the VNC tests and bench share: finding programs and free displays, and a disk from a boot sector

import * as path from "node:path";

/** True when `program` is on PATH (vncsnapshot has no --version that succeeds). */
export function onPath(program: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(path.join(dir, program)).isFile;
    } catch {
      return false;
    }
  });
}

/** A VNC display number (port 5900 + N) free on loopback, searched from a random start. */
export function freeDisplay(from = 40): number {
  for (let n = from + Math.floor(Math.random() * 50); n < from + 200; n++) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port: 5900 + n }).close();
      return n;
    } catch {
      // taken
    }
  }
  throw new Error("no free VNC display");
}

/** A 1 MiB raw disk whose first sector is `code` with the 0x55 0xAA boot signature. */
export function bootSectorDisk(code: Uint8Array): Uint8Array {
  if (code.length > 510) throw new RangeError(`boot sector code is ${code.length} bytes`);
  const disk = new Uint8Array(1 << 20);
  disk.set(code);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** QEMU's arguments for a disk guest as the display tests run it (TCG, 64 MiB, COM1 to a file). */
export function qemuDiskGuestArgs(vga: string, disk: string, serialLog: string): string[] {
  return [
    "-nodefaults",
    "-accel",
    "tcg",
    "-m",
    "64",
    "-vga",
    vga,
    "-drive",
    `file=${disk},format=raw,if=ide`,
    "-serial",
    `file:${serialLog}`,
  ];
}
