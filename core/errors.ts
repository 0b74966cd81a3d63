// Error classes a user reads: each carries its message and the process exit code

/** Options accepted by every {@linkcode VmkitError}. */
export interface VmkitErrorOptions extends ErrorOptions {
  /** Exit code the CLI uses when this error reaches the top (default 1). */
  exitCode?: number;
}

/**
 * The base of every error whose message is meant for a user.
 *
 * The CLI prints `vmkit: ` followed by the message chain (each `cause` that is
 * itself a VmkitError adds `: <its message>`), and exits with {@linkcode exitCode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageOpenError, ImageFormatError, errorChainMessage } from "./errors.ts";
 *
 * const inner = new ImageFormatError("Image is not in qcow2 format");
 * const outer = new ImageOpenError("Could not open 'disk.img'", { cause: inner });
 * assert.equal(errorChainMessage(outer), "Could not open 'disk.img': Image is not in qcow2 format");
 * ```
 */
export class VmkitError extends Error {
  /** The process exit code for this failure. */
  readonly exitCode: number;
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, options);
    this.name = "VmkitError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** A command line or option that does not parse or is not allowed. */
export class UsageError extends VmkitError {
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "UsageError";
  }
}

/** An option value of the wrong shape or out of range (`size=12Q`, `cluster_size=1000`). */
export class OptionError extends VmkitError {
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "OptionError";
  }
}

/** An image whose on-disk content is not valid for its format. */
export class ImageFormatError extends VmkitError {
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "ImageFormatError";
  }
}

/** Opening an image failed; the cause says why. */
export class ImageOpenError extends VmkitError {
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "ImageOpenError";
  }
}

/** A feature that the format allows but vmkit (or the image's settings) does not support. */
export class NotSupportedError extends VmkitError {
  constructor(message: string, options?: VmkitErrorOptions) {
    super(message, { exitCode: 1, ...options });
    this.name = "NotSupportedError";
  }
}

/** A host I/O failure (the errno text is in the message). */
export class IoError extends VmkitError {
  /** The host error code name (`ENOENT`, `ENOSPC`...), when known. */
  readonly code?: string;
  constructor(message: string, options?: VmkitErrorOptions & { code?: string }) {
    super(message, { exitCode: 1, ...options });
    this.name = "IoError";
    this.code = options?.code;
  }
}

/** An assumption of vmkit's own code that did not hold: a bug in vmkit. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

/**
 * Checks an assumption of our own code; a failure is reported as a bug in vmkit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { invariant } from "./errors.ts";
 *
 * invariant(1 + 1 === 2, "arithmetic works");
 * assert.throws(() => invariant(false, "broken"), /broken/);
 * ```
 */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

/**
 * Joins the message of an error with the messages of its `cause` chain, as QEMU
 * prepends context to an `Error **errp`.
 */
export function errorChainMessage(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 16; depth++) {
    if (current instanceof Error) {
      if (current.message) parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(": ");
}

/** Turns a host error (from `node:fs` or `Deno.*`) into an {@linkcode IoError} with a plain message. */
export function hostIoError(error: unknown, what: string): IoError {
  const e = error as { code?: string; message?: string };
  const text = HOST_ERRNO_TEXT[e?.code ?? ""] ?? (e?.message ?? String(error));
  return new IoError(`${what}: ${text}`, { code: e?.code });
}

/**
 * The strerror() text QEMU prints for a failed read or write: the text of the error's
 * host code (`EINVAL`: "Invalid argument"), "Input/output error" when it has none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IoError, ioErrorText } from "./errors.ts";
 *
 * assert.equal(ioErrorText(new IoError("bad grain", { code: "EINVAL" })), "Invalid argument");
 * assert.equal(ioErrorText(new Error("anything")), "Input/output error");
 * ```
 */
export function ioErrorText(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (typeof code === "string" ? HOST_ERRNO_TEXT[code] : undefined) ?? HOST_ERRNO_TEXT.EIO;
}

// The strerror() texts QEMU prints, keyed by the code name node:fs reports.
const HOST_ERRNO_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ENOSPC: "No space left on device",
  EEXIST: "File exists",
  EROFS: "Read-only file system",
  EINVAL: "Invalid argument",
  EFBIG: "File too large",
  EIO: "Input/output error",
  EBUSY: "Device or resource busy",
  EAGAIN: "Resource temporarily unavailable",
};
