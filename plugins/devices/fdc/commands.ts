// The 82078's command bytes: what each matches, how many parameter bytes follow, what it does

import type { FloppyController } from "./controller.ts";
import { type Drive, seek } from "./geometry.ts";
import {
  DIR_READ,
  DIR_SCANE,
  DIR_SCANH,
  DIR_SCANL,
  DIR_VERIFY,
  DIR_WRITE,
  DOR_DMAEN,
  FDC_VERSION,
  SR0_ABNTERM,
  SR0_SEEK,
} from "./registers.ts";
import { startTransfer } from "./transfer.ts";

/** One command: the byte it matches under `mask`, its parameter count and what it does. */
interface Command {
  readonly value: number;
  readonly mask: number;
  readonly params: number;
  readonly run: (fdc: FloppyController) => void;
}

function seekCommand(fdc: FloppyController, to: (d: Drive) => number): void {
  const d = fdc.selectFromCommand();
  fdc.done(false);
  seek(d, d.head, to(d), d.sect);
  fdc.done(true);
}

/** SAVE's 15 bytes: the drives' tracks, timers, geometry, modes (QEMU's fdctrl_handle_save). */
function saveBytes(f: FloppyController): number[] {
  const d = f.cur;
  return [
    0,
    0,
    f.unit(0).track,
    f.unit(1).track,
    0,
    0,
    f.timer0,
    f.timer1,
    d.lastSect,
    (f.lock << 7) | (d.perpendicular << 2),
    f.config,
    f.precompTrack,
    f.powerDown,
    0,
    0,
  ];
}

/** RESTORE: takes back what SAVE gave, from its 17 parameter bytes; no result phase. */
function restore(f: FloppyController): void {
  const d = f.cur;
  f.unit(0).track = f.fifo[3];
  f.unit(1).track = f.fifo[4];
  f.timer0 = f.fifo[7];
  f.timer1 = f.fifo[8];
  d.lastSect = f.fifo[9];
  f.lock = f.fifo[10] >> 7;
  d.perpendicular = (f.fifo[10] >> 2) & 0xf;
  f.config = f.fifo[11];
  f.precompTrack = f.fifo[12];
  f.powerDown = f.fifo[13];
  f.done(false);
}

/**
 * DRIVE SPECIFICATION: its last byte's bit 7 ends it, with a 4-byte result when bit 6 is
 * set. Without bit 7 QEMU 7.2 waits for more bytes it never takes (RQM stays clear): only a
 * reset ends the command, as there.
 */
function driveSpecification(f: FloppyController): void {
  const last = f.fifo[5];
  if (!(last & 0x80)) return;
  if (last & 0x40) f.reply([f.fifo[1], f.fifo[1], 0, 0]);
  else f.done(false);
}

/**
 * The command table in QEMU 7.2's order (hw/block/fdc.c's handlers[]): the first entry
 * whose masked byte matches wins. Bits 7 (MT), 6 (MFM) and 5 (SK) of the data commands
 * are outside their masks.
 */
