// Whole-machine state for savevm/loadvm: the byte encoding of device state, and the
// machine's stream of sections (clock and timers, CPUs, RAM, devices)

import { Buffer } from "node:buffer";
import type { Device, DeviceState, StateValue } from "./device.ts";
import { GUEST_RAM } from "./device.ts";
import { VmkitError } from "./errors.ts";
import type { Machine } from "./machine.ts";
import { X86_STATE_BYTES, X86State } from "./x86_state.ts";

/** The first 8 bytes of a vmkit vmstate stream. */
export const VMSTATE_MAGIC = "VMKITVMS";
/** The stream format version this code writes and reads. */
export const VMSTATE_VERSION = 1;
/** Guest pages the RAM section tells apart (zero pages take one bit). */
export const VMSTATE_PAGE_BYTES = 4096;

/** A saved state that does not fit this machine, or a stream that is damaged. */
export class VmStateError extends VmkitError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "VmStateError";
  }
}

const TAG_NULL = 0;
const TAG_FALSE = 1;
const TAG_TRUE = 2;
const TAG_NUMBER = 3;
const TAG_STRING = 4;
const TAG_ARRAY = 5;
const TAG_OBJECT = 6;
// Typed arrays: tag 16 + kind.
const TYPED_KINDS = [Uint8Array, Uint16Array, Uint32Array, Int32Array, Float64Array] as const;
const TAG_TYPED = 16;
// A large Uint8Array (video RAM) as its length, a page bitmap and the used pages.
const TAG_SPARSE_BYTES = 32;
const SPARSE_MIN_BYTES = 64 * 1024;

/** Appends bytes to a growing buffer. */
class ByteWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #length = 0;

  #room(n: number): void {
    if (this.#length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.#room(1);
    this.#buf[this.#length++] = v;
  }

  u32(v: number): void {
    this.#room(4);
    this.#view.setUint32(this.#length, v, true);
    this.#length += 4;
  }

  f64(v: number): void {
    this.#room(8);
    this.#view.setFloat64(this.#length, v, true);
    this.#length += 8;
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#length);
    this.#length += b.length;
  }

  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    this.bytes(b);
  }

  done(): Uint8Array {
    return this.#buf.slice(0, this.#length);
  }
}

/** Reads what {@linkcode ByteWriter} wrote; every length is checked against the input. */
class ByteReader {
  #view: DataView;
  pos = 0;

  constructor(readonly buf: Uint8Array) {
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  #need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new VmStateError("Saved VM state is truncated or damaged");
    }
  }

  u8(): number {
    this.#need(1);
    return this.buf[this.pos++];
  }

  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.#need(8);
    const v = this.#view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.#need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  string(): string {
    return new TextDecoder().decode(this.bytes(this.u32()));
  }
}

function writeValue(w: ByteWriter, v: StateValue, path: string): void {
  if (v === null) return w.u8(TAG_NULL);
  if (typeof v === "boolean") return w.u8(v ? TAG_TRUE : TAG_FALSE);
  if (typeof v === "number") {
    w.u8(TAG_NUMBER);
    return w.f64(v);
  }
  if (typeof v === "string") {
    w.u8(TAG_STRING);
    return w.string(v);
  }
  if (v instanceof Uint8Array && v.length >= SPARSE_MIN_BYTES) {
    const { bitmap, runs } = usedPages(v);
    w.u8(TAG_SPARSE_BYTES);
    w.f64(v.length);
    w.bytes(bitmap);
    for (const [a, b] of runs) w.bytes(v.subarray(a, b));
    return;
  }
  if (ArrayBuffer.isView(v)) {
    const kind = TYPED_KINDS.findIndex((k) => v.constructor === k);
    if (kind < 0) throw new TypeError(`${path}: ${v.constructor.name} cannot be saved`);
    w.u8(TAG_TYPED + kind);
    w.u32(v.byteLength);
    return w.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  if (Array.isArray(v)) {
    w.u8(TAG_ARRAY);
    w.u32(v.length);
    v.forEach((item, i) => writeValue(w, item, `${path}[${i}]`));
    return;
  }
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const entries = Object.entries(v).filter(([, item]) => item !== undefined);
    w.u8(TAG_OBJECT);
    w.u32(entries.length);
    for (const [key, item] of entries) {
      w.string(key);
      writeValue(w, item, `${path}.${key}`);
    }
    return;
  }
  throw new TypeError(`${path}: a ${typeof v} cannot be saved`);
}

