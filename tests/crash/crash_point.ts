// Crash points in process: a file protocol that dies after its Nth write, as a killed process would

import type { BlockNode } from "../../core/block/driver.ts";
import { BlockGraph } from "../../core/block/graph.ts";
import { type ProtocolDescriptor, Registry } from "../../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../../plugins/mod.ts";
import type { Prng } from "../fuzz/prng.ts";

/** Thrown by every write once the simulated process has died. */
export class SimulatedCrash extends Error {
  constructor() {
    super("simulated crash");
    this.name = "SimulatedCrash";
  }
}

/** A write that power loss may still undo: where, and the bytes it replaced. */
interface Unsynced {
  node: BlockNode;
  offset: number;
  before: Uint8Array;
}

const MUTATORS = new Set(["write", "writeSync", "writeZeroes", "discard", "truncate"]);

/**
 * Counts the writes reaching host files and dies after `limit` of them: every later
 * write, zeroing, discard or truncate throws {@linkcode SimulatedCrash} and changes
 * nothing. A SIGKILL keeps every write the process finished (the page cache holds
 * them), so stopping after write N is a kill between two system calls, made exactly
 * where the suite wants it instead of where a timer lands.
 *
 * With `powerLoss`, {@linkcode crash} also undoes a random part of the writes made
 * since the last flush, as losing power before the data reached the disk would: the
 * flushes the drivers issue are then what keeps an image consistent.
 */
export class CrashPoint {
  /** Writes seen so far. */
  writes = 0;
  /** True once the limit was reached. */
  dead = false;
  #limit: number;
  #raw: BlockNode[] = [];
  #unsynced: Unsynced[] = [];
  #powerLoss: boolean;

  constructor(limit = Infinity, options: { powerLoss?: boolean } = {}) {
    this.#limit = limit;
    this.#powerLoss = options.powerLoss ?? false;
  }

  /** A graph whose `file` protocol goes through this crash point. */
  graph(): BlockGraph {
    const registry = new Registry();
    for (const p of BUILTIN_PLUGINS) {
      if (p.kind === "protocol" && p.name === "file") registry.add(this.#wrapProtocol(p));
      else registry.add(p);
    }
    return new BlockGraph(registry);
  }

  /**
   * Ends the simulated process: with `powerLoss`, undoes part of the unsynced
   * writes (newest first), then closes every host file without writing anything.
   */
  async crash(rng: Prng): Promise<void> {
    this.dead = true;
    if (this.#powerLoss) {
      // Through a fresh descriptor: the driver may have closed its node already.
      for (const w of this.#unsynced.reverse()) {
        if (!rng.chance(0.5)) continue;
        const f = Deno.openSync(w.node.filename, { write: true });
        try {
          f.seekSync(w.offset, Deno.SeekMode.Start);
          f.writeSync(w.before);
        } finally {
          f.close();
        }
      }
    }
    this.#unsynced = [];
    for (const n of this.#raw) await n.close();
  }

  #wrapProtocol(file: ProtocolDescriptor): ProtocolDescriptor {
    return {
      ...file,
      open: async (filename, options) => {
        const node = await file.open(filename, options);
        this.#raw.push(node);
        return this.#wrapNode(node);
      },
    };
  }

  #mutate(node: BlockNode, offset: number, bytes: number): void {
    if (this.dead || this.writes >= this.#limit) {
      this.dead = true;
      throw new SimulatedCrash();
    }
    this.writes++;
    if (this.#powerLoss && bytes > 0 && offset < node.size()) {
      const before = new Uint8Array(Math.min(bytes, node.size() - offset));
      node.readSync!(offset, before);
      this.#unsynced.push({ node, offset, before });
    }
  }

  #wrapNode(node: BlockNode): BlockNode {
    return new Proxy(node, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        const name = String(prop);
        if (MUTATORS.has(name)) {
          return (offset: number, arg: Uint8Array | number, ...rest: unknown[]) => {
            const bytes = typeof arg === "number" ? arg : arg.length;
            this.#mutate(target, name === "truncate" ? 0 : offset, name === "truncate" ? 0 : bytes);
            return (value as (...a: unknown[]) => unknown).call(target, offset, arg, ...rest);
          };
        }
        if (name === "flush" || name === "flushSync") {
          return (...args: unknown[]) => {
            if (this.dead) throw new SimulatedCrash();
            // Everything written so far is durable now.
            this.#unsynced = [];
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
  }
}
