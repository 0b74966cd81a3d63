// The block graph: opening an image builds format node -> file node (-> backing chain)

import { ImageOpenError, UsageError } from "../errors.ts";
import type { ParsedOptions } from "../options.ts";
import { parseOptions } from "../options.ts";
import type {
  FormatDescriptor,
  ProtocolDescriptor,
  ProtocolOpenOptions,
  Registry,
} from "../plugin.ts";
import type { BlockNode, CreateContext, ImageOpenOptions, OpenContext } from "./driver.ts";
import {
  backingPerm,
  BLK_PERM_CONSISTENT_READ,
  type BlockPerm,
  filePerm,
  userPerm,
} from "./perm.ts";

/** Bytes read from the start of a file for format probing (QEMU reads 2048). */
export const PROBE_BYTES = 2048;

/**
 * What QEMU 7.2 prints (on stderr, without a program prefix) when a raw image opened
 * read-write was probed rather than named with `format=raw`: block 0 is then guarded
 * (see {@linkcode BlockNode.restrictsBlockZero}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probedRawWarning } from "./graph.ts";
 *
 * assert.match(probedRawWarning("d.img"), /^WARNING: Image format was not specified for 'd.img'/);
 * ```
 */
export function probedRawWarning(filename: string): string {
  return `WARNING: Image format was not specified for '${filename}' and probing guessed raw.\n` +
    "         Automatically detecting the format is dangerous for raw images, " +
    "write operations on block 0 will be restricted.\n" +
    "         Specify the 'raw' format explicitly to remove the restrictions.";
}

/** QEMU refuses backing chains deeper than this (BDRV_MAX_BACKING_DEPTH... we pick a sane bound). */
export const MAX_BACKING_DEPTH = 64;

/** A backing chain that leads back to an image already in it. */
export class BackingLoopError extends ImageOpenError {
  constructor(message: string) {
    super(message);
    this.name = "BackingLoopError";
  }
}

/**
 * The graph's own `Could not open 'NAME'` around why an image did not open: qemu-img
 * prints it (its img_open adds the same words), qemu-system does not.
 */
export class ImageOpenWrapper extends ImageOpenError {
  constructor(filename: string, options: ErrorOptions) {
    super(`Could not open '${filename}'`, options);
    this.name = "ImageOpenWrapper";
  }
}

/**
 * Why an image did not open, without the graph's `Could not open 'NAME'`
 * ({@linkcode ImageOpenWrapper}): the words qemu-system-x86_64 prints after `-drive ...:`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageOpenWrapper, withoutOpenWrapper } from "./graph.ts";
 *
 * const why = new Error("Unsupported qcow2 version 4");
 * assert.equal(withoutOpenWrapper(new ImageOpenWrapper("a.qcow2", { cause: why })), why);
 * assert.equal(withoutOpenWrapper(why), why);
 * ```
 */
export function withoutOpenWrapper(error: unknown): unknown {
  return error instanceof ImageOpenWrapper && error.cause !== undefined ? error.cause : error;
}

/**
 * Resolves a backing file name stored in an image, as QEMU's `path_combine` does:
 * an absolute name (or a protocol URL) is kept, a relative one is taken relative to
 * the directory of the image that names it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveBackingName } from "./graph.ts";
 *
 * assert.equal(resolveBackingName("/vm/top.qcow2", "base.qcow2"), "/vm/base.qcow2");
 * assert.equal(resolveBackingName("dir/top.qcow2", "../base.raw"), "dir/../base.raw");
 * assert.equal(resolveBackingName("top.qcow2", "/abs/base"), "/abs/base");
 * ```
 */
export function resolveBackingName(imageFilename: string, backingName: string): string {
  if (backingName.startsWith("/") || /^[a-z][a-z0-9+.-]*:\/\//i.test(backingName)) {
    return backingName;
  }
  const slash = imageFilename.lastIndexOf("/");
  if (slash < 0) return backingName;
  return imageFilename.slice(0, slash + 1) + backingName;
}