const COMMANDS: readonly Command[] = [
  { value: 0x06, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_READ) },
  { value: 0x05, mask: 0x3f, params: 8, run: (f) => startTransfer(f, DIR_WRITE) },
  { value: 0x0f, mask: 0xff, params: 2, run: (f) => seekCommand(f, () => f.fifo[2]) },
  { value: 0x08, mask: 0xff, params: 0, run: (f) => f.senseInterrupt() },
  {
    value: 0x07,
    mask: 0xff,
    params: 1,
    run: (f) => {
      const d = f.selectFromCommand();
      seek(d, 0, 0, 1);
      f.done(true);
    },
  },
  {
    // FORMAT TRACK: QEMU 7.2 takes the sector count as the track's (until the medium
    // changes), asks DMA for no ID fields and writes nothing: the result comes at once,
    // with no check of the medium, its write protection, the size code or DMA.
    value: 0x0d,
    mask: 0xbf,
    params: 5,
    run: (f) => {
      f.multiTrack = (f.fifo[0] & 0x80) !== 0;
      f.selectFromCommand().lastSect = f.fifo[3];
      f.stopTransfer(0, 0, 0);
    },
  },
  { value: 0x02, mask: 0xbf, params: 8, run: (f) => startTransfer(f, DIR_READ) },
  { value: 0x4e, mask: 0xff, params: 17, run: restore },
  { value: 0x2e, mask: 0xff, params: 0, run: (f) => f.reply(saveBytes(f)) },
  // READ/WRITE DELETED DATA: never any data, as in QEMU.
  { value: 0x0c, mask: 0x1f, params: 8, run: (f) => f.stopTransfer(SR0_ABNTERM | SR0_SEEK, 0, 0) },
  { value: 0x11, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_SCANE) },
  { value: 0x16, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_VERIFY) },
  { value: 0x19, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_SCANL) },
  { value: 0x1d, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_SCANH) },
  { value: 0x09, mask: 0x3f, params: 8, run: (f) => f.stopTransfer(SR0_ABNTERM | SR0_SEEK, 0, 0) },
  // READ ID: the current drive (QEMU does not select the one the command names).
  { value: 0x0a, mask: 0xbf, params: 1, run: (f) => f.readId() },
  {
    value: 0x03,
    mask: 0xff,
    params: 2,
    run: (f) => {
      f.timer0 = f.fifo[1] >> 4;
      f.timer1 = f.fifo[2] >> 1;
      f.dor = f.fifo[2] & 1 ? f.dor & ~DOR_DMAEN : f.dor | DOR_DMAEN;
      f.done(false);
    },
  },
  {
    value: 0x04,
    mask: 0xff,
    params: 1,
    run: (f) => {
      const d = f.selectFromCommand();
      d.head = (f.fifo[1] >> 2) & 1;
      f.reply([
        (d.readOnly ? 0x40 : 0) | (d.track === 0 ? 0x10 : 0) | (d.head << 2) | (f.curDrv & 1) |
        0x28,
      ]);
    },
  },
  {
    value: 0x12,
    mask: 0xff,
    params: 1,
    run: (f) => {
      if (f.fifo[1] & 0x80) f.drives[f.curDrv & 1].perpendicular = f.fifo[1] & 7;
      f.done(false);
    },
  },
  {
    value: 0x13,
    mask: 0xff,
    params: 3,
    run: (f) => {
      f.config = f.fifo[2];
      f.precompTrack = f.fifo[3];
      f.done(false);
    },
  },
  {
    value: 0x17,
    mask: 0xff,
    params: 2,
    run: (f) => {
      f.powerDown = f.fifo[1];
      f.reply([f.fifo[1]]);
    },
  },
  { value: 0x33, mask: 0xff, params: 1, run: (f) => f.done(false) },
  { value: 0x8e, mask: 0xff, params: 5, run: driveSpecification },
  {
    value: 0x8f,
    mask: 0xff,
    params: 2,
    run: (f) => seekCommand(f, (d) => f.fifo[2] > d.track ? 0 : d.track - f.fifo[2]),
  },
  // FORMAT AND WRITE: QEMU 7.2 takes its ten parameter bytes, then answers "invalid".
  { value: 0xcd, mask: 0xff, params: 10, run: (f) => f.invalid() },
  {
    value: 0xcf,
    mask: 0xff,
    params: 2,
    run: (f) =>
      seekCommand(
        f,
        (d) => f.fifo[2] + d.track >= d.maxTrack ? d.maxTrack - 1 : d.track + f.fifo[2],
      ),
  },
  {
    value: 0x14,
    mask: 0x7f,
    params: 0,
    run: (f) => {
      f.lock = f.fifo[0] & 0x80 ? 1 : 0;
      f.reply([f.lock << 4]);
    },
  },
  {
    value: 0x0e,
    mask: 0xff,
    params: 0,
    run: (f) => {
      const d = f.cur;
      f.reply([
        f.unit(0).track,
        f.unit(1).track,
        0,
        0,
        f.timer0,
        (f.timer1 << 1) | (f.dor & DOR_DMAEN ? 1 : 0),
        d.lastSect,
        (f.lock << 7) | (d.perpendicular << 2),
        f.config,
        f.precompTrack,
      ]);
    },
  },
  { value: 0x10, mask: 0xff, params: 0, run: (f) => f.reply([FDC_VERSION]) },
  { value: 0x18, mask: 0xff, params: 0, run: (f) => f.reply([0x41]) },
  { value: 0x05, mask: 0x1f, params: 8, run: (f) => startTransfer(f, DIR_WRITE) },
];

/** The unimplemented/unknown command: one byte, "invalid command". */
const UNKNOWN: Command = { value: 0, mask: 0, params: 0, run: (f) => f.invalid() };

const BY_BYTE: readonly Command[] = Array.from(
  { length: 256 },
  (_, byte) => COMMANDS.find((c) => (byte & c.mask) === c.value) ?? UNKNOWN,
);

/** The command a first byte starts (QEMU's command_to_handler). */
export function commandFor(byte: number): Command {
  return BY_BYTE[byte & 0xff];
}
