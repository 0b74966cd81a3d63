// One RFB client connection: the handshake, its messages, its copy of the screen and the updates it is sent

import type { DisplaySurface } from "../../../core/display.ts";
import { keysymToScancode, xtKeycodeToScancode } from "./keysym.ts";
import { vncAuthResponse } from "./vnc_auth.ts";
import {
  ByteWriter,
  encodeTight,
  encodeZrle,
  type PixelRect,
  tightPieces,
  ZlibStream,
} from "./rfb_encodings.ts";
import { findScroll, TILE, tileRects } from "./rfb_changes.ts";
import {
  encodeRaw,
  PixelConverter,
  readPixelFormat,
  type RfbPixelFormat,
  SERVER_PIXEL_FORMAT,
  writePixelFormat,
} from "./rfb_pixels.ts";
import type { RfbServer } from "./rfb_server.ts";

/** Encoding numbers (RFC 6143 §7.7, §7.8; Tight and QEMU's from the RFB community registry). */
export const ENCODING_RAW = 0;
export const ENCODING_COPYRECT = 1;
export const ENCODING_TIGHT = 7;
export const ENCODING_ZRLE = 16;
export const ENCODING_DESKTOP_SIZE = -223;
export const ENCODING_QEMU_EXTENDED_KEY_EVENT = -258;

/** The most a ClientCutText may carry; more closes the connection (QEMU's 1 MiB limit). */
export const MAX_CUT_TEXT_BYTES = 1 << 20;
/** Replies other than updates that may wait for a client that does not read. */
export const MAX_QUEUED_BYTES = 1 << 20;

class InputBuffer {
  #buf = new Uint8Array(4096);
  #start = 0;
  #end = 0;

  get available(): number {
    return this.#end - this.#start;
  }