/** The file's real path (symlinks resolved), for loop detection; lexical where it does not exist. */
function canonical(filename: string): string {
  try {
    return Deno.realPathSync(filename);
  } catch {
    // Absolute, with "." and ".." folded (what node:path's resolve() gives; kept off
    // node: so `img` starts without Node's compatibility layer).
    const parts: string[] = [];
    const full = filename.startsWith("/") ? filename : `${Deno.cwd()}/${filename}`;
    for (const part of full.split("/")) {
      if (part === "..") parts.pop();
      else if (part !== "" && part !== ".") parts.push(part);
    }
    return `/${parts.join("/")}`;
  }
}

/**
 * Opens and creates images through the registry's format and protocol plugins.
 * Formats reach other nodes (backing files, data files) only through the contexts
 * this graph hands them, so one plugin never imports another.
 */
export class BlockGraph {
  /**
   * `report` receives the lines a format prints for the user while it opens an image
   * (qcow2's repair of a dirty image lists what it fixed, as QEMU does on stderr).
   */
  constructor(
    readonly registry: Registry,
    readonly report: (line: string) => void = () => {},
  ) {}

  /**
   * The protocol that opens `filename` when no driver is named, as QEMU's
   * `bdrv_find_protocol` chooses it: the protocol whose `probeDevice` scores highest
   * (`host_device` for a block or character device), else `file`.
   */
  protocolFor(filename: string): ProtocolDescriptor {
    let best = this.registry.require("protocol", "file");
    let bestScore = 0;
    for (const p of this.registry.list("protocol")) {
      const score = p.probeDevice?.(filename) ?? 0;
      if (score > bestScore) {
        best = p;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * Opens a host file (or other protocol) as a protocol node, through `driver` when one
   * is named (`-blockdev driver=host_device`, `file.driver=file`), else through
   * {@linkcode protocolFor}'s choice.
   */
  openProtocol(
    filename: string,
    options: ProtocolOpenOptions,
    driver?: string,
  ): Promise<BlockNode> {
    const protocol = driver === undefined
      ? this.protocolFor(filename)
      : this.registry.require("protocol", driver);
    return protocol.open(filename, options);
  }

  /** Finds a format plugin by name, with qemu-img's error for an unknown one. */
  format(name: string): FormatDescriptor {
    const f = this.registry.get("format", name);
    if (!f) throw new UsageError(`Unknown file format '${name}'`);
    return f;
  }

  /** Probes which format a protocol node holds (raw when nothing else claims it). */
  async probe(file: BlockNode): Promise<FormatDescriptor> {
    // Always PROBE_BYTES, zero-filled past the end of a short file, as QEMU's probe buffer is:
    // a truncated header probes as its format (and then fails to open), not as raw.
    const header = new Uint8Array(PROBE_BYTES);
    await file.read(0, header.subarray(0, Math.min(PROBE_BYTES, file.size())));
    const found = this.registry.probeFormat(header, file.filename);
    if (!found) throw new ImageOpenError(`Could not determine the format of '${file.filename}'`);
    return found;
  }

  /**
   * Opens an image: its protocol node, its format (given or probed) and, unless
   * `noBacking`, its backing chain.
   */
  openImage(filename: string, options: ImageOpenOptions = {}): Promise<BlockNode> {
    const perm = userPerm(options.readOnly ?? false, options.access ?? {});
    return this.#locked(filename, (late) => this.#open(filename, options, [], perm, late));
  }

  /**
   * Runs an open, then takes the locks a filtering node's file waits for (QEMU takes
   * those when the image's user attaches, after the whole chain is open, so a refusal
   * names the top image and not `Could not open backing file`).
   */
  async #locked(
    filename: string,
    open: (late: (() => void)[]) => Promise<BlockNode>,
  ): Promise<BlockNode> {
    const late: (() => void)[] = [];
    const root = await open(late);
    try {
      for (const take of late) take();
    } catch (e) {
      await root.close();
      throw new ImageOpenWrapper(filename, { cause: e });
    }
    return root;
  }

  /**
   * Opens one node of a chain. Errors read as QEMU's: the top image adds
   * `Could not open 'top'`, a backing image adds `Could not open backing file`.
   */
  async #open(
    filename: string,
    options: ImageOpenOptions,
    chain: string[],
    perm: BlockPerm,
    late: (() => void)[],
  ): Promise<BlockNode> {
    const isBacking = chain.length > 0;
    const real = canonical(filename);
    if (chain.includes(real)) {
      throw new BackingLoopError(
        `Backing file loop: '${filename}' is its own backing file (chain: ${
          [...chain, real].map((p) => `'${p}'`).join(" -> ")
        })`,
      );
    }
    if (chain.length > MAX_BACKING_DEPTH) {
      throw new ImageOpenError(
        `Backing chain of '${filename}' is deeper than ${MAX_BACKING_DEPTH}`,
      );
    }
    const readOnly = options.readOnly ?? false;
    // `driver=file` (a protocol named where a format goes): the protocol node is the image.
    const protocolRoot = !isBacking && options.format !== undefined &&
      !this.registry.get("format", options.format) &&
      this.registry.get("protocol", options.format) !== undefined;
    let file: BlockNode;
    try {
      file = await this.openProtocol(filename, {
        readOnly,
        forceShare: options.forceShare,
        direct: options.direct,
        noFlush: options.noFlush,
        autoReadOnly: isBacking ? undefined : options.autoReadOnly,
        options: isBacking ? undefined : options.protocolOptions,
      }, protocolRoot ? options.format : isBacking ? undefined : options.protocol);
    } catch (e) {
      if (isBacking) throw e;
      throw new ImageOpenWrapper(filename, { cause: e });
    }
    if (protocolRoot) {
      if (file.setPerm) {
        const own = filePerm("filtered", perm, {
          writable: !file.readOnly,
          forceShare: options.forceShare,
        });
        late.push(() => file.setPerm!(own.perm, own.shared));
      }
      return file;
    }
    // auto-read-only fell back to a read-only open: the format must not write either.
    if (file.readOnly && !readOnly) {
      options = { ...options, readOnly: true };
      perm = userPerm(true, options.access ?? {});
    }
    return await this.#openFormat(file, filename, options, chain, perm, late);
  }

  /**
   * Opens an image whose protocol node is already open (`-blockdev driver=qcow2,file=NODE`).
   * `file` belongs to the image from here on: closing the image closes it, and a failed
   * open closes it too.
   */
  openImageOn(file: BlockNode, options: ImageOpenOptions = {}): Promise<BlockNode> {
    const perm = userPerm(options.readOnly ?? false, options.access ?? {});
    return this.#locked(
      file.filename,
      (late) => this.#openFormat(file, file.filename, options, [], perm, late),
    );
  }

