// The block layer: driver contract, node graph, scheduler and backend
export * from "./driver.ts";
export * from "./graph.ts";
export * from "./scheduler.ts";
export * from "./backend.ts";
export * from "./status.ts";
export * from "./zero.ts";
export * from "./buffer.ts";
export * from "./sync_io.ts";