  push(data: Uint8Array): void {
    if (this.#end + data.length > this.#buf.length) {
      // Move the unread bytes to the front, into a bigger buffer when they need one.
      const live = this.#end - this.#start;
      let size = this.#buf.length;
      while (size < live + data.length) size *= 2;
      if (size === this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(size);
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buf.set(data, this.#end);
    this.#end += data.length;
  }

  peek(n: number): Uint8Array {
    return this.#buf.subarray(this.#start, this.#start + n);
  }

  take(n: number): Uint8Array {
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return out;
  }
}

type Phase = "version" | "security" | "auth" | "init" | "normal" | "closed";

/** RFB security types (RFC 6143 §7.2). */
const SECURITY_NONE = 1;
const SECURITY_VNC_AUTH = 2;

/** One connected client: its protocol state, its copy of the screen and its wishes. */
export class RfbConnection {
  readonly #server: RfbServer;
  readonly #conn: Deno.Conn;
  #phase: Phase = "version";
  #minor = 8;
  #in = new InputBuffer();
  #pf: RfbPixelFormat = SERVER_PIXEL_FORMAT;
  #conv = new PixelConverter(SERVER_PIXEL_FORMAT);
  #encodings: number[] = [];
  #zrle = new ZlibStream();
  #tight = new ZlibStream();
  /** What the client holds: its framebuffer size and pixels, as last sent. */
  #width = 0;
  #height = 0;
  #shadow = new Uint32Array(0);
  #dirty = new Uint8Array(0);
  #tilesX = 0;
  #wantUpdate = false;
  #forced: PixelRect | null = null;
  #announceKeys = false;
  #sending = false;
  #writes: Promise<void> = Promise.resolve();
  #pressed = new Set<number>();
  /** Keys the client holds, whoever heard them (for Ctrl-Alt-N with several consoles). */
  #held = new Set<number>();
  #queued = 0;
  #challenge = new Uint8Array(16);
  /** The surface size this client's copy was made for (differs from its own without DesktopSize). */
  #sourceWidth = 0;
  #sourceHeight = 0;
  #buttons = 0;

  constructor(server: RfbServer, conn: Deno.Conn) {
    this.#server = server;
    this.#conn = conn;
  }

  get ready(): boolean {
    return this.#phase === "normal";
  }

  get closed(): boolean {
    return this.#phase === "closed";
  }

  /** Reads and answers the client until it goes away. */
  async serve(): Promise<void> {
    this.#send(new TextEncoder().encode("RFB 003.008\n"));
    const chunk = new Uint8Array(65536);
    try {
      while (this.#phase !== "closed") {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#in.push(chunk.subarray(0, n));
        if (!this.#parse()) {
          this.#server.stats.rejected++;
          // Let a refusal's reason reach the client, for a moment at most.
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([this.#writes, new Promise((r) => (timer = setTimeout(r, 500)))]);
          clearTimeout(timer);
          break;
        }
      }
    } catch {
      // A reset connection ends the session like a close.
    }
    this.close();
  }

  /** Closes the connection and lets go of keys the client held. */
  close(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#releaseGuestKeys();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#server.forget(this);
  }

  /**
   * Queues bytes behind those already being written. Besides the one update in flight,
   * a client that does not read may leave at most {@linkcode MAX_QUEUED_BYTES} of other
   * replies (colour maps, handshake) waiting; past that it is closed.
   */
  #send(bytes: Uint8Array, update = false): Promise<void> {
    const conn = this.#conn;
    if (!update) {
      this.#queued += bytes.length;
      if (this.#queued > MAX_QUEUED_BYTES) {
        this.#server.stats.rejected++;
        this.close();
        return Promise.resolve();
      }
    }
    this.#writes = this.#writes.then(async () => {
      if (!update) this.#queued -= bytes.length;
      let at = 0;
      while (at < bytes.length && this.#phase !== "closed") {
        at += await conn.write(bytes.subarray(at));
      }
      this.#server.stats.bytesSent += bytes.length;
    }).catch(() => this.close());
    return this.#writes;
  }

  /** Parses what has arrived; false for a violation that closes the connection. */
  #parse(): boolean {
    for (;;) {
      const need = this.#needed();
      if (need === 0) return true;
      if (need < 0) return false;
      const msg = this.#in.take(need);
      if (!this.#handle(msg)) return false;
      if (this.#phase === "closed") return true;
    }
  }

  /** The length of the next message once enough of it is here; 0 to wait; -1 when invalid. */
  #needed(): number {
    const have = this.#in.available;
    switch (this.#phase) {
      case "version":
        return have >= 12 ? 12 : 0;
      case "security":
        return have >= 1 ? 1 : 0;
      case "auth":
        return have >= 16 ? 16 : 0;
      case "init":
        return have >= 1 ? 1 : 0;
      case "closed":
        return 0;
    }
    if (have < 1) return 0;
    const head = this.#in.peek(Math.min(have, 8));
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const fixed = (n: number) => (have >= n ? n : 0);
    switch (head[0]) {
      case 0: // SetPixelFormat
        return fixed(20);
      case 2: // SetEncodings: 4 + 4 per encoding (at most 65535: 256 KiB)
        return have < 4 ? 0 : fixed(4 + 4 * view.getUint16(2));
      case 3: // FramebufferUpdateRequest
        return fixed(10);
      case 4: // KeyEvent
        return fixed(8);
      case 5: // PointerEvent
        return fixed(6);
      case 6: { // ClientCutText
        if (have < 8) return 0;
        const length = view.getInt32(4);
        // A negative length is the extended-clipboard form, which this server never offered.
        if (length < 0 || length > MAX_CUT_TEXT_BYTES) return -1;
        return fixed(8 + length);
      }
      case 255: // QEMU client message: subtype 0 is the extended key event
        if (have < 2) return 0;
        return head[1] === 0 ? fixed(12) : -1;
      default:
        return -1;
    }
  }

  #handle(msg: Uint8Array): boolean {
    const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    switch (this.#phase) {
      case "version":
        return this.#version(msg);
      case "security":
        // The client's choice (3.7, 3.8) of the one type offered.
        if (msg[0] !== this.#securityType()) {
          if (this.#minor >= 8) this.#failSecurity("Unsupported security type");
          return false;
        }
        if (msg[0] === SECURITY_VNC_AUTH) {
          this.#sendChallenge();
          return true;
        }
        if (this.#minor >= 8) this.#send(new Uint8Array([0, 0, 0, 0])); // SecurityResult OK
        this.#phase = "init";
        return true;
      case "auth": {
        const password = this.#server.password;
        const expected = password === null ? null : vncAuthResponse(password, this.#challenge);
        if (!expected || expected.some((b, i) => b !== msg[i])) {
          // 3.3 and 3.7 end with the failed result, 3.8 adds a reason.
          if (this.#minor >= 8) this.#failSecurity("Authentication failed");
          else this.#send(new Uint8Array([0, 0, 0, 1]));
          return false;
        }
        this.#send(new Uint8Array([0, 0, 0, 0]));
        this.#phase = "init";
        return true;
      }
      case "init":
        this.#server.clientInit(this, msg[0] !== 0);
        this.#serverInit();
        this.#phase = "normal";
        return true;
    }
    switch (msg[0]) {
      case 0: {
        const pf = readPixelFormat(msg, 4);
        if (!pf) return false;
        this.#pf = pf;
        this.#conv = new PixelConverter(pf);
        if (!pf.trueColour) this.#sendColourMap();
        this.#invalidate();
        return true;
      }
      case 2: {
        const count = view.getUint16(2);
        this.#encodings = [];
        for (let i = 0; i < count; i++) this.#encodings.push(view.getInt32(4 + 4 * i));
        this.#announceKeys = this.#encodings.includes(ENCODING_QEMU_EXTENDED_KEY_EVENT);
        return true;
      }
      case 3: {
        const incremental = msg[1] !== 0;
        const rect = {
          x: view.getUint16(2),
          y: view.getUint16(4),
          width: view.getUint16(6),
          height: view.getUint16(8),
        };
        this.#wantUpdate = true;
        if (!incremental) this.#forced = rect;
        this.#server.wake();
        return true;
      }
      case 4: {
        const keysym = view.getUint32(4);
        this.#keyEvent(keysym, keysymToScancode(keysym), msg[1] !== 0);
        return true;
      }
      case 5: {
        const mask = msg[1];
        // RFB buttons: 1 left, 2 middle, 4 right, 8/16 wheel; the display's: left 1, right 2, middle 4.
        this.#buttons = (mask & 1) | ((mask & 4) >> 1) | ((mask & 2) << 1) | (mask & 0x18);
        this.#server.input({
          type: "pointer",
          x: Math.min(view.getUint16(2), Math.max(0, this.#width - 1)),
          y: Math.min(view.getUint16(4), Math.max(0, this.#height - 1)),
          absolute: true,
          buttons: this.#buttons,
        });
        return true;
      }
      case 6:
        return true; // the guest has no clipboard to receive it
      case 255: {
        const keysym = view.getUint32(4);
        const code = xtKeycodeToScancode(view.getUint32(8)) ?? keysymToScancode(keysym);
        this.#keyEvent(keysym, code, view.getUint16(2) !== 0);
        return true;
      }
    }
    return false;
  }

  /**
   * A key from the client. With one graphics console it goes to the guest as ever (a
   * text console alone, as with `-vga none`, takes it). With more
   * (a `vc`), Ctrl-Alt-1..9 shows console 1..9 as in QEMU (the keys the guest holds are
   * let go first, and the digit reaches nobody), and a text console shown takes the
   * keys as keysyms while the guest hears none of them.
   */
  #keyEvent(keysym: number, code: number | undefined, down: boolean): void {
    const several = this.#server.consoleCount > 1;
    if (!several && !this.#server.textConsoleShown) {
      if (code !== undefined) this.#key(code, down);
      return;
    }
    if (code !== undefined) {
      if (down) this.#held.add(code);
      else this.#held.delete(code);
    }
    const ctrl = this.#held.has(0x1d) || this.#held.has(0xe01d);
    if (
      down && code !== undefined && code >= 0x02 && code <= 0x0a && ctrl &&
      this.#held.has(0x38)
    ) {
      this.#releaseGuestKeys();
      this.#held.clear();
      this.#server.selectConsole(code - 0x02);
      return;
    }
    if (this.#server.textKey(keysym, ctrl, down)) return;
    // A release of a key the guest never heard pressed (it went to a text console) is dropped.
    if (code !== undefined && (down || this.#pressed.has(code))) this.#key(code, down);
  }

  /** Lets go of every key the guest was told is held. */
  #releaseGuestKeys(): void {
    for (const code of this.#pressed) {
      this.#server.input({ type: "key", scancode: code, down: false });
    }
    this.#pressed.clear();
  }

  #key(code: number, down: boolean): void {
    if (down) this.#pressed.add(code);
    else this.#pressed.delete(code);
    this.#server.input({ type: "key", scancode: code, down });
  }

  #version(msg: Uint8Array): boolean {
    const text = new TextDecoder().decode(msg);
    const match = /^RFB (\d{3})\.(\d{3})\n$/.exec(text);
    if (!match || Number(match[1]) !== 3) return false;
    const minor = Number(match[2]);
    // RFC 6143 §7.1.1: a version the server does not know is taken as 3.3.
    this.#minor = minor >= 8 ? 8 : minor === 7 ? 7 : 3;
    const type = this.#securityType();
    if (this.#minor === 3) {
      this.#send(new Uint8Array([0, 0, 0, type])); // the server picks
      if (type === SECURITY_VNC_AUTH) this.#sendChallenge();
      else this.#phase = "init";
    } else {
      this.#send(new Uint8Array([1, type])); // one type offered
      this.#phase = "security";
    }
    return true;
  }

  /** VNC Authentication with `password=on`, else None. */
  #securityType(): number {
    return this.#server.passwordRequired ? SECURITY_VNC_AUTH : SECURITY_NONE;
  }

  #sendChallenge(): void {
    this.#challenge = crypto.getRandomValues(new Uint8Array(16));
    this.#send(this.#challenge.slice());
    this.#phase = "auth";
  }

  #failSecurity(reason: string): void {
    const text = new TextEncoder().encode(reason);
    const out = new ByteWriter();
    out.u32(1);
    out.u32(text.length);
    out.bytes(text);
    this.#send(out.view().slice());
  }

  #serverInit(): void {
    const surface = this.#server.surface();
    this.#resizeShadow(surface.width, surface.height);
    this.#sourceWidth = surface.width;
    this.#sourceHeight = surface.height;
    const name = new TextEncoder().encode(this.#server.name);
    const out = new Uint8Array(24 + name.length);
    const view = new DataView(out.buffer);
    view.setUint16(0, surface.width);
    view.setUint16(2, surface.height);
    writePixelFormat(SERVER_PIXEL_FORMAT, out, 4);
    view.setUint32(20, name.length);
    out.set(name, 24);
    this.#send(out);
  }

  /** SetColourMapEntries with the 3-3-2 map a palette client is given. */
  #sendColourMap(): void {
    const out = new ByteWriter();
    out.byte(1);
    out.byte(0);
    out.u16(0);
    out.u16(256);
    for (let i = 0; i < 256; i++) {
      out.u16(Math.round(((i >> 5) & 7) * 65535 / 7));
      out.u16(Math.round(((i >> 2) & 7) * 65535 / 7));
      out.u16(Math.round((i & 3) * 65535 / 3));
    }
    this.#send(out.view().slice());
  }

  #resizeShadow(width: number, height: number): void {
    this.#width = width;
    this.#height = height;
    this.#shadow = new Uint32Array(width * height);
    this.#tilesX = Math.ceil(width / TILE);
    this.#dirty = new Uint8Array(this.#tilesX * Math.ceil(height / TILE)).fill(1);
  }

  /** Forgets what the client holds: the next update sends everything. */
  #invalidate(): void {
    this.#dirty.fill(1);
    this.#forced = { x: 0, y: 0, width: this.#width, height: this.#height };
  }