  /** Opens the format of one node of a chain on its open protocol node `file`. */
  async #openFormat(
    file: BlockNode,
    filename: string,
    options: ImageOpenOptions,
    chain: string[],
    perm: BlockPerm,
    late: (() => void)[],
  ): Promise<BlockNode> {
    const isBacking = chain.length > 0;
    const readOnly = options.readOnly ?? false;
    const real = canonical(filename);
    try {
      const format = options.format ? this.format(options.format) : await this.probe(file);
      this.#lockFile(file, format, options, perm, isBacking, late);
      const formatOptions = options.formatOptions ?? {};
      const context: OpenContext = {
        options,
        openBacking: (backingName, backingFormat) => {
          const resolved = resolveBackingName(filename, backingName);
          // QEMU opens backing files read-only; commit reopens them read-write.
          const backingReadOnly = options.backingReadWrite ? false : true;
          return this.#open(
            resolved,
            {
              format: backingFormat,
              readOnly: backingReadOnly,
              forceShare: options.forceShare,
              direct: options.direct,
            },
            [...chain, real],
            backingReadOnly ? backingPerm(perm) : userPerm(false, {}),
            late,
          )
            .catch((e) => {
              if (e instanceof BackingLoopError) throw e;
              throw new ImageOpenError("Could not open backing file", { cause: e });
            });
        },
        // An image opened read-only opens nothing read-write: its data file and extents
        // follow it, whatever the format (or the image's metadata) asks for.
        openFile: async (name, o) => {
          const child = await this.openProtocol(resolveBackingName(filename, name), {
            ...o,
            readOnly: o.readOnly || readOnly,
          });
          this.#lockDataFile(child, options, perm);
          return child;
        },
        report: this.report,
        probed: !options.format,
        probeFormat: (header) => this.registry.probeFormat(header, file.filename)?.name,
      };
      return await format.open(file, formatOptions, context);
    } catch (e) {
      await file.close();
      if (isBacking || (e instanceof BackingLoopError && chain.length > 0)) throw e;
      throw new ImageOpenWrapper(filename, { cause: e });
    }
  }

  /**
   * Takes the image locks of `file` for what the format above it does (its role) and
   * what the format's users ask (`perm`). A format keeping metadata in the file locks
   * before it reads the file, as QEMU's format drivers do when they attach their file;
   * a filtering one (raw) passes its users' permissions through, taken with `late`.
   * A backing file reopened read-write (commit) is first taken read-only, as QEMU opens
   * it, so another writer is refused with the same words.
   */
  #lockFile(
    file: BlockNode,
    format: FormatDescriptor,
    options: ImageOpenOptions,
    perm: BlockPerm,
    isBacking: boolean,
    late: (() => void)[],
  ): void {
    if (!file.setPerm) return;
    const role = format.fileRole ?? "metadata";
    const writable = !(options.readOnly ?? false);
    const flags = { noIo: options.access?.noIo, forceShare: options.forceShare };
    const steps: BlockPerm[] = [];
    if (isBacking && writable) {
      steps.push(filePerm(role, backingPerm(perm), { ...flags, writable: false }));
    }
    steps.push(filePerm(role, perm, { ...flags, writable }));
    const take = () => {
      for (const p of steps) file.setPerm!(p.perm, p.shared);
    };
    if (role === "metadata") take();
    else late.push(take);
  }

  /**
   * Takes the locks of a file a format opened beside its own (a vmdk extent, a qcow2
   * `data_file`), as QEMU locks the file of such a data child: the image's users'
   * permissions, grown by resize where they write, resize denied to others. A refused
   * lock closes the file and fails the image's open.
   */
  #lockDataFile(child: BlockNode, options: ImageOpenOptions, perm: BlockPerm): void {
    if (!child.setPerm) return;
    const held = child.readOnly ? { ...perm, perm: perm.perm & BLK_PERM_CONSISTENT_READ } : perm;
    const p = filePerm("data", held, { writable: !child.readOnly, forceShare: options.forceShare });
    try {
      child.setPerm(p.perm, p.shared);
    } catch (e) {
      child.close().catch(() => {});
      throw e;
    }
  }

  /** The context formats use while creating an image. */
  createContext(): CreateContext {
    return {
      createFile: (filename, sizeBytes, opts) =>
        this.protocolFor(filename).create(filename, sizeBytes, opts),
      openFile: (filename, o) => this.openProtocol(filename, o),
      openImage: (filename, o) => this.openImage(filename, o),
      resolveBacking: resolveBackingName,
    };
  }

  /**
   * Creates an image of `format`. `options` is the raw `-o` text merged by the caller;
   * it is checked against the format's and the protocol's option lists, so a typo is
   * refused before anything is written.
   */
  async createImage(
    formatName: string,
    filename: string,
    sizeBytes: number,
    opts: ParsedOptions,
  ): Promise<void> {
    const format = this.format(formatName);
    await format.create(filename, sizeBytes, opts, this.createContext());
  }

  /** Parses `-o` text against a format's create options plus the file protocol's. */
  parseCreateOptions(formatName: string, text: string, into: ParsedOptions = {}): ParsedOptions {
    const format = this.format(formatName);
    const specs = [...format.options];
    for (const s of this.registry.require("protocol", "file").options) {
      if (!specs.some((f) => f.name === s.name)) specs.push(s);
    }
    return parseOptions(text, specs, { into });
  }
}
