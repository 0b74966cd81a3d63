import assert from "node:assert/strict";
import { EventLoop } from "../../../core/event_loop.ts";
import { TFTP_PORT, TftpServer } from "./tftp.ts";

const GUEST = 0x0a00020f;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A server on a fresh folder, the datagrams it sent, and a way to wait for the next one. */
async function server() {
  const root = await Deno.makeTempDir();
  const loop = new EventLoop();
  const sent: { src: number; port: number; bytes: Uint8Array }[] = [];
  const tftp = new TftpServer(root, loop, (src, _addr, port, bytes) => {
    sent.push({ src, port, bytes });
  });
  const next = async () => {
    for (let i = 0; i < 300 && sent.length === 0; i++) {
      loop.advanceBy(0);
      if (sent.length === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const got = sent.shift();
    assert.ok(got, "the server answered");
    return got;
  };
  const rrq = (name: string, ...options: string[]) =>
    tftp.input(
      TFTP_PORT,
      GUEST,
      2000,
      enc.encode(`\0\x01${name}\0octet\0${options.map((o) => `${o}\0`).join("")}`),
    );
  const cleanup = async () => {
    tftp.close();
    await Deno.remove(root, { recursive: true });
  };
  return { root, tftp, next, rrq, cleanup };
}

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

Deno.test("TftpServer grants blksize (at most 1428) and tsize in an OACK, then sends blocks of that size", async () => {
  const s = await server();
  try {
    const file = pattern(5000);
    await Deno.writeFile(`${s.root}/ipxe.krn`, file);
    s.rrq("ipxe.krn", "blksize", "1432", "tsize", "0", "x-unknown", "1");
    const oack = await s.next();
    assert.equal(oack.port, 2000);
    assert.deepEqual([...oack.bytes.subarray(0, 2)], [0, 6]);
    assert.deepEqual(dec.decode(oack.bytes.subarray(2)).split("\0"), [
      "blksize",
      "1428",
      "tsize",
      "5000",
      "",
    ]);
    const port = oack.src;
    const got: number[] = [];
    for (let block = 0;; block++) {
      s.tftp.input(port, GUEST, 2000, new Uint8Array([0, 4, block >> 8, block & 0xff]));
      if (got.length === file.length && block > 0) break;
      const d = await s.next();
      assert.deepEqual([...d.bytes.subarray(0, 4)], [0, 3, (block + 1) >> 8, (block + 1) & 0xff]);
      assert.ok(d.bytes.length - 4 <= 1428);
      got.push(...d.bytes.subarray(4));
      if (d.bytes.length - 4 < 1428) {
        s.tftp.input(
          port,
          GUEST,
          2000,
          new Uint8Array([0, 4, (block + 1) >> 8, (block + 1) & 0xff]),
        );
        break;
      }
    }
    assert.deepEqual(new Uint8Array(got), file);
    assert.equal(s.tftp.owns(port), false, "the transfer ended with the last ACK");
  } finally {
    await s.cleanup();
  }
});

Deno.test("TftpServer keeps plain RFC 1350 (no OACK, 512-byte blocks) when no known option is asked", async () => {
  const s = await server();
  try {
    await Deno.writeFile(`${s.root}/a`, pattern(600));
    s.rrq("a", "blksize", "4"); // below RFC 2348's 8: ignored
    const d = await s.next();
    assert.deepEqual([...d.bytes.subarray(0, 4)], [0, 3, 0, 1]);
    assert.equal(d.bytes.length, 4 + 512);
    // An ACK from another guest port is not this transfer's.
    s.tftp.input(d.src, GUEST, 2001, new Uint8Array([0, 4, 0, 1]));
    s.tftp.input(d.src, GUEST, 2000, new Uint8Array([0, 4, 0, 1]));
    const d2 = await s.next();
    assert.deepEqual([...d2.bytes.subarray(0, 4)], [0, 3, 0, 2]);
    assert.equal(d2.bytes.length, 4 + 88);
  } finally {
    await s.cleanup();
  }
});

Deno.test("TftpServer answers path traversal, absolute paths and symlinks out of tftp= with an error", async () => {
  const s = await server();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${outside}/secret`, "SECRET");
    await Deno.mkdir(`${s.root}/sub`);
    await Deno.writeTextFile(`${s.root}/sub/ok`, "fine");
    await Deno.symlink(outside, `${s.root}/escape`);
    await Deno.symlink(`${outside}/secret`, `${s.root}/link`);
    const error = async (name: string) => {
      s.rrq(name);
      const r = await s.next();
      assert.deepEqual([...r.bytes.subarray(0, 2)], [0, 5], `${name} gets an ERROR`);
      assert.ok(!dec.decode(r.bytes).includes("SECRET"));
      return (r.bytes[2] << 8) | r.bytes[3];
    };
    assert.equal(await error("../../../../../../etc/passwd"), 2);
    assert.equal(await error(`../${outside.split("/").pop()}/secret`), 2);
    assert.equal(await error("sub/../../x"), 2);
    assert.equal(await error("..\\..\\etc\\passwd"), 2);
    assert.equal(await error("escape/secret"), 2);
    assert.equal(await error("link"), 2);
    // An absolute name is looked for inside the folder, where it is not.
    assert.equal(await error(`${outside}/secret`), 1);
    assert.equal(await error("sub"), 1, "a folder is not a file");
    // Inside the folder is fine, however it is spelled.
    s.rrq("/sub/./ok");
    const ok = await s.next();
    assert.equal(dec.decode(ok.bytes.subarray(4)), "fine");
    // Write requests are refused.
    s.tftp.input(TFTP_PORT, GUEST, 2000, enc.encode("\0\x02new\0octet\0"));
    assert.deepEqual([...(await s.next()).bytes.subarray(0, 4)], [0, 5, 0, 2]);
  } finally {
    await s.cleanup();
    await Deno.remove(outside, { recursive: true });
  }
});
