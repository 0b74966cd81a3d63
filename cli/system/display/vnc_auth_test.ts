// DES and the VNC authentication response, against FIPS vectors and the host's openssl

import { skipUnless } from "../../../tests/skip.ts";
import assert from "node:assert/strict";
import { desEncryptBlock, vncAuthResponse } from "./vnc_auth.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));

/** openssl's DES-ECB of `block` under `key` (its legacy provider), or undefined without it. */
async function opensslDes(key: Uint8Array, block: Uint8Array): Promise<string | undefined> {
  try {
    const child = new Deno.Command("openssl", {
      args: [
        "enc",
        "-des-ecb",
        "-nopad",
        "-K",
        hex(key),
        "-provider",
        "legacy",
        "-provider",
        "default",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(block);
    await writer.close();
    const out = await child.output();
    return out.success && out.stdout.length === 8 ? hex(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

const HAVE_OPENSSL_DES = (await opensslDes(new Uint8Array(8), new Uint8Array(8))) !== undefined;

Deno.test("desEncryptBlock() gives the FIPS 46 test vectors", () => {
  assert.equal(hex(desEncryptBlock(new Uint8Array(8), new Uint8Array(8))), "8ca64de9c1b123a7");
  assert.equal(
    hex(desEncryptBlock(unhex("133457799bbcdff1"), unhex("0123456789abcdef"))),
    "85e813540f0ab405",
  );
  assert.equal(
    hex(desEncryptBlock(unhex("0e329232ea6d0d73"), unhex("8787878787878787"))),
    "0000000000000000",
  );
});

Deno.test({
  name: "desEncryptBlock() agrees with openssl's DES-ECB on random keys and blocks" +
    (HAVE_OPENSSL_DES ? "" : " (ignored: openssl without its legacy DES provider)"),
  ignore: skipUnless(import.meta, "openssl", {
    ok: HAVE_OPENSSL_DES,
    missing: "openssl has no DES-ECB (its legacy provider is missing)",
  }),
  async fn() {
    for (let i = 0; i < 16; i++) {
      const key = crypto.getRandomValues(new Uint8Array(8));
      const block = crypto.getRandomValues(new Uint8Array(8));
      assert.equal(hex(desEncryptBlock(key, block)), await opensslDes(key, block));
    }
  },
});

Deno.test("vncAuthResponse() keys DES with the password's bits reversed, both halves", () => {
  const challenge = unhex("00112233445566778899aabbccddeeff");
  const response = vncAuthResponse("secret", challenge);
  // "secret" with each byte's bits reversed, zero-padded: ce a6 c6 4e a6 2e 00 00.
  const key = unhex("cea6c64ea62e0000");
  assert.equal(hex(response.subarray(0, 8)), hex(desEncryptBlock(key, challenge.subarray(0, 8))));
  assert.equal(hex(response.subarray(8)), hex(desEncryptBlock(key, challenge.subarray(8))));
  // Only the first 8 characters count.
  assert.deepEqual(
    vncAuthResponse("12345678xyz", challenge),
    vncAuthResponse("12345678", challenge),
  );
});
