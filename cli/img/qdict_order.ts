// The key order of QEMU's QDict: json objects qemu-img prints come out in hash-bucket order

/** QEMU's `tdb_hash` of a key, taken modulo QDICT_BUCKET_MAX (512) as qdict.c does. */
function bucketOf(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + (bytes[i] << ((i * 5) % 24))) >>> 0;
  return ((Math.imul(1103515243, value) + 12345) >>> 0) % 512;
}

/**
 * `obj` with its keys in the order QEMU prints a QDict holding them: by hash bucket;
 * within one bucket the key added last comes first (QLIST_INSERT_HEAD).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { qdictOrder } from "./qdict_order.ts";
 *
 * const o = qdictOrder({ "filename": "a", "image-end-offset": 1, "format": "qcow2" });
 * assert.deepEqual(Object.keys(o), ["image-end-offset", "filename", "format"]);
 * ```
 */
export function qdictOrder<T>(obj: Record<string, T>): Record<string, T> {
  const keys = Object.keys(obj).map((k, i) => ({ k, i, b: bucketOf(k) }));
  keys.sort((x, y) => x.b - y.b || y.i - x.i);
  const out: Record<string, T> = {};
  for (const { k } of keys) out[k] = obj[k];
  return out;
}
