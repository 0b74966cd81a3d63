// vmkit's public API for embedders and plugin authors: re-exports of the core

export * from "./core/errors.ts";
export * from "./core/options.ts";
export * from "./core/plugin.ts";
export * from "./core/block/mod.ts";
export * from "./core/memory/mod.ts";
