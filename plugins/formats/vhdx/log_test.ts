import assert from "node:assert/strict";
import type { SyncIo } from "../../../core/block/sync_io.ts";
import type { VhdxHeader } from "./header.ts";
import { descriptorSectors, encodeLogEntry, findActiveSequence, replaySequence } from "./log.ts";

const MiB = 1 << 20;

/** A file in memory with the synchronous I/O the log code uses. */
function memoryIo(size: number): SyncIo & { bytes: () => Uint8Array } {
  let buf = new Uint8Array(size);
  return {
    bytes: () => buf,
    readSync(offset, out) {
      out.fill(0);
      out.set(buf.subarray(offset, Math.min(buf.length, offset + out.length)));
    },
    writeSync(offset, data) {
      if (offset + data.length > buf.length) {
        const grown = new Uint8Array(offset + data.length);
        grown.set(buf);
        buf = grown;
      }
      buf.set(data, offset);
    },
    flushSync() {},
  };
}

const logGuid = new Uint8Array(16).fill(0x42);
const header: VhdxHeader = {
  sequenceNumber: 1,
  fileWriteGuid: new Uint8Array(16),
  dataWriteGuid: new Uint8Array(16),
  logGuid,
  logVersion: 0,
  version: 1,
  logLength: MiB,
  logOffset: MiB,
};

function entry(seq: number, fill: number, at: number, fileSize = 4 * MiB) {
  return encodeLogEntry(
    {
      logGuid,
      sequenceNumber: seq,
      tail: 0,
      flushedFileOffset: fileSize,
      lastFileOffset: fileSize,
    },
    [{ fileOffset: at, data: new Uint8Array(4096).fill(fill) }],
    [{ fileOffset: at + 4096, length: 8192 }],
  );
}

Deno.test("descriptorSectors() fits the header and 126 descriptors in the first sector", () => {
  assert.equal(descriptorSectors(0), 1);
  assert.equal(descriptorSectors(126), 1);
  assert.equal(descriptorSectors(127), 2);
});

Deno.test("findActiveSequence() finds consecutive entries and replaySequence() applies them", () => {
  const io = memoryIo(4 * MiB);
  io.bytes().fill(0x77, 3 * MiB, 3 * MiB + 16384);
  const e1 = entry(10, 0xa1, 3 * MiB);
  const e2 = entry(11, 0xb2, 3 * MiB + 12288);
  io.writeSync(MiB, e1);
  io.writeSync(MiB + e1.length, e2);
  const seq = findActiveSequence(io, header);
  assert.deepEqual(seq.map((e) => e.sequenceNumber), [10, 11]);
  replaySequence(io, seq, () => io.bytes().length);
  const b = io.bytes();
  assert.equal(b[3 * MiB], 0xa1);
  assert.equal(b[3 * MiB + 4096], 0);
  assert.equal(b[3 * MiB + 12288], 0xb2);
  assert.equal(b[3 * MiB + 4096 * 5], 0);
});

Deno.test("findActiveSequence() ignores entries of another log GUID or with a bad checksum", () => {
  const io = memoryIo(4 * MiB);
  const e = entry(3, 1, 3 * MiB);
  e[200] ^= 1;
  io.writeSync(MiB, e);
  assert.deepEqual(findActiveSequence(io, header), []);
  io.writeSync(MiB, entry(3, 1, 3 * MiB));
  assert.deepEqual(findActiveSequence(io, { ...header, logGuid: new Uint8Array(16).fill(1) }), []);
  assert.equal(findActiveSequence(io, header).length, 1);
  // No log GUID in the header: no log to look at.
  assert.deepEqual(findActiveSequence(io, { ...header, logGuid: new Uint8Array(16) }), []);
});

Deno.test("replaySequence() refuses a log that saw a longer file (a truncated image)", () => {
  const io = memoryIo(4 * MiB);
  io.writeSync(MiB, entry(1, 1, 3 * MiB, 8 * MiB));
  const seq = findActiveSequence(io, header);
  assert.throws(() => replaySequence(io, seq, () => 4 * MiB), /truncated/);
});
