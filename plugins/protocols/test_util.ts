// Helpers for the protocol tests and the lock interop tests: what the kernel says is locked

/**
 * The OFD lock bytes every process holds on `file`, sorted, as `/proc/locks` lists them
 * (`1: OFDLCK ADVISORY READ -1 fe:00:123 100 101` is bytes 100 and 101 of inode 123).
 */
export function procLockBytes(file: string): number[] {
  const ino = Deno.statSync(file).ino;
  const out: number[] = [];
  for (const line of Deno.readTextFileSync("/proc/locks").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== "OFDLCK" || !f[5]?.endsWith(`:${ino}`)) continue;
    for (let b = Number(f[6]); b <= Number(f[7]); b++) out.push(b);
  }
  return out.sort((a, b) => a - b);
}