function readValue(r: ByteReader, depth: number): StateValue {
  if (depth > 64) throw new VmStateError("Saved VM state nests too deeply");
  const tag = r.u8();
  switch (tag) {
    case TAG_NULL:
      return null;
    case TAG_FALSE:
      return false;
    case TAG_TRUE:
      return true;
    case TAG_NUMBER:
      return r.f64();
    case TAG_STRING:
      return r.string();
    case TAG_ARRAY: {
      const n = r.u32();
      if (n > r.buf.length - r.pos) throw new VmStateError("Saved VM state is truncated");
      const out: StateValue[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
      return out;
    }
    case TAG_OBJECT: {
      const n = r.u32();
      if (n > r.buf.length - r.pos) throw new VmStateError("Saved VM state is truncated");
      const out: { [key: string]: StateValue } = {};
      for (let i = 0; i < n; i++) {
        const key = r.string();
        if (key === "__proto__") throw new VmStateError("Saved VM state has a bad field name");
        out[key] = readValue(r, depth + 1);
      }
      return out;
    }
  }
  if (tag === TAG_SPARSE_BYTES) {
    const n = r.f64();
    // The bitmap alone takes a byte per 8 pages: a length the input cannot back is refused.
    if (!Number.isSafeInteger(n) || n < 0 || n / VMSTATE_PAGE_BYTES / 8 > r.buf.length - r.pos) {
      throw new VmStateError("Saved VM state is damaged");
    }
    const out = new Uint8Array(n);
    readPages(out, r);
    return out;
  }
  const kind = TYPED_KINDS[tag - TAG_TYPED];
  if (!kind) throw new VmStateError(`Saved VM state has an unknown value tag ${tag}`);
  const n = r.u32();
  if (n % kind.BYTES_PER_ELEMENT !== 0) throw new VmStateError("Saved VM state is damaged");
  const copy = r.bytes(n).slice(); // aligned, and not a view of the stream
  return new kind(copy.buffer);
}

/**
 * Encodes a device state (plain values and typed arrays) as bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeState, encodeState } from "./vmstate.ts";
 *
 * const state = { imr: 0xff, name: "pic", regs: new Uint16Array([1, 2]), q: [true, null] };
 * assert.deepEqual(decodeState(encodeState(state)), state);
 * ```
 */
export function encodeState(value: StateValue): Uint8Array {
  const w = new ByteWriter();
  writeValue(w, value, "state");
  return w.done();
}

/** Decodes what {@linkcode encodeState} made; a damaged input is a {@linkcode VmStateError}. */
export function decodeState(bytes: Uint8Array): StateValue {
  const r = new ByteReader(bytes);
  const v = readValue(r, 0);
  if (r.pos !== bytes.length) throw new VmStateError("Saved VM state has trailing bytes");
  return v;
}

/** The state version of a device (1 unless it declares one). */
function deviceVersion(d: Device): number {
  return d.stateVersion ?? 1;
}

/**
 * What keeps the machine from being saved now, as QEMU's migration blockers: one line
 * per device or CPU that cannot save its state. Empty when savevm may go ahead.
 */
export function migrationBlockers(machine: Machine): string[] {
  const out: string[] = [];
  machine.cpus.forEach((cpu, i) => {
    if (!cpu.getState || !cpu.setState) {
      out.push(`CPU ${i} (${cpu.arch} ${cpu.model}) cannot save its state`);
    }
  });
  if (!machine.findService(GUEST_RAM)) out.push("the machine does not publish its RAM");
  for (const d of machine.devices) {
    const why = d.migrationBlocker?.();
    if (why) out.push(`device '${d.id}' (${d.model}): ${why}`);
  }
  return out;
}

/** A saved machine: byte pieces to write one after another, and their total. */
export interface VmStateStream {
  chunks: Uint8Array[];
  bytes: number;
}

/** The stream's pieces as one array (what loadMachineState takes). */
export function streamBytes(stream: VmStateStream): Uint8Array {
  const out = new Uint8Array(stream.bytes);
  let at = 0;
  for (const c of stream.chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function section(name: string, version: number, payload: Uint8Array[]): Uint8Array[] {
  const w = new ByteWriter();
  w.string(name);
  w.u32(version);
  w.f64(payload.reduce((n, p) => n + p.length, 0));
  return [w.done(), ...payload];
}

const ZERO_BLOCK = Buffer.alloc(16 * VMSTATE_PAGE_BYTES);

/** True when `bytes[start, end)` holds anything but zeroes (a native compare with zeroes). */
function rangeUsed(bytes: Uint8Array, start: number, end: number): boolean {
  for (let at = start; at < end; at += ZERO_BLOCK.length) {
    const n = Math.min(ZERO_BLOCK.length, end - at);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, n);
    if (Buffer.compare(view, n === ZERO_BLOCK.length ? ZERO_BLOCK : ZERO_BLOCK.subarray(0, n))) {
      return true;
    }
  }
  return false;
}

/** Which 4 KiB pages of `bytes` hold anything but zeroes: a bitmap, and runs of them. */
function usedPages(bytes: Uint8Array): { bitmap: Uint8Array; runs: [number, number][] } {
  const P = VMSTATE_PAGE_BYTES;
  const pages = Math.ceil(bytes.length / P);
  const bitmap = new Uint8Array(Math.ceil(pages / 8));
  const runs: [number, number][] = [];
  let runStart = -1;
  const pageUsed = (p: number) => rangeUsed(bytes, p * P, Math.min((p + 1) * P, bytes.length));
  for (let p = 0; p < pages; p++) {
    // Sixteen zero pages at once are the common case in a guest's RAM.
    if (p % 16 === 0 && p + 16 <= pages && !rangeUsed(bytes, p * P, (p + 16) * P)) {
      if (runStart >= 0) runs.push([runStart * P, p * P]);
      runStart = -1;
      p += 15;
      continue;
    }
    if (pageUsed(p)) {
      bitmap[p >> 3] |= 1 << (p & 7);
      if (runStart < 0) runStart = p;
    } else if (runStart >= 0) {
      runs.push([runStart * P, p * P]);
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push([runStart * P, bytes.length]);
  return { bitmap, runs };
}

// RAM: its size, the bitmap of used pages, then those pages (views of RAM, a run of
// neighbours as one piece).
function ramSection(ram: Uint8Array): Uint8Array[] {
  const { bitmap, runs } = usedPages(ram);
  const head = new ByteWriter();
  head.f64(ram.length);
  head.bytes(bitmap);
  return [head.done(), ...runs.map(([a, b]) => ram.subarray(a, b))];
}

/** Reads pages written by {@linkcode ramSection} or a sparse array into `out` (zeroed). */
function readPages(out: Uint8Array, r: ByteReader): void {
  const pages = Math.ceil(out.length / VMSTATE_PAGE_BYTES);
  const bitmap = r.bytes(Math.ceil(pages / 8));
  for (let p = 0; p < pages; p++) {
    const at = p * VMSTATE_PAGE_BYTES;
    const end = Math.min(at + VMSTATE_PAGE_BYTES, out.length);
    if (bitmap[p >> 3] & (1 << (p & 7))) out.set(r.bytes(end - at), at);
    // Only pages that are not zero already are written: RAM never touched stays unmapped.
    else if (rangeUsed(out, at, end)) out.fill(0, at, end);
  }
}

function loadRam(ram: Uint8Array, r: ByteReader): void {
  const length = r.f64();
  if (length !== ram.length) {
    throw new VmStateError(`Saved RAM is ${length} bytes, this machine has ${ram.length}`);
  }
  readPages(ram, r);
}

/**
 * Saves the whole machine (it must be stopped, with no host I/O in flight): the
 * virtual clock and every timer, each CPU's architectural state, RAM, and each
 * device's state with its version. Throws when a blocker stands in the way.
 */
export function saveMachineState(machine: Machine): VmStateStream {
  const blockers = migrationBlockers(machine);
  if (blockers.length > 0) throw new VmStateError(`Cannot save the VM: ${blockers.join("; ")}`);
  if (machine.loop.pendingIo > 0) {
    throw new VmStateError("Cannot save the VM: host I/O is still in flight");
  }
  const chunks: Uint8Array[] = [];
  const head = new ByteWriter();
  head.bytes(new TextEncoder().encode(VMSTATE_MAGIC));
  head.u32(VMSTATE_VERSION);
  chunks.push(head.done());
  const clock = { nowNs: machine.loop.nowNs, a20: machine.a20, cpus: machine.cpus.length };
  chunks.push(...section("machine", 1, [encodeState(clock)]));
  chunks.push(...section("timers", 1, [encodeState(machine.loop.saveTimers())]));
  machine.cpus.forEach((cpu, i) => {
    const st = new X86State();
    cpu.getState!(st);
    chunks.push(...section(`cpu${i}`, 1, [st.bytes.slice()]));
  });
  chunks.push(...section("ram", 1, ramSection(machine.service(GUEST_RAM))));
  for (const d of machine.devices) {
    let payload: Uint8Array;
    try {
      payload = encodeState({ model: d.model, state: d.saveState() });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new VmStateError(`Cannot save the VM: device '${d.id}' (${d.model}): ${why}`);
    }
    chunks.push(...section(`device:${d.id}`, deviceVersion(d), [payload]));
  }
  chunks.push(...section("end", 1, []));
  return { chunks, bytes: chunks.reduce((n, c) => n + c.length, 0) };
}

/**
 * Restores a machine saved by {@linkcode saveMachineState} into a machine built from
 * the same command line (stopped, realized). Every section is checked before any is
 * applied where it can be: a device or CPU count that does not match is refused.
 */
export function loadMachineState(machine: Machine, bytes: Uint8Array): void {
  const r = new ByteReader(bytes);
  const magic = new TextDecoder().decode(r.bytes(8));
  if (magic !== VMSTATE_MAGIC) throw new VmStateError("Saved VM state is not in vmkit's format");
  const version = r.u32();
  if (version !== VMSTATE_VERSION) {
    throw new VmStateError(`Saved VM state has format version ${version}, not ${VMSTATE_VERSION}`);
  }
  const sections = new Map<string, { version: number; payload: Uint8Array }>();
  for (;;) {
    const name = r.string();
    const v = r.u32();
    const length = r.f64();
    if (!Number.isSafeInteger(length) || length < 0) throw new VmStateError("Bad section length");
    const payload = r.bytes(length);
    if (name === "end") break;
    sections.set(name, { version: v, payload });
  }
  const need = (name: string) => {
    const s = sections.get(name);
    if (!s) throw new VmStateError(`Saved VM state lacks '${name}'`);
    return s;
  };
  const info = decodeState(need("machine").payload) as {
    nowNs: number;
    a20: boolean;
    cpus: number;
  };
  if (info.cpus !== machine.cpus.length) {
    throw new VmStateError(`Saved VM has ${info.cpus} CPUs, this machine ${machine.cpus.length}`);
  }
  // Check every device first: the same set, the same models, versions this code reads.
  const devices = new Map<string, { model: string; state: DeviceState }>();
  for (const d of machine.devices) {
    const s = sections.get(`device:${d.id}`);
    if (!s) throw new VmStateError(`Saved VM state lacks device '${d.id}'`);
    if (s.version > deviceVersion(d)) {
      throw new VmStateError(
        `Device '${d.id}' was saved with state version ${s.version}, newer than ${
          deviceVersion(d)
        }`,
      );
    }
    const saved = decodeState(s.payload) as { model: string; state: DeviceState };
    if (saved.model !== d.model) {
      throw new VmStateError(`Device '${d.id}' was a '${saved.model}', now a '${d.model}'`);
    }
    devices.set(d.id, saved);
  }
  for (const name of sections.keys()) {
    if (name.startsWith("device:") && !machine.device(name.slice(7))) {
      throw new VmStateError(`Saved VM state has a device '${name.slice(7)}' this machine lacks`);
    }
  }
  const cpuStates = machine.cpus.map((_, i) => {
    const b = need(`cpu${i}`).payload;
    if (b.length !== X86_STATE_BYTES) throw new VmStateError(`CPU ${i} state has a wrong size`);
    return b;
  });
  const ram = machine.service(GUEST_RAM);
  // Applied in dependency order: the clock (the TSC follows it), RAM, CPUs, devices,
  // and the timers last, since a device's loadState may arm or cancel its own.
  machine.loop.restoreClock(info.nowNs);
  loadRam(ram, new ByteReader(need("ram").payload));
  machine.setA20(info.a20);
  machine.cpus.forEach((cpu, i) => {
    const st = new X86State();
    st.bytes.set(cpuStates[i]);
    cpu.setState!(st);
  });
  for (const d of machine.devices) d.loadState(devices.get(d.id)!.state);
  machine.loop.restoreTimers(
    decodeState(need("timers").payload) as { name: string; deadlineNs: number }[],
  );
  machine.kick();
}