  /** Notes rectangles of the surface that changed. */
  markDirty(rects: readonly PixelRect[]): void {
    for (const r of rects) {
      const tx1 = Math.min(this.#tilesX, Math.ceil((r.x + r.width) / TILE));
      const ty1 = Math.min(this.#dirty.length / this.#tilesX, Math.ceil((r.y + r.height) / TILE));
      for (let ty = Math.floor(r.y / TILE); ty < ty1; ty++) {
        for (let tx = Math.floor(r.x / TILE); tx < tx1; tx++) {
          this.#dirty[ty * this.#tilesX + tx] = 1;
        }
      }
    }
  }

  /** Sends an update when the client asked for one, nothing is in flight and something changed. */
  maybeUpdate(surface: DisplaySurface): void {
    if (this.#phase !== "normal" || !this.#wantUpdate || this.#sending) return;
    const rects: Uint8Array[] = [];
    let count = 0;
    const add = (
      x: number,
      y: number,
      w: number,
      h: number,
      encoding: number,
      data: Uint8Array,
    ) => {
      const head = new Uint8Array(12);
      const v = new DataView(head.buffer);
      v.setUint16(0, x);
      v.setUint16(2, y);
      v.setUint16(4, w);
      v.setUint16(6, h);
      v.setInt32(8, encoding);
      rects.push(head, data);
      count++;
    };
    if (this.#announceKeys) {
      // A pseudo-rectangle tells the client the server takes QEMU extended key events.
      add(0, 0, 0, 0, ENCODING_QEMU_EXTENDED_KEY_EVENT, new Uint8Array(0));
      this.#announceKeys = false;
    }
    if (surface.width !== this.#sourceWidth || surface.height !== this.#sourceHeight) {
      this.#sourceWidth = surface.width;
      this.#sourceHeight = surface.height;
      if (surface.width === this.#width && surface.height === this.#height) {
        this.#dirty.fill(1);
      } else if (this.#encodings.includes(ENCODING_DESKTOP_SIZE)) {
        add(0, 0, surface.width, surface.height, ENCODING_DESKTOP_SIZE, new Uint8Array(0));
        this.#resizeShadow(surface.width, surface.height);
        this.#forced = { x: 0, y: 0, width: surface.width, height: surface.height };
      } else {
        // The client keeps its size: it is sent the part of the screen that fits.
        this.#shadow.fill(0xff000000); // no surface pixel has a top byte: all differ
        this.#dirty.fill(1);
      }
    }
    const width = Math.min(this.#width, surface.width);
    const height = Math.min(this.#height, surface.height);
    const changed = this.#changedTiles(surface, width, height);
    if (this.#encodings.includes(ENCODING_COPYRECT) && changed.count * 4 >= changed.tiles.length) {
      const scroll = findScroll(
        surface.pixels,
        surface.width,
        this.#shadow,
        this.#width,
        width,
        height,
      );
      if (scroll) {
        add(0, scroll.y, width, scroll.height, ENCODING_COPYRECT, u16Pair(0, scroll.y + scroll.dy));
        this.#applyScroll(scroll, width);
        const again = this.#changedTiles(surface, width, height);
        changed.tiles = again.tiles;
        changed.count = again.count;
      }
    }
    for (const r of tileRects(changed.tiles, this.#tilesX, width, height)) {
      this.#copyToShadow(surface, r);
      for (const [encoding, data] of this.#encode(surface, r)) {
        add(data.rect.x, data.rect.y, data.rect.width, data.rect.height, encoding, data.bytes);
      }
    }
    this.#dirty.fill(0);
    this.#forced = null;
    if (count === 0) return; // nothing changed: the request waits
    this.#wantUpdate = false;
    const out = new ByteWriter();
    out.byte(0);
    out.byte(0);
    out.u16(count);
    for (const part of rects) out.bytes(part);
    this.#sending = true;
    this.#server.stats.updates++;
    this.#server.stats.rects += count;
    this.#send(out.view(), true).finally(() => {
      this.#sending = false;
      this.#server.wake();
    });
  }

  /** The tiles whose pixels differ from the client's copy, plus those a full request forces. */
  #changedTiles(surface: DisplaySurface, width: number, height: number) {
    const tiles = new Uint8Array(this.#dirty.length);
    let count = 0;
    const px = surface.pixels;
    const sw = surface.width;
    const shadow = this.#shadow;
    const f = this.#forced;
    for (let ty = 0, t = 0; ty * TILE < height; ty++) {
      for (let tx = 0; tx < this.#tilesX; tx++, t++) {
        const x0 = tx * TILE;
        const y0 = ty * TILE;
        if (x0 >= width) continue;
        const x1 = Math.min(width, x0 + TILE);
        const y1 = Math.min(height, y0 + TILE);
        let differs = f !== null && x0 < f.x + f.width && f.x < x1 && y0 < f.y + f.height &&
          f.y < y1;
        if (!differs && this.#dirty[t]) {
          for (let y = y0; y < y1 && !differs; y++) {
            const a = y * sw;
            const b = y * this.#width;
            for (let x = x0; x < x1; x++) {
              if (px[a + x] !== shadow[b + x]) {
                differs = true;
                break;
              }
            }
          }
        }
        if (differs) {
          tiles[t] = 1;
          count++;
        }
      }
    }
    return { tiles, count };
  }

  /** Moves the client's copy as the CopyRect will move the client's framebuffer. */
  #applyScroll(scroll: { y: number; height: number; dy: number }, width: number): void {
    const w = this.#width;
    const moved = this.#shadow.slice(
      (scroll.y + scroll.dy) * w,
      (scroll.y + scroll.dy + scroll.height) * w,
    );
    for (let y = 0; y < scroll.height; y++) {
      this.#shadow.set(moved.subarray(y * w, y * w + width), (scroll.y + y) * w);
    }
    this.#dirty.fill(1);
  }

  #copyToShadow(surface: DisplaySurface, r: PixelRect): void {
    for (let y = r.y; y < r.y + r.height; y++) {
      const from = y * surface.width + r.x;
      this.#shadow.set(surface.pixels.subarray(from, from + r.width), y * this.#width + r.x);
    }
  }

  /** The rectangle in the client's preferred encoding it can take. */
  #encode(
    surface: DisplaySurface,
    r: PixelRect,
  ): [number, { rect: PixelRect; bytes: Uint8Array }][] {
    const px = surface.pixels;
    const stride = surface.width;
    const preferred =
      this.#encodings.find((e) =>
        e === ENCODING_ZRLE || e === ENCODING_TIGHT || e === ENCODING_RAW
      ) ?? ENCODING_RAW;
    if (preferred === ENCODING_ZRLE) {
      return [[ENCODING_ZRLE, {
        rect: r,
        bytes: encodeZrle(px, stride, r, this.#conv, this.#zrle),
      }]];
    }
    if (preferred === ENCODING_TIGHT) {
      const pf = this.#pf;
      const rgb24 = pf.trueColour && pf.bitsPerPixel === 32 && pf.depth === 24 &&
        pf.redMax === 255 && pf.greenMax === 255 && pf.blueMax === 255;
      return tightPieces(r).map((p) => [
        ENCODING_TIGHT,
        { rect: p, bytes: encodeTight(px, stride, p, this.#conv, this.#tight, rgb24) },
      ]);
    }
    return [[ENCODING_RAW, { rect: r, bytes: encodeRaw(px, stride, r, this.#conv) }]];
  }
}

function u16Pair(a: number, b: number): Uint8Array {
  return new Uint8Array([a >> 8, a & 0xff, b >> 8, b & 0xff]);
}

/**
 * A VNC server over a machine's display: clients attach with {@linkcode RfbServer.serve},
 * a timer looks at the screen while any client waits for an update, and input from
 * clients goes to the display's input handlers. The guest never waits for a client:
 * a client that reads slowly gets fewer, later updates, each at most one screen.
 */
