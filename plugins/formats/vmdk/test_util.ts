// In-memory create and open contexts for the vmdk unit tests

import * as zlib from "node:zlib";
import type { CreateContext, OpenContext } from "../../../core/block/driver.ts";
import { MemoryFileNode } from "../../../core/block/test_util.ts";
import { openVmdk } from "./open.ts";
import type { VmdkNode } from "./node.ts";

/** Contexts whose files live in one map, and the map. */
export function memoryContexts(): {
  create: CreateContext;
  files: Map<string, MemoryFileNode>;
  open(name: string): Promise<VmdkNode>;
} {
  const files = new Map<string, MemoryFileNode>();
  const get = (name: string) => {
    const f = files.get(name);
    if (!f) return Promise.reject(new Error(`Could not open '${name}': No such file or directory`));
    return Promise.resolve(f);
  };
  const create: CreateContext = {
    createFile(filename: string, sizeBytes: number) {
      files.set(filename, new MemoryFileNode(filename, sizeBytes));
      return Promise.resolve();
    },
    openFile: (filename: string) => get(filename),
    openImage: (filename: string) => open(filename),
    resolveBacking: (_image: string, name: string) => name,
  };
  const openCtx: OpenContext = {
    options: {},
    openBacking: (name: string) => open(name),
    openFile: (name: string) => get(name),
  };
  async function open(name: string): Promise<VmdkNode> {
    return openVmdk(await get(name), openCtx);
  }
  return { create, files, open };
}

const SECTOR = 512;

function marker(value: number, type: number): Uint8Array {
  const m = new Uint8Array(SECTOR);
  const v = new DataView(m.buffer);
  v.setBigUint64(0, BigInt(value), true);
  v.setUint32(12, type, true);
  return m;
}

/**
 * A stream-optimized extent as VMware writes one (VMDK 5.0 spec): header with the grain
 * directory "at end", compressed grains with markers, grain table and directory markers,
 * a footer and an end-of-stream marker. All-zero grains are left out.
 */
export function vmwareStream(data: Uint8Array, grainBytes = 65536): Uint8Array {
  const grainSectors = grainBytes / SECTOR;
  const capacity = Math.ceil(data.length / SECTOR);
  const gtes = 512;
  const grains = Math.ceil(capacity / grainSectors);
  const gtCount = Math.ceil(grains / gtes);
  const desc = new TextEncoder().encode(
    '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="streamOptimized"\n\n' +
      `# Extent description\nRDONLY ${capacity} SPARSE "stream.vmdk"\n`,
  );
  const parts: Uint8Array[] = [];
  let sector = 0;
  const push = (bytes: Uint8Array) => {
    const padded = new Uint8Array(Math.ceil(bytes.length / SECTOR) * SECTOR);
    padded.set(bytes);
    parts.push(padded);
    const at = sector;
    sector += padded.length / SECTOR;
    return at;
  };
  const header = (gdOffset: bigint) => {
    const h = new Uint8Array(SECTOR);
    const v = new DataView(h.buffer);
    v.setUint32(0, 0x4b444d56);
    v.setUint32(4, 3, true);
    v.setUint32(8, 0x30001, true);
    v.setBigUint64(12, BigInt(capacity), true);
    v.setBigUint64(20, BigInt(grainSectors), true);
    v.setBigUint64(28, 1n, true);
    v.setBigUint64(36, 1n, true);
    v.setUint32(44, gtes, true);
    v.setBigUint64(56, gdOffset, true);
    v.setBigUint64(64, 2n, true);
    h.set([0x0a, 0x20, 0x0d, 0x0a], 73);
    v.setUint16(77, 1, true);
    return h;
  };
  push(header(0xffffffffffffffffn));
  push(desc);
  const gd = new Uint32Array(gtCount);
  for (let t = 0; t < gtCount; t++) {
    const gt = new Uint32Array(gtes);
    let any = false;
    for (let i = 0; i < gtes; i++) {
      const g = t * gtes + i;
      if (g >= grains) break;
      const grain = new Uint8Array(grainBytes);
      grain.set(data.subarray(g * grainBytes, (g + 1) * grainBytes));
      if (grain.every((b) => b === 0)) continue;
      const z = zlib.deflateSync(grain);
      const rec = new Uint8Array(12 + z.length);
      new DataView(rec.buffer).setBigUint64(0, BigInt(g * grainSectors), true);
      new DataView(rec.buffer).setUint32(8, z.length, true);
      rec.set(z, 12);
      gt[i] = push(rec);
      any = true;
    }
    if (!any) continue;
    push(marker(4, 1));
    gd[t] = push(new Uint8Array(gt.buffer));
  }
  push(marker(Math.ceil(gtCount * 4 / SECTOR), 2));
  const gdAt = push(new Uint8Array(gd.buffer));
  push(marker(1, 3));
  push(header(BigInt(gdAt)));
  push(new Uint8Array(SECTOR));
  const out = new Uint8Array(sector * SECTOR);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
