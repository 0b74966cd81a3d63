// A small RFB client for tests: handshake, pixel format, encodings, and a framebuffer kept from raw, CopyRect, ZRLE, Tight and DesktopSize

import { loadZlib, zlibSync } from "../../../core/zlib.ts";
import type { Inflate } from "node:zlib";
import { vncAuthResponse } from "./vnc_auth.ts";

/** What the test client saw from the server. */
export interface ClientFrame {
  width: number;
  height: number;
  pixels: Uint32Array;
  /** Encodings of every rectangle received, in order. */
  encodings: number[];
}

/** An RFB client over a connection, decoding into a 32 bpp x8r8g8b8 framebuffer. */
export class TestRfbClient {
  readonly conn: Deno.Conn;
  name = "";
  frame: ClientFrame = { width: 0, height: 0, pixels: new Uint32Array(0), encodings: [] };
  /** Pixels the rectangles of the last update covered (pseudo-encodings left out). */
  lastUpdatePixels = 0;
  /** Bytes received and not yet taken: whole chunks, the first from `#at` on. */
  #chunks: Uint8Array[] = [];
  #at = 0;
  #have = 0;
  #zrle: InflateStream | undefined;
  /** ZRLE rectangles of the update being read, decoded together at its end. */
  #zrleRects: { x: number; y: number; width: number; height: number }[] = [];
  #zrleData: Uint8Array[] = [];
  #tight: InflateStream | undefined;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** The next `n` bytes from the server (a fresh copy), reading as many as it takes. */
  async #need(n: number): Promise<Uint8Array> {
    while (this.#have < n) {
      const chunk = new Uint8Array(Math.max(65536, Math.min(n - this.#have, 1 << 22)));
      const got = await this.conn.read(chunk);
      if (got === null) throw new Error("connection closed");
      this.#chunks.push(chunk.subarray(0, got));
      this.#have += got;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[0];
      const take = Math.min(n - filled, head.length - this.#at);
      out.set(head.subarray(this.#at, this.#at + take), filled);
      filled += take;
      this.#at += take;
      if (this.#at === head.length) {
        this.#chunks.shift();
        this.#at = 0;
      }
    }
    this.#have -= n;
    return out;
  }

  async write(bytes: number[] | Uint8Array): Promise<void> {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let at = 0;
    while (at < data.length) at += await this.conn.write(data.subarray(at));
  }

  /**
   * The RFB handshake (3.8 unless `version` says otherwise) with security None, or VNC
   * Authentication when the server asks and `password` is given; returns the server's
   * name. Throws with the server's reason when it refuses.
   */
  async handshake(
    options: { shared?: boolean; version?: string; password?: string } = {},
  ): Promise<string> {
    await loadZlib();
    const version = new TextDecoder().decode(await this.#need(12));
    if (!version.startsWith("RFB 003.00")) throw new Error(`server version ${version}`);
    const mine = options.version ?? "RFB 003.008\n";
    await this.write(new TextEncoder().encode(mine));
    let type: number;
    if (mine === "RFB 003.003\n") {
      type = new DataView((await this.#need(4)).buffer).getUint32(0);
      if (type === 0) throw new Error("refused");
    } else {
      const count = (await this.#need(1))[0];
      if (count === 0) throw new Error("refused");
      const types = await this.#need(count);
      type = types.includes(1) ? 1 : types.includes(2) && options.password !== undefined ? 2 : 0;
      if (type === 0) throw new Error(`no security type to choose from ${[...types]}`);
      await this.write([type]);
    }
    if (type === 2) {
      const challenge = await this.#need(16);
      await this.write(vncAuthResponse(options.password ?? "", challenge));
    }
    if (type === 2 || mine === "RFB 003.008\n") {
      const result = new DataView((await this.#need(4)).buffer).getUint32(0);
      if (result !== 0) {
        let reason = "";
        if (mine === "RFB 003.008\n") {
          const length = new DataView((await this.#need(4)).buffer).getUint32(0);
          reason = new TextDecoder().decode(await this.#need(length));
        }
        throw new Error(`security failed: ${reason}`);
      }
    }
    await this.write([options.shared === false ? 0 : 1]);
    const init = await this.#need(24);
    const view = new DataView(init.buffer);
    this.#resize(view.getUint16(0), view.getUint16(2));
    const name = await this.#need(view.getUint32(20));
    this.name = new TextDecoder().decode(name);
    return this.name;
  }

  #resize(width: number, height: number): void {
    this.frame.width = width;
    this.frame.height = height;
    this.frame.pixels = new Uint32Array(width * height);
  }

  /** SetEncodings. */
  async setEncodings(list: number[]): Promise<void> {
    const out = new Uint8Array(4 + 4 * list.length);
    const view = new DataView(out.buffer);
    out[0] = 2;
    view.setUint16(2, list.length);
    list.forEach((e, i) => view.setInt32(4 + 4 * i, e));
    await this.write(out);
  }

  /** FramebufferUpdateRequest for the whole screen. */
  async request(incremental: boolean): Promise<void> {
    const out = new Uint8Array(10);
    const view = new DataView(out.buffer);
    out[0] = 3;
    out[1] = incremental ? 1 : 0;
    view.setUint16(6, this.frame.width || 0xffff);
    view.setUint16(8, this.frame.height || 0xffff);
    await this.write(out);
  }

  /** KeyEvent. */
  async key(keysym: number, down: boolean): Promise<void> {
    const out = new Uint8Array(8);
    out[0] = 4;
    out[1] = down ? 1 : 0;
    new DataView(out.buffer).setUint32(4, keysym);
    await this.write(out);
  }

  /** PointerEvent. */
  async pointer(x: number, y: number, mask: number): Promise<void> {
    const out = new Uint8Array(6);
    const view = new DataView(out.buffer);
    out[0] = 5;
    out[1] = mask;
    view.setUint16(2, x);
    view.setUint16(4, y);
    await this.write(out);
  }

  /** Reads one server message; returns its type (0 for an update, applied to the frame). */
  async receive(): Promise<number> {
    const type = (await this.#need(1))[0];
    if (type === 1) { // SetColourMapEntries
      const head = await this.#need(5);
      await this.#need(new DataView(head.buffer).getUint16(3) * 6);
      return 1;
    }
    if (type === 2) return 2; // Bell
    if (type !== 0) throw new Error(`server message ${type}`);
    const head = await this.#need(3);
    const count = new DataView(head.buffer).getUint16(1);
    this.lastUpdatePixels = 0;
    for (let i = 0; i < count; i++) {
      const r = await this.#need(12);
      const v = new DataView(r.buffer);
      const [x, y, w, h, enc] = [
        v.getUint16(0),
        v.getUint16(2),
        v.getUint16(4),
        v.getUint16(6),
        v.getInt32(8),
      ];
      this.frame.encodings.push(enc);
      if (enc >= 0) this.lastUpdatePixels += w * h;
      if (enc !== 16) await this.#flushZrle();
      await this.#rect(x, y, w, h, enc);
    }
    await this.#flushZrle();
    return 0;
  }

  /** Reads messages until an update arrives. */
  async update(): Promise<ClientFrame> {
    while ((await this.receive()) !== 0) { /* skip */ }
    return this.frame;
  }

  #put(x: number, y: number, _w: number, values: Uint32Array | number[], row: number): void {
    this.frame.pixels.set(values, (y + row) * this.frame.width + x);
  }

  async #rect(x: number, y: number, w: number, h: number, enc: number): Promise<void> {
    const f = this.frame;
    if (enc === -223) {
      this.#resize(w, h);
      return;
    }
    if (enc === -258) return;
    if (enc === 0) {
      const data = await this.#need(w * h * 4);
      const px = new Uint32Array(data.buffer);
      for (let r = 0; r < h; r++) this.#put(x, y, w, px.subarray(r * w, r * w + w), r);
      return;
    }
    if (enc === 1) {
      const src = new DataView((await this.#need(4)).buffer);
      const sx = src.getUint16(0);
      const sy = src.getUint16(2);
      const copy = new Uint32Array(w * h);
      for (let r = 0; r < h; r++) {
        copy.set(f.pixels.subarray((sy + r) * f.width + sx, (sy + r) * f.width + sx + w), r * w);
      }
      for (let r = 0; r < h; r++) this.#put(x, y, w, copy.subarray(r * w, r * w + w), r);
      return;
    }
    if (enc === 16) {
      const length = new DataView((await this.#need(4)).buffer).getUint32(0);
      this.#zrleData.push(await this.#need(length));
      this.#zrleRects.push({ x, y, width: w, height: h });
      return;
    }
    if (enc === 7) {
      const control = (await this.#need(1))[0];
      if (control === 0x80) {
        const p = await this.#need(3);
        const v = (p[0] << 16) | (p[1] << 8) | p[2];
        for (let r = 0; r < h; r++) this.#put(x, y, w, new Uint32Array(w).fill(v), r);
        return;
      }
      if (control !== 0) throw new Error(`tight control ${control}`);
      let data: Uint8Array;
      if (w * h * 3 < 12) {
        data = await this.#need(w * h * 3);
      } else {
        let length = 0;
        for (let i = 0; i < 3; i++) {
          const b = (await this.#need(1))[0];
          length |= (i === 2 ? b : b & 0x7f) << (7 * i);
          if (i < 2 && !(b & 0x80)) break;
        }
        this.#tight ??= new InflateStream();
        data = await this.#tight.inflate(await this.#need(length));
      }
      for (let r = 0; r < h; r++) {
        const row = new Uint32Array(w);
        for (let c = 0; c < w; c++) {
          const at = (r * w + c) * 3;
          row[c] = (data[at] << 16) | (data[at + 1] << 8) | data[at + 2];
        }
        this.#put(x, y, w, row, r);
      }
      return;
    }
    throw new Error(`encoding ${enc}`);
  }

  /** Decodes one ZRLE rectangle from `data` at `start`; returns where the next begins. */
  #decodeZrle(
    data: Uint8Array,
    start: number,
    rx: number,
    ry: number,
    rw: number,
    rh: number,
  ): number {
    let at = start;
    const cpixel = () => {
      const v = data[at] | (data[at + 1] << 8) | (data[at + 2] << 16);
      at += 3;
      return v;
    };
    for (let ty = ry; ty < ry + rh; ty += 64) {
      const th = Math.min(64, ry + rh - ty);
      for (let tx = rx; tx < rx + rw; tx += 64) {
        const tw = Math.min(64, rx + rw - tx);
        const tile = new Uint32Array(tw * th);
        const sub = data[at++];
        if (sub === 0) {
          for (let i = 0; i < tile.length; i++) tile[i] = cpixel();
        } else if (sub === 1) {
          tile.fill(cpixel());
        } else if (sub >= 2 && sub <= 16) {
          const palette = Array.from({ length: sub }, cpixel);
          const bits = sub <= 2 ? 1 : sub <= 4 ? 2 : 4;
          for (let r = 0; r < th; r++) {
            let bitPos = 0;
            for (let c = 0; c < tw; c++) {
              const byte = data[at + (bitPos >> 3)];
              const index = (byte >> (8 - bits - (bitPos & 7))) & ((1 << bits) - 1);
              tile[r * tw + c] = palette[index];
              bitPos += bits;
            }
            at += Math.ceil((tw * bits) / 8);
          }
        } else if (sub >= 128) {
          const palette = sub === 128 ? [] : Array.from({ length: sub - 128 }, cpixel);
          let i = 0;
          while (i < tile.length) {
            let v: number;
            let length = 1;
            if (sub === 128) {
              v = cpixel();
              length = 1;
              let b: number;
              do {
                b = data[at++];
                length += b;
              } while (b === 255);
            } else {
              const index = data[at++];
              v = palette[index & 0x7f];
              if (index & 0x80) {
                let b: number;
                do {
                  b = data[at++];
                  length += b;
                } while (b === 255);
              }
            }
            tile.fill(v, i, i + length);
            i += length;
          }
        } else {
          throw new Error(`zrle subencoding ${sub}`);
        }
        for (let r = 0; r < th; r++) this.#put(tx, ty, tw, tile.subarray(r * tw, r * tw + tw), r);
      }
    }
    return at;
  }

  /**
   * Inflates the ZRLE rectangles of an update read so far in one go (one flush of the
   * stream, not one per rectangle: QEMU sends a rectangle per 64x64 tile) and decodes them.
   */
  async #flushZrle(): Promise<void> {
    if (this.#zrleRects.length === 0) return;
    const total = this.#zrleData.reduce((n, d) => n + d.length, 0);
    const joined = new Uint8Array(total);
    let o = 0;
    for (const d of this.#zrleData) {
      joined.set(d, o);
      o += d.length;
    }
    this.#zrle ??= new InflateStream();
    const data = await this.#zrle.inflate(joined);
    let at = 0;
    for (const r of this.#zrleRects) at = this.#decodeZrle(data, at, r.x, r.y, r.width, r.height);
    this.#zrleRects = [];
    this.#zrleData = [];
  }
}

/**
 * One zlib stream a server keeps for the whole connection (ZRLE's, Tight's stream 0),
 * inflated piece by piece as the pieces arrive: a piece may refer back to bytes of
 * earlier ones, as QEMU's do, so the inflater lives as long as the connection.
 */
class InflateStream {
  #stream: Inflate;
  #out: Uint8Array[] = [];
  #error: Error | undefined;

  constructor() {
    // Large output chunks: a full 1024x768 tile stream is a few MiB.
    this.#stream = zlibSync().createInflate({ chunkSize: 1 << 20 });
    this.#stream.on("data", (chunk: Uint8Array) => this.#out.push(chunk));
    this.#stream.on("error", (error: Error) => (this.#error = error));
  }

  /** What `piece` (ended by the server's sync flush) inflates to. */
  inflate(piece: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#stream.write(piece);
      this.#stream.flush(zlibSync().constants.Z_SYNC_FLUSH, () => {
        if (this.#error) return reject(this.#error);
        const out = new Uint8Array(this.#out.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of this.#out) {
          out.set(c, at);
          at += c.length;
        }
        this.#out = [];
        resolve(out);
      });
    });
  }
}
