import assert from "node:assert/strict";
import {
  BLK_PERM_ALL,
  BLK_PERM_CONSISTENT_READ,
  BLK_PERM_RESIZE,
  BLK_PERM_WRITE,
  BLK_PERM_WRITE_UNCHANGED,
} from "../../core/block/perm.ts";
import { ImageLock, lockLibc } from "./_lock.ts";
import { procLockBytes } from "./test_util.ts";

const ignore = lockLibc() === null;
const NEEDS = ignore ? " (ignored: no FFI or not Linux)" : "";
const READ = BLK_PERM_CONSISTENT_READ;
// What qcow2 asks of its file: read (and write, resize), nobody else writes or resizes.
const QCOW2_SHARED = READ | BLK_PERM_WRITE_UNCHANGED;

async function withFile(fn: (file: string) => void | Promise<void>): Promise<void> {
  const file = await Deno.makeTempFile({ prefix: "vmkit-lock-" });
  try {
    await fn(file);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test({
  name: `ImageLock.apply() locks one byte per permission held (100+) and denied (200+)${NEEDS}`,
  ignore,
  fn: () =>
    withFile((file) => {
      const lock = ImageLock.open(file, "a.qcow2", true)!;
      try {
        lock.apply(READ | BLK_PERM_WRITE | BLK_PERM_RESIZE, QCOW2_SHARED);
        assert.deepEqual(lock.lockedBytes(), [100, 101, 103, 201, 203]);
        assert.deepEqual(procLockBytes(file), [100, 101, 103, 201, 203]);
        // Dropping to a reader unlocks what it no longer needs.
        lock.apply(READ, QCOW2_SHARED);
        assert.deepEqual(procLockBytes(file), [100, 201, 203]);
      } finally {
        lock.close();
      }
      assert.deepEqual(procLockBytes(file), [], "closing drops every lock");
    }),
});

Deno.test({
  name:
    `ImageLock.apply() refuses a second open of the file in the same process with QEMU's words${NEEDS}`,
  ignore,
  fn: () =>
    withFile((file) => {
      const writer = ImageLock.open(file, "a.qcow2", true)!;
      const reader = ImageLock.open(file, "a.qcow2", false)!;
      try {
        writer.apply(READ | BLK_PERM_WRITE | BLK_PERM_RESIZE, QCOW2_SHARED);
        assert.throws(
          () => reader.apply(READ, QCOW2_SHARED),
          {
            message: 'Failed to get shared "write" lock\n' +
              "Is another process using the image [a.qcow2]?",
          },
        );
        // The refusal left nothing of the reader's behind.
        assert.deepEqual(reader.lockedBytes(), []);
        assert.deepEqual(procLockBytes(file), [100, 101, 103, 201, 203]);
        // A reader that shares everything (-U) is let through.
        reader.apply(READ, BLK_PERM_ALL);
        assert.deepEqual(procLockBytes(file), [100, 100, 101, 103, 201, 203]);
        // A second writer is refused for the write it wants, before what it denies.
        const other = ImageLock.open(file, "a.qcow2", true)!;
        try {
          assert.throws(() => other.apply(READ | BLK_PERM_WRITE, BLK_PERM_ALL), {
            message: /^Failed to get "write" lock\n/,
          });
        } finally {
          other.close();
        }
      } finally {
        writer.close();
        reader.close();
      }
    }),
});

Deno.test({
  name: `ImageLock.apply() lets two readers that deny writers hold the file together${NEEDS}`,
  ignore,
  fn: () =>
    withFile((file) => {
      const a = ImageLock.open(file, "r.img", false)!;
      const b = ImageLock.open(file, "r.img", false)!;
      try {
        a.apply(READ, QCOW2_SHARED);
        b.apply(READ, QCOW2_SHARED);
        assert.deepEqual(procLockBytes(file), [100, 100, 201, 201, 203, 203]);
        // Neither can now become a writer.
        assert.throws(() => a.apply(READ | BLK_PERM_WRITE, QCOW2_SHARED), {
          message: /^Failed to get "write" lock/,
        });
        assert.deepEqual(
          a.lockedBytes(),
          [100, 201, 203],
          "the refused upgrade kept the old locks",
        );
      } finally {
        a.close();
        b.close();
      }
    }),
});
