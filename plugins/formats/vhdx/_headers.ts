// The pair of VHDX headers of an open image and the update protocol that keeps one valid

import type { SyncIo } from "../../../core/block/sync_io.ts";
import {
  currentHeaderIndex,
  encodeHeader,
  parseHeader,
  randomGuid,
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_HEADER_FIELDS_SIZE,
  VHDX_HEADER_SIZE,
  type VhdxHeader,
} from "./header.ts";

const HEADER_OFFSETS = [VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET];

/**
 * Both headers of an open image. Every update writes the non-current header with
 * the next sequence number and makes it current, twice, so both end up valid and a
 * crash during either write leaves one valid header (MS-VHDX §2.2.2.1).
 */
export class VhdxHeaders {
  #io: SyncIo;
  #headers: [VhdxHeader | null, VhdxHeader | null];
  #current: number;
  /** This session's file write GUID, written before the session's first write (§2.2.2). */
  #sessionGuid = randomGuid();
  #firstWrite = true;

  constructor(io: SyncIo) {
    this.#io = io;
    this.#headers = [null, null];
    for (const [i, at] of HEADER_OFFSETS.entries()) {
      const block = new Uint8Array(VHDX_HEADER_SIZE);
      io.readSync(at, block);
      this.#headers[i] = parseHeader(block);
    }
    this.#current = currentHeaderIndex(this.#headers[0], this.#headers[1]);
  }

  /** The current header. */
  get current(): VhdxHeader {
    return this.#headers[this.#current]!;
  }

  /** Before the first write of a session: new file and data write GUIDs in both headers. */
  beforeFirstWrite(): void {
    if (!this.#firstWrite) return;
    this.#firstWrite = false;
    this.update({ newDataGuid: true });
  }

  /** Writes both headers with the change (a new data write GUID, a log GUID). */
  update(change: { newDataGuid?: boolean; logGuid?: Uint8Array }): void {
    const dataGuid = change.newDataGuid ? randomGuid() : undefined;
    for (let round = 0; round < 2; round++) {
      const active = this.current;
      const target = 1 - this.#current;
      const next: VhdxHeader = {
        ...active,
        sequenceNumber: active.sequenceNumber + 1,
        fileWriteGuid: this.#sessionGuid,
        dataWriteGuid: dataGuid ?? active.dataWriteGuid,
        logGuid: change.logGuid ?? active.logGuid,
      };
      // The reserved bytes of the 4 KiB block count in the checksum: keep what is there.
      const block = new Uint8Array(VHDX_HEADER_SIZE);
      this.#io.readSync(HEADER_OFFSETS[target], block);
      encodeHeader(next, block);
      this.#io.writeSync(HEADER_OFFSETS[target], block.subarray(0, VHDX_HEADER_FIELDS_SIZE));
      this.#io.flushSync();
      this.#headers[target] = next;
      this.#current = target;
    }
  }
}
