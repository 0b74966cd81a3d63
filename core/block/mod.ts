// The block layer: driver contract, node graph, scheduler and backend
export * from "./driver.ts";
