import assert from "node:assert/strict";
import { maskVmdkCid } from "./differential_table.ts";

/** A sparse vmdk's first two sectors: a KDMV header naming a one-sector descriptor at sector 1. */
function sparseVmdk(descriptor: string, tail = 0): Uint8Array {
  const bytes = new Uint8Array(1536);
  bytes.set([0x4b, 0x44, 0x4d, 0x56]); // "KDMV"
  const v = new DataView(bytes.buffer);
  v.setBigUint64(28, 1n, true); // descriptor offset (sectors)
  v.setBigUint64(36, 1n, true); // descriptor size (sectors)
  bytes.set(Array.from(descriptor, (ch) => ch.charCodeAt(0)), 512);
  bytes[1024] = tail; // the first byte after the descriptor
  return bytes;
}

const text = (cid: string) => `# Disk DescriptorFile\nversion=1\nCID=${cid}\nparentCID=ffffffff\n`;

Deno.test("maskVmdkCid: CIDs of any length compare equal, left-overs after QEMU's rewrite too", () => {
  const created = maskVmdkCid(sparseVmdk(text("1234abcd")));
  // QEMU's first write rewrote an 8-digit CID as 6 digits: the old text's last two bytes
  // stay after the new NUL.
  const rewritten = maskVmdkCid(sparseVmdk(`${text("bace28")}\0\n`));
  assert.deepEqual(rewritten, created);
});

Deno.test("maskVmdkCid hides only the CID: other text and bytes after the descriptor still differ", () => {
  assert.notDeepEqual(
    maskVmdkCid(sparseVmdk(text("1"))),
    maskVmdkCid(sparseVmdk(text("1").replace("version=1", "version=3"))),
  );
  assert.notDeepEqual(
    maskVmdkCid(sparseVmdk(text("1"), 0)),
    maskVmdkCid(sparseVmdk(text("1"), 7)),
  );
  assert.throws(() => maskVmdkCid(sparseVmdk("version=1\n")), /0 CID lines/);
});
