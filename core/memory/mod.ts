// The memory bus: guest physical address space, I/O ports and DMA helpers
export * from "./address_space.ts";
export * from "./port_io.ts";
