// vmkit's public API for embedders and plugin authors: re-exports of the core
//
// A plugin imports everything it needs from here (docs/plugins.md); a bundle made by
// `vmkit plugin build` receives this same module from the vmkit that loads it.

export * from "./core/errors.ts";
export * from "./core/options.ts";
export * from "./core/plugin.ts";
export * from "./core/block/mod.ts";
export * from "./core/block/metadata_cache.ts";
export * from "./core/memory/mod.ts";
export * from "./core/device.ts";
export * from "./core/pci.ts";
export * from "./core/irq.ts";
export * from "./core/event_loop.ts";
export * from "./core/net.ts";
export * from "./core/chardev.ts";
export * from "./core/display.ts";
export * from "./core/cpu.ts";
export * from "./core/machine.ts";
export * from "./core/monitor/mod.ts";
