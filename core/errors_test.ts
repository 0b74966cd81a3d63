import assert from "node:assert/strict";
import {
  errorChainMessage,
  hostIoError,
  ImageFormatError,
  ImageOpenError,
  invariant,
  InvariantError,
  UsageError,
} from "./errors.ts";

Deno.test("errorChainMessage() joins the cause chain with colons", () => {
  const e = new ImageOpenError("Could not open 'a.qcow2'", {
    cause: new ImageFormatError("Image is not in qcow2 format"),
  });
  assert.equal(errorChainMessage(e), "Could not open 'a.qcow2': Image is not in qcow2 format");
});

Deno.test("VmkitError carries its exit code", () => {
  assert.equal(new UsageError("x").exitCode, 1);
  assert.equal(new UsageError("x", { exitCode: 63 }).exitCode, 63);
});

Deno.test("hostIoError() uses strerror's words for known codes", () => {
  const e = hostIoError(Object.assign(new Error("raw"), { code: "ENOENT" }), "Could not open 'x'");
  assert.equal(e.message, "Could not open 'x': No such file or directory");
  assert.equal(e.code, "ENOENT");
});

Deno.test("invariant() throws an InvariantError when the condition fails", () => {
  assert.throws(() => invariant(false, "cache entry is pinned"), InvariantError);
});
