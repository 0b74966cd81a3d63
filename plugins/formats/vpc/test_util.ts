// A CreateContext over in-memory files, for the vpc unit tests

import type { CreateContext } from "../../../core/block/driver.ts";
import { MemoryFileNode } from "../../../core/block/test_util.ts";

/** A create context whose files live in a map, and the map. */
export function memoryCreateContext(): { ctx: CreateContext; files: Map<string, MemoryFileNode> } {
  const files = new Map<string, MemoryFileNode>();
  const ctx: CreateContext = {
    createFile(filename: string, sizeBytes: number) {
      files.set(filename, new MemoryFileNode(filename, sizeBytes));
      return Promise.resolve();
    },
    openFile(filename: string) {
      const f = files.get(filename);
      if (!f) return Promise.reject(new Error(`no file '${filename}'`));
      return Promise.resolve(f);
    },
    openImage() {
      return Promise.reject(new Error("not in memory tests"));
    },
    resolveBacking: (_image: string, name: string) => name,
  };
  return { ctx, files };
}
