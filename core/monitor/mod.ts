// The QEMU monitor (HMP) and QMP: the command table plugins extend, and the Monitor

export * from "./commands.ts";
export * from "./monitor.ts";
export * from "./snapshots.ts";
