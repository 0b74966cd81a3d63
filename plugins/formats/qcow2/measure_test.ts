// Tests of qcow2 size estimates

import assert from "node:assert/strict";
import { measureQcow2, refcountMetadataBytes } from "./measure.ts";

Deno.test("measureQcow2() gives qemu-img's numbers for an empty 64 MiB image", () => {
  assert.deepEqual(measureQcow2(64 << 20, 0, {}), { required: 327680, fullyAllocated: 67436544 });
});

Deno.test("refcountMetadataBytes() counts the refcount structures themselves", () => {
  assert.equal(refcountMetadataBytes(3, 65536, 4), 2 * 65536);
});
