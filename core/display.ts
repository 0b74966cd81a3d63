// The display contract: a surface a graphics device renders into, the consoles of a machine, input flowing back, and PPM screendumps

import { type ServiceKey, serviceKey } from "./device.ts";
import { encodePng } from "./display_png.ts";
import { IoError, UsageError } from "./errors.ts";

/**
 * The pixel format of a surface: one 32-bit word per pixel, `0x00RRGGBB` (the low byte
 * blue), which is QEMU's default surface format (PIXMAN_x8r8g8b8).
 */
export type PixelFormat = "x8r8g8b8";

/** A rectangle of a surface, in pixels. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The largest surface a device may ask for: 64 Mi pixels (256 MiB), past any real mode
 * (8K is 33 Mi) yet bounded, where VBE alone would allow 16000x12000 (768 MiB).
 */
export const MAX_SURFACE_PIXELS = 8192 * 8192;

/**
 * The pixels a graphics device draws into, with the rectangles that changed since a
 * consumer (VNC, screendump, the browser console) last took them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DisplaySurface } from "./display.ts";
 *
 * const surface = new DisplaySurface(4, 2);
 * surface.takeDirty(); // a new surface is dirty as a whole
 * surface.pixels[5] = 0xff0000;
 * surface.markDirty(1, 1, 1, 1);
 * assert.deepEqual(surface.takeDirty(), [{ x: 1, y: 1, width: 1, height: 1 }]);
 * assert.deepEqual(surface.takeDirty(), []);
 * ```
 */
export class DisplaySurface {
  readonly format: PixelFormat = "x8r8g8b8";
  #width = 0;
  #height = 0;
  #pixels = new Uint32Array(0);
  #dirty: Rect[] = [];

  constructor(width = 640, height = 480) {
    this.resize(width, height);
  }

  /** Width in pixels. */
  get width(): number {
    return this.#width;
  }

  /** Height in pixels. */
  get height(): number {
    return this.#height;
  }

  /** The pixels, row after row with no padding (stride = width). */
  get pixels(): Uint32Array {
    return this.#pixels;
  }

  /**
   * Gives the surface a new size (a mode change); the content is cleared and all of it
   * is dirty. The same size keeps the pixels.
   *
   * @throws RangeError for a size that is not a positive integer or is too large
   */
  resize(width: number, height: number): void {
    if (
      !Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 ||
      width * height > MAX_SURFACE_PIXELS
    ) {
      throw new RangeError(`Invalid display surface size ${width}x${height}`);
    }
    if (width === this.#width && height === this.#height) return;
    this.#width = width;
    this.#height = height;
    this.#pixels = new Uint32Array(width * height);
    this.#dirty = [{ x: 0, y: 0, width, height }];
  }

  /**
   * Records that a rectangle changed, clipped to the surface. A rect the last one covers
   * is dropped; one of the same columns right under the last one extends it.
   */
  markDirty(x: number, y: number, width: number, height: number): void {
    const x0 = Math.max(0, x);
    const y0 = Math.max(0, y);
    const x1 = Math.min(this.#width, x + width);
    const y1 = Math.min(this.#height, y + height);
    if (x1 <= x0 || y1 <= y0) return;
    const last = this.#dirty[this.#dirty.length - 1];
    if (
      last && last.x <= x0 && last.y <= y0 && last.x + last.width >= x1 &&
      last.y + last.height >= y1
    ) {
      return; // already covered
    }
    // Renderers go top to bottom: a rect of the same columns right under the last one grows it.
    if (last && last.x === x0 && last.width === x1 - x0 && last.y + last.height === y0) {
      last.height += y1 - y0;
      return;
    }
    this.#dirty.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
  }

  /** The rectangles that changed since the last call, and forgets them. */
  takeDirty(): Rect[] {
    const dirty = this.#dirty;
    this.#dirty = [];
    return dirty;
  }
}

/** A key pressed or released, named by its PC scancode (set 1, 0xe0-prefixed keys as 0xe0xx). */
export interface KeyEvent {
  readonly type: "key";
  readonly scancode: number;
  readonly down: boolean;
}

/** Pointer buttons as bits: left 1, right 2, middle 4, wheel up 8, wheel down 16. */
export interface PointerEvent {
  readonly type: "pointer";
  /** Absolute position in surface pixels (`absolute`) or a relative motion. */
  readonly x: number;
  readonly y: number;
  readonly absolute: boolean;
  readonly buttons: number;
}

/** Input flowing back from a display client to the guest. */
export type InputEvent = KeyEvent | PointerEvent;

/** Something that takes input events (the i8042 keyboard and mouse, a USB tablet). */
export type InputHandler = (event: InputEvent) => void;

/** One screen of a machine: a graphics device that can bring its surface up to date. */
export interface GraphicConsole {
  /** The device id the console belongs to (`vga0`). */
  readonly id: string;
  /** Renders what changed in the device's memory into its surface and returns it. */
  update(): DisplaySurface;
  /**
   * A text console (QEMU's `vc`) takes keys as X11 keysyms while it is shown, instead
   * of the guest's keyboard taking scancodes.
   */
  putKeysym?(keysym: number, ctrl: boolean): void;
}

/**
 * The screens and input handlers of a machine: devices add consoles, the monitor,
 * VNC and the web console read them and send input back. A graphics device publishes
 * it under {@linkcode DISPLAY} with {@linkcode displayRegistry}; the monitor's
 * `screendump FILE` is `machine.findService(DISPLAY)?.screendump(FILE)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DisplayRegistry, DisplaySurface } from "./display.ts";
 *
 * const registry = new DisplayRegistry();
 * const surface = new DisplaySurface(2, 2);
 * registry.addConsole({ id: "vga0", update: () => surface });
 * const file = await Deno.makeTempFile({ suffix: ".ppm" });
 * await registry.screendump(file);
 * assert.equal((await Deno.readFile(file)).length, "P6\n2 2\n255\n".length + 2 * 2 * 3);
 * await Deno.remove(file);
 * ```
 */
export class DisplayRegistry {
  readonly #consoles: GraphicConsole[] = [];
  readonly #inputs: InputHandler[] = [];
  readonly #passwordTargets = new Map<string, (password: string) => boolean>();
  #active = 0;

  /** Adds a console; the first one added is console 0. */
  addConsole(console: GraphicConsole): void {
    this.#consoles.push(console);
  }

  /** The consoles, console 0 first. */
  get consoles(): readonly GraphicConsole[] {
    return this.#consoles;
  }

  /** A console by index, or undefined. */
  console(index = 0): GraphicConsole | undefined {
    return this.#consoles[index];
  }

  /** The index of the console display clients show (QEMU's active console; 0 at start). */
  get active(): number {
    return this.#active;
  }

  /**
   * Shows console `index` (Ctrl-Alt-1..9 in a VNC client); false, and nothing changes,
   * when there is no such console.
   */
  select(index: number): boolean {
    if (!this.#consoles[index]) return false;
    this.#active = index;
    return true;
  }

  /** Adds an input handler (keyboard or pointer device). */
  addInputHandler(handler: InputHandler): void {
    this.#inputs.push(handler);
  }

  /** Sends an input event to every handler. */
  sendInput(event: InputEvent): void {
    for (const handler of this.#inputs) handler(event);
  }

  /** Registers a remote display server (`vnc`) that takes a password from the monitor. */
  addPasswordTarget(protocol: string, setPassword: (password: string) => boolean): void {
    this.#passwordTargets.set(protocol, setPassword);
  }

  /**
   * Sets the password of the `protocol` server (`change vnc password`, QMP
   * `set_password`); false when no such server runs or it takes no password (QEMU's
   * "Could not set password").
   */
  setPassword(protocol: string, password: string): boolean {
    return this.#passwordTargets.get(protocol)?.(password) ?? false;
  }

  /**
   * Writes console `index`'s current screen to `path` as QEMU's `screendump` does (PPM,
   * or PNG with `format` `"png"`), with QEMU's messages when it cannot.
   *
   * @throws UsageError when there is no such console
   * @throws IoError when the file cannot be written
   */
  async screendump(path: string, index = 0, format: ScreendumpFormat = "ppm"): Promise<void> {
    const console = this.#consoles[index];
    if (!console) {
      throw new UsageError(
        index === 0
          ? "There is no console to take a screendump from"
          : `There is no console ${index} to take a screendump from`,
      );
    }
    const surface = console.update();
    const image = format === "png"
      ? await encodePng(surface.width, surface.height, surface.pixels)
      : encodePpm(surface);
    try {
      await Deno.writeFile(path, image);
    } catch (error) {
      // QEMU 7.2 words both messages the same (checked with its HMP screendump).
      // QEMU: "failed to open file '<path>': <strerror>"; Deno adds " (os error N): ...".
      const reason = (error as Error).message.replace(/ \(os error \d+\).*$/s, "");
      throw new IoError(`failed to open file '${path}': ${reason}`, { cause: error });
    }
  }
}

/** The image formats `screendump` writes, as QEMU 7.2 names them. */
export type ScreendumpFormat = "ppm" | "png";

/** The machine's displays (published by the first graphics device). */
export const DISPLAY: ServiceKey<DisplayRegistry> = serviceKey("display");

/**
 * The machine's display registry, published on first use.
 *
 * @param ctx the device context (or anything with its two service calls)
 */
export function displayRegistry(ctx: {
  findService<T>(key: ServiceKey<T>): T | undefined;
  provide<T>(key: ServiceKey<T>, service: T): void;
}): DisplayRegistry {
  let registry = ctx.findService(DISPLAY);
  if (!registry) {
    registry = new DisplayRegistry();
    ctx.provide(DISPLAY, registry);
  }
  return registry;
}

/**
 * Encodes a surface as a binary PPM exactly as QEMU's `screendump` writes it: the
 * header `P6\n<width> <height>\n255\n`, then red, green, blue bytes row after row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DisplaySurface, encodePpm } from "./display.ts";
 *
 * const surface = new DisplaySurface(2, 1);
 * surface.pixels.set([0x112233, 0xaabbcc]);
 * const ppm = encodePpm(surface);
 * assert.equal(new TextDecoder().decode(ppm.subarray(0, 11)), "P6\n2 1\n255\n");
 * assert.deepEqual([...ppm.subarray(11)], [0x11, 0x22, 0x33, 0xaa, 0xbb, 0xcc]);
 * ```
 */
export function encodePpm(surface: DisplaySurface): Uint8Array {
  const header = new TextEncoder().encode(`P6\n${surface.width} ${surface.height}\n255\n`);
  const pixels = surface.pixels;
  const out = new Uint8Array(header.length + pixels.length * 3);
  out.set(header);
  let at = header.length;
  for (let i = 0; i < pixels.length; i++) {
    const p = pixels[i];
    out[at++] = (p >>> 16) & 0xff;
    out[at++] = (p >>> 8) & 0xff;
    out[at++] = p & 0xff;
  }
  return out;
}

/** A decoded binary PPM: size and pixels in the surface format. */
export interface PpmImage {
  width: number;
  height: number;
  pixels: Uint32Array;
}

/**
 * Decodes a binary PPM (P6, maxval 255) as QEMU and vmkit write it.
 *
 * @throws RangeError for anything else (a clear message, never a huge allocation)
 */
export function decodePpm(bytes: Uint8Array): PpmImage {
  // The header is ASCII: magic, width, height, maxval separated by whitespace.
  const fields: string[] = [];
  let at = 0;
  while (fields.length < 4 && at < bytes.length && at < 64) {
    while (at < bytes.length && /\s/.test(String.fromCharCode(bytes[at]))) at++;
    let field = "";
    while (at < bytes.length && !/\s/.test(String.fromCharCode(bytes[at])) && field.length < 16) {
      field += String.fromCharCode(bytes[at++]);
    }
    fields.push(field);
  }
  at++; // the single whitespace after maxval
  const [magic, w, h, max] = fields;
  const width = Number(w);
  const height = Number(h);
  if (
    magic !== "P6" || max !== "255" || !Number.isInteger(width) || !Number.isInteger(height) ||
    width < 1 || height < 1 || width * height > MAX_SURFACE_PIXELS
  ) {
    throw new RangeError("Not a binary PPM of 8-bit RGB");
  }
  if (bytes.length - at < width * height * 3) throw new RangeError("PPM image data is truncated");
  const pixels = new Uint32Array(width * height);
  for (let i = 0; i < pixels.length; i++, at += 3) {
    pixels[i] = (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
  }
  return { width, height, pixels };
}
